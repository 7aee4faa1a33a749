//! Secret references: `env:NAME` and `file:PATH`, the only ways a secret enters the config.
//!
//! A literal secret in the file is refused. A file's trailing CR/LF are dropped (editors add
//! one), relative paths are resolved against the config file's directory, and every failure is
//! a diagnostic at the value's line naming the key.

use std::path::Path;

use toml::Spanned;

use super::diagnostic::Diagnostics;

/// The secret `value` refers to, or `None` with the problem pushed to `d`.
pub fn resolve(
    value: &Spanned<String>,
    key: &str,
    base: &Path,
    d: &mut Diagnostics,
) -> Option<Vec<u8>> {
    let text = value.get_ref();
    let mut fail = |msg: String, fix: String| {
        d.push(Some(value.span()), key, msg, fix);
        None
    };
    if let Some(name) = text.strip_prefix("env:") {
        return match std::env::var(name) {
            Ok(v) => Some(v.into_bytes()),
            Err(_) => fail(
                format!("environment variable {name} is not set (or not UTF-8)"),
                format!("export {name} before starting the gateway"),
            ),
        };
    }
    if let Some(file) = text.strip_prefix("file:") {
        let path = base.join(file);
        return match std::fs::read(&path) {
            Ok(mut b) => {
                while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                    b.pop();
                }
                Some(b)
            }
            Err(e) => fail(
                format!("cannot read {}: {e}", path.display()),
                "check the path (relative paths are resolved against the config file's directory)"
                    .into(),
            ),
        };
    }
    let last = key.rsplit('.').next().unwrap_or(key);
    let field = last.split('[').next().unwrap_or(last);
    fail(
        "secrets are never written in the config file".into(),
        format!("use {field} = \"env:NAME\" or {field} = \"file:PATH\""),
    )
}
