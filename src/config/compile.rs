//! Compile: turns a validated config into the runtime `Snapshot` the pipeline reads.
//!
//! Everything a request needs is built here once: the route table, resolved upstream clients,
//! trusted-proxy networks, the authenticator. State that must outlive a reload (limiter counters,
//! JWKS caches, upstream pools) lives in `Shared` and is only borrowed.

use std::sync::{Arc, Mutex, OnceLock};

use super::diagnostic::Diagnostics;
use super::raw::RawConfig;
use super::validate::{ClassSpec, RouteSpec, UpstreamTarget, Validated};
use crate::auth::{AuthState, Authenticator, BuiltinIssuer, ProviderSet, VerifyKey};
use crate::client_ip::TrustedProxies;
use crate::clock::SharedClock;
use crate::metrics::{ClassMetrics, RequestMetrics};
use crate::oauth::{RevocationHook, TokenService};
use crate::proxy::{PoolSettings, Pools, Upstream};
use crate::ratelimit::redis::RedisLimiter;
use crate::ratelimit::{Limiter, MemoryLimiter};
use crate::route::RouteTable;
use crate::state::{RedisSettings, RedisState, StateSettings, revocations};
use crate::store::RedisStore;

/// State shared by every snapshot, kept across reloads.
#[derive(Clone)]
pub struct Shared {
    /// Time source.
    pub clock: SharedClock,
    /// Upstream connection pools.
    pub pools: Arc<Pools>,
    /// JWKS caches, verified-token cache, revoked token ids.
    pub auth: Arc<AuthState>,
    /// The last compiled token service: its open store is reused by the next compile.
    pub oauth: Arc<Mutex<Option<Arc<TokenService>>>>,
    /// Rolling-window counters, created by the first compile; a reload applies its
    /// `[rate_limit]` settings to them (`Gateway::reload`), keeping every counter.
    pub limiter: Arc<OnceLock<Arc<MemoryLimiter>>>,
    /// The shared-state backend chosen by the first compile (`None` = embedded); `[state]`
    /// changes need a restart.
    pub state: Arc<OnceLock<Option<Arc<RedisState>>>>,
    /// Compiling for `portcullis check`: validate everything, open no state files.
    pub check_only: bool,
    /// Clients and apps created through the admin API (the view outlives reloads).
    pub credentials: Arc<crate::credentials::RuntimeCredentials>,
    /// Webhook replay memory when no shared backend is configured (outlives reloads, so a
    /// reload never reopens a replay window).
    pub replay: Arc<crate::webhook::MemoryReplay>,
    /// Open WebSocket tunnels (counted against `[tunnels]` caps across reloads).
    pub tunnels: Arc<crate::tunnel::limits::Tunnels>,
}

impl Shared {
    /// Fresh shared state on `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            auth: AuthState::new(clock.clone()),
            clock,
            pools: Arc::new(Pools::default()),
            oauth: Arc::new(Mutex::new(None)),
            limiter: Arc::new(OnceLock::new()),
            state: Arc::new(OnceLock::new()),
            check_only: false,
            credentials: Arc::default(),
            replay: Arc::default(),
            tunnels: Arc::default(),
        }
    }

    /// Shared state for `portcullis check`: nothing that takes a file lock is opened.
    pub fn for_check(clock: SharedClock) -> Self {
        Self {
            check_only: true,
            ..Self::new(clock)
        }
    }

    /// The hook the revocation feed calls when another instance changed run-time credentials.
    pub fn credentials_hook(&self) -> revocations::CredentialsHook {
        let creds = Arc::downgrade(&self.credentials);
        Arc::new(move |_version| {
            if let Some(creds) = creds.upgrade() {
                tokio::spawn(async move { creds.refresh_logged().await });
            }
        })
    }

    /// The hook the token service calls for each revoked access token.
    pub fn revocation_hook(&self) -> RevocationHook {
        let auth = self.auth.clone();
        Arc::new(move |jti: &str, exp: u64| auth.revoke_jti(jti, exp))
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("pools", &self.pools)
            .finish_non_exhaustive()
    }
}

/// Where a route's requests go.
#[derive(Debug, Clone)]
pub enum Target {
    /// A pooled HTTP upstream.
    Http(Box<Upstream>),
    /// The built-in echo responder.
    Echo,
    /// The built-in OAuth token service.
    OAuth,
    /// Signed delivery to an allow-listed webhook destination.
    WebhookOut(Arc<crate::webhook::Outbound>),
}

/// A route ready for requests.
#[derive(Debug)]
pub struct Route {
    /// Position in the config file (for logs: `routes[N]`).
    pub index: usize,
    /// The validated route.
    pub spec: RouteSpec,
    /// Its class.
    pub class: Arc<ClassSpec>,
    /// Its class's and its own request metrics.
    pub metrics: RequestMetrics,
    /// Upstream name (for logs).
    pub upstream_name: String,
    /// Where requests go.
    pub target: Target,
    /// JWT providers a bearer token may come from.
    pub providers: ProviderSet,
    /// `auth = "webhook"`: the scheme every request must be signed with.
    pub webhook: Option<Arc<crate::webhook::Inbound>>,
}

/// One immutable view of the config; each request holds one for its whole life.
#[derive(Debug)]
pub struct Snapshot {
    /// The validated values (listen address, limits, identity names, ...).
    pub config: Validated,
    /// Route table.
    pub routes: RouteTable<Route>,
    /// Class used for unmatched requests.
    pub default_class: Arc<ClassSpec>,
    /// The request metrics of unmatched requests: the default class's, route `-`.
    pub default_metrics: RequestMetrics,
    /// Trusted proxies.
    pub trusted: TrustedProxies,
    /// Credential verification.
    pub auth: Authenticator,
    /// The token service, when `[oauth]` is configured.
    pub oauth: Option<Arc<TokenService>>,
    /// The rate limiter: in memory, or on Redis with the in-memory one as the `local`
    /// failure mode (state outlives this snapshot).
    pub limiter: Limiter,
    /// The credential API of the admin listener (`[[admin.tokens]]`; off without tokens).
    pub admin_api: crate::admin_api::settings::AdminApiSettings,
    /// Inbound webhook schemes and outbound senders.
    pub webhooks: crate::webhook::Webhooks,
    /// Trace context and the OTLP exporter (`[tracing]`).
    pub trace: crate::trace::Tracer,
    /// The credentials the file names, fingerprinted (what a reload reports as rotated).
    pub inventory: crate::reload::Inventory,
}

/// Stage 3: builds the snapshot; problems (e.g. unusable key files) go to `d`.
pub fn compile(
    raw: &RawConfig,
    v: Validated,
    shared: &Shared,
    d: &mut Diagnostics,
) -> Option<Snapshot> {
    let redis = shared_state(&v.state, shared, d);
    let oauth = token_service(raw, shared, redis.as_ref(), d);
    let builtin = oauth.as_ref().map(|svc| BuiltinIssuer {
        issuer: svc.issuer().to_string(),
        audience: svc.audience().to_string(),
        keys: svc
            .verification_keys()
            .into_iter()
            .map(|k| VerifyKey::new(Some(k.kid), k.alg, k.decoding_key))
            .collect(),
    });
    let admin_api = crate::admin_api::settings::compile(raw, d);
    let admin_api =
        crate::admin_api::attach_store(admin_api, oauth.as_ref(), redis.as_ref(), shared, d);
    shared.credentials.check_conflicts(raw, d);
    let auth = Authenticator::build_with(raw, d, &shared.auth, builtin.as_ref())?
        .with_runtime(shared.credentials.clone());
    let classes: Vec<Arc<ClassSpec>> = v.classes.iter().cloned().map(Arc::new).collect();
    let settings = PoolSettings {
        connect_timeout: v.limits.upstream_connect_timeout,
        idle_per_host: v.limits.upstream_pool_idle_per_host,
        idle_timeout: v.limits.upstream_pool_idle_timeout,
    };
    let webhooks = crate::webhook::Webhooks::build(
        raw.webhooks.as_ref(),
        &crate::webhook::BuildContext {
            clock: shared.clock.clone(),
            memory: shared.replay.clone(),
            redis: redis.clone(),
            pools: &shared.pools,
            pool_settings: settings,
        },
        d,
    );
    let mut targets = Vec::with_capacity(v.upstreams.len());
    for u in &v.upstreams {
        let t = match &u.target {
            UpstreamTarget::Echo => Target::Echo,
            UpstreamTarget::OAuth => Target::OAuth,
            // A missing sender failed its own compile (reported there).
            UpstreamTarget::WebhookOut(name) => webhooks
                .outbound(name)
                .map_or(Target::Echo, Target::WebhookOut),
            UpstreamTarget::Http(uri) => {
                match shared.pools.get(uri, u.ca_file.as_deref(), settings) {
                    Ok(up) => Target::Http(Box::new(up)),
                    Err(e) => {
                        d.push(
                            None,
                            format!("upstreams.{}", u.name),
                            e,
                            "check the upstream URL and its ca_file",
                        );
                        Target::Echo
                    }
                }
            }
        };
        targets.push(t);
    }
    let class_metrics: Vec<ClassMetrics> =
        classes.iter().map(|c| ClassMetrics::new(&c.name)).collect();
    let mut routes = RouteTable::default();
    for (index, spec) in v.routes.iter().enumerate() {
        let route = Route {
            index,
            spec: spec.clone(),
            class: classes[spec.class].clone(),
            metrics: RequestMetrics::new(
                class_metrics[spec.class].clone(),
                &spec.name,
                &classes[spec.class].name,
            ),
            upstream_name: v.upstreams[spec.upstream].name.clone(),
            target: targets[spec.upstream].clone(),
            providers: auth.route_providers(index),
            webhook: spec.webhook.as_deref().and_then(|w| webhooks.inbound(w)),
        };
        routes.insert(
            spec.prefix.clone(),
            spec.host.clone(),
            spec.methods.clone(),
            route,
        );
    }
    let trace = tracer(&v.tracing, shared, settings, d);
    if !d.is_empty() {
        return None;
    }
    let settings = v.rate_limit;
    let local = shared
        .limiter
        .get_or_init(|| Arc::new(MemoryLimiter::new(settings, shared.clock.clone())))
        .clone();
    let limiter = match &redis {
        Some(r) => Limiter::redis(local, RedisLimiter::new(r.clone())),
        None => Limiter::memory(local),
    };
    if let Ok(mut last) = shared.oauth.lock() {
        last.clone_from(&oauth);
    }
    Some(Snapshot {
        default_class: classes[v.default_class].clone(),
        default_metrics: RequestMetrics::new(
            class_metrics[v.default_class].clone(),
            crate::metrics::route::NO_ROUTE,
            &classes[v.default_class].name,
        ),
        trusted: TrustedProxies::new(v.trusted_proxies.clone()),
        routes,
        auth,
        oauth,
        limiter,
        admin_api,
        webhooks,
        trace,
        inventory: crate::reload::Inventory::of(raw, &d.source().base_dir()),
        config: v,
    })
}

/// `[tracing]`: the OTLP exporter gets a pooled client for the collector (none for `check`).
fn tracer(
    s: &crate::trace::TraceSettings,
    shared: &Shared,
    pool: PoolSettings,
    d: &mut Diagnostics,
) -> crate::trace::Tracer {
    let exporter = match &s.otlp_endpoint {
        Some(uri) if !shared.check_only => match shared.pools.get(uri, None, pool) {
            Ok(up) => Some(crate::trace::export::Exporter::new(
                up,
                uri,
                &s.service_name,
                s.otlp_timeout,
                s.otlp_queue,
            )),
            Err(e) => {
                d.push(None, "tracing.otlp_endpoint", e, "check the collector URL");
                None
            }
        },
        _ => None,
    };
    crate::trace::Tracer::new(s.clone(), exporter)
}

/// The Redis connection when `[state]` chose Redis: opened (lazily) by the first compile, with
/// the revocation feed into the verifier; kept across reloads. `check` opens nothing.
fn shared_state(
    v: &StateSettings,
    shared: &Shared,
    d: &mut Diagnostics,
) -> Option<Arc<RedisState>> {
    if shared.check_only {
        return None;
    }
    if let Some(existing) = shared.state.get() {
        if existing.as_ref().map(|r| r.settings().url.as_str()) != v.redis_url() {
            tracing::warn!(
                "[state] changed; the running gateway keeps its state backend until a restart"
            );
        }
        return existing.clone();
    }
    let opened = match v {
        StateSettings::Embedded => None,
        StateSettings::Redis(r) => match RedisState::start(RedisSettings::clone(r)) {
            Ok(s) => {
                let creds = Some(shared.credentials_hook());
                revocations::spawn(&s, shared.revocation_hook(), creds, shared.clock.clone());
                Some(s)
            }
            Err(e) => {
                d.push(None, "state.url", e, "check the Redis URL and credentials");
                return None;
            }
        },
    };
    shared.state.get_or_init(|| opened).clone()
}

/// Builds the token service, reusing the open store of the previous one (it is locked while open).
fn token_service(
    raw: &RawConfig,
    shared: &Shared,
    redis: Option<&Arc<RedisState>>,
    d: &mut Diagnostics,
) -> Option<Arc<TokenService>> {
    if shared.check_only {
        return TokenService::check(raw, d, shared.clock.clone()).map(Arc::new);
    }
    let hook = Some(shared.revocation_hook());
    let previous = shared.oauth.lock().ok().and_then(|g| g.clone());
    let svc = match previous {
        Some(prev) => prev.reload(raw, d, shared.clock.clone(), hook),
        None => match redis {
            Some(r) => {
                let store = Arc::new(RedisStore::new(r.clone()));
                TokenService::build_with_store(raw, d, shared.clock.clone(), hook, store)
            }
            None => TokenService::build(raw, d, shared.clock.clone(), hook),
        },
    };
    svc.map(|s| Arc::new(s.with_runtime(shared.credentials.clone())))
}
