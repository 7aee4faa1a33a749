//! Replay memory: each verified webhook is remembered until its timestamp leaves the window, so
//! the same delivery presented again is refused.
//!
//! The key is a SHA-256 of the inbound scheme's name and the webhook id (when the scheme has
//! one) or the verified signature. In memory by default (kept across reloads in
//! `config::Shared`, bounded: expired entries are swept every 4096 inserts and at the cap, past
//! which a new webhook is refused rather than forgetting a live one); with
//! `[state] backend = "redis"`, one `SET key 1 NX EX ttl` per webhook, atomic across instances. A Redis failure refuses the
//! webhook (503): accepting it could accept a replay.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use crate::state::RedisState;

/// Default cap on remembered webhooks in memory.
pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;
/// Expired entries are swept once per this many inserts (amortized O(1) per webhook).
const SWEEP_EVERY: u64 = 4096;

/// A remembered webhook's key.
pub type ReplayKey = [u8; 32];

/// The key of a webhook of scheme `name` identified by `what` (its id or signature).
pub fn key(name: &str, what: &[u8]) -> ReplayKey {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(what);
    h.finalize().into()
}

/// What remembering a webhook found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time: now remembered.
    New,
    /// Already remembered: a replay.
    Again,
    /// The memory is full or its backend failed: nothing can be decided.
    Unavailable,
}

/// In-memory replay memory, shared by every snapshot.
#[derive(Debug)]
pub struct MemoryReplay {
    entries: DashMap<ReplayKey, u64>,
    max_entries: usize,
    inserts: AtomicU64,
}

impl Default for MemoryReplay {
    /// Holds at most [`DEFAULT_MAX_ENTRIES`].
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ENTRIES)
    }
}

impl MemoryReplay {
    /// A memory of at most `max_entries` live webhooks.
    pub fn new(max_entries: usize) -> Self {
        Self {
            entries: DashMap::new(),
            max_entries,
            inserts: AtomicU64::new(0),
        }
    }

    /// Remembers `key` until Unix second `until` (now = `now`).
    pub fn remember(&self, key: ReplayKey, now: u64, until: u64) -> Seen {
        let n = self.inserts.fetch_add(1, Ordering::Relaxed);
        if n % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.entries.retain(|_, exp| *exp >= now);
        }
        if self.entries.len() >= self.max_entries {
            self.entries.retain(|_, exp| *exp >= now);
            if self.entries.len() >= self.max_entries {
                return Seen::Unavailable;
            }
        }
        match self.entries.entry(key) {
            dashmap::Entry::Occupied(mut e) if *e.get() < now => {
                e.insert(until);
                Seen::New
            }
            dashmap::Entry::Occupied(_) => Seen::Again,
            dashmap::Entry::Vacant(v) => {
                v.insert(until);
                Seen::New
            }
        }
    }

    /// Forgets `key` (its delivery failed upstream, so the sender's retry must pass).
    pub fn forget(&self, key: &ReplayKey) {
        self.entries.remove(key);
    }

    /// Webhooks remembered (tests, metrics).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Where replay memory lives.
#[derive(Debug, Clone)]
pub enum Replay {
    /// This instance's memory.
    Memory(Arc<MemoryReplay>),
    /// The shared Redis backend.
    Redis(Arc<RedisState>),
}

impl Replay {
    /// Remembers `key` for `ttl_secs` (>= 1) from `now`.
    pub async fn remember(&self, key: ReplayKey, now: u64, ttl_secs: u64) -> Seen {
        let ttl = ttl_secs.max(1);
        match self {
            Replay::Memory(m) => m.remember(key, now, now + ttl),
            Replay::Redis(r) => {
                let k = r.key(&format!("webhook:{}", super::signature::hex(&key)));
                let set = r
                    .call("webhook_replay", |mut c| async move {
                        redis::cmd("SET")
                            .arg(&k)
                            .arg(1)
                            .arg("NX")
                            .arg("EX")
                            .arg(ttl)
                            .query_async::<Option<String>>(&mut c)
                            .await
                    })
                    .await;
                match set {
                    Ok(Some(_)) => Seen::New,
                    Ok(None) => Seen::Again,
                    Err(_) => Seen::Unavailable,
                }
            }
        }
    }

    /// Forgets `key`; a failure only logs (the webhook stays refused until its window passes).
    pub async fn forget(&self, key: ReplayKey) {
        match self {
            Replay::Memory(m) => m.forget(&key),
            Replay::Redis(r) => {
                let k = r.key(&format!("webhook:{}", super::signature::hex(&key)));
                let _ = r
                    .call("webhook_forget", |mut c| async move {
                        redis::cmd("DEL").arg(&k).query_async::<i64>(&mut c).await
                    })
                    .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_expiry_and_stays_bounded() {
        let m = MemoryReplay::new(2);
        assert_eq!(m.remember(key("a", b"1"), 100, 110), Seen::New);
        assert_eq!(m.remember(key("a", b"1"), 105, 115), Seen::Again);
        assert_eq!(m.remember(key("b", b"1"), 105, 115), Seen::New);
        assert_eq!(m.remember(key("a", b"2"), 105, 115), Seen::Unavailable);
        // Past the first entry's expiry, it is swept and its key is new again.
        assert_eq!(m.remember(key("a", b"1"), 111, 120), Seen::New);
        m.forget(&key("b", b"1"));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn expired_entries_are_swept_without_reaching_the_cap() {
        let m = MemoryReplay::new(usize::MAX);
        for i in 0..SWEEP_EVERY {
            assert_eq!(m.remember(key("a", &i.to_le_bytes()), 100, 110), Seen::New);
        }
        // The insert that completes a sweep period at a later time drops every expired entry.
        let late = (SWEEP_EVERY * 2).to_le_bytes();
        for i in 0..SWEEP_EVERY {
            m.remember(key("b", &[&late[..], &i.to_le_bytes()].concat()), 200, 210);
        }
        assert_eq!(m.len() as u64, SWEEP_EVERY);
    }
}
