//! Store: the persistent OAuth state behind one small async trait (refresh tokens, grant families,
//! authorization codes, one-time nonces, revoked access-token ids).
//!
//! Secrets never reach the store in the clear: refresh tokens and codes are keyed by the hex
//! SHA-256 of the token (`token_hash`). Every operation whose meaning depends on "exactly once"
//! (rotating a refresh token, redeeming a code, using a nonce) is one atomic transaction in the
//! backend, and every write is durable before the call returns, so a response that promised a
//! token never outlives the token after a crash.
//!
//! Backends: `embedded` (one redb file, the default) and `redis` (`[state] backend = "redis"`,
//! shared by several instances; one Lua script per exactly-once operation).

pub mod credentials;
pub mod embedded;
pub mod redis;
mod redis_credentials;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use credentials::{
    AuditRecord, CredentialKind, CredentialRecord, CredentialStatus, PreviousSecret, WriteMode,
    WriteOutcome,
};
pub use embedded::EmbeddedStore;
pub use redis::RedisStore;

/// A store failure (I/O, corruption, a backend down). Never shown to API consumers verbatim.
#[derive(Debug, Error)]
#[error("store: {message}")]
pub struct StoreError {
    message: String,
    unavailable: bool,
}

impl StoreError {
    /// The store answered wrongly (I/O, corruption, an unexpected reply).
    pub fn failed(e: impl std::fmt::Display) -> Self {
        Self {
            message: e.to_string(),
            unavailable: false,
        }
    }

    /// The store's backend is down or did not answer in time: worth retrying later.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}

impl From<crate::state::StateError> for StoreError {
    /// Every Redis failure (down, timed out, refused the command) is the backend's.
    fn from(e: crate::state::StateError) -> Self {
        Self {
            message: e.to_string(),
            unavailable: true,
        }
    }
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// The boxed future every `Store` method returns (keeps the trait object-safe).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'a>>;

/// Hex SHA-256 of a secret token: the only form in which tokens are stored.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// An access token issued from a grant family, remembered so revoking the family revokes it too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedAccess {
    /// The token's `jti`.
    pub jti: String,
    /// The token's `exp` (Unix seconds).
    pub exp: u64,
}

/// One refresh token (stored under its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// The grant family it descends from.
    pub family_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The resource owner (`sub`); the client id for `client_credentials`.
    pub subject: String,
    /// Scopes of the grant (identical across rotations).
    pub scopes: Vec<String>,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    /// Already exchanged: presenting it again is reuse.
    pub spent: bool,
}

/// What to write for a new grant family with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewGrant {
    /// Family id (random).
    pub family_id: String,
    /// Hash of the first refresh token.
    pub refresh_hash: String,
    /// The refresh token's record.
    pub record: RefreshRecord,
    /// The access token issued alongside.
    pub access: IssuedAccess,
}

/// A rotation request: exchange `old_hash` for `new_hash`, atomically.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// Hash of the presented refresh token.
    pub old_hash: String,
    /// The authenticated client; a token of another client is refused and left untouched.
    pub client_id: String,
    /// Scopes the client asked for (`None` = the grant's); more than the grant's is refused.
    pub requested_scopes: Option<Vec<String>>,
    /// Hash of the new refresh token.
    pub new_hash: String,
    /// Expiry of the new refresh token.
    pub new_expires_at: u64,
    /// The access token issued alongside.
    pub access: IssuedAccess,
    /// Now, Unix seconds.
    pub now: u64,
}

/// Outcome of `Store::rotate_refresh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// Rotated: the old token is spent, the new one stored; the old token's record.
    Rotated(RefreshRecord),
    /// No such token.
    NotFound,
    /// The token belongs to another client (nothing changed).
    WrongClient,
    /// More scope asked for than the grant holds (nothing changed).
    ScopeExceeded,
    /// The token has expired.
    Expired,
    /// The family was revoked earlier.
    Revoked,
    /// The token was already spent: the family is now revoked; these access tokens with it.
    Reused(Vec<IssuedAccess>),
}

/// A pending authorization code (stored under its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// Client the code was issued to.
    pub client_id: String,
    /// The exact redirect URI of the authorization request.
    pub redirect_uri: String,
    /// The resource owner confirmed by the login backend.
    pub subject: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// PKCE S256 challenge (base64url of SHA-256 of the verifier); empty when the client's
    /// policy (`require_pkce = false`) let the authorization request omit it.
    pub code_challenge: String,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    /// Family id the tokens redeemed from this code will carry (so reuse can revoke them).
    pub family_id: String,
    /// Already redeemed.
    pub used: bool,
}

/// Outcome of `Store::redeem_code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemOutcome {
    /// First redemption: the code's record (now marked used).
    Redeemed(CodeRecord),
    /// No such code (or expired and purged).
    NotFound,
    /// Redeemed before: the family it produced is revoked now, these access tokens with it.
    Reused(Vec<IssuedAccess>),
}

/// What the introspection and revocation endpoints need to know about a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshStatus {
    /// The record.
    pub record: RefreshRecord,
    /// Its family was revoked.
    pub family_revoked: bool,
}

/// Persistent OAuth state. Every method is atomic and durable when it returns `Ok`.
pub trait Store: Send + Sync + 'static {
    /// Creates a grant family with its first refresh token and access token.
    fn create_grant(&self, grant: NewGrant) -> StoreFuture<'_, ()>;
    /// Exchanges a refresh token for a new one in the same family; see `RotateOutcome`.
    fn rotate_refresh(&self, rotation: Rotation) -> StoreFuture<'_, RotateOutcome>;
    /// Reads a refresh token by hash, with its family's revoked flag.
    fn refresh_status(&self, hash: String) -> StoreFuture<'_, Option<RefreshStatus>>;
    /// Revokes a family; returns its unexpired access tokens (to refuse them until `exp`).
    fn revoke_family(&self, family_id: String, now: u64) -> StoreFuture<'_, Vec<IssuedAccess>>;
    /// Stores an authorization code under its hash.
    fn put_code(&self, hash: String, code: CodeRecord) -> StoreFuture<'_, ()>;
    /// Redeems a code exactly once; expired codes are `NotFound`.
    fn redeem_code(&self, hash: String, now: u64) -> StoreFuture<'_, RedeemOutcome>;
    /// Marks a one-time value used; `true` the first time, `false` after (kept until `exp`).
    fn use_nonce(&self, nonce: String, exp: u64) -> StoreFuture<'_, bool>;
    /// Records an access token's `jti` as revoked until `exp`.
    fn revoke_jti(&self, jti: String, exp: u64) -> StoreFuture<'_, ()>;
    /// True when the `jti` is revoked.
    fn is_jti_revoked(&self, jti: String) -> StoreFuture<'_, bool>;
    /// Every revoked `jti` with its `exp` that has not expired at `now` (to seed verifiers).
    fn revoked_jtis(&self, now: u64) -> StoreFuture<'_, Vec<IssuedAccess>>;
    /// Deletes expired records; returns how many.
    fn purge_expired(&self, now: u64) -> StoreFuture<'_, usize>;
    /// Stores a run-time credential under `mode`, appends `audit` (its `seq` assigned here) and
    /// bumps the credentials version, all in one atomic operation; see `WriteOutcome`.
    fn write_credential(
        &self,
        record: CredentialRecord,
        mode: WriteMode,
        audit: AuditRecord,
    ) -> StoreFuture<'_, WriteOutcome>;
    /// One credential by id (tombstones included).
    fn credential(
        &self,
        kind: CredentialKind,
        id: String,
    ) -> StoreFuture<'_, Option<CredentialRecord>>;
    /// Every credential of `kind` (tombstones included), ordered by id.
    fn credentials(&self, kind: CredentialKind) -> StoreFuture<'_, Vec<CredentialRecord>>;
    /// A counter bumped by every credential write (0 before the first).
    fn credentials_version(&self) -> StoreFuture<'_, u64>;
    /// Up to `limit` audit records with `seq > after`, oldest first.
    fn audit(&self, after: u64, limit: usize) -> StoreFuture<'_, Vec<AuditRecord>>;
}
