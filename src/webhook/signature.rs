//! Signature: parsing the timestamp and signature headers of a scheme, computing the HMAC-SHA256
//! over the signed payload, and comparing in constant time.
//!
//! Parsing is strict: a timestamp is 1 to 12 ASCII digits and nothing else; a signature is the
//! scheme's exact prefix followed by exactly one 32-byte MAC in the scheme's encoding (64 hex
//! digits, or 44 characters of padded base64). Anything else (another algorithm's prefix, a
//! truncated or extended MAC, stray spaces) is refused, never prefix-matched. In the Standard
//! Webhooks header, entries of other versions (`v1a,...`) are skipped as the specification
//! says; a malformed `v1` entry refuses the request.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::scheme::{Encoding, Part, Scheme};

/// Longest accepted timestamp, digits (Unix seconds fit in 10 until the year 2286).
pub const MAX_TIMESTAMP_DIGITS: usize = 12;
/// Most signatures read from one Standard Webhooks header.
pub const MAX_SIGNATURES: usize = 8;
/// Longest accepted webhook id, bytes.
pub const MAX_ID_BYTES: usize = 256;

/// An HMAC-SHA256 value.
pub type Tag = [u8; 32];

/// Why a signature header cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureFormatError {
    /// The value does not start with the scheme's prefix (another algorithm, or none).
    #[error("the signature does not start with \"{0}\"")]
    Prefix(String),
    /// Not valid hex or base64, or not exactly 32 bytes once decoded.
    #[error("the signature is not one {0} HMAC-SHA256 value")]
    Encoding(&'static str),
    /// A Standard Webhooks header with no `v1` signature, or too many entries.
    #[error("the header carries no usable v1 signature")]
    NoSignature,
}

/// The timestamp's seconds, when the value is 1 to 12 ASCII digits and nothing else.
pub fn parse_timestamp(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > MAX_TIMESTAMP_DIGITS || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// True when `v` is a usable webhook id: 1 to 256 visible ASCII bytes.
pub fn valid_id(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_ID_BYTES && v.iter().all(u8::is_ascii_graphic)
}

/// HMAC-SHA256 with `key` over the scheme's payload for `id`, `timestamp` and `body`.
pub fn tag(key: &[u8], scheme: &Scheme, id: &[u8], timestamp: &[u8], body: &[u8]) -> Tag {
    // HMAC takes keys of any length (RFC 2104 section 2), so this never fails.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return [0; 32];
    };
    for part in &scheme.payload {
        match part {
            Part::Text(t) => mac.update(t.as_bytes()),
            Part::Timestamp => mac.update(timestamp),
            Part::Id => mac.update(id),
            Part::Body => mac.update(body),
        }
    }
    mac.finalize().into_bytes().into()
}

/// The header value carrying `tag` in the scheme's format.
pub fn encode(scheme: &Scheme, tag: &Tag) -> String {
    let encoded = match scheme.encoding {
        Encoding::Hex => hex(tag),
        Encoding::Base64 => STANDARD.encode(tag),
    };
    format!("{}{encoded}", scheme.prefix)
}

/// The MACs a signature header value offers.
pub fn candidates(scheme: &Scheme, value: &[u8]) -> Result<Vec<Tag>, SignatureFormatError> {
    let text = std::str::from_utf8(value).map_err(|_| SignatureFormatError::NoSignature)?;
    if !scheme.multiple {
        return one(scheme, text).map(|t| vec![t]);
    }
    let entries: Vec<&str> = text.split(' ').filter(|e| !e.is_empty()).collect();
    if entries.len() > MAX_SIGNATURES {
        return Err(SignatureFormatError::NoSignature);
    }
    // Standard Webhooks: `version,signature`; only v1 (HMAC-SHA256) is ours.
    let version = scheme.prefix.trim_end_matches(',');
    let mut out = Vec::new();
    for e in entries {
        match e.split_once(',') {
            Some((v, _)) if v == version => out.push(one(scheme, e)?),
            Some((v, _)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric()) => {}
            _ => return Err(SignatureFormatError::NoSignature),
        }
    }
    if out.is_empty() {
        return Err(SignatureFormatError::NoSignature);
    }
    Ok(out)
}

fn one(scheme: &Scheme, text: &str) -> Result<Tag, SignatureFormatError> {
    let rest = text
        .strip_prefix(scheme.prefix.as_str())
        .ok_or_else(|| SignatureFormatError::Prefix(scheme.prefix.clone()))?;
    let decoded = match scheme.encoding {
        Encoding::Hex => unhex(rest).ok_or(SignatureFormatError::Encoding("hex"))?,
        Encoding::Base64 => STANDARD
            .decode(rest)
            .map_err(|_| SignatureFormatError::Encoding("base64"))?,
    };
    let expected_len = match scheme.encoding {
        Encoding::Hex => 64,
        Encoding::Base64 => 44,
    };
    if rest.len() != expected_len {
        return Err(SignatureFormatError::Encoding(name(scheme.encoding)));
    }
    decoded
        .try_into()
        .map_err(|_| SignatureFormatError::Encoding(name(scheme.encoding)))
}

fn name(e: Encoding) -> &'static str {
    match e {
        Encoding::Hex => "hex",
        Encoding::Base64 => "base64",
    }
}

/// The first candidate some key's tag equals, compared in constant time; `None` if none does.
/// Every key is tried against every candidate, so timing does not tell which matched.
pub fn matching(expected: &[Tag], offered: &[Tag]) -> Option<Tag> {
    let mut found: Option<Tag> = None;
    for e in expected {
        for o in offered {
            if bool::from(e.ct_eq(o)) && found.is_none() {
                found = Some(*o);
            }
        }
    }
    found
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::scheme::SecretFormat;

    fn contio() -> Scheme {
        Scheme {
            signature_header: http::HeaderName::from_static("x-sig"),
            timestamp_header: http::HeaderName::from_static("x-ts"),
            id_header: None,
            encoding: Encoding::Hex,
            prefix: "sha256=".into(),
            multiple: false,
            payload: vec![Part::Timestamp, Part::Text(".".into()), Part::Body],
            secret_format: SecretFormat::Raw,
        }
    }

    #[test]
    fn timestamps_are_digits_only() {
        assert_eq!(parse_timestamp(b"1700000000"), Some(1_700_000_000));
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b"1.5",
            b" 1",
            b"1 ",
            b"1e9",
            b"1234567890123",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn signatures_round_trip_and_refuse_near_misses() {
        let s = contio();
        let t = tag(b"secret", &s, b"", b"1", b"{}");
        let v = encode(&s, &t);
        assert_eq!(candidates(&s, v.as_bytes()), Ok(vec![t]));
        assert!(candidates(&s, v.to_uppercase().as_bytes()).is_err());
        assert!(candidates(&s, &v.as_bytes()[..v.len() - 2]).is_err());
        assert!(candidates(&s, format!("{v}00").as_bytes()).is_err());
        assert!(candidates(&s, v.replace("sha256=", "sha1=").as_bytes()).is_err());
        assert_eq!(matching(&[t], &[t]), Some(t));
        assert_eq!(matching(&[[1; 32]], &[t]), None);
    }
}
