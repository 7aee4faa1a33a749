//! Run-time credentials: each instance's in-memory view of the OAuth clients and API-key apps
//! created through the admin API, consulted by the token service and the API-key check after
//! the config's own clients and apps.
//!
//! The store is the source of truth; this view is rebuilt from it whenever the store's
//! credentials version moves: at start-up, right after every change made on this instance, and
//! (with Redis) when the revocation feed's poll sees another instance's change (`credver`, read
//! in the same round trip as the revocation log, so within about 250 ms). The request path only
//! reads the view: no store round trip per request.
//!
//! Suspending or deleting a client refuses its live access tokens on the next request (the
//! pipeline asks `client_refused` for every bearer token of the gateway's clients) and its
//! refresh tokens (refreshing needs the client to authenticate). Deleted ids stay tombstoned.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use toml::Spanned;

use crate::auth::api_key::{App, AppRegistry, KeyHash};
use crate::config::diagnostic::Diagnostics;
use crate::config::raw::RawConfig;
use crate::oauth::client::{Client, ClientRegistry, GrantType, SecretHash};
use crate::store::{CredentialKind, CredentialRecord, CredentialStatus, Store, StoreError};

/// One build of the view.
#[derive(Debug, Default)]
pub struct View {
    /// The store's credentials version this view was built from.
    pub version: u64,
    /// Live run-time clients (active and suspended).
    pub clients: ClientRegistry,
    /// Live run-time apps.
    pub apps: AppRegistry,
    /// Every client id the store knows, tombstones included.
    client_ids: HashSet<String>,
    /// Every app id the store knows, tombstones included.
    app_ids: HashSet<String>,
}

impl View {
    /// True when the store holds this id (live or deleted).
    pub fn knows(&self, kind: CredentialKind, id: &str) -> bool {
        match kind {
            CredentialKind::Client => self.client_ids.contains(id),
            CredentialKind::App => self.app_ids.contains(id),
        }
    }
}

/// The view and the store it is built from. Lives in `config::Shared` (outlives reloads).
#[derive(Default)]
pub struct RuntimeCredentials {
    store: OnceLock<Arc<dyn Store>>,
    view: ArcSwap<View>,
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RuntimeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeCredentials")
            .field("version", &self.view.load().version)
            .finish_non_exhaustive()
    }
}

impl RuntimeCredentials {
    /// Sets the store (the first one given stays: the store does not change on reload).
    pub fn attach(&self, store: Arc<dyn Store>) {
        let _ = self.store.set(store);
    }

    /// The store, once attached.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.get()
    }

    /// The current view.
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    /// Rebuilds the view when the store's version moved (concurrent calls run one at a time).
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let Some(store) = self.store.get() else {
            return Ok(());
        };
        let _one = self.refreshing.lock().await;
        let version = store.credentials_version().await?;
        if version == self.view.load().version && version != 0 {
            return Ok(());
        }
        let clients = store.credentials(CredentialKind::Client).await?;
        let apps = store.credentials(CredentialKind::App).await?;
        self.view.store(Arc::new(build(version, &clients, &apps)));
        Ok(())
    }

    /// Replaces the view with these records (`portcullis check`, which reads the store file
    /// directly).
    pub fn load_records(&self, records: &[CredentialRecord]) {
        let of = |k| {
            records
                .iter()
                .filter(|r| r.kind == k)
                .cloned()
                .collect::<Vec<_>>()
        };
        let (clients, apps) = (of(CredentialKind::Client), of(CredentialKind::App));
        self.view.store(Arc::new(build(0, &clients, &apps)));
    }

    /// Refreshes, logging a failure (the old view stays).
    pub async fn refresh_logged(&self) {
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "cannot refresh run-time credentials from the store");
        }
    }

    /// True when `client_id` is a run-time client that is suspended or deleted: its access
    /// tokens are refused.
    pub fn client_refused(&self, client_id: &str) -> bool {
        let view = self.view.load();
        view.client_ids.contains(client_id) && !view.clients.is_active(client_id)
    }

    /// Reports every config client or app whose id the store also holds (one source of truth
    /// per credential).
    pub fn check_conflicts(&self, raw: &RawConfig, d: &mut Diagnostics<'_>) {
        let view = self.view.load();
        let clients = raw.oauth.iter().flat_map(|o| o.clients.iter());
        let ids = clients.map(|c| &c.get_ref().client_id);
        conflicts(&view, CredentialKind::Client, "oauth.clients", ids, d);
        let ids = raw.apps.iter().map(|a| &a.get_ref().client_id);
        conflicts(&view, CredentialKind::App, "apps", ids, d);
    }
}

fn conflicts<'a>(
    view: &View,
    kind: CredentialKind,
    section: &str,
    ids: impl Iterator<Item = &'a Spanned<String>>,
    d: &mut Diagnostics<'_>,
) {
    for (i, id) in ids.enumerate() {
        if view.knows(kind, id.get_ref()) {
            d.push(
                Some(id.span()),
                format!("{section}[{i}].client_id"),
                format!(
                    "{} {:?} was also created at run time through the admin API; one id, one source",
                    kind.as_str(),
                    id.get_ref()
                ),
                "rename this entry, or remove it and manage the credential through the admin API",
            );
        }
    }
}

fn build(version: u64, clients: &[CredentialRecord], apps: &[CredentialRecord]) -> View {
    let live = |r: &&CredentialRecord| r.status != CredentialStatus::Deleted;
    View {
        version,
        clients: ClientRegistry::new(clients.iter().filter(live).filter_map(client).collect()),
        apps: AppRegistry::from_apps(apps.iter().filter(live).filter_map(app)),
        client_ids: clients.iter().map(|r| r.id.clone()).collect(),
        app_ids: apps.iter().map(|r| r.id.clone()).collect(),
    }
}

fn client(r: &CredentialRecord) -> Option<Client> {
    let secret = match &r.secret_hash {
        Some(h) => Some(SecretHash::parse(h).ok()?),
        None => None,
    };
    let previous = r
        .previous
        .as_ref()
        .and_then(|p| Some((SecretHash::parse(&p.hash).ok()?, p.expires_at)));
    Some(Client {
        client_id: r.id.clone(),
        name: Some(r.name.clone()),
        secret,
        grant_types: r
            .grant_types
            .iter()
            .filter_map(|g| GrantType::parse(g))
            .collect(),
        scopes: r.scopes.clone(),
        redirect_uris: r.redirect_uris.clone(),
        active: r.status == CredentialStatus::Active,
        login_provider: false,
        require_pkce: true,
        refresh_without_credentials: false,
        previous_secret: previous,
    })
}

fn app(r: &CredentialRecord) -> Option<App> {
    let hash = KeyHash::parse(r.secret_hash.as_deref()?).ok()?;
    let mut app = App::new(
        r.id.clone(),
        hash,
        r.status == CredentialStatus::Active,
        r.scopes.clone(),
    );
    app.name = Some(r.name.clone());
    app.previous = r
        .previous
        .as_ref()
        .and_then(|p| match KeyHash::parse(&p.hash) {
            Ok(KeyHash::Sha256(d)) => Some((d, p.expires_at)),
            _ => None,
        });
    Some(app)
}
