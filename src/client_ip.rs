//! Client IP: the address a request is attributed to, for rate limits and logs.
//!
//! The peer address, unless the peer is a trusted proxy: then `X-Forwarded-For` is read right to
//! left and the first address that is not itself a trusted proxy is the client. The left-most
//! entry is never believed blindly: anything left of the first untrusted hop was written by the
//! client and can be forged.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// Trusted proxy networks.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// From CIDRs.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// True when `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The client address of a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.contains(client) {
            return client;
        }
        // Right to left over every X-Forwarded-For entry, across repeated headers.
        let entries = headers
            .get_all("x-forwarded-for")
            .iter()
            .rev()
            .flat_map(|v| v.to_str().unwrap_or("").rsplit(','));
        for entry in entries {
            let Some(ip) = parse_entry(entry) else {
                // Garbage: stop at the last hop we could verify.
                return client;
            };
            client = ip;
            if !self.contains(ip) {
                return ip;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses are treated as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One XFF entry: `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]:443` or `1.2.3.4:5678`.
fn parse_entry(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let t = TrustedProxies::default();
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(t.client_ip(peer, &headers(&["1.1.1.1"])), peer);
    }

    #[test]
    fn right_most_untrusted_entry_wins() {
        let t = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let h = headers(&["6.6.6.6, 198.51.100.7", "10.0.0.5"]);
        assert_eq!(
            t.client_ip(peer, &h),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(t.client_ip(peer, &headers(&[])), peer);
        assert_eq!(
            t.client_ip(peer, &headers(&["10.0.0.9"])),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(t.client_ip(peer, &headers(&["1.2.3.4, garbage"])), peer);
        assert_eq!(
            t.client_ip(peer, &headers(&["[2001:db8::1]:443"])),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }
}
