//! Signer: JWT access tokens signed by the active key, verified by any configured key, and the
//! JWKS of the public halves (key rotation: one key signs, the others only verify).

use std::str::FromStr;

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the resource owner, or the client id for `client_credentials`.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Unique id (revocation key).
    pub jti: String,
    /// Space-separated scopes.
    pub scope: String,
    /// The client the token was issued to.
    pub client_id: String,
}

/// One key as the gateway's bearer verifier needs it: public material only.
#[derive(Clone)]
pub struct VerificationKey {
    /// Key id (the token header's `kid`).
    pub kid: String,
    /// The one algorithm this key verifies.
    pub alg: Algorithm,
    /// The public key.
    pub decoding_key: DecodingKey,
    /// The public key as a JWK (no private parameters).
    pub jwk: Jwk,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A configured signing key.
struct KeyEntry {
    public: VerificationKey,
    encoding: EncodingKey,
}

/// Signs and verifies the service's access tokens.
pub struct Signer {
    keys: Vec<KeyEntry>,
    active: usize,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field(
                "kids",
                &self.keys.iter().map(|k| &k.public.kid).collect::<Vec<_>>(),
            )
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// Parses a signing algorithm name; symmetric algorithms are refused (their key cannot be published).
pub fn parse_alg(name: &str) -> Result<Algorithm, String> {
    let alg = Algorithm::from_str(name).map_err(|_| format!("unknown algorithm '{name}'"))?;
    match alg {
        Algorithm::ES256
        | Algorithm::ES384
        | Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512
        | Algorithm::EdDSA => Ok(alg),
        _ => Err(format!(
            "'{name}' cannot sign published tokens; use ES256, ES384, RS256, PS256 or EdDSA"
        )),
    }
}

/// Builds a key from a private PEM; `Err` says what is wrong.
pub fn load_key(
    kid: &str,
    alg: Algorithm,
    pem: &[u8],
) -> Result<(VerificationKey, EncodingKey), String> {
    let encoding = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        _ => EncodingKey::from_rsa_pem(pem),
    }
    .map_err(|e| format!("not a {alg:?} private key in PEM: {e}"))?;
    let mut jwk = Jwk::from_encoding_key(&encoding, alg)
        .map_err(|e| format!("cannot derive the public key: {e}"))?;
    jwk.common.key_id = Some(kid.to_string());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let decoding_key =
        DecodingKey::from_jwk(&jwk).map_err(|e| format!("cannot build the public key: {e}"))?;
    Ok((
        VerificationKey {
            kid: kid.to_string(),
            alg,
            decoding_key,
            jwk,
        },
        encoding,
    ))
}

impl Signer {
    /// A signer over `keys` (kid, alg, private PEM), signing with `keys[active]`.
    pub fn new(
        keys: Vec<(VerificationKey, EncodingKey)>,
        active: usize,
        issuer: String,
        audience: String,
    ) -> Option<Self> {
        if active >= keys.len() {
            return None;
        }
        Some(Self {
            keys: keys
                .into_iter()
                .map(|(public, encoding)| KeyEntry { public, encoding })
                .collect(),
            active,
            issuer,
            audience,
        })
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience (`aud`).
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Algorithms of the configured keys (for discovery).
    pub fn algorithms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for k in &self.keys {
            let name = format!("{:?}", k.public.alg);
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    /// Signs claims with the active key (its `kid` in the header).
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, String> {
        let key = &self.keys[self.active];
        let mut header = Header::new(key.public.alg);
        header.kid = Some(key.public.kid.clone());
        header.typ = Some("at+jwt".to_string());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| e.to_string())
    }

    /// Verifies a token signed by any configured key: signature (algorithm pinned to the key),
    /// `iss`, `aud`, and `exp` against `now` (the service clock, not the system clock).
    pub fn verify(&self, token: &str, now: u64) -> Option<AccessClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let kid = header.kid?;
        let key = self.keys.iter().find(|k| k.public.kid == kid)?;
        let mut validation = Validation::new(key.public.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = false;
        validation.leeway = 0;
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &key.public.decoding_key, &validation)
                .ok()?;
        (data.claims.exp > now).then_some(data.claims)
    }

    /// Every key's public half, for the gateway's bearer routes.
    pub fn verification_keys(&self) -> Vec<VerificationKey> {
        self.keys.iter().map(|k| k.public.clone()).collect()
    }

    /// The JWKS document (public keys only).
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.keys.iter().map(|k| k.public.jwk.clone()).collect(),
        }
    }
}
