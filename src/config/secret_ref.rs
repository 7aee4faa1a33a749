//! Secret references: `env:NAME` and `file:PATH`, the only ways a secret enters the config.
//!
//! A literal secret in the file is refused. A file's trailing CR/LF are dropped (editors add
//! one), relative paths are resolved against the config file's directory, and every failure is
//! a diagnostic at the value's line naming the key.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::diagnostic::Diagnostics;

/// Why a reference could not be read.
#[derive(Debug)]
pub enum RefError {
    /// `env:NAME` with `NAME` unset (or not UTF-8).
    Unset(String),
    /// `file:PATH` that could not be read.
    Unreadable(PathBuf, std::io::Error),
    /// Neither `env:` nor `file:`.
    Literal,
}

/// The bytes `text` (`env:NAME` or `file:PATH`) refers to.
pub fn read(text: &str, base: &Path) -> Result<Vec<u8>, RefError> {
    if let Some(name) = text.strip_prefix("env:") {
        return std::env::var(name)
            .map(String::into_bytes)
            .map_err(|_| RefError::Unset(name.to_string()));
    }
    let Some(file) = text.strip_prefix("file:") else {
        return Err(RefError::Literal);
    };
    let path = base.join(file);
    let mut b = std::fs::read(&path).map_err(|e| RefError::Unreadable(path, e))?;
    while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
        b.pop();
    }
    Ok(b)
}

/// The secret `value` refers to, or `None` with the problem pushed to `d`.
pub fn resolve(
    value: &Spanned<String>,
    key: &str,
    base: &Path,
    d: &mut Diagnostics,
) -> Option<Vec<u8>> {
    let (msg, fix) = match read(value.get_ref(), base) {
        Ok(bytes) => return Some(bytes),
        Err(RefError::Unset(name)) => (
            format!("environment variable {name} is not set (or not UTF-8)"),
            format!("export {name} before starting the gateway"),
        ),
        Err(RefError::Unreadable(path, e)) => (
            format!("cannot read {}: {e}", path.display()),
            "check the path (relative paths are resolved against the config file's directory)"
                .into(),
        ),
        Err(RefError::Literal) => {
            let last = key.rsplit('.').next().unwrap_or(key);
            let field = last.split('[').next().unwrap_or(last);
            (
                "secrets are never written in the config file".into(),
                format!("use {field} = \"env:NAME\" or {field} = \"file:PATH\""),
            )
        }
    };
    d.push(Some(value.span()), key, msg, fix);
    None
}
