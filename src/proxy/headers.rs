//! Header hygiene: what the gateway removes from and adds to requests and responses it relays.
//!
//! Hop-by-hop fields (RFC 9110 section 7.6.1, and every field named in `Connection`) never cross
//! the gateway. Client-supplied copies of the identity headers are always removed; the gateway
//! adds its own from the authenticated principal. `X-Forwarded-*` describe the client as the
//! gateway saw it.

use http::header::{
    CONNECTION, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING,
    UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::auth::Principal;
use crate::config::validate::IdentityNames;

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Hop-by-hop fields (RFC 9110 section 7.6.1) and the legacy ones proxies still meet. Built once:
/// removing by `&str` would parse and classify each name on every request.
static HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Removes hop-by-hop fields, including those listed in `Connection`.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Most messages carry none: one pass over the names, nothing removed. Any name listed in
    // `Connection` needs `Connection` itself, which is in the list.
    if !h.keys().any(|n| HOP_BY_HOP.contains(n)) {
        return;
    }
    let named: Vec<HeaderName> = h
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in &HOP_BY_HOP {
        h.remove(n);
    }
}

/// What the gateway knows about the client, for `X-Forwarded-*`.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded<'a> {
    /// The TCP peer's address as header text (formatted once per connection).
    pub peer: &'a HeaderValue,
    /// Whether the peer is a trusted proxy (then its `X-Forwarded-*` are kept and extended).
    pub peer_trusted: bool,
    /// `http` or `https` as the gateway received it.
    pub proto: &'static str,
    /// The Host the client asked for.
    pub host: Option<&'a HeaderValue>,
}

/// Sets `X-Forwarded-For`, `-Proto`, `-Host`. From an untrusted peer, inbound values are dropped.
pub fn set_forwarded(h: &mut HeaderMap, f: Forwarded<'_>) {
    let xff = if f.peer_trusted {
        extended_xff(h, f.peer)
    } else {
        f.peer.clone()
    };
    // `insert` replaces every inbound copy.
    h.insert(X_FORWARDED_FOR, xff);
    if !(f.peer_trusted && h.contains_key(X_FORWARDED_PROTO)) {
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static(f.proto));
    }
    if !(f.peer_trusted && h.contains_key(X_FORWARDED_HOST)) {
        match f.host {
            Some(host) => h.insert(X_FORWARDED_HOST, host.clone()),
            None => h.remove(X_FORWARDED_HOST),
        };
    }
}

/// A trusted proxy's `X-Forwarded-For` list (all copies, in order) with the peer appended.
fn extended_xff(h: &HeaderMap, peer: &HeaderValue) -> HeaderValue {
    let mut joined: Vec<u8> = Vec::new();
    for v in h.get_all(X_FORWARDED_FOR) {
        if v.to_str().is_ok_and(|s| !s.trim().is_empty()) {
            joined.extend_from_slice(v.as_bytes());
            joined.extend_from_slice(b", ");
        }
    }
    if joined.is_empty() {
        return peer.clone();
    }
    joined.extend_from_slice(peer.as_bytes());
    HeaderValue::from_bytes(&joined).unwrap_or_else(|_| peer.clone())
}

/// Removes client copies of the identity headers and adds the principal's.
pub fn set_identity(h: &mut HeaderMap, names: &IdentityNames, who: Option<&Principal>) {
    let all = [
        &names.subject,
        &names.client_id,
        &names.scopes,
        &names.method,
    ];
    // One pass over the (few) request headers instead of four hash probes, in the common case
    // where the client sent none of them.
    if h.keys().any(|k| all.contains(&k)) {
        for n in all {
            h.remove(n);
        }
    }
    let Some(p) = who else { return };
    let v = p.identity();
    let mut put = |name: &HeaderName, value: Option<&HeaderValue>| {
        if let Some(value) = value {
            h.insert(name.clone(), value.clone());
        }
    };
    put(&names.subject, v.subject.as_ref());
    put(&names.client_id, v.client_id.as_ref());
    put(&names.scopes, v.scopes.as_ref());
    put(&names.method, Some(&v.method));
}

/// Sets `Host` to the upstream's authority (a value built once per upstream).
pub fn set_host(h: &mut HeaderMap, authority: &HeaderValue) {
    h.insert(HOST, authority.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, "close, X-Secret-Hop".parse().unwrap());
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(TE, "trailers".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_from_untrusted_peer_drops_inbound_values() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        let host = HeaderValue::from_static("api.example");
        let peer = HeaderValue::from_static("127.0.0.1");
        set_forwarded(
            &mut h,
            Forwarded {
                peer: &peer,
                peer_trusted: false,
                proto: "http",
                host: Some(&host),
            },
        );
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example");
    }

    #[test]
    fn forwarded_from_trusted_peer_extends_every_inbound_copy() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "203.0.113.9".parse().unwrap());
        h.append("x-forwarded-for", "10.0.0.2, 10.0.0.3".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        let peer = HeaderValue::from_static("10.0.0.4");
        set_forwarded(
            &mut h,
            Forwarded {
                peer: &peer,
                peer_trusted: true,
                proto: "http",
                host: None,
            },
        );
        let xff: Vec<_> = h.get_all("x-forwarded-for").iter().collect();
        assert_eq!(xff, ["203.0.113.9, 10.0.0.2, 10.0.0.3, 10.0.0.4"]);
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn messages_without_hop_by_hop_fields_are_left_alone() {
        let mut h = HeaderMap::new();
        h.insert(HOST, "a".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
        h.insert(PROXY_AUTHORIZATION, "Basic x".parse().unwrap());
        h.insert("proxy-connection", "keep-alive".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
    }
}
