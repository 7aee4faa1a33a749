//! Redis credentials: the scripts and parsing behind the credential methods of `RedisStore`.
//!
//! Keys, all in the OAuth hash tag: `cred:<kind>:<id>` (the record as JSON), `credidx:<kind>`
//! (a set of the ids), `credver` (the version instances poll), `audit` (a sorted set scored by
//! sequence number, members `"<seq> <json>"`) and `auditseq`. A write is one script: it checks
//! the record at the id (none for create; a live one for update), stores the record, appends the
//! audit record and bumps the version, atomically against every instance. Credentials carry no
//! expiry: they live until deleted, and a tombstone lives on.

use super::{AuditRecord, CredentialRecord, StoreError, StoreResult};

/// ARGV: P, mode (`create`|`update`), kind, id, record JSON, audit JSON.
pub(super) const WRITE: &str = r#"
local k = P .. 'cred:' .. ARGV[3] .. ':' .. ARGV[4]
local cur = redis.call('GET', k)
if ARGV[2] == 'create' then
  if cur then return 'exists' end
else
  if not cur then return 'missing' end
  if cjson.decode(cur)['status'] == 'deleted' then return 'missing' end
end
redis.call('SET', k, ARGV[5])
redis.call('SADD', P .. 'credidx:' .. ARGV[3], ARGV[4])
redis.call('INCR', P .. 'credver')
local seq = redis.call('INCR', P .. 'auditseq')
redis.call('ZADD', P .. 'audit', seq, seq .. ' ' .. ARGV[6])
return 'written'
"#;

/// ARGV: P, kind. Every record of the kind (JSON), in no particular order.
pub(super) const LIST: &str = r#"
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', P .. 'credidx:' .. ARGV[2])) do
  local v = redis.call('GET', P .. 'cred:' .. ARGV[2] .. ':' .. id)
  if v then out[#out + 1] = v end
end
return out
"#;

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::failed(e)
}

/// Records from `LIST`'s answer, ordered by id.
pub(super) fn records(json: &[String]) -> StoreResult<Vec<CredentialRecord>> {
    let mut out: Vec<CredentialRecord> = json
        .iter()
        .map(|j| serde_json::from_str(j).map_err(err))
        .collect::<StoreResult<_>>()?;
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// One record from a `GET`.
pub(super) fn record(json: Option<String>) -> StoreResult<Option<CredentialRecord>> {
    json.map(|j| serde_json::from_str(&j).map_err(err))
        .transpose()
}

/// Audit records from `"<seq> <json>"` members.
pub(super) fn audit(members: &[String]) -> StoreResult<Vec<AuditRecord>> {
    members
        .iter()
        .map(|m| {
            let (seq, json) = m
                .split_once(' ')
                .ok_or_else(|| err("malformed audit entry in Redis"))?;
            let mut rec: AuditRecord = serde_json::from_str(json).map_err(err)?;
            rec.seq = seq.parse().map_err(err)?;
            Ok(rec)
        })
        .collect()
}

/// JSON of a value the store writes (records and audit entries always serialise).
pub(super) fn json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(err)
}
