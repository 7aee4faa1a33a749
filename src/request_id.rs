//! Request id: accept a well-formed inbound `X-Request-Id` or mint `req_` + a UUIDv7.
//!
//! An inbound id is kept only when it is 1 to 128 characters of `[A-Za-z0-9._:-]`: anything else
//! could smuggle log or header injection, so it is replaced.

use http::HeaderMap;

/// Longest inbound id kept.
pub const MAX_LEN: usize = 128;

/// The request's id: the inbound one when well-formed, a fresh one otherwise.
pub fn from_headers(headers: &HeaderMap) -> String {
    let mut values = headers.get_all("x-request-id").iter();
    match (values.next(), values.next()) {
        (Some(v), None) if is_well_formed(v.as_bytes()) => {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        }
        _ => mint(),
    }
}

/// A fresh id: `req_` + 32 hex digits of a time-ordered UUIDv7.
pub fn mint() -> String {
    format!("req_{}", uuid::Uuid::now_v7().simple())
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

    #[test]
    fn keeps_good_ids_and_replaces_bad_ones() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "abc-123_x.y:z".parse().unwrap());
        assert_eq!(from_headers(&h), "abc-123_x.y:z");
        h.insert("x-request-id", "bad id with spaces".parse().unwrap());
        assert!(from_headers(&h).starts_with("req_"));
        h.insert("x-request-id", "a".repeat(129).parse().unwrap());
        assert!(from_headers(&h).starts_with("req_"));
        let minted = from_headers(&HeaderMap::new());
        assert_eq!(minted.len(), 4 + 32);
    }
}
