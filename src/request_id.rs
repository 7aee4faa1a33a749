//! Request id: accept a well-formed inbound `X-Request-Id` or mint `req_` + a UUIDv7.
//!
//! An inbound id is kept only when it is 1 to 128 characters of `[A-Za-z0-9._:-]`: anything else
//! could smuggle log or header injection, so it is replaced. The id is held as a `HeaderValue`,
//! so stamping it on the upstream request and on the response shares one buffer.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Longest inbound id kept.
pub const MAX_LEN: usize = 128;

/// The header that carries the id both ways.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A request's id: visible ASCII only, so it is valid both as a header value and as text.
#[derive(Debug, Clone)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The inbound id when well-formed, a fresh one otherwise.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut values = headers.get_all(HEADER).iter();
        match (values.next(), values.next()) {
            (Some(v), None) if is_well_formed(v.as_bytes()) => Self(v.clone()),
            _ => Self::mint(),
        }
    }

    /// A fresh id: `req_` + 32 hex digits of a time-ordered UUIDv7. The random bits come from
    /// the thread's CSPRNG (seeded once), not a `getrandom` system call per request.
    pub fn mint() -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let random: [u8; 10] = rand::random();
        let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
        let mut buf = [0u8; 4 + 32];
        buf[..4].copy_from_slice(b"req_");
        id.simple().encode_lower(&mut buf[4..]);
        // ASCII letters and digits are always a valid header value.
        Self(HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("req_unset")))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Both constructors admit only visible ASCII, for which `to_str` cannot fail.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value (a reference-counted copy).
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_well_formed(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= MAX_LEN
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(h: &HeaderMap) -> String {
        RequestId::from_headers(h).as_str().to_string()
    }

    #[test]
    fn keeps_good_ids_and_replaces_bad_ones() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "abc-123_x.y:z".parse().unwrap());
        assert_eq!(id(&h), "abc-123_x.y:z");
        h.insert("x-request-id", "bad id with spaces".parse().unwrap());
        assert!(id(&h).starts_with("req_"));
        h.insert("x-request-id", "a".repeat(129).parse().unwrap());
        assert!(id(&h).starts_with("req_"));
        h.insert("x-request-id", "a".repeat(128).parse().unwrap());
        assert_eq!(id(&h), "a".repeat(128));
    }

    #[test]
    fn two_inbound_ids_are_replaced() {
        let mut h = HeaderMap::new();
        h.append("x-request-id", "one".parse().unwrap());
        h.append("x-request-id", "two".parse().unwrap());
        assert!(id(&h).starts_with("req_"));
    }

    #[test]
    fn minted_ids_are_unique_lowercase_hex() {
        let a = RequestId::mint().to_string();
        let b = RequestId::mint().to_string();
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 32);
        let parsed = uuid::Uuid::parse_str(&a[4..]).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert!(
            a[4..]
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
    }
}
