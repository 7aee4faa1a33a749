//! CLI: `portcullis sign-webhook`, the headers of a signed request for trying a route with curl.
//!
//! The scheme is `[webhooks.inbound.NAME]` (or `[webhooks.outbound.NAME]`) of a config file, or
//! the Standard Webhooks preset when no config is given. Only the scheme is read from the file
//! (its secrets are not resolved): the secret comes from standard input, the body from a file,
//! and the output is one `Name: value` line per header, ready for `curl -H @headers.txt`.

use std::path::{Path, PathBuf};

use super::outbound::sign;
use super::scheme::Scheme;
use super::secret::Secret;
use crate::config::{self, Diagnostics, Source};

/// What to sign.
#[derive(Debug, Clone)]
pub struct SignArgs {
    /// Config file holding the scheme; `None` = the Standard Webhooks preset.
    pub config: Option<PathBuf>,
    /// Name of the `[webhooks.inbound.NAME]` or `[webhooks.outbound.NAME]` section.
    pub webhook: Option<String>,
    /// File with the exact body bytes.
    pub body: PathBuf,
    /// Webhook id (default: a fresh `msg_...`).
    pub id: Option<String>,
    /// Unix timestamp (default: now).
    pub timestamp: Option<u64>,
}

/// The header lines of the signed request, or what is wrong.
pub fn sign_webhook(args: &SignArgs, secret_text: &[u8], now: u64) -> Result<String, String> {
    let scheme = match (&args.config, &args.webhook) {
        (None, None) => Scheme::standard(),
        (Some(file), Some(name)) => scheme_from(file, name)?,
        _ => return Err("give both --config and --webhook, or neither (Standard Webhooks)".into()),
    };
    let text = trim_newline(secret_text);
    let secret = Secret::from_text(text, scheme.secret_format)
        .map_err(|e| format!("unusable secret on standard input: {e}"))?;
    let body = std::fs::read(&args.body)
        .map_err(|e| format!("cannot read {}: {e}", args.body.display()))?;
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("msg_{}", uuid::Uuid::new_v4().simple()));
    if !super::signature::valid_id(id.as_bytes()) {
        return Err("the id must be 1 to 256 visible ASCII characters".into());
    }
    let ts = args.timestamp.unwrap_or(now);
    let mut out = String::new();
    for (name, value) in sign(&scheme, &secret, &id, ts, &body) {
        out.push_str(&format!("{name}: {value}\n"));
    }
    Ok(out)
}

fn trim_newline(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = b {
        b = rest;
    }
    b
}

fn scheme_from(file: &Path, name: &str) -> Result<Scheme, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let source = Source::new(file, text);
    let mut d = Diagnostics::new(&source);
    let raw = config::parse(&source, &mut d);
    let problems = |d: Diagnostics| {
        d.into_vec()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let Some(webhooks) = raw.as_ref().and_then(|r| r.webhooks.as_ref()) else {
        return Err(format!(
            "{} has no [webhooks] section\n{}",
            file.display(),
            problems(d)
        ));
    };
    let scheme = if let Some(i) = webhooks.inbound.get(name) {
        Scheme::compile(
            &i.get_ref().scheme_keys(),
            &format!("webhooks.inbound.{name}"),
            &mut d,
        )
    } else if let Some(o) = webhooks.outbound.get(name) {
        Scheme::compile(
            &o.get_ref().scheme_keys(),
            &format!("webhooks.outbound.{name}"),
            &mut d,
        )
    } else {
        return Err(format!(
            "no [webhooks.inbound.{name}] or [webhooks.outbound.{name}] in {}",
            file.display()
        ));
    };
    match scheme {
        Some(s) if d.is_empty() => Ok(s),
        _ => Err(problems(d)),
    }
}
