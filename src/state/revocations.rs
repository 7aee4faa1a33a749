//! Revocations: the feed that brings access tokens revoked on any instance to every instance's verifier.
//!
//! Every revocation the Redis store records (RFC 7009, a family revoked on refresh or code
//! reuse) is also appended to an ordered log: a sorted set `revlog` scored by a counter `revseq`,
//! members `"<jti> <exp>"`, written in the same Lua script as the revocation itself. Each instance
//! polls the log every [`POLL_EVERY`] for entries after the last sequence number it has seen (one
//! round trip: `GET revseq` + `ZRANGEBYSCORE`), and hands them to the verifier's revocation hook,
//! which refuses the token until `exp`, verified-token cache included. A token revoked on one
//! instance is thus refused everywhere within about 250 ms while Redis is up.
//!
//! Why a polled log and not pub/sub or a per-request lookup: pub/sub drops messages sent while a
//! subscriber is reconnecting (so it needs a resync anyway), and a lookup per request puts a
//! Redis round trip (and Redis's availability) on every bearer request. The log is loss-free
//! across reconnects (a poll resumes from its last sequence number), costs one small round trip
//! per instance per 250 ms, and the first poll reads it whole, which seeds a starting instance.
//! If Redis lost its data (`revseq` below the last number seen), the instance rereads from 0.
//! The store trims entries past their `exp` when it purges.
//!
//! The same round trip reads `credver`, the version of the credentials created through the
//! admin API (`store::redis_credentials`); when it moves, the credentials hook rebuilds this
//! instance's view, so a client suspended or deleted on one instance is refused everywhere
//! within the same bound.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::RedisState;
use crate::clock::SharedClock;

/// How often each instance reads new revocations.
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// Entries read per round trip.
const BATCH: usize = 1000;

/// Called with `(jti, exp)` for each revoked access token.
pub type Hook = Arc<dyn Fn(&str, u64) + Send + Sync>;

/// Called with the new credentials version when another write moved it.
pub type CredentialsHook = Arc<dyn Fn(u64) + Send + Sync>;

/// The log's key (`revlog`, in the OAuth hash tag).
pub fn log_key(state: &RedisState) -> String {
    state.oauth_key("revlog")
}

/// The sequence counter's key.
pub fn seq_key(state: &RedisState) -> String {
    state.oauth_key("revseq")
}

/// The credentials version's key.
pub fn credentials_version_key(state: &RedisState) -> String {
    state.oauth_key("credver")
}

/// Starts polling the log; the task ends when the state is dropped.
pub fn spawn(
    state: &Arc<RedisState>,
    hook: Hook,
    credentials: Option<CredentialsHook>,
    clock: SharedClock,
) {
    let weak = Arc::downgrade(state);
    tokio::spawn(async move { poll(weak, hook, credentials, clock).await });
}

async fn poll(
    state: Weak<RedisState>,
    hook: Hook,
    credentials: Option<CredentialsHook>,
    clock: SharedClock,
) {
    let mut last: u64 = 0;
    let mut version: u64 = 0;
    loop {
        let Some(s) = state.upgrade() else { return };
        let answer = read(&s, last).await;
        if let (Ok((_, v, _)), Some(on_change)) = (&answer, &credentials)
            && *v != version
        {
            version = *v;
            on_change(version);
        }
        let more = match answer.map(|(seq, _, entries)| (seq, entries)) {
            Ok((seq, entries)) if seq < last => {
                tracing::warn!(
                    seq,
                    last,
                    "the revocation log restarted (Redis lost its data); rereading it"
                );
                last = 0;
                !entries.is_empty()
            }
            Ok((_, entries)) => {
                let now = clock.unix_secs();
                let full = entries.len() == BATCH;
                for (member, score) in entries {
                    if let Some((jti, exp)) = parse(&member)
                        && exp > now
                    {
                        hook(jti, exp);
                    }
                    last = last.max(score);
                }
                full
            }
            Err(_) => false,
        };
        drop(s);
        if !more {
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// A log entry and its sequence number.
type Entries = Vec<(String, u64)>;

/// `(revseq, credver, entries after last)` in one round trip.
async fn read(s: &RedisState, last: u64) -> Result<(u64, u64, Entries), super::StateError> {
    let (log, seq, ver) = (log_key(s), seq_key(s), credentials_version_key(s));
    s.call("revocation_feed", |mut conn| async move {
        let (seq, ver, entries): (Option<u64>, Option<u64>, Entries) = redis::pipe()
            .get(&seq)
            .get(&ver)
            .zrangebyscore_limit_withscores(&log, format!("({last}"), "+inf", 0, BATCH as isize)
            .query_async(&mut conn)
            .await?;
        Ok((seq.unwrap_or(0), ver.unwrap_or(0), entries))
    })
    .await
}

/// `"<jti> <exp>"`.
pub fn parse(member: &str) -> Option<(&str, u64)> {
    let (jti, exp) = member.rsplit_once(' ')?;
    Some((jti, exp.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn members_parse() {
        assert_eq!(super::parse("abc 17"), Some(("abc", 17)));
        assert_eq!(super::parse("abc"), None);
        assert_eq!(super::parse("abc x"), None);
    }
}
