//! Scheme: how one partner signs webhooks (header names, encoding, prefix, signed payload) and
//! the built-in Standard Webhooks preset.
//!
//! A scheme is either `scheme = "standard"` (the Standard Webhooks specification: `webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64>` with several space-separated
//! signatures, HMAC-SHA256 over `{id}.{timestamp}.{body}`, `whsec_` base64 secrets) or
//! `scheme = "custom"` with the operator naming each part. The signed payload template is
//! checked so that it cannot be ambiguous: `{body}` once and last, `{timestamp}` once, and a
//! non-empty literal between two placeholders (so digits cannot slide across a boundary).

use http::HeaderName;
use toml::Spanned;

use crate::config::diagnostic::Diagnostics;
use crate::config::raw::SString;

/// The keys `[webhooks.inbound.NAME]` and `[webhooks.outbound.NAME]` share, borrowed from either.
#[derive(Debug, Default, Clone, Copy)]
pub struct SchemeKeys<'a> {
    /// `"standard"` (default) or `"custom"`.
    pub scheme: Option<&'a SString>,
    /// Custom: header carrying the signature, e.g. `"X-Contio-Signature"`.
    pub signature_header: Option<&'a SString>,
    /// Custom: header carrying the Unix timestamp, e.g. `"X-Contio-Timestamp"`.
    pub timestamp_header: Option<&'a SString>,
    /// Custom: header carrying a unique webhook id (replay memory keys on it when present).
    pub id_header: Option<&'a SString>,
    /// Custom: `"hex"` (default) or `"base64"`.
    pub encoding: Option<&'a SString>,
    /// Custom: text before the encoded signature, e.g. `"sha256="` (default none).
    pub prefix: Option<&'a SString>,
    /// Custom: the signed bytes, default `"{timestamp}.{body}"`.
    pub signed_payload: Option<&'a SString>,
}

/// How the MAC is written in the signature header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lower- or upper-case hex (64 characters).
    Hex,
    /// Standard base64 with padding (44 characters).
    Base64,
}

/// How configured secrets are turned into HMAC keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFormat {
    /// The referenced bytes are the key.
    Raw,
    /// `whsec_<base64>`: the key is the decoded base64 (Standard Webhooks).
    Whsec,
}

/// One piece of the signed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// The timestamp header's value.
    Timestamp,
    /// The id header's value.
    Id,
    /// The raw body bytes.
    Body,
}

/// A compiled scheme.
#[derive(Debug, Clone)]
pub struct Scheme {
    /// Header carrying the signature(s).
    pub signature_header: HeaderName,
    /// Header carrying the Unix timestamp.
    pub timestamp_header: HeaderName,
    /// Header carrying the webhook id, if the scheme has one.
    pub id_header: Option<HeaderName>,
    /// Encoding of the MAC.
    pub encoding: Encoding,
    /// Text before each encoded MAC (`v1,` for Standard Webhooks).
    pub prefix: String,
    /// Several space-separated signatures in one header (Standard Webhooks).
    pub multiple: bool,
    /// What is signed, in order; `Body` is last.
    pub payload: Vec<Part>,
    /// How secrets become keys.
    pub secret_format: SecretFormat,
}

impl Scheme {
    /// The Standard Webhooks preset.
    pub fn standard() -> Self {
        Self {
            signature_header: HeaderName::from_static("webhook-signature"),
            timestamp_header: HeaderName::from_static("webhook-timestamp"),
            id_header: Some(HeaderName::from_static("webhook-id")),
            encoding: Encoding::Base64,
            prefix: "v1,".into(),
            multiple: true,
            payload: vec![
                Part::Id,
                Part::Text(".".into()),
                Part::Timestamp,
                Part::Text(".".into()),
                Part::Body,
            ],
            secret_format: SecretFormat::Whsec,
        }
    }

    /// Compiles the scheme keys of the section at `key`; problems go to `d`.
    pub fn compile(raw: &SchemeKeys<'_>, key: &str, d: &mut Diagnostics) -> Option<Self> {
        let name = raw.scheme.map_or("standard", |s| s.get_ref().as_str());
        match name {
            "standard" => {
                let custom_keys = [
                    ("signature_header", raw.signature_header),
                    ("timestamp_header", raw.timestamp_header),
                    ("id_header", raw.id_header),
                    ("encoding", raw.encoding),
                    ("prefix", raw.prefix),
                    ("signed_payload", raw.signed_payload),
                ];
                let mut ok = true;
                for (k, v) in custom_keys {
                    if let Some(v) = v {
                        ok = false;
                        d.push(
                            Some(v.span()),
                            format!("{key}.{k}"),
                            format!("{k} is fixed by the Standard Webhooks scheme"),
                            format!("remove {k}, or set scheme = \"custom\""),
                        );
                    }
                }
                ok.then(Self::standard)
            }
            "custom" => custom(raw, key, d),
            other => {
                let at = raw.scheme.map(Spanned::span);
                d.push(
                    at,
                    format!("{key}.scheme"),
                    format!("unknown webhook scheme \"{other}\""),
                    "use \"standard\" (Standard Webhooks) or \"custom\"",
                );
                None
            }
        }
    }
}

fn custom(raw: &SchemeKeys<'_>, key: &str, d: &mut Diagnostics) -> Option<Scheme> {
    let signature_header = required_header(raw.signature_header, key, "signature_header", d);
    let timestamp_header = required_header(raw.timestamp_header, key, "timestamp_header", d);
    let id_header = raw
        .id_header
        .and_then(|h| header(h, &format!("{key}.id_header"), d));
    let encoding = match raw.encoding.map(|e| (e, e.get_ref().as_str())) {
        None | Some((_, "hex")) => Some(Encoding::Hex),
        Some((_, "base64")) => Some(Encoding::Base64),
        Some((e, other)) => {
            d.push(
                Some(e.span()),
                format!("{key}.encoding"),
                format!("unknown signature encoding \"{other}\""),
                "use \"hex\" or \"base64\"",
            );
            None
        }
    };
    let prefix = raw.prefix.map(|p| p.get_ref().clone());
    if let Some(p) = raw.prefix
        && (p.get_ref().is_empty() || !p.get_ref().bytes().all(|b| b.is_ascii_graphic()))
    {
        d.push(
            Some(p.span()),
            format!("{key}.prefix"),
            "the prefix must be visible ASCII without spaces",
            "write it as the partner sends it, e.g. \"sha256=\", or remove the key",
        );
    }
    let template = raw
        .signed_payload
        .map_or("{timestamp}.{body}", |s| s.get_ref().as_str());
    let at = raw.signed_payload.map(Spanned::span);
    let payload = match parse_template(template) {
        Ok(p) => Some(p),
        Err(why) => {
            d.push(
                at.clone(),
                format!("{key}.signed_payload"),
                why,
                "write the partner's construction, e.g. \"{timestamp}.{body}\"",
            );
            None
        }
    };
    if let Some(p) = &payload
        && p.contains(&Part::Id)
        && raw.id_header.is_none()
    {
        d.push(
            at,
            format!("{key}.signed_payload"),
            "the signed payload uses {id} but the scheme has no id_header",
            "add id_header = \"...\" naming the header that carries the webhook id",
        );
        return None;
    }
    Some(Scheme {
        signature_header: signature_header?,
        timestamp_header: timestamp_header?,
        id_header,
        encoding: encoding?,
        prefix: prefix.unwrap_or_default(),
        multiple: false,
        payload: payload?,
        secret_format: SecretFormat::Raw,
    })
}

fn required_header(
    v: Option<&SString>,
    key: &str,
    name: &str,
    d: &mut Diagnostics,
) -> Option<HeaderName> {
    match v {
        Some(h) => header(h, &format!("{key}.{name}"), d),
        None => {
            d.push(
                None,
                format!("{key}.{name}"),
                format!("a custom scheme needs {name}"),
                format!("add {name} = \"X-Partner-...\" as the partner documents it"),
            );
            None
        }
    }
}

fn header(v: &SString, key: &str, d: &mut Diagnostics) -> Option<HeaderName> {
    match HeaderName::from_bytes(v.get_ref().as_bytes()) {
        Ok(h) => Some(h),
        Err(_) => {
            d.push(
                Some(v.span()),
                key,
                format!("\"{}\" is not a valid header name", v.get_ref()),
                "use letters, digits and '-', e.g. \"X-Contio-Signature\"",
            );
            None
        }
    }
}

/// Parses `{timestamp}.{body}`-style templates; see the module doc for the rules.
pub fn parse_template(t: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = t;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('{') {
            let end = after.find('}').ok_or("an opening '{' has no closing '}'")?;
            let part = match &after[..end] {
                "timestamp" => Part::Timestamp,
                "id" => Part::Id,
                "body" => Part::Body,
                other => return Err(format!("unknown placeholder {{{other}}}")),
            };
            if parts.last().is_some_and(|p| !matches!(p, Part::Text(_))) {
                return Err("two placeholders need a literal separator between them".into());
            }
            parts.push(part);
            rest = &after[end + 1..];
        } else {
            let end = rest.find('{').unwrap_or(rest.len());
            let text = &rest[..end];
            if text.contains('}') {
                return Err("a '}' without its '{'".into());
            }
            parts.push(Part::Text(text.to_string()));
            rest = &rest[end..];
        }
    }
    let count = |p: &Part| parts.iter().filter(|q| *q == p).count();
    if count(&Part::Body) != 1 || parts.last() != Some(&Part::Body) {
        return Err("{body} must appear once, at the end".into());
    }
    if count(&Part::Timestamp) != 1 {
        return Err("{timestamp} must appear once (the signature must cover it)".into());
    }
    if count(&Part::Id) > 1 {
        return Err("{id} may appear at most once".into());
    }
    let separators_ok = parts.windows(2).all(|w| match w {
        [Part::Timestamp, Part::Text(t)] => !t.starts_with(|c: char| c.is_ascii_digit()),
        [Part::Text(t), Part::Timestamp] => !t.ends_with(|c: char| c.is_ascii_digit()),
        _ => true,
    });
    if !separators_ok {
        return Err("the text next to {timestamp} must not be a digit".into());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_unambiguous() {
        assert_eq!(
            parse_template("{timestamp}.{body}"),
            Ok(vec![Part::Timestamp, Part::Text(".".into()), Part::Body])
        );
        assert!(parse_template("{timestamp}{body}").is_err());
        assert!(parse_template("{body}.{timestamp}").is_err());
        assert!(parse_template("{timestamp}1{body}").is_err());
        assert!(parse_template("{id}.{body}").is_err());
        assert!(parse_template("{timestamp}.{body}{body}").is_err());
        assert!(parse_template("{time}.{body}").is_err());
        assert!(parse_template("v0:{timestamp}:{body}").is_ok());
    }
}
