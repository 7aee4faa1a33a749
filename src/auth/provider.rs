//! JWT providers: one issuer, the keys that verify its tokens and its claim rules, found by a token's `iss`.
//!
//! RFC 8725 section 3.8: the keys that verify a token must belong to its issuer. A token's
//! `iss` picks exactly one provider; only that provider's keys (static and JWKS) are tried, so
//! a key of another provider never verifies it, whatever its `kid`. Routes accept a
//! `ProviderSet`; the verified-token cache remembers which provider verified each entry.

use std::sync::Arc;

use super::AuthError;
use super::jwks::JwksSource;
use super::jwt::{self, JwtRules, ParsedToken, Selection, VerifyKey};
use crate::log_limit::LogLimit;

/// Name of the built-in token service's provider (`[oauth]`).
pub const BUILTIN: &str = "oauth";
/// Name of the provider made of `[jwt]`'s top-level `issuers`, `audiences`, `keys`, `jwks`.
pub const DEFAULT: &str = "default";
/// Most providers one config may define (a route's set is a 64-bit mask).
pub const MAX_PROVIDERS: usize = 64;

static UNKNOWN_KID: LogLimit = LogLimit::per_secs(10);

/// The providers a route accepts, as a bit per provider index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderSet(u64);

impl ProviderSet {
    /// Every provider (a route without a `providers` list).
    pub const ALL: Self = Self(u64::MAX);
    /// No provider.
    pub const NONE: Self = Self(0);

    /// Whether the provider at `index` is in the set.
    pub fn contains(self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }

    /// The set plus `index`.
    pub(crate) fn with(self, index: usize) -> Self {
        Self(self.0 | (1u64 << (index % 64)))
    }
}

/// The built-in token service as a provider: its issuer, audience and verification keys.
#[derive(Debug, Clone)]
pub struct BuiltinIssuer {
    /// `iss` of its tokens.
    pub issuer: String,
    /// `aud` of its tokens.
    pub audience: String,
    /// Its signing keys' public halves.
    pub keys: Vec<VerifyKey>,
}

/// One identity provider.
pub struct Provider {
    /// Its name (`[jwt.providers.NAME]`, `default` or `oauth`).
    pub name: String,
    /// Accepts tokens of any `iss` that no other provider claims (only the `default` provider
    /// of a `[jwt]` without `issuers`, as before providers existed).
    pub any_issuer: bool,
    /// Claim rules; `issuers` are the exact `iss` values it owns.
    pub rules: JwtRules,
    /// Static keys.
    pub keys: Vec<VerifyKey>,
    /// JWKS sources.
    pub jwks: Vec<Arc<JwksSource>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("issuers", &self.rules.issuers)
            .field("keys", &self.keys)
            .field(
                "jwks",
                &self.jwks.iter().map(|s| s.url()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Provider {
    fn try_keys(&self, parsed: &ParsedToken<'_>) -> Result<(), Option<AuthError>> {
        let snapshots: Vec<Arc<Vec<VerifyKey>>> = self.jwks.iter().map(|s| s.keys()).collect();
        let mut all: Vec<&VerifyKey> = self.keys.iter().collect();
        for s in &snapshots {
            all.extend(s.iter());
        }
        match jwt::select(&all, parsed.kid.as_deref(), parsed.alg) {
            Selection::Found(keys) => {
                let mut last = AuthError::InvalidToken("signature invalid".into());
                for k in keys {
                    match jwt::verify_signature(parsed, k) {
                        Ok(()) => return Ok(()),
                        Err(e) => last = e,
                    }
                }
                Err(Some(last))
            }
            Selection::WrongAlgorithm => Err(Some(AuthError::InvalidToken(
                "token algorithm not accepted for this key".into(),
            ))),
            Selection::UnknownKid => Err(None),
        }
    }

    /// Verifies the signature with this provider's keys only; an unknown `kid` causes one
    /// shared, bounded refetch of this provider's JWKS sources.
    pub(crate) async fn verify_signature(&self, parsed: &ParsedToken<'_>) -> Result<(), AuthError> {
        if !self.rules.algorithms.is_empty() && !self.rules.algorithms.contains(&parsed.alg) {
            return Err(AuthError::InvalidToken(
                "token algorithm not accepted by its issuer".into(),
            ));
        }
        let unknown = || AuthError::InvalidToken("unknown signing key (kid)".into());
        match self.try_keys(parsed) {
            Ok(()) => return Ok(()),
            Err(Some(e)) => return Err(e),
            Err(None) if self.jwks.is_empty() => return Err(unknown()),
            Err(None) => {}
        }
        let mut changed = false;
        for s in &self.jwks {
            changed |= s.refetch_for_unknown_kid().await;
        }
        if changed {
            match self.try_keys(parsed) {
                Ok(()) => return Ok(()),
                Err(Some(e)) => return Err(e),
                Err(None) => {}
            }
        }
        for s in &self.jwks {
            s.count_unknown_kid_refusal();
        }
        if let Some(suppressed) = UNKNOWN_KID.admit() {
            let kid: String = parsed
                .kid
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(64)
                .collect();
            tracing::warn!(provider = %self.name, kid = %kid, suppressed, "token refused: unknown kid");
        }
        Err(unknown())
    }
}

/// Every provider of one config snapshot.
#[derive(Debug, Default)]
pub(crate) struct Providers {
    list: Vec<Provider>,
}

impl Providers {
    /// The providers, in index order.
    pub(crate) fn new(list: Vec<Provider>) -> Self {
        Self { list }
    }

    /// All providers.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Provider> {
        self.list.iter()
    }

    /// The provider at `index`.
    pub(crate) fn get(&self, index: usize) -> Option<&Provider> {
        self.list.get(index)
    }

    /// The provider at `index`, mutable (extra keys from outside the config).
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut Provider> {
        self.list.get_mut(index)
    }

    /// Index of the provider called `name`.
    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.list.iter().position(|p| p.name == name)
    }

    /// The provider owning `iss` (exact match), else the one accepting any issuer.
    pub(crate) fn for_issuer(&self, iss: Option<&str>) -> Option<(usize, &Provider)> {
        if let Some(iss) = iss
            && let Some(found) = self
                .list
                .iter()
                .enumerate()
                .find(|(_, p)| p.rules.issuers.iter().any(|i| i == iss))
        {
            return Some(found);
        }
        self.list.iter().enumerate().find(|(_, p)| p.any_issuer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets() {
        let s = ProviderSet::NONE.with(0).with(3);
        assert!(s.contains(0) && s.contains(3) && !s.contains(1) && !s.contains(64));
        assert!(ProviderSet::ALL.contains(63));
    }
}
