//! Verification-key loading: PEM files, JWK files and HMAC secrets from `[[jwt.keys]]`, and JWKs from JWKS documents.
//!
//! Every key comes out bound to one algorithm; a key whose material does not fit its algorithm
//! (an EC key for RS256, a P-384 key for ES256, a private key, an encryption key) is refused at
//! load time with a diagnostic, not at the first request.

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use toml::Spanned;

use super::jwt::{VerifyKey, family_name, is_hmac, parse_algorithm};
use crate::config::diagnostic::Diagnostics;
use crate::config::raw;

/// Shortest HMAC secret accepted for HS256, bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// Shortest secret for an HMAC algorithm: its hash's output size (RFC 7518 §3.2).
pub fn min_hmac_secret_bytes(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => MIN_HMAC_SECRET_BYTES,
    }
}

const ALG_FIX: &str =
    "use one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

/// Loads every key entry of one list (`[[jwt.keys]]` or a provider's, under `prefix`);
/// problems go to `diags` and the entry is skipped.
pub(crate) fn load_static_keys(
    keys: &[Spanned<raw::JwtKey>],
    prefix: &str,
    diags: &mut Diagnostics<'_>,
) -> Vec<VerifyKey> {
    let base = diags.source().base_dir();
    let mut out: Vec<VerifyKey> = Vec::new();
    for (i, entry) in keys.iter().enumerate() {
        let path = format!("{prefix}[{i}]");
        let k = entry.get_ref();
        let Some(alg) = parse_algorithm(k.alg.get_ref()) else {
            diags.push(
                Some(k.alg.span()),
                format!("{path}.alg"),
                format!("unsupported algorithm {:?}", k.alg.get_ref()),
                ALG_FIX,
            );
            continue;
        };
        let given = [
            k.pem_file.as_ref().map(|_| "pem_file"),
            k.jwk_file.as_ref().map(|_| "jwk_file"),
            k.secret.as_ref().map(|_| "secret"),
        ];
        let count = given.iter().flatten().count();
        if count != 1 {
            diags.push(
                Some(entry.span()),
                path.clone(),
                format!("a key needs exactly one of pem_file, jwk_file, secret ({count} given)"),
                "keep the one source of this key's material and remove the others",
            );
            continue;
        }
        let kid = k.kid.as_ref().map(|s| s.get_ref().clone());
        let key = if let Some(secret) = &k.secret {
            if !is_hmac(alg) {
                diags.push(
                    Some(secret.span()),
                    format!("{path}.secret"),
                    format!(
                        "{} verifies with a public key, not a secret",
                        k.alg.get_ref()
                    ),
                    "use pem_file (public key or certificate) or jwk_file",
                );
                continue;
            }
            load_secret(secret, alg, &format!("{path}.secret"), &base, diags)
                .map(|s| DecodingKey::from_secret(&s))
        } else if is_hmac(alg) {
            let span = k
                .pem_file
                .as_ref()
                .or(k.jwk_file.as_ref())
                .map(|s| s.span());
            diags.push(
                span,
                path.clone(),
                format!("{} keys are shared secrets", k.alg.get_ref()),
                "use secret = \"env:NAME\" or secret = \"file:PATH\"",
            );
            continue;
        } else if let Some(pem) = &k.pem_file {
            load_pem(pem, alg, &format!("{path}.pem_file"), &base, diags)
        } else if let Some(jwk) = &k.jwk_file {
            load_jwk_file(jwk, alg, &format!("{path}.jwk_file"), &base, diags)
        } else {
            None
        };
        let Some(key) = key else { continue };
        if out.iter().any(|o| o.kid == kid && o.alg == alg) {
            diags.push(
                Some(entry.span()),
                path.clone(),
                "another key has the same kid and alg".to_string(),
                "give each key a distinct kid",
            );
            continue;
        }
        out.push(VerifyKey::new(kid, alg, key));
    }
    out
}

fn read_file(
    value: &Spanned<String>,
    key: &str,
    base: &Path,
    diags: &mut Diagnostics<'_>,
) -> Option<Vec<u8>> {
    let path = base.join(value.get_ref());
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) => {
            diags.push(
                Some(value.span()),
                key.to_string(),
                format!("cannot read {}: {e}", path.display()),
                "check the path (relative paths are resolved against the config file's directory)",
            );
            None
        }
    }
}

fn load_secret(
    value: &Spanned<String>,
    alg: Algorithm,
    key: &str,
    base: &Path,
    diags: &mut Diagnostics<'_>,
) -> Option<Vec<u8>> {
    let secret = crate::config::secret_ref::resolve(value, key, base, diags)?;
    let min = min_hmac_secret_bytes(alg);
    if secret.len() < min {
        diags.push(
            Some(value.span()),
            key.to_string(),
            format!(
                "HMAC secret is {} bytes; {alg:?} needs at least {min} (its hash size, RFC 7518 section 3.2)",
                secret.len()
            ),
            format!("use at least {min} random bytes, e.g. `openssl rand -base64 {}`", min * 3 / 2),
        );
        return None;
    }
    Some(secret)
}

fn load_pem(
    value: &Spanned<String>,
    alg: Algorithm,
    key: &str,
    base: &Path,
    diags: &mut Diagnostics<'_>,
) -> Option<DecodingKey> {
    let bytes = read_file(value, key, base, diags)?;
    let decoded = match alg {
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&bytes),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(&bytes),
        _ => DecodingKey::from_rsa_pem(&bytes),
    };
    let problem = match &decoded {
        Ok(k) => check_material(k, alg).err(),
        Err(_) => Some(format!(
            "file is not a PEM {} or certificate usable with {alg:?}",
            family_name(alg)
        )),
    };
    if let Some(problem) = problem {
        diags.push(
            Some(value.span()),
            key.to_string(),
            problem,
            "point pem_file at the issuer's PUBLIC key (\"BEGIN PUBLIC KEY\") or certificate, of the type the alg needs",
        );
        return None;
    }
    decoded.ok()
}

/// Checks that decoded key bytes fit the algorithm (EC point size per curve).
fn check_material(key: &DecodingKey, alg: Algorithm) -> Result<(), String> {
    let expected = match alg {
        Algorithm::ES256 => Some(65),
        Algorithm::ES384 => Some(97),
        Algorithm::EdDSA => Some(32),
        _ => None,
    };
    if let (Some(len), Ok(bytes)) = (expected, key.try_get_as_bytes())
        && bytes.len() != len
    {
        return Err(format!("the key's curve does not match {alg:?}"));
    }
    Ok(())
}

fn load_jwk_file(
    value: &Spanned<String>,
    alg: Algorithm,
    key: &str,
    base: &Path,
    diags: &mut Diagnostics<'_>,
) -> Option<DecodingKey> {
    let bytes = read_file(value, key, base, diags)?;
    let result = serde_json::from_slice::<Jwk>(&bytes)
        .map_err(|e| format!("file is not a JWK: {e}"))
        .and_then(|jwk| jwk_to_key(&jwk, alg, true));
    match result {
        Ok(k) => Some(k),
        Err(problem) => {
            diags.push(
                Some(value.span()),
                key.to_string(),
                problem,
                "point jwk_file at a public JWK whose kty/crv fit the key's alg",
            );
            None
        }
    }
}

/// The algorithm a JWK names in `alg`, if any (and if supported).
fn jwk_alg(jwk: &Jwk) -> Result<Option<Algorithm>, String> {
    match jwk.common.key_algorithm {
        None => Ok(None),
        Some(ka) => Algorithm::try_from(ka)
            .map(Some)
            .map_err(|_| format!("JWK alg {ka:?} is not a signature algorithm")),
    }
}

/// Builds a decoding key from a JWK for `alg`, refusing material of another type or curve.
pub(crate) fn jwk_to_key(
    jwk: &Jwk,
    alg: Algorithm,
    allow_hmac: bool,
) -> Result<DecodingKey, String> {
    if let Some(named) = jwk_alg(jwk)?
        && named != alg
    {
        return Err(format!("JWK is for {named:?}, not {alg:?}"));
    }
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Err("JWK is an encryption key (use: enc)".to_string());
    }
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), a) => !is_hmac(a) && family_name(a) == "RSA public key",
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        (AlgorithmParameters::OctetKey(_), a) => allow_hmac && is_hmac(a),
        _ => false,
    };
    if !fits {
        return Err(format!("JWK key type does not fit {alg:?}"));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("JWK is not usable: {e}"))?;
    check_material(&key, alg)?;
    Ok(key)
}

/// Turns one JWKS entry into keys: bound to its own `alg`, or else to each of `fallback` that
/// fits its key type. Symmetric (`oct`) keys are never taken from a JWKS.
pub(crate) fn jwks_entry_to_keys(
    jwk: &Jwk,
    fallback: &[Algorithm],
) -> Result<Vec<VerifyKey>, String> {
    let kid = jwk.common.key_id.clone();
    let algs: Vec<Algorithm> = match jwk_alg(jwk)? {
        Some(a) => vec![a],
        None if fallback.is_empty() => {
            return Err("JWK names no alg and the JWKS entry lists no algorithms".to_string());
        }
        None => fallback.to_vec(),
    };
    let mut out = Vec::new();
    let mut last_err = String::new();
    for alg in algs {
        match jwk_to_key(jwk, alg, false) {
            Ok(key) => out.push(VerifyKey::new(kid.clone(), alg, key)),
            Err(e) => last_err = e,
        }
    }
    if out.is_empty() {
        Err(last_err)
    } else {
        Ok(out)
    }
}
