//! JWT verification: keys bound to one algorithm, header checks, signature, and claims on the injected clock.
//!
//! The token is parsed by hand (header, payload, signature) so that every refusal has its own
//! consumer-facing description and so that `exp`/`nbf` are checked against the gateway's
//! `Clock`, not the system time jsonwebtoken would read. jsonwebtoken (aws-lc backend) is used
//! only for the signature, always with the algorithm the key is bound to.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::{AuthError, AuthMethod, Principal};

/// A verification key bound to exactly one algorithm.
#[derive(Clone)]
pub struct VerifyKey {
    /// Key id matched against the token header's `kid`; `None` matches tokens without `kid`.
    pub kid: Option<String>,
    /// The one algorithm this key verifies.
    pub alg: Algorithm,
    /// The key material.
    pub key: DecodingKey,
}

impl VerifyKey {
    /// A key with an optional id, bound to `alg`.
    pub fn new(kid: Option<String>, alg: Algorithm, key: DecodingKey) -> Self {
        Self { kid, alg, key }
    }
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Where a provider's tokens carry their scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScopeClaim {
    /// `scope` (space-separated), else `scp` (as before providers existed).
    #[default]
    ScopeThenScp,
    /// Only `scope`, a space-separated string (RFC 8693 section 4.2, RFC 9068).
    Scope,
    /// Only `scp`, an array of strings (or a space-separated string).
    Scp,
}

/// Claim and shape rules of one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtRules {
    /// Accepted `iss` values; any when empty.
    pub issuers: Vec<String>,
    /// Accepted `aud` values (one match is enough); not checked when empty.
    pub audiences: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub leeway_secs: u64,
    /// Refuse tokens without `exp`.
    pub require_exp: bool,
    /// Other claims every token must carry (non-null).
    pub required_claims: Vec<String>,
    /// Required `typ` header, normalised (lower case, no `application/`).
    pub typ: Option<String>,
    /// Where scopes are read from.
    pub scope_claim: ScopeClaim,
    /// Algorithms tokens may use; any the keys are bound to when empty.
    pub algorithms: Vec<Algorithm>,
    /// Largest accepted token, bytes.
    pub max_token_bytes: usize,
}

impl Default for JwtRules {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway_secs: 30,
            require_exp: true,
            required_claims: Vec::new(),
            typ: None,
            scope_claim: ScopeClaim::default(),
            algorithms: Vec::new(),
            max_token_bytes: 8192,
        }
    }
}

/// A media type as `typ` compares it: lower case, without `application/` (RFC 7515 section 4.1.9).
pub(crate) fn normalize_typ(typ: &str) -> String {
    let lower = typ.trim().to_ascii_lowercase();
    match lower.strip_prefix("application/") {
        Some(rest) => rest.to_string(),
        None => lower,
    }
}

/// The decoded payload.
pub(crate) type Claims = Map<String, Value>;

/// The parts of a compact JWS after the header was checked.
#[derive(Debug)]
pub(crate) struct ParsedToken<'a> {
    /// `base64(header) "." base64(payload)`, the signed bytes.
    pub signing_input: &'a str,
    /// The payload, base64url.
    pub payload_b64: &'a str,
    /// The signature, base64url.
    pub signature: &'a str,
    /// The header's algorithm (never `none`).
    pub alg: Algorithm,
    /// The header's key id.
    pub kid: Option<String>,
    /// The header's `typ`, if a string.
    pub typ: Option<String>,
}

/// A token that passed signature and claim checks.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// Who the token speaks for.
    pub principal: Principal,
    /// `exp`, Unix seconds.
    pub exp: Option<u64>,
    /// `nbf`, Unix seconds.
    pub nbf: Option<u64>,
    /// `jti`, for revocation.
    pub jti: Option<String>,
}

fn invalid(why: &str) -> AuthError {
    AuthError::InvalidToken(why.to_string())
}

/// Parses the compact serialization and checks the header (size, shape, `alg`, `crit`).
pub(crate) fn parse(token: &str, max_bytes: usize) -> Result<ParsedToken<'_>, AuthError> {
    if token.len() > max_bytes {
        return Err(invalid("token too large"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(
            "token is not a JWT (expected header.payload.signature)",
        ));
    };
    if header_b64.is_empty() || payload_b64.is_empty() {
        return Err(invalid(
            "token is not a JWT (expected header.payload.signature)",
        ));
    }
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| invalid("token header is not valid base64url"))?;
    let header: Map<String, Value> = serde_json::from_slice(&header_bytes)
        .map_err(|_| invalid("token header is not a JSON object"))?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.as_str(),
        _ => return Err(invalid("token header has no alg")),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(invalid("unsigned tokens (alg none) are not accepted"));
    }
    if header.contains_key("crit") {
        return Err(invalid(
            "token header lists critical extensions (crit) the gateway does not support",
        ));
    }
    let alg = Algorithm::from_str(alg).map_err(|_| invalid("token algorithm not supported"))?;
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(invalid("token header kid must be a string")),
    };
    let typ = match header.get("typ") {
        Some(Value::String(t)) => Some(t.clone()),
        _ => None,
    };
    if signature.is_empty() {
        return Err(invalid("token has no signature"));
    }
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    Ok(ParsedToken {
        signing_input,
        payload_b64,
        signature,
        alg,
        kid,
        typ,
    })
}

/// Verifies the signature with `key`, using the key's algorithm (never the header's).
pub(crate) fn verify_signature(token: &ParsedToken<'_>, key: &VerifyKey) -> Result<(), AuthError> {
    if token.alg != key.alg {
        return Err(invalid("token algorithm not accepted for this key"));
    }
    match jsonwebtoken::crypto::verify(
        token.signature,
        token.signing_input.as_bytes(),
        &key.key,
        key.alg,
    ) {
        Ok(true) => Ok(()),
        Ok(false) => Err(invalid("signature invalid")),
        Err(e) => match e.kind() {
            jsonwebtoken::errors::ErrorKind::Base64(_) => {
                Err(invalid("token signature is not valid base64url"))
            }
            _ => Err(invalid("signature invalid")),
        },
    }
}

/// Checks `exp` and `nbf` against `now` (Unix seconds) with `leeway` seconds of tolerance.
///
/// A token is expired from `exp + leeway` on (RFC 7519 §4.1.4: "on or after"), and not yet
/// valid while `now + leeway < nbf`.
pub fn check_times(
    exp: Option<u64>,
    nbf: Option<u64>,
    now: u64,
    leeway: u64,
) -> Result<(), AuthError> {
    if let Some(exp) = exp
        && now >= exp.saturating_add(leeway)
    {
        return Err(invalid("token expired"));
    }
    if let Some(nbf) = nbf
        && now.saturating_add(leeway) < nbf
    {
        return Err(invalid("token not yet valid (nbf)"));
    }
    Ok(())
}

fn numeric_date(claims: &Claims, name: &str) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(v) = n.as_u64() {
                Ok(Some(v))
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite() && *f >= 0.0) {
                Ok(Some(f.floor() as u64))
            } else {
                Err(AuthError::InvalidToken(format!(
                    "token claim {name} must be a positive number of seconds"
                )))
            }
        }
        Some(_) => Err(AuthError::InvalidToken(format!(
            "token claim {name} must be a number"
        ))),
    }
}

fn opt_string(claims: &Claims, name: &str) -> Result<Option<String>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AuthError::InvalidToken(format!(
            "token claim {name} must be a string"
        ))),
    }
}

/// Splits a `scope` string on the space character only (RFC 6749 section 3.3: scope-tokens are
/// separated by SP; a tab or newline is part of a (then unmatchable) token, never a separator).
fn split_scopes(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn scope_string(claims: &Claims) -> Option<Result<Vec<String>, AuthError>> {
    let v = claims.get("scope").filter(|v| !v.is_null())?;
    Some(match v {
        Value::String(s) => Ok(split_scopes(s)),
        _ => Err(invalid(
            "token claim scope must be a space-separated string",
        )),
    })
}

fn scp_claim(claims: &Claims) -> Result<Vec<String>, AuthError> {
    match claims.get("scp") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(split_scopes(s)),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => Err(invalid("token claim scp must be an array of strings")),
            })
            .collect(),
        Some(_) => Err(invalid("token claim scp must be an array of strings")),
    }
}

fn scopes(claims: &Claims, from: ScopeClaim) -> Result<Vec<String>, AuthError> {
    match from {
        ScopeClaim::Scope => scope_string(claims).unwrap_or(Ok(Vec::new())),
        ScopeClaim::Scp => scp_claim(claims),
        ScopeClaim::ScopeThenScp => scope_string(claims).unwrap_or_else(|| scp_claim(claims)),
    }
}

fn check_audience(claims: &Claims, accepted: &[String]) -> Result<(), AuthError> {
    if accepted.is_empty() {
        return Ok(());
    }
    let ok = match claims.get("aud") {
        None | Some(Value::Null) => return Err(invalid("token has no audience (aud)")),
        Some(Value::String(a)) => accepted.iter().any(|x| x == a),
        Some(Value::Array(items)) => {
            let mut any = false;
            for i in items {
                match i {
                    Value::String(a) => any |= accepted.iter().any(|x| x == a),
                    _ => return Err(invalid("token claim aud must be a string or strings")),
                }
            }
            any
        }
        Some(_) => return Err(invalid("token claim aud must be a string or strings")),
    };
    if ok {
        Ok(())
    } else {
        Err(invalid("audience not accepted"))
    }
}

/// Decodes the payload (before the signature is checked: its `iss` picks the provider).
pub(crate) fn decode_claims(payload_b64: &str) -> Result<Claims, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| invalid("token payload is not valid base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| invalid("token payload is not a JSON object"))
}

/// The `iss` claim: absent, or a single string.
pub(crate) fn issuer(claims: &Claims) -> Result<Option<&str>, AuthError> {
    match claims.get("iss") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(invalid("token claim iss must be a single string")),
    }
}

/// Checks the header's `typ` against the provider's required one.
pub(crate) fn check_typ(token: &ParsedToken<'_>, rules: &JwtRules) -> Result<(), AuthError> {
    let Some(want) = &rules.typ else {
        return Ok(());
    };
    match &token.typ {
        Some(t) if normalize_typ(t) == *want => Ok(()),
        _ => Err(AuthError::InvalidToken(format!(
            "token type (typ header) must be {want}"
        ))),
    }
}

/// Checks the claims against `rules` at `now` (Unix seconds).
pub(crate) fn check_claims(
    claims: &Claims,
    rules: &JwtRules,
    now: u64,
) -> Result<VerifiedToken, AuthError> {
    let exp = numeric_date(claims, "exp")?;
    let nbf = numeric_date(claims, "nbf")?;
    if exp.is_none() && rules.require_exp {
        return Err(invalid("token has no expiry (exp)"));
    }
    check_times(exp, nbf, now, rules.leeway_secs)?;
    if let Some(missing) = rules
        .required_claims
        .iter()
        .find(|c| claims.get(c.as_str()).is_none_or(Value::is_null))
    {
        return Err(AuthError::InvalidToken(format!(
            "token lacks the required claim {missing}"
        )));
    }
    let iss = issuer(claims)?;
    if !rules.issuers.is_empty() {
        match iss {
            None => return Err(invalid("token has no issuer (iss)")),
            Some(i) if !rules.issuers.iter().any(|x| x == i) => {
                return Err(invalid("issuer not accepted"));
            }
            Some(_) => {}
        }
    }
    check_audience(claims, &rules.audiences)?;

    let client_id = match opt_string(claims, "client_id")? {
        Some(c) => Some(c),
        None => opt_string(claims, "azp")?,
    };
    let subject = match (opt_string(claims, "sub")?, &client_id) {
        (Some(s), _) => s,
        (None, Some(c)) => c.clone(),
        (None, None) => return Err(invalid("token has no subject (sub)")),
    };
    Ok(VerifiedToken {
        principal: Principal::new(
            subject,
            client_id,
            scopes(claims, rules.scope_claim)?,
            AuthMethod::Bearer,
        ),
        exp,
        nbf,
        jti: opt_string(claims, "jti")?,
    })
}

/// How a token's `kid`/`alg` resolved against a set of keys.
#[derive(Debug)]
pub(crate) enum Selection<'k> {
    /// Keys with the right id and algorithm, to try in order.
    Found(Vec<&'k VerifyKey>),
    /// A key with that id exists, but not for the token's algorithm.
    WrongAlgorithm,
    /// No key has that id.
    UnknownKid,
}

/// Most keys a token without `kid` is tried against (bounds the signature checks a forged
/// kid-less token costs).
pub(crate) const MAX_KIDLESS_CANDIDATES: usize = 8;

/// Selects one provider's keys for a token. With a `kid`: the keys with that id (or the
/// provider's only key when it has no id). Without: the keys of the token's algorithm, kid-less
/// keys first, at most `MAX_KIDLESS_CANDIDATES`. The token's `alg` must be the key's.
pub(crate) fn select<'k>(
    keys: &[&'k VerifyKey],
    kid: Option<&str>,
    alg: Algorithm,
) -> Selection<'k> {
    let Some(kid) = kid else {
        let kidless = keys.iter().filter(|k| k.kid.is_none());
        let named = keys.iter().filter(|k| k.kid.is_some());
        let found: Vec<&'k VerifyKey> = kidless
            .chain(named)
            .copied()
            .filter(|k| k.alg == alg)
            .take(MAX_KIDLESS_CANDIDATES)
            .collect();
        return match found.is_empty() {
            false => Selection::Found(found),
            true if keys.iter().any(|k| k.kid.is_none()) => Selection::WrongAlgorithm,
            true => Selection::UnknownKid,
        };
    };
    let mut by_kid: Vec<&'k VerifyKey> = keys
        .iter()
        .copied()
        .filter(|k| k.kid.as_deref() == Some(kid))
        .collect();
    if by_kid.is_empty() && keys.len() == 1 && keys[0].kid.is_none() {
        by_kid = keys.to_vec();
    }
    if by_kid.is_empty() {
        return Selection::UnknownKid;
    }
    let found: Vec<&'k VerifyKey> = by_kid.into_iter().filter(|k| k.alg == alg).collect();
    if found.is_empty() {
        Selection::WrongAlgorithm
    } else {
        Selection::Found(found)
    }
}

/// The family name of an algorithm's key type, for messages.
pub(crate) fn family_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => "HMAC secret",
        Algorithm::ES256 | Algorithm::ES384 => "EC public key",
        Algorithm::EdDSA => "Ed25519 public key",
        _ => "RSA public key",
    }
}

/// Whether `alg` is an HMAC algorithm.
pub(crate) fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Parses an algorithm name as written in config or a JWK (`none` is never accepted).
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    Algorithm::from_str(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_boundaries() {
        assert!(check_times(Some(100), None, 129, 30).is_ok());
        assert!(check_times(Some(100), None, 130, 30).is_err());
        assert!(check_times(None, Some(200), 170, 30).is_ok());
        assert!(check_times(None, Some(200), 169, 30).is_err());
    }

    #[test]
    fn parse_refuses_none_and_crit() {
        let rules = JwtRules::default().max_token_bytes;
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let t = format!("{h}.e30.");
        assert!(matches!(parse(&t, rules), Err(AuthError::InvalidToken(m)) if m.contains("none")));
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","crit":["exp"]}"#);
        let t = format!("{h}.e30.c2ln");
        assert!(matches!(parse(&t, rules), Err(AuthError::InvalidToken(m)) if m.contains("crit")));
    }
}
