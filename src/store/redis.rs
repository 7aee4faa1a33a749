//! Redis store: the `Store` trait on Redis, for several gateway instances sharing OAuth state.
//!
//! Semantics are those of `embedded`: every read-check-write (rotating a refresh token,
//! redeeming a code, revoking a family) is **one Lua script**, which Redis runs atomically
//! against every other client, so of two concurrent refreshes with one token on two instances
//! exactly one wins and the other is reuse. A nonce is one `SET NX`. Every key carries its own
//! expiry (`EXPIREAT` the record's expiry), so expired state disappears by itself;
//! `purge_expired` only trims the revocation log.
//!
//! Records are hashes (scopes space-joined), under `{<prefix>oauth}:` (see
//! `RedisState::oauth_key`): `rt:<hash>` refresh tokens, `fam:<id>` grant families with
//! `fa:<id>` (their access tokens, a sorted set by `exp`), `code:<hash>`, `nonce:<value>`,
//! `jti:<jti>` revoked access tokens, and the revocation log `revlog`/`revseq` that
//! `state::revocations` feeds to every instance. One hash tag for all of them keeps each script
//! inside one Redis Cluster slot (OAuth state is small; the limiter's keys are the ones spread).
//!
//! Run-time credentials and their audit trail: see `redis_credentials`.
//!
//! Durability: a write is acknowledged once Redis has it in memory; surviving `kill -9` of
//! Redis as the embedded store survives a crash needs `appendonly yes` with
//! `appendfsync always` (README, "Several instances").

use std::sync::Arc;

use redis::{FromRedisValue, Script};

use super::redis_credentials as creds;
use super::{
    AuditRecord, CodeRecord, CredentialKind, CredentialRecord, IssuedAccess, NewGrant,
    RedeemOutcome, RefreshRecord, RefreshStatus, RotateOutcome, Rotation, Store, StoreError,
    StoreFuture, StoreResult, WriteMode, WriteOutcome,
};
use crate::state::{RedisState, revocations};

/// Helpers every script starts with. ARGV[1] is the OAuth key prefix.
const COMMON: &str = r#"
local P = ARGV[1]
local function revoke_jti(jti, exp)
  redis.call('SET', P .. 'jti:' .. jti, '1', 'EXAT', math.max(tonumber(exp), 1))
  local seq = redis.call('INCR', P .. 'revseq')
  redis.call('ZADD', P .. 'revlog', seq, jti .. ' ' .. exp)
end
local function revoke_family(fid, now)
  local fkey, akey = P .. 'fam:' .. fid, P .. 'fa:' .. fid
  redis.call('HSET', fkey, 'revoked', '1')
  if redis.call('TTL', fkey) < 0 then redis.call('EXPIRE', fkey, 86400) end
  redis.call('ZREMRANGEBYSCORE', akey, '-inf', now)
  local list = redis.call('ZRANGE', akey, 0, -1, 'WITHSCORES')
  for i = 1, #list, 2 do revoke_jti(list[i], list[i + 1]) end
  return list
end
local function remember(fid, jti, exp, now, until_)
  local fkey, akey = P .. 'fam:' .. fid, P .. 'fa:' .. fid
  redis.call('ZREMRANGEBYSCORE', akey, '-inf', now)
  redis.call('ZADD', akey, exp, jti)
  local fexp = math.max(tonumber(redis.call('HGET', fkey, 'exp') or '0'), tonumber(until_), tonumber(exp))
  redis.call('HSET', fkey, 'exp', fexp)
  redis.call('EXPIREAT', fkey, fexp)
  redis.call('EXPIREAT', akey, fexp)
end
"#;

/// ARGV: P, family, client, refresh hash, subject, scopes, refresh exp, jti, access exp.
const CREATE: &str = r#"
redis.call('HSET', P .. 'fam:' .. ARGV[2], 'client', ARGV[3])
remember(ARGV[2], ARGV[8], ARGV[9], 0, ARGV[7])
local rk = P .. 'rt:' .. ARGV[4]
redis.call('HSET', rk, 'family', ARGV[2], 'client', ARGV[3], 'subject', ARGV[5], 'scopes', ARGV[6], 'exp', ARGV[7], 'spent', '0')
redis.call('EXPIREAT', rk, ARGV[7])
return 'ok'
"#;

/// ARGV: P, old hash, client, has requested scopes, requested scopes, new hash, new exp, jti,
/// access exp, now.
const ROTATE: &str = r#"
local now = tonumber(ARGV[10])
local rk = P .. 'rt:' .. ARGV[2]
local r = redis.call('HMGET', rk, 'family', 'client', 'subject', 'scopes', 'exp', 'spent')
if not r[1] then return {'not_found'} end
if r[2] ~= ARGV[3] then return {'wrong_client'} end
local fid = r[1]
if redis.call('HGET', P .. 'fam:' .. fid, 'revoked') == '1' then return {'revoked'} end
if r[6] == '1' then return {'reused', unpack(revoke_family(fid, now))} end
if tonumber(r[5]) <= now then return {'expired'} end
if ARGV[4] == '1' then
  local granted = {}
  for s in string.gmatch(r[4], '%S+') do granted[s] = true end
  for s in string.gmatch(ARGV[5], '%S+') do
    if not granted[s] then return {'scope_exceeded'} end
  end
end
redis.call('HSET', rk, 'spent', '1')
local nk = P .. 'rt:' .. ARGV[6]
redis.call('HSET', nk, 'family', fid, 'client', r[2], 'subject', r[3], 'scopes', r[4], 'exp', ARGV[7], 'spent', '0')
redis.call('EXPIREAT', nk, ARGV[7])
remember(fid, ARGV[8], ARGV[9], now, ARGV[7])
return {'rotated', fid, r[2], r[3], r[4], r[5]}
"#;

/// ARGV: P, hash. Returns {} or the record's fields and the family's revoked flag.
const STATUS: &str = r#"
local r = redis.call('HMGET', P .. 'rt:' .. ARGV[2], 'family', 'client', 'subject', 'scopes', 'exp', 'spent')
if not r[1] then return {} end
local rev = redis.call('HGET', P .. 'fam:' .. r[1], 'revoked') == '1'
return {r[1], r[2], r[3], r[4], r[5], r[6], rev and '1' or '0'}
"#;

/// ARGV: P, family, now.
const REVOKE_FAMILY: &str = r#"
return revoke_family(ARGV[2], tonumber(ARGV[3]))
"#;

/// ARGV: P, hash, now.
const REDEEM: &str = r#"
local now = tonumber(ARGV[3])
local ck = P .. 'code:' .. ARGV[2]
local c = redis.call('HMGET', ck, 'client', 'redirect', 'subject', 'scopes', 'challenge', 'exp', 'family', 'used')
if not c[1] then return {'not_found'} end
if c[8] == '1' then return {'reused', unpack(revoke_family(c[7], now))} end
if tonumber(c[6]) <= now then
  redis.call('DEL', ck)
  return {'not_found'}
end
redis.call('HSET', ck, 'used', '1')
return {'redeemed', c[1], c[2], c[3], c[4], c[5], c[6], c[7]}
"#;

/// ARGV: P, jti, exp.
const REVOKE_JTI: &str = r#"
revoke_jti(ARGV[2], ARGV[3])
return 'ok'
"#;

/// ARGV: P, now. Trims log entries past their exp; returns how many.
const PURGE: &str = r#"
local now = tonumber(ARGV[2])
local n = 0
for _, m in ipairs(redis.call('ZRANGE', P .. 'revlog', 0, -1)) do
  local exp = tonumber(string.match(m, ' (%d+)$'))
  if exp == nil or exp <= now then
    redis.call('ZREM', P .. 'revlog', m)
    n = n + 1
  end
end
return n
"#;

struct Scripts {
    create: Script,
    rotate: Script,
    status: Script,
    revoke_family: Script,
    redeem: Script,
    revoke_jti: Script,
    purge: Script,
    write_credential: Script,
    list_credentials: Script,
}

fn lua(body: &str) -> Script {
    Script::new(&format!("{COMMON}{body}"))
}

/// The Redis backend. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    state: Arc<RedisState>,
    scripts: Arc<Scripts>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::failed(e)
}

fn scopes(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn num(s: &str) -> StoreResult<u64> {
    s.parse()
        .map_err(|_| err(format!("not a number in Redis: {s:?}")))
}

/// `[jti, exp, jti, exp, ...]` from `ZRANGE .. WITHSCORES`.
fn access_list(flat: &[String]) -> StoreResult<Vec<IssuedAccess>> {
    flat.chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| {
            Ok(IssuedAccess {
                jti: c[0].clone(),
                exp: num(&c[1])?,
            })
        })
        .collect()
}

/// A refresh record from `[family, client, subject, scopes, exp, spent]`.
fn refresh_record(f: &[String]) -> StoreResult<RefreshRecord> {
    if f.len() < 6 {
        return Err(err("short refresh record in Redis"));
    }
    Ok(RefreshRecord {
        family_id: f[0].clone(),
        client_id: f[1].clone(),
        subject: f[2].clone(),
        scopes: scopes(&f[3]),
        expires_at: num(&f[4])?,
        spent: f[5] == "1",
    })
}

impl RedisStore {
    /// A store on `state`'s connection.
    pub fn new(state: Arc<RedisState>) -> Self {
        let scripts = Scripts {
            create: lua(CREATE),
            rotate: lua(ROTATE),
            status: lua(STATUS),
            revoke_family: lua(REVOKE_FAMILY),
            redeem: lua(REDEEM),
            revoke_jti: lua(REVOKE_JTI),
            purge: lua(PURGE),
            write_credential: lua(creds::WRITE),
            list_credentials: lua(creds::LIST),
        };
        Self {
            state,
            scripts: Arc::new(scripts),
        }
    }

    /// Runs the script `pick` chooses with ARGV = [oauth prefix, args...].
    fn eval<T, F>(&self, op: &'static str, pick: F, args: Vec<String>) -> StoreFuture<'_, T>
    where
        T: FromRedisValue + Send + 'static,
        F: Fn(&Scripts) -> &Script + Send + 'static,
    {
        let scripts = self.scripts.clone();
        let prefix = self.state.oauth_key("");
        // One declared key in the OAuth hash tag, so a Cluster-aware proxy routes the script to
        // the slot every key it touches lives in.
        let slot_key = revocations::seq_key(&self.state);
        Box::pin(async move {
            self.state
                .call_store(op, |mut conn| async move {
                    let script = pick(&scripts);
                    let mut inv = script.key(slot_key);
                    inv.arg(prefix);
                    for a in args {
                        inv.arg(a);
                    }
                    inv.invoke_async(&mut conn).await
                })
                .await
                .map_err(StoreError::from)
        })
    }
}

impl Store for RedisStore {
    fn create_grant(&self, g: NewGrant) -> StoreFuture<'_, ()> {
        let r = g.record;
        let args = vec![
            g.family_id,
            r.client_id,
            g.refresh_hash,
            r.subject,
            r.scopes.join(" "),
            r.expires_at.to_string(),
            g.access.jti,
            g.access.exp.to_string(),
        ];
        let fut = self.eval::<String, _>("store_create_grant", |s| &s.create, args);
        Box::pin(async move { fut.await.map(drop) })
    }

    fn rotate_refresh(&self, r: Rotation) -> StoreFuture<'_, RotateOutcome> {
        let (has, req) = match &r.requested_scopes {
            Some(s) => ("1", s.join(" ")),
            None => ("0", String::new()),
        };
        let args = vec![
            r.old_hash,
            r.client_id,
            has.to_string(),
            req,
            r.new_hash,
            r.new_expires_at.to_string(),
            r.access.jti,
            r.access.exp.to_string(),
            r.now.to_string(),
        ];
        let fut = self.eval::<Vec<String>, _>("store_rotate_refresh", |s| &s.rotate, args);
        Box::pin(async move {
            let out = fut.await?;
            Ok(match out.first().map(String::as_str) {
                Some("rotated") => {
                    let mut rec = refresh_record(&[&out[1..], &["1".to_string()]].concat())?;
                    rec.spent = true;
                    RotateOutcome::Rotated(rec)
                }
                Some("not_found") => RotateOutcome::NotFound,
                Some("wrong_client") => RotateOutcome::WrongClient,
                Some("revoked") => RotateOutcome::Revoked,
                Some("expired") => RotateOutcome::Expired,
                Some("scope_exceeded") => RotateOutcome::ScopeExceeded,
                Some("reused") => RotateOutcome::Reused(access_list(&out[1..])?),
                _ => return Err(err("unexpected answer from the rotation script")),
            })
        })
    }

    fn refresh_status(&self, hash: String) -> StoreFuture<'_, Option<RefreshStatus>> {
        let fut = self.eval::<Vec<String>, _>("store_refresh_status", |s| &s.status, vec![hash]);
        Box::pin(async move {
            let out = fut.await?;
            if out.len() < 7 {
                return Ok(None);
            }
            Ok(Some(RefreshStatus {
                record: refresh_record(&out[..6])?,
                family_revoked: out[6] == "1",
            }))
        })
    }

    fn revoke_family(&self, family_id: String, now: u64) -> StoreFuture<'_, Vec<IssuedAccess>> {
        let args = vec![family_id, now.to_string()];
        let fut = self.eval::<Vec<String>, _>("store_revoke_family", |s| &s.revoke_family, args);
        Box::pin(async move { access_list(&fut.await?) })
    }

    fn put_code(&self, hash: String, c: CodeRecord) -> StoreFuture<'_, ()> {
        let key = self.state.oauth_key(&format!("code:{hash}"));
        Box::pin(async move {
            self.state
                .call_store("store_put_code", |mut conn| async move {
                    redis::pipe()
                        .atomic()
                        .hset_multiple(
                            &key,
                            &[
                                ("client", c.client_id),
                                ("redirect", c.redirect_uri),
                                ("subject", c.subject),
                                ("scopes", c.scopes.join(" ")),
                                ("challenge", c.code_challenge),
                                ("exp", c.expires_at.to_string()),
                                ("family", c.family_id),
                                ("used", if c.used { "1" } else { "0" }.to_string()),
                            ],
                        )
                        .ignore()
                        .expire_at(&key, c.expires_at.max(1) as i64)
                        .ignore()
                        .query_async::<()>(&mut conn)
                        .await
                })
                .await
                .map_err(StoreError::from)
        })
    }

    fn redeem_code(&self, hash: String, now: u64) -> StoreFuture<'_, RedeemOutcome> {
        let args = vec![hash, now.to_string()];
        let fut = self.eval::<Vec<String>, _>("store_redeem_code", |s| &s.redeem, args);
        Box::pin(async move {
            let out = fut.await?;
            Ok(match out.first().map(String::as_str) {
                Some("redeemed") if out.len() >= 8 => RedeemOutcome::Redeemed(CodeRecord {
                    client_id: out[1].clone(),
                    redirect_uri: out[2].clone(),
                    subject: out[3].clone(),
                    scopes: scopes(&out[4]),
                    code_challenge: out[5].clone(),
                    expires_at: num(&out[6])?,
                    family_id: out[7].clone(),
                    used: true,
                }),
                Some("not_found") => RedeemOutcome::NotFound,
                Some("reused") => RedeemOutcome::Reused(access_list(&out[1..])?),
                _ => return Err(err("unexpected answer from the redemption script")),
            })
        })
    }

    fn use_nonce(&self, nonce: String, exp: u64) -> StoreFuture<'_, bool> {
        let key = self.state.oauth_key(&format!("nonce:{nonce}"));
        Box::pin(async move {
            self.state
                .call_store("store_use_nonce", |mut conn| async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg("1")
                        .arg("NX")
                        .arg("EXAT")
                        .arg(exp.max(1))
                        .query_async::<Option<String>>(&mut conn)
                        .await
                })
                .await
                .map(|set| set.is_some())
                .map_err(StoreError::from)
        })
    }

    fn revoke_jti(&self, jti: String, exp: u64) -> StoreFuture<'_, ()> {
        let args = vec![jti, exp.to_string()];
        let fut = self.eval::<String, _>("store_revoke_jti", |s| &s.revoke_jti, args);
        Box::pin(async move { fut.await.map(drop) })
    }

    fn is_jti_revoked(&self, jti: String) -> StoreFuture<'_, bool> {
        let key = self.state.oauth_key(&format!("jti:{jti}"));
        Box::pin(async move {
            self.state
                .call_store("store_is_jti_revoked", |mut conn| async move {
                    redis::cmd("EXISTS")
                        .arg(&key)
                        .query_async::<bool>(&mut conn)
                        .await
                })
                .await
                .map_err(StoreError::from)
        })
    }

    fn revoked_jtis(&self, now: u64) -> StoreFuture<'_, Vec<IssuedAccess>> {
        let key = revocations::log_key(&self.state);
        Box::pin(async move {
            let members: Vec<String> = self
                .state
                .call_store("store_revoked_jtis", |mut conn| async move {
                    redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut conn)
                        .await
                })
                .await
                .map_err(StoreError::from)?;
            Ok(members
                .iter()
                .filter_map(|m| revocations::parse(m))
                .filter(|(_, exp)| *exp > now)
                .map(|(jti, exp)| IssuedAccess {
                    jti: jti.to_string(),
                    exp,
                })
                .collect())
        })
    }

    fn purge_expired(&self, now: u64) -> StoreFuture<'_, usize> {
        let fut = self.eval::<usize, _>("store_purge", |s| &s.purge, vec![now.to_string()]);
        Box::pin(fut)
    }

    fn write_credential(
        &self,
        record: CredentialRecord,
        mode: WriteMode,
        audit: AuditRecord,
    ) -> StoreFuture<'_, WriteOutcome> {
        let encoded = creds::json(&record).and_then(|r| Ok((r, creds::json(&audit)?)));
        Box::pin(async move {
            let (rec, audit) = encoded?;
            let mode = match mode {
                WriteMode::Create => "create",
                WriteMode::Update => "update",
            };
            let args = vec![
                mode.to_string(),
                record.kind.as_str().to_string(),
                record.id,
                rec,
                audit,
            ];
            let out: String = self
                .eval("store_write_credential", |s| &s.write_credential, args)
                .await?;
            Ok(match out.as_str() {
                "written" => WriteOutcome::Written,
                "exists" => WriteOutcome::Exists,
                "missing" => WriteOutcome::Missing,
                _ => return Err(err("unexpected answer from the credential script")),
            })
        })
    }

    fn credential(
        &self,
        kind: CredentialKind,
        id: String,
    ) -> StoreFuture<'_, Option<CredentialRecord>> {
        let key = self
            .state
            .oauth_key(&format!("cred:{}:{id}", kind.as_str()));
        Box::pin(async move {
            let json: Option<String> = self
                .state
                .call_store("store_credential", |mut conn| async move {
                    redis::cmd("GET").arg(&key).query_async(&mut conn).await
                })
                .await
                .map_err(StoreError::from)?;
            creds::record(json)
        })
    }

    fn credentials(&self, kind: CredentialKind) -> StoreFuture<'_, Vec<CredentialRecord>> {
        let args = vec![kind.as_str().to_string()];
        let fut = self.eval::<Vec<String>, _>("store_credentials", |s| &s.list_credentials, args);
        Box::pin(async move { creds::records(&fut.await?) })
    }

    fn credentials_version(&self) -> StoreFuture<'_, u64> {
        let key = self.state.oauth_key("credver");
        Box::pin(async move {
            let v: Option<u64> = self
                .state
                .call_store("store_credentials_version", |mut conn| async move {
                    redis::cmd("GET").arg(&key).query_async(&mut conn).await
                })
                .await
                .map_err(StoreError::from)?;
            Ok(v.unwrap_or(0))
        })
    }

    fn audit(&self, after: u64, limit: usize) -> StoreFuture<'_, Vec<AuditRecord>> {
        let key = self.state.oauth_key("audit");
        Box::pin(async move {
            let members: Vec<String> = self
                .state
                .call_store("store_audit", |mut conn| async move {
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(&key)
                        .arg(format!("({after}"))
                        .arg("+inf")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(limit)
                        .query_async(&mut conn)
                        .await
                })
                .await
                .map_err(StoreError::from)?;
            creds::audit(&members)
        })
    }
}
