//! Header hygiene: what the gateway removes from and adds to requests and responses it relays.
//!
//! Hop-by-hop fields (RFC 9110 section 7.6.1, and every field named in `Connection`) never cross
//! the gateway. Client-supplied copies of the identity headers are always removed; the gateway
//! adds its own from the authenticated principal. `X-Forwarded-*` describe the client as the
//! gateway saw it.

use std::net::IpAddr;

use http::header::{CONNECTION, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::auth::Principal;
use crate::config::validate::IdentityNames;

const HOP_BY_HOP: [&str; 4] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Removes hop-by-hop fields, including those listed in `Connection`.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
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
    for n in [CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE] {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
}

/// What the gateway knows about the client, for `X-Forwarded-*`.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded<'a> {
    /// The TCP peer.
    pub peer: IpAddr,
    /// Whether the peer is a trusted proxy (then its `X-Forwarded-*` are kept and extended).
    pub peer_trusted: bool,
    /// `http` or `https` as the gateway received it.
    pub proto: &'static str,
    /// The Host the client asked for.
    pub host: Option<&'a HeaderValue>,
}

/// Sets `X-Forwarded-For`, `-Proto`, `-Host`. From an untrusted peer, inbound values are dropped.
pub fn set_forwarded(h: &mut HeaderMap, f: Forwarded<'_>) {
    let xff = "x-forwarded-for";
    let prior = if f.peer_trusted {
        let joined: Vec<&str> = h
            .get_all(xff)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Some(joined.join(", ")).filter(|s| !s.is_empty())
    } else {
        None
    };
    let value = match prior {
        Some(p) => format!("{p}, {}", f.peer),
        None => f.peer.to_string(),
    };
    h.remove(xff);
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(xff, v);
    }
    if !(f.peer_trusted && h.contains_key("x-forwarded-proto")) {
        h.insert("x-forwarded-proto", HeaderValue::from_static(f.proto));
    }
    if !(f.peer_trusted && h.contains_key("x-forwarded-host")) {
        match f.host {
            Some(host) => h.insert("x-forwarded-host", host.clone()),
            None => h.remove("x-forwarded-host"),
        };
    }
}

/// Removes client copies of the identity headers and adds the principal's.
pub fn set_identity(h: &mut HeaderMap, names: &IdentityNames, who: Option<&Principal>) {
    for n in [
        &names.subject,
        &names.client_id,
        &names.scopes,
        &names.method,
    ] {
        h.remove(n);
    }
    let Some(p) = who else { return };
    let mut put = |name: &HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name.clone(), v);
        }
    };
    put(&names.subject, &p.subject);
    if let Some(c) = &p.client_id {
        put(&names.client_id, c);
    }
    put(&names.scopes, &p.scopes.join(" "));
    put(&names.method, p.method.as_str());
}

/// Sets `Host` to the upstream's authority.
pub fn set_host(h: &mut HeaderMap, authority: &http::uri::Authority) {
    if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
        h.insert(HOST, v);
    }
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
        set_forwarded(
            &mut h,
            Forwarded {
                peer: "127.0.0.1".parse().unwrap(),
                peer_trusted: false,
                proto: "http",
                host: Some(&host),
            },
        );
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example");
    }
}
