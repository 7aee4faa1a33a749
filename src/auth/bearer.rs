//! Bearer verification: the `Authorization: Bearer` credential (RFC 6750), then the token checked by the provider its `iss` names.
//!
//! Order: size, the verified-token cache (an entry counts only for a route that accepts the
//! provider which verified it), header, claims decoded, provider by `iss`, the route's provider
//! set, `typ`, signature with that provider's keys, claims, revocation.

use std::sync::Arc;

use super::presented::Presented;
use super::provider::{Provider, ProviderSet};
use super::token_cache::{CachedToken, token_hash};
use super::{AuthError, Authenticator, MAX_CACHE_SECS, Principal, jwt};

fn invalid(why: &str) -> AuthError {
    AuthError::InvalidToken(why.to_string())
}

impl Authenticator {
    /// The bearer credential of a request (at most one `Authorization`, checked before).
    /// The token's b64token syntax is checked on a cache miss only: a hit means these exact
    /// bytes passed the check, and verification, before.
    pub(super) async fn bearer(
        &self,
        sent: &Presented<'_>,
        providers: ProviderSet,
    ) -> Result<Arc<Principal>, AuthError> {
        let value = sent
            .authorization
            .first
            .ok_or_else(|| self.missing_authorization())?;
        let token =
            bearer_credential(value.as_bytes()).ok_or(AuthError::InvalidAuthorizationFormat)?;
        self.verify(token, providers, true).await
    }

    /// Verifies a bearer token from any provider and returns its principal.
    pub async fn verify_token(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        self.verify_token_for(token, ProviderSet::ALL).await
    }

    /// Verifies a bearer token (cache, provider, signature, claims, revocation) for a route
    /// accepting `providers`, and returns its principal.
    pub async fn verify_token_for(
        &self,
        token: &str,
        providers: ProviderSet,
    ) -> Result<Arc<Principal>, AuthError> {
        self.verify(token, providers, false).await
    }

    /// `check_syntax`: a token that is not a `b64token` is `InvalidAuthorizationFormat`. It is
    /// checked after the cache: only verified tokens are cached, and a verified JWT is three
    /// base64url segments (`jwt::parse` and the signature check decode them strictly), which
    /// is always a `b64token`.
    async fn verify(
        &self,
        token: &str,
        providers: ProviderSet,
        check_syntax: bool,
    ) -> Result<Arc<Principal>, AuthError> {
        if token.len() > self.max_token_bytes {
            return Err(invalid("token too large"));
        }
        let now = self.state.clock.unix_secs();
        let hash = token_hash(token);
        let cache = self.state.cache.load();
        if let Some(hit) = cache.get(&hash, now)
            && hit.generation == self.generation
            && let Some(provider) = self.providers.get(hit.provider)
        {
            if !providers.contains(hit.provider) {
                return Err(not_on_route());
            }
            let usable = jwt::check_times(hit.exp, hit.nbf, now, provider.rules.leeway_secs)
                .and_then(|()| self.check_revoked(hit.jti.as_deref()));
            if let Err(e) = usable {
                cache.evict(&hash);
                return Err(e);
            }
            return Ok(hit.principal);
        }
        if check_syntax && !is_b64token(token) {
            return Err(AuthError::InvalidAuthorizationFormat);
        }
        let parsed = jwt::parse(token, self.max_token_bytes)?;
        let claims = jwt::decode_claims(parsed.payload_b64)?;
        let (index, provider) = self.provider_for(&claims)?;
        if !providers.contains(index) {
            return Err(not_on_route());
        }
        jwt::check_typ(&parsed, &provider.rules)?;
        provider.verify_signature(&parsed).await?;
        let verified = jwt::check_claims(&claims, &provider.rules, now)?;
        self.check_revoked(verified.jti.as_deref())?;
        let live_until = verified
            .exp
            .map_or(u64::MAX, |e| e.saturating_add(provider.rules.leeway_secs));
        let principal = Arc::new(verified.principal);
        cache.insert(
            hash,
            CachedToken {
                principal: principal.clone(),
                exp: verified.exp,
                nbf: verified.nbf,
                jti: verified.jti.map(Arc::from),
                generation: self.generation,
                provider: index,
                drop_at: live_until.min(now.saturating_add(MAX_CACHE_SECS)),
            },
            now,
        );
        Ok(principal)
    }

    /// The provider owning the token's `iss`.
    fn provider_for(&self, claims: &jwt::Claims) -> Result<(usize, &Provider), AuthError> {
        let iss = jwt::issuer(claims)?;
        match (self.providers.for_issuer(iss), iss) {
            (Some(found), _) => Ok(found),
            (None, None) => Err(invalid("token has no issuer (iss)")),
            (None, Some(_)) => Err(invalid("issuer not accepted")),
        }
    }

    fn check_revoked(&self, jti: Option<&str>) -> Result<(), AuthError> {
        match jti {
            Some(j) if self.state.is_revoked(j) => Err(invalid("token revoked")),
            _ => Ok(()),
        }
    }
}

fn not_on_route() -> AuthError {
    invalid("the token's issuer is not accepted on this route")
}

/// Whether an `Authorization` value uses the Bearer scheme (case-insensitive, RFC 7235).
pub(super) fn is_bearer_scheme(value: &[u8]) -> bool {
    value.len() >= 6
        && value[..6].eq_ignore_ascii_case(b"bearer")
        && (value.len() == 6 || value[6] == b' ')
}

/// The token of `Bearer <token>`: one RFC 6750 `b64token`,
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub(crate) fn bearer_token(value: &[u8]) -> Option<&str> {
    bearer_credential(value).filter(|t| is_b64token(t))
}

/// The text after `Bearer `, spaces trimmed, not yet checked to be a `b64token`.
fn bearer_credential(value: &[u8]) -> Option<&str> {
    if !is_bearer_scheme(value) {
        return None;
    }
    let rest = std::str::from_utf8(&value[6..])
        .ok()?
        .trim_start_matches(' ');
    Some(rest.trim_end_matches(' '))
}

/// Whether `token` is one RFC 6750 `b64token`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| B64TOKEN[usize::from(b)])
}

/// RFC 6750 b64token characters before the `=` padding, as a table: tokens are hundreds of
/// bytes, checked per request.
static B64TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(b"Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_token(b"bEaReR abc"), Some("abc"));
        assert_eq!(bearer_token(b"Bearer abc=="), Some("abc=="));
        assert_eq!(bearer_token(b"Bearer ===="), None);
        assert_eq!(bearer_token(b"Bearer a=b"), None);
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearerabc"), None);
        assert_eq!(bearer_token(b"Bearer a b"), None);
    }
}
