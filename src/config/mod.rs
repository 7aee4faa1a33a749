//! Configuration: TOML route policies loaded in three stages (raw -> validate -> compile).
//!
//! `load` reads a file and returns a compiled `Snapshot`, or every problem found as
//! `Diagnostic`s (file:line:column, key path, message, fix). Serde stops at the first problem it
//! meets, so parsing retries after removing each offending entry: unknown keys and type errors
//! are all reported in one pass, together with the semantic problems `validate` finds.

pub mod compile;
pub mod demo;
pub mod diagnostic;
pub mod notes;
pub mod raw;
mod routes;
pub mod secret_ref;
pub mod units;
mod upstreams;
pub mod validate;

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use compile::{Shared, Snapshot};
pub use diagnostic::{Diagnostic, Diagnostics, Source};

/// Upper bound on parse retries (one per removed bad entry).
const MAX_PARSE_PROBLEMS: usize = 64;

/// Reads `path` and builds a snapshot sharing `shared`'s long-lived state.
pub fn load(path: &Path, shared: &Shared) -> Result<Snapshot, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read the config file: {e}"),
            fix: "check the path and permissions".into(),
        }]
    })?;
    load_str(Source::new(path, text), shared)
}

/// Builds a snapshot from config text (the path is used for messages and relative files).
pub fn load_str(source: Source, shared: &Shared) -> Result<Snapshot, Vec<Diagnostic>> {
    let mut d = Diagnostics::new(&source);
    let raw = parse(&source, &mut d);
    let validated = raw.as_ref().and_then(|r| validate::validate(r, &mut d));
    let snapshot = match (raw, validated) {
        (Some(r), Some(v)) if d.is_empty() => compile::compile(&r, v, shared, &mut d),
        _ => None,
    };
    match snapshot {
        Some(s) if d.is_empty() => Ok(s),
        _ => Err(d.into_vec()),
    }
}

/// Stage 1: serde with unknown keys refused; every syntax, unknown-key and type error reported.
/// Returns what parsed once the offending entries are removed (problems stay in `d`).
pub fn parse(source: &Source, d: &mut Diagnostics) -> Option<raw::RawConfig> {
    let (mut table, syntax) = DeTable::parse_recoverable(&source.text);
    if !syntax.is_empty() {
        for e in syntax {
            d.push(
                e.span(),
                "",
                e.message().to_string(),
                "fix the TOML syntax at this position",
            );
        }
        return None;
    }
    table.get_mut().make_owned();
    for _ in 0..MAX_PARSE_PROBLEMS {
        let de = toml::de::Deserializer::from(table.clone());
        match raw::RawConfig::deserialize(de) {
            // Validation still runs on what parsed, so semantic problems are reported too.
            Ok(raw) => return Some(raw),
            Err(e) => {
                let span = e.span();
                d.push(
                    span.clone(),
                    "",
                    e.message().trim().to_string(),
                    fix_for(e.message()),
                );
                let removed = span.is_some_and(|s| remove_at(table.get_mut(), &s));
                if !removed {
                    return None;
                }
            }
        }
    }
    None
}

fn fix_for(message: &str) -> &'static str {
    if message.contains("unknown field") {
        "remove the key or correct its spelling; config/REFERENCE.md lists every key"
    } else if message.contains("missing field") {
        "add the missing key; config/REFERENCE.md lists required keys"
    } else {
        "give the value the type config/REFERENCE.md documents for this key"
    }
}

/// Removes the entry whose key or value sits at `span`; true when one was found.
fn remove_at(table: &mut DeTable<'_>, span: &Range<usize>) -> bool {
    let hit = table
        .iter()
        .find(|(k, v)| k.span() == *span || v.span() == *span)
        .map(|(k, _)| k.clone());
    if let Some(k) = hit {
        table.remove(&k);
        return true;
    }
    table.iter_mut().any(|(_, v)| remove_in_value(v, span))
}

fn remove_in_value(v: &mut Spanned<DeValue<'_>>, span: &Range<usize>) -> bool {
    match v.get_mut() {
        DeValue::Table(t) => remove_at(t, span),
        DeValue::Array(items) => items.iter_mut().any(|item| remove_in_value(item, span)),
        _ => false,
    }
}
