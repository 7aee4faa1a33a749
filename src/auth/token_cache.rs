//! Verified-token cache: SHA-256 of a token -> the principal it proved, bounded, dying at `exp`.
//!
//! Sixteen mutex-guarded shards (picked by the first hash byte) keep contention low. When a shard
//! is full, an insert evicts one entry chosen by sampling a few entries and taking the one that
//! expires first (expired entries go first), so eviction is O(1) and never scans the whole cache.
//! A hit re-checks `exp`/`nbf` against the clock, so an entry never outlives its token.
//! Entries remember the config generation and the provider that verified them: after a reload
//! (new issuers, audiences or keys) older entries are misses, and a route accepting other
//! providers refuses the entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::Principal;

const SHARDS: usize = 16;
const SAMPLE: usize = 8;

/// What a cached verification proved.
#[derive(Debug, Clone)]
pub struct CachedToken {
    /// The principal the token speaks for.
    pub principal: Arc<Principal>,
    /// `exp`, Unix seconds.
    pub exp: Option<u64>,
    /// `nbf`, Unix seconds.
    pub nbf: Option<u64>,
    /// `jti`, for revocation (shared: a hit clones the entry).
    pub jti: Option<Arc<str>>,
    /// Config generation that verified it.
    pub generation: u64,
    /// Index of the provider that verified it (in that generation's provider list): a hit
    /// counts only on a route accepting this provider.
    pub provider: usize,
    /// Unix second after which the entry is dropped even if the token lives on.
    pub drop_at: u64,
}

/// A token's cache key.
pub type TokenHash = [u8; 32];

/// Hashes a token for the cache.
pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The bounded cache.
#[derive(Debug)]
pub struct TokenCache {
    shards: Vec<Mutex<HashMap<TokenHash, CachedToken>>>,
    per_shard: usize,
}

impl TokenCache {
    /// A cache holding about `capacity` entries (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    fn shard(&self, hash: &TokenHash) -> &Mutex<HashMap<TokenHash, CachedToken>> {
        &self.shards[hash[0] as usize % SHARDS]
    }

    /// The entry for `hash` if present and still usable at `now` (Unix seconds); a stale entry
    /// (past `drop_at`) is removed.
    pub fn get(&self, hash: &TokenHash, now: u64) -> Option<CachedToken> {
        if self.per_shard == 0 {
            return None;
        }
        let mut shard = self.shard(hash).lock().unwrap_or_else(|p| p.into_inner());
        match shard.get(hash) {
            Some(e) if now < e.drop_at => Some(e.clone()),
            Some(_) => {
                shard.remove(hash);
                None
            }
            None => None,
        }
    }

    /// Stores an entry, evicting a sampled one if the shard is full.
    pub fn insert(&self, hash: TokenHash, entry: CachedToken, now: u64) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(&hash).lock().unwrap_or_else(|p| p.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(&hash) {
            let victim = shard
                .iter()
                .take(SAMPLE)
                .min_by_key(|(_, e)| if e.drop_at <= now { 0 } else { e.drop_at })
                .map(|(k, _)| *k);
            if let Some(v) = victim {
                shard.remove(&v);
            }
        }
        shard.insert(hash, entry);
    }

    /// Removes one token's entry.
    pub fn evict(&self, hash: &TokenHash) {
        let mut shard = self.shard(hash).lock().unwrap_or_else(|p| p.into_inner());
        shard.remove(hash);
    }

    /// Removes every entry whose `jti` is `jti` (revocation; scans the cache).
    pub fn evict_jti(&self, jti: &str) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.retain(|_, e| e.jti.as_deref() != Some(jti));
        }
    }

    /// Number of entries (all shards).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// True when the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMethod;

    fn entry(drop_at: u64) -> CachedToken {
        CachedToken {
            principal: Arc::new(Principal::new("s".into(), None, vec![], AuthMethod::Bearer)),
            exp: Some(drop_at),
            nbf: None,
            jti: Some(Arc::from(format!("j{drop_at}"))),
            generation: 1,
            provider: 0,
            drop_at,
        }
    }

    #[test]
    fn bounded_and_evicts() {
        let c = TokenCache::new(32);
        for i in 0..1000u64 {
            c.insert(token_hash(&i.to_string()), entry(100 + i), 0);
        }
        assert!(c.len() <= 32);
        c.insert(token_hash("x"), entry(50), 0);
        assert!(c.get(&token_hash("x"), 10).is_some());
        assert!(c.get(&token_hash("x"), 50).is_none());
        c.insert(token_hash("y"), entry(70), 0);
        c.evict_jti("j70");
        assert!(c.get(&token_hash("y"), 10).is_none());
    }
}
