//! Credentials in the store: OAuth clients and API-key apps created at run time (admin API),
//! and the audit trail of every change made to them.
//!
//! A record holds hashes only (`sha256:<hex>` of a generated secret, the format of
//! `secret_hash` / `key_hash` in the config), never a secret. A deleted credential stays as a
//! tombstone (`status = deleted`, hashes cleared) so its id is never handed out again and the
//! tokens it obtained stay refused until they expire. Every write is one atomic operation that
//! stores the record, appends one audit record and bumps a version counter that instances poll
//! to refresh their in-memory view.

use serde::{Deserialize, Serialize};

/// Which registry a credential belongs to (ids are unique within a kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// An OAuth client of the token service.
    Client,
    /// An API-key app.
    App,
}

impl CredentialKind {
    /// `"client"` or `"app"` (store keys, audit records).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::App => "app",
        }
    }
}

/// Lifecycle state of a run-time credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialStatus {
    /// Usable.
    Active,
    /// Refused (its live tokens too) until made active again.
    Suspended,
    /// Gone: a tombstone, invisible to the API, refused for good.
    Deleted,
}

/// The hash a rotation replaced, accepted until `expires_at` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    /// `sha256:<hex>` of the old secret.
    pub hash: String,
    /// Unix seconds after which the old secret is refused.
    pub expires_at: u64,
}

/// One client or app created at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// Client or app.
    pub kind: CredentialKind,
    /// The client id (`X-Client-ID` for apps).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Lifecycle state.
    pub status: CredentialStatus,
    /// Scopes the credential may be granted.
    pub scopes: Vec<String>,
    /// OAuth grant types (clients only).
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Exact redirect URIs (clients only).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// `sha256:<hex>` of the secret or key; `None` for a public client and a tombstone.
    pub secret_hash: Option<String>,
    /// The secret replaced by the last rotation, while its overlap lasts.
    #[serde(default)]
    pub previous: Option<PreviousSecret>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub updated_at: u64,
}

/// One change, as kept in the store (never a secret or a hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the trail, assigned by the store (1, 2, ...).
    #[serde(default)]
    pub seq: u64,
    /// Unix seconds.
    pub at: u64,
    /// Name of the operator token that made the change.
    pub actor: String,
    /// `create`, `update`, `rotate`, `delete`.
    pub action: String,
    /// Client or app.
    pub kind: CredentialKind,
    /// The credential's id.
    pub id: String,
    /// Names of the fields the change set.
    #[serde(default)]
    pub changed: Vec<String>,
}

/// How `Store::write_credential` treats an existing record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Only when no record (not even a tombstone) has the id.
    Create,
    /// Only when a live (active or suspended) record has the id.
    Update,
}

/// Outcome of `Store::write_credential`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Stored, with its audit record.
    Written,
    /// `Create` and the id is taken (nothing changed).
    Exists,
    /// `Update` and no live record has the id (nothing changed).
    Missing,
}

/// What a write finds at the id, and whether it may proceed.
pub(crate) fn decide(mode: WriteMode, current: Option<&CredentialRecord>) -> WriteOutcome {
    match (mode, current) {
        (WriteMode::Create, Some(_)) => WriteOutcome::Exists,
        (WriteMode::Create, None) => WriteOutcome::Written,
        (WriteMode::Update, Some(c)) if c.status != CredentialStatus::Deleted => {
            WriteOutcome::Written
        }
        (WriteMode::Update, _) => WriteOutcome::Missing,
    }
}

/// The store key of a credential: `<kind>:<id>`.
pub(crate) fn key(kind: CredentialKind, id: &str) -> String {
    format!("{}:{id}", kind.as_str())
}
