//! Compile: turns a validated config into the runtime `Snapshot` the pipeline reads.
//!
//! Everything a request needs is built here once: the route table, resolved upstream clients,
//! trusted-proxy networks, the authenticator. State that must outlive a reload (limiter counters,
//! JWKS caches, upstream pools) lives in `Shared` and is only borrowed.

use std::sync::Arc;

use super::diagnostic::Diagnostics;
use super::raw::RawConfig;
use super::validate::{ClassSpec, RouteSpec, UpstreamTarget, Validated};
use crate::client_ip::TrustedProxies;
use crate::clock::SharedClock;
use crate::proxy::{PoolSettings, Pools, Upstream};
use crate::route::RouteTable;

/// State shared by every snapshot, kept across reloads.
#[derive(Clone)]
pub struct Shared {
    /// Time source.
    pub clock: SharedClock,
    /// Upstream connection pools.
    pub pools: Arc<Pools>,
}

impl Shared {
    /// Fresh shared state on `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            pools: Arc::new(Pools::default()),
        }
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
    /// Upstream name (for logs).
    pub upstream_name: String,
    /// Where requests go.
    pub target: Target,
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
    /// Trusted proxies.
    pub trusted: TrustedProxies,
}

/// Stage 3: builds the snapshot; problems (e.g. unusable key files) go to `d`.
pub fn compile(
    _raw: &RawConfig,
    v: Validated,
    shared: &Shared,
    d: &mut Diagnostics,
) -> Option<Snapshot> {
    let classes: Vec<Arc<ClassSpec>> = v.classes.iter().cloned().map(Arc::new).collect();
    let settings = PoolSettings {
        connect_timeout: v.limits.upstream_connect_timeout,
        idle_per_host: v.limits.upstream_pool_idle_per_host,
    };
    let mut targets = Vec::with_capacity(v.upstreams.len());
    for u in &v.upstreams {
        let t = match &u.target {
            UpstreamTarget::Echo => Target::Echo,
            UpstreamTarget::Http(uri) => match shared.pools.get(uri, settings) {
                Ok(up) => Target::Http(Box::new(up)),
                Err(e) => {
                    d.push(
                        None,
                        format!("upstreams.{}", u.name),
                        e,
                        "check the upstream URL",
                    );
                    Target::Echo
                }
            },
        };
        targets.push(t);
    }
    let mut routes = RouteTable::default();
    for (index, spec) in v.routes.iter().enumerate() {
        let route = Route {
            index,
            spec: spec.clone(),
            class: classes[spec.class].clone(),
            upstream_name: v.upstreams[spec.upstream].name.clone(),
            target: targets[spec.upstream].clone(),
        };
        routes.insert(
            spec.prefix.clone(),
            spec.host.clone(),
            spec.methods.clone(),
            route,
        );
    }
    if !d.is_empty() {
        return None;
    }
    Some(Snapshot {
        default_class: classes[v.default_class].clone(),
        trusted: TrustedProxies::new(v.trusted_proxies.clone()),
        routes,
        config: v,
    })
}
