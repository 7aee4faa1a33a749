//! Diagnostic: one configuration problem, located at file:line:column, with the key path and a fix.
//!
//! Every stage of loading (raw parse, validation, compilation) reports through `Diagnostics`, so
//! `portcullis check` can print all problems of a file at once.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// Dotted key path, e.g. `routes[2].upstream`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", self.fix)?;
        }
        Ok(())
    }
}

/// The text of a config file, for turning byte spans into line and column.
#[derive(Debug, Clone)]
pub struct Source {
    /// Path as given by the operator.
    pub path: PathBuf,
    /// The file's contents.
    pub text: String,
}

impl Source {
    /// Wraps a file's path and text.
    pub fn new(path: impl AsRef<Path>, text: impl Into<String>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            text: text.into(),
        }
    }

    /// 1-based (line, column) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    /// The directory relative paths in the file are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

/// A collector of diagnostics for one source.
#[derive(Debug)]
pub struct Diagnostics<'a> {
    source: &'a Source,
    items: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    /// An empty collector for `source`.
    pub fn new(source: &'a Source) -> Self {
        Self {
            source,
            items: Vec::new(),
        }
    }

    /// The source being diagnosed.
    pub fn source(&self) -> &'a Source {
        self.source
    }

    /// Records a problem at a byte span (`None` when the key has no position, e.g. a missing key).
    pub fn push(
        &mut self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let (line, column) = span.map_or((0, 0), |s| self.source.line_col(s.start));
        self.items.push(Diagnostic {
            file: self.source.path.clone(),
            line,
            column,
            key: key.into(),
            message: message.into(),
            fix: fix.into(),
        });
    }

    /// True when nothing has been reported.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The problems, in file order.
    pub fn into_vec(mut self) -> Vec<Diagnostic> {
        self.items.sort_by_key(|d| (d.line, d.column));
        self.items
    }
}
