//! Forwarding rules: `Via`, loop detection, and the headers only a trusted proxy may send.
//!
//! The gateway adds `Via: <version> <pseudonym>` to each request and response it relays
//! (RFC 9110 section 7.6.3). A request whose `Via` already names the pseudonym more than
//! `via_max_hops` times is in a forwarding loop and is answered `508 loop_detected`. From a peer
//! that is not a trusted proxy, headers that claim a client address (`Forwarded`, `X-Real-IP`,
//! ...) or ask a backend to rewrite the request (`X-Original-URL`, `X-HTTP-Method-Override`, ...)
//! are removed before forwarding (RFC 7239 section 8.1); the list is configurable.
//!
//! The `[forwarding]` config section is owned here: its raw keys, validation and compiled form.

use http::header::VIA;
use http::{HeaderMap, HeaderName, HeaderValue, Version};
use serde::Deserialize;
use toml::Spanned;

use crate::config::diagnostic::Diagnostics;
use crate::config::raw::SString;
use crate::error::Reject;

/// Headers removed from requests of untrusted peers unless `strip_from_untrusted` says otherwise.
pub const DEFAULT_STRIP: [&str; 11] = [
    "forwarded",
    "x-real-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-forwarded-prefix",
];

/// Default pseudonym in `Via`.
pub const DEFAULT_PSEUDONYM: &str = "portcullis";

/// Default number of earlier passes tolerated before a request counts as a loop.
pub const DEFAULT_MAX_HOPS: usize = 1;

/// `[forwarding]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForwarding {
    /// Pseudonym the gateway writes in `Via` (default `"portcullis"`).
    pub via: Option<SString>,
    /// Earlier passes through a gateway with this pseudonym tolerated (default 1).
    pub via_max_hops: Option<Spanned<usize>>,
    /// Headers removed from requests of untrusted peers (default: `DEFAULT_STRIP`).
    pub strip_from_untrusted: Option<Vec<SString>>,
}

/// `[forwarding]`, validated and compiled.
#[derive(Debug, Clone)]
pub struct ForwardingRules {
    /// The pseudonym, as written.
    pub pseudonym: String,
    /// `1.1 <pseudonym>` (HTTP/1.1 messages).
    via_11: HeaderValue,
    /// `2 <pseudonym>` (HTTP/2 messages).
    via_2: HeaderValue,
    /// `1.0 <pseudonym>`.
    via_10: HeaderValue,
    /// Earlier passes tolerated.
    pub max_hops: usize,
    /// Removed from requests of untrusted peers.
    pub strip: Vec<HeaderName>,
}

impl Default for ForwardingRules {
    fn default() -> Self {
        Self::new(DEFAULT_PSEUDONYM, DEFAULT_MAX_HOPS, default_strip())
    }
}

fn default_strip() -> Vec<HeaderName> {
    DEFAULT_STRIP
        .iter()
        .map(|n| HeaderName::from_static(n))
        .collect()
}

/// True for an RFC 9110 token (the pseudonym's syntax).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl ForwardingRules {
    /// Rules with `pseudonym` (a token), `max_hops` and the `strip` list.
    pub fn new(pseudonym: &str, max_hops: usize, strip: Vec<HeaderName>) -> Self {
        let via = |v: &str| {
            HeaderValue::from_str(&format!("{v} {pseudonym}"))
                .unwrap_or(HeaderValue::from_static("1.1 portcullis"))
        };
        Self {
            pseudonym: pseudonym.to_string(),
            via_11: via("1.1"),
            via_2: via("2"),
            via_10: via("1.0"),
            max_hops,
            strip,
        }
    }

    /// Validates `[forwarding]`, reporting each bad value at its position.
    pub fn validate(raw: &RawForwarding, d: &mut Diagnostics) -> Self {
        let pseudonym = match &raw.via {
            Some(s) if is_token(s.get_ref()) => s.get_ref().as_str(),
            Some(s) => {
                d.push(
                    Some(s.span()),
                    "forwarding.via",
                    format!("\"{}\" is not a Via pseudonym", s.get_ref()),
                    "use letters, digits and '-', e.g. \"portcullis\" or \"edge-1\"",
                );
                DEFAULT_PSEUDONYM
            }
            None => DEFAULT_PSEUDONYM,
        };
        let max_hops = raw
            .via_max_hops
            .as_ref()
            .map_or(DEFAULT_MAX_HOPS, |h| *h.get_ref());
        let strip = match &raw.strip_from_untrusted {
            None => default_strip(),
            Some(list) => header_names(list, d),
        };
        Self::new(pseudonym, max_hops, strip)
    }

    /// Relaxed defaults, for `portcullis check`.
    pub fn relaxations(&self) -> Vec<String> {
        let kept: Vec<&str> = DEFAULT_STRIP
            .iter()
            .copied()
            .filter(|d| !self.strip.iter().any(|s| s.as_str() == *d))
            .collect();
        if kept.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "forwarding.strip_from_untrusted: {} reach backends from untrusted peers",
            kept.join(", ")
        )]
    }

    /// `508` when the request already passed a gateway with this pseudonym too often.
    pub fn check_loop(&self, h: &HeaderMap) -> Result<(), Reject> {
        if !h.contains_key(VIA) {
            return Ok(());
        }
        if via_count(h, &self.pseudonym) > self.max_hops {
            return Err(Reject::LoopDetected);
        }
        Ok(())
    }

    /// Appends this gateway's `Via` entry for a message received as `version`.
    pub fn append_via(&self, h: &mut HeaderMap, version: Version) {
        let v = match version {
            Version::HTTP_2 => &self.via_2,
            Version::HTTP_10 => &self.via_10,
            _ => &self.via_11,
        };
        h.append(VIA, v.clone());
    }

    /// Removes the headers only a trusted proxy may send.
    pub fn strip_untrusted(&self, h: &mut HeaderMap) {
        // One pass over the (few) request headers in the common case where none is present.
        if h.keys().any(|k| self.strip.contains(k)) {
            for n in &self.strip {
                h.remove(n);
            }
        }
    }
}

/// How many `Via` entries (across all `Via` fields) name `pseudonym` as their received-by.
pub fn via_count(h: &HeaderMap, pseudonym: &str) -> usize {
    h.get_all(VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|entry| {
            let mut words = entry.split_ascii_whitespace();
            let _protocol = words.next();
            words
                .next()
                .is_some_and(|by| by.eq_ignore_ascii_case(pseudonym))
        })
        .count()
}

fn header_names(list: &[SString], d: &mut Diagnostics) -> Vec<HeaderName> {
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        match HeaderName::from_bytes(s.get_ref().as_bytes()) {
            Ok(n) => out.push(n),
            Err(_) => d.push(
                Some(s.span()),
                format!("forwarding.strip_from_untrusted[{i}]"),
                format!("\"{}\" is not a valid header name", s.get_ref()),
                "use letters, digits and '-', e.g. \"X-Real-IP\"",
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_our_pseudonym() {
        let mut h = HeaderMap::new();
        h.append(VIA, "1.1 portcullis, 1.1 other (comment)".parse().unwrap());
        h.append(VIA, "2 Portcullis".parse().unwrap());
        assert_eq!(via_count(&h, "portcullis"), 2);
        let rules = ForwardingRules::default();
        assert_eq!(rules.check_loop(&h), Err(Reject::LoopDetected));
        h.remove(VIA);
        h.append(VIA, "1.1 portcullis".parse().unwrap());
        assert_eq!(rules.check_loop(&h), Ok(()));
    }
}
