//! Embedded store: the `Store` trait on one redb file (pure Rust, ACID, fsync on every commit).
//!
//! redb serialises write transactions, so each read-check-write below (rotation, code
//! redemption, nonce use) is atomic against every other writer in this process, and the file lock
//! keeps a second process out. Commits use `Durability::Immediate` (redb's default), so when a
//! method returns the change is on disk. Calls run on tokio's blocking pool. Records are JSON.
//! Run-time credentials live in `credentials` (key `<kind>:<id>`), their audit trail in
//! `audit` (key = sequence number) and the credentials version in `meta`.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::credentials::{self, decide};
use super::{
    AuditRecord, CodeRecord, CredentialKind, CredentialRecord, IssuedAccess, NewGrant,
    RedeemOutcome, RefreshRecord, RefreshStatus, RotateOutcome, Rotation, Store, StoreError,
    StoreFuture, StoreResult, WriteMode, WriteOutcome,
};

const REFRESH: TableDefinition<&str, &[u8]> = TableDefinition::new("refresh_tokens");
const FAMILIES: TableDefinition<&str, &[u8]> = TableDefinition::new("grant_families");
const CODES: TableDefinition<&str, &[u8]> = TableDefinition::new("authorization_codes");
const NONCES: TableDefinition<&str, u64> = TableDefinition::new("nonces");
const JTIS: TableDefinition<&str, u64> = TableDefinition::new("revoked_jtis");
const CREDS: TableDefinition<&str, &[u8]> = TableDefinition::new("credentials");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const CREDS_VERSION: &str = "credentials_version";

/// A grant family: the refresh tokens and access tokens descended from one grant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Family {
    client_id: String,
    revoked: bool,
    /// Unexpired access tokens issued from the family.
    access: Vec<IssuedAccess>,
    /// Latest expiry of anything in the family (for purging).
    expires_at: u64,
}

impl Family {
    fn remember(&mut self, access: IssuedAccess, now: u64) {
        self.access.retain(|a| a.exp > now);
        self.expires_at = self.expires_at.max(access.exp);
        self.access.push(access);
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::failed(e)
}

fn encode<T: Serialize>(v: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(err)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(err)
}

/// The embedded backend. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store file; its parent directory is created when missing.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let db = Database::create(path).map_err(err)?;
        Self::with_tables(db)
    }

    fn with_tables(db: Database) -> StoreResult<Self> {
        // Create every table up front so readers never meet a missing one.
        let txn = db.begin_write().map_err(err)?;
        {
            txn.open_table(REFRESH).map_err(err)?;
            txn.open_table(FAMILIES).map_err(err)?;
            txn.open_table(CODES).map_err(err)?;
            txn.open_table(NONCES).map_err(err)?;
            txn.open_table(JTIS).map_err(err)?;
            txn.open_table(CREDS).map_err(err)?;
            txn.open_table(AUDIT).map_err(err)?;
            txn.open_table(META).map_err(err)?;
        }
        txn.commit().map_err(err)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// A store that lives in memory only (`portcullis check`, which must not take the file's
    /// lock from a running gateway).
    pub fn in_memory() -> StoreResult<Self> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(err)?;
        Self::with_tables(db)
    }

    /// Reads every run-time credential of the file at `path` without taking it over (a shared,
    /// read-only open; fails while a gateway holds the file). For `portcullis check`.
    pub fn read_credentials_at(path: &Path) -> StoreResult<Vec<CredentialRecord>> {
        let db = redb::ReadOnlyDatabase::open(path).map_err(err)?;
        let txn = db.begin_read().map_err(err)?;
        let creds = match txn.open_table(CREDS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        };
        let mut out = Vec::new();
        for entry in creds.iter().map_err(err)? {
            let (_, v) = entry.map_err(err)?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    /// Runs `f` in one write transaction on the blocking pool and commits (fsync) if it succeeds.
    fn write<T, F>(&self, f: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let txn = db.begin_write().map_err(err)?;
                let out = f(&txn)?;
                txn.commit().map_err(err)?;
                Ok(out)
            })
            .await
            .map_err(err)?
        })
    }

    /// Runs `f` on a read snapshot on the blocking pool.
    fn read<T, F>(&self, f: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&redb::ReadTransaction) -> StoreResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let txn = db.begin_read().map_err(err)?;
                f(&txn)
            })
            .await
            .map_err(err)?
        })
    }
}

fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> StoreResult<Option<T>> {
    match table.get(key).map_err(err)? {
        Some(guard) => Ok(Some(decode(guard.value())?)),
        None => Ok(None),
    }
}

/// Revokes a family inside `txn`; returns its unexpired access tokens.
fn revoke_family_in(
    txn: &WriteTransaction,
    family_id: &str,
    now: u64,
) -> StoreResult<Vec<IssuedAccess>> {
    let mut families = txn.open_table(FAMILIES).map_err(err)?;
    let mut family: Family = get_json(&families, family_id)?.unwrap_or_default();
    family.revoked = true;
    family.access.retain(|a| a.exp > now);
    let access = family.access.clone();
    families
        .insert(family_id, encode(&family)?.as_slice())
        .map_err(err)?;
    let mut jtis = txn.open_table(JTIS).map_err(err)?;
    for a in &access {
        jtis.insert(a.jti.as_str(), a.exp).map_err(err)?;
    }
    Ok(access)
}

fn is_subset(requested: &[String], granted: &[String]) -> bool {
    requested.iter().all(|s| granted.contains(s))
}

impl Store for EmbeddedStore {
    fn create_grant(&self, grant: NewGrant) -> StoreFuture<'_, ()> {
        self.write(move |txn| {
            let mut families = txn.open_table(FAMILIES).map_err(err)?;
            let mut family: Family = get_json(&families, &grant.family_id)?.unwrap_or_default();
            family.client_id = grant.record.client_id.clone();
            family.expires_at = family.expires_at.max(grant.record.expires_at);
            family.remember(grant.access, 0);
            families
                .insert(grant.family_id.as_str(), encode(&family)?.as_slice())
                .map_err(err)?;
            let mut refresh = txn.open_table(REFRESH).map_err(err)?;
            refresh
                .insert(
                    grant.refresh_hash.as_str(),
                    encode(&grant.record)?.as_slice(),
                )
                .map_err(err)?;
            Ok(())
        })
    }

    fn rotate_refresh(&self, r: Rotation) -> StoreFuture<'_, RotateOutcome> {
        self.write(move |txn| {
            let mut refresh = txn.open_table(REFRESH).map_err(err)?;
            let Some(mut old) = get_json::<RefreshRecord>(&refresh, &r.old_hash)? else {
                return Ok(RotateOutcome::NotFound);
            };
            if old.client_id != r.client_id {
                return Ok(RotateOutcome::WrongClient);
            }
            let families = txn.open_table(FAMILIES).map_err(err)?;
            let mut family: Family = get_json(&families, &old.family_id)?.unwrap_or_default();
            drop(families);
            if family.revoked {
                return Ok(RotateOutcome::Revoked);
            }
            if old.spent {
                drop(refresh);
                let access = revoke_family_in(txn, &old.family_id, r.now)?;
                return Ok(RotateOutcome::Reused(access));
            }
            if old.expires_at <= r.now {
                return Ok(RotateOutcome::Expired);
            }
            if let Some(req) = &r.requested_scopes
                && !is_subset(req, &old.scopes)
            {
                return Ok(RotateOutcome::ScopeExceeded);
            }
            old.spent = true;
            refresh
                .insert(r.old_hash.as_str(), encode(&old)?.as_slice())
                .map_err(err)?;
            let new = RefreshRecord {
                spent: false,
                expires_at: r.new_expires_at,
                ..old.clone()
            };
            refresh
                .insert(r.new_hash.as_str(), encode(&new)?.as_slice())
                .map_err(err)?;
            family.expires_at = family.expires_at.max(r.new_expires_at);
            family.remember(r.access, r.now);
            let mut families = txn.open_table(FAMILIES).map_err(err)?;
            families
                .insert(old.family_id.as_str(), encode(&family)?.as_slice())
                .map_err(err)?;
            Ok(RotateOutcome::Rotated(old))
        })
    }

    fn refresh_status(&self, hash: String) -> StoreFuture<'_, Option<RefreshStatus>> {
        self.read(move |txn| {
            let refresh = txn.open_table(REFRESH).map_err(err)?;
            let Some(record) = get_json::<RefreshRecord>(&refresh, &hash)? else {
                return Ok(None);
            };
            let families = txn.open_table(FAMILIES).map_err(err)?;
            let family: Family = get_json(&families, &record.family_id)?.unwrap_or_default();
            Ok(Some(RefreshStatus {
                record,
                family_revoked: family.revoked,
            }))
        })
    }

    fn revoke_family(&self, family_id: String, now: u64) -> StoreFuture<'_, Vec<IssuedAccess>> {
        self.write(move |txn| revoke_family_in(txn, &family_id, now))
    }

    fn put_code(&self, hash: String, code: CodeRecord) -> StoreFuture<'_, ()> {
        self.write(move |txn| {
            let mut codes = txn.open_table(CODES).map_err(err)?;
            codes
                .insert(hash.as_str(), encode(&code)?.as_slice())
                .map_err(err)?;
            Ok(())
        })
    }

    fn redeem_code(&self, hash: String, now: u64) -> StoreFuture<'_, RedeemOutcome> {
        self.write(move |txn| {
            let mut codes = txn.open_table(CODES).map_err(err)?;
            let Some(mut code) = get_json::<CodeRecord>(&codes, &hash)? else {
                return Ok(RedeemOutcome::NotFound);
            };
            if code.used {
                drop(codes);
                let access = revoke_family_in(txn, &code.family_id, now)?;
                return Ok(RedeemOutcome::Reused(access));
            }
            if code.expires_at <= now {
                codes.remove(hash.as_str()).map_err(err)?;
                return Ok(RedeemOutcome::NotFound);
            }
            code.used = true;
            codes
                .insert(hash.as_str(), encode(&code)?.as_slice())
                .map_err(err)?;
            Ok(RedeemOutcome::Redeemed(code))
        })
    }

    fn use_nonce(&self, nonce: String, exp: u64) -> StoreFuture<'_, bool> {
        self.write(move |txn| {
            let mut nonces = txn.open_table(NONCES).map_err(err)?;
            if nonces.get(nonce.as_str()).map_err(err)?.is_some() {
                return Ok(false);
            }
            nonces.insert(nonce.as_str(), exp).map_err(err)?;
            Ok(true)
        })
    }

    fn revoke_jti(&self, jti: String, exp: u64) -> StoreFuture<'_, ()> {
        self.write(move |txn| {
            let mut jtis = txn.open_table(JTIS).map_err(err)?;
            jtis.insert(jti.as_str(), exp).map_err(err)?;
            Ok(())
        })
    }

    fn is_jti_revoked(&self, jti: String) -> StoreFuture<'_, bool> {
        self.read(move |txn| {
            let jtis = txn.open_table(JTIS).map_err(err)?;
            Ok(jtis.get(jti.as_str()).map_err(err)?.is_some())
        })
    }

    fn revoked_jtis(&self, now: u64) -> StoreFuture<'_, Vec<IssuedAccess>> {
        self.read(move |txn| {
            let jtis = txn.open_table(JTIS).map_err(err)?;
            let mut out = Vec::new();
            for entry in jtis.iter().map_err(err)? {
                let (k, v) = entry.map_err(err)?;
                if v.value() > now {
                    out.push(IssuedAccess {
                        jti: k.value().to_string(),
                        exp: v.value(),
                    });
                }
            }
            Ok(out)
        })
    }

    fn purge_expired(&self, now: u64) -> StoreFuture<'_, usize> {
        self.write(move |txn| {
            let mut n = 0;
            let mut refresh = txn.open_table(REFRESH).map_err(err)?;
            n += refresh
                .extract_if(|_, v| decode::<RefreshRecord>(v).is_ok_and(|r| r.expires_at <= now))
                .map_err(err)?
                .count();
            drop(refresh);
            let mut families = txn.open_table(FAMILIES).map_err(err)?;
            n += families
                .extract_if(|_, v| decode::<Family>(v).is_ok_and(|f| f.expires_at <= now))
                .map_err(err)?
                .count();
            drop(families);
            let mut codes = txn.open_table(CODES).map_err(err)?;
            n += codes
                .extract_if(|_, v| decode::<CodeRecord>(v).is_ok_and(|c| c.expires_at <= now))
                .map_err(err)?
                .count();
            drop(codes);
            let mut nonces = txn.open_table(NONCES).map_err(err)?;
            n += nonces.extract_if(|_, exp| exp <= now).map_err(err)?.count();
            drop(nonces);
            let mut jtis = txn.open_table(JTIS).map_err(err)?;
            n += jtis.extract_if(|_, exp| exp <= now).map_err(err)?.count();
            Ok(n)
        })
    }

    fn write_credential(
        &self,
        record: CredentialRecord,
        mode: WriteMode,
        mut audit: AuditRecord,
    ) -> StoreFuture<'_, WriteOutcome> {
        self.write(move |txn| {
            let key = credentials::key(record.kind, &record.id);
            let mut creds = txn.open_table(CREDS).map_err(err)?;
            let current: Option<CredentialRecord> = get_json(&creds, &key)?;
            let outcome = decide(mode, current.as_ref());
            if outcome != WriteOutcome::Written {
                return Ok(outcome);
            }
            creds
                .insert(key.as_str(), encode(&record)?.as_slice())
                .map_err(err)?;
            let mut trail = txn.open_table(AUDIT).map_err(err)?;
            let last = trail.last().map_err(err)?.map(|(k, _)| k.value());
            audit.seq = last.unwrap_or(0) + 1;
            trail
                .insert(audit.seq, encode(&audit)?.as_slice())
                .map_err(err)?;
            let mut meta = txn.open_table(META).map_err(err)?;
            let version = meta.get(CREDS_VERSION).map_err(err)?.map(|v| v.value());
            meta.insert(CREDS_VERSION, version.unwrap_or(0) + 1)
                .map_err(err)?;
            Ok(WriteOutcome::Written)
        })
    }

    fn credential(
        &self,
        kind: CredentialKind,
        id: String,
    ) -> StoreFuture<'_, Option<CredentialRecord>> {
        self.read(move |txn| {
            let creds = txn.open_table(CREDS).map_err(err)?;
            get_json(&creds, &credentials::key(kind, &id))
        })
    }

    fn credentials(&self, kind: CredentialKind) -> StoreFuture<'_, Vec<CredentialRecord>> {
        self.read(move |txn| {
            let creds = txn.open_table(CREDS).map_err(err)?;
            let prefix = credentials::key(kind, "");
            let mut out = Vec::new();
            for entry in creds.range(prefix.as_str()..).map_err(err)? {
                let (k, v) = entry.map_err(err)?;
                if !k.value().starts_with(&prefix) {
                    break;
                }
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
    }

    fn credentials_version(&self) -> StoreFuture<'_, u64> {
        self.read(move |txn| {
            let meta = txn.open_table(META).map_err(err)?;
            Ok(meta
                .get(CREDS_VERSION)
                .map_err(err)?
                .map_or(0, |v| v.value()))
        })
    }

    fn audit(&self, after: u64, limit: usize) -> StoreFuture<'_, Vec<AuditRecord>> {
        self.read(move |txn| {
            let trail = txn.open_table(AUDIT).map_err(err)?;
            let mut out = Vec::new();
            for entry in trail.range(after.saturating_add(1)..).map_err(err)? {
                if out.len() >= limit {
                    break;
                }
                let (_, v) = entry.map_err(err)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
    }
}
