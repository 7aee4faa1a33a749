//! Pipeline: the whole path of a request through the gateway, one step per line.
//!
//! `handle` is the one wrapper: it runs the steps, turns any `Reject` into the route class's
//! error envelope, stamps `X-Request-Id` (and the rate-limit headers) on every response, and
//! writes one access-log event. `run` is the path itself; each step returns `Result<_, Reject>`.
//! A WebSocket handshake (`tunnel`) takes the same steps; its answer carries a plan that the
//! wrapper starts, and the tunnel writes the access event when it ends. Any other request's
//! access event is written by its response body when that ends (`access_log`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{CONTENT_TYPE, HOST, UPGRADE};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::access_log;
use crate::auth::{self, AuthError, AuthMethod, Principal};
use crate::config::Snapshot;
use crate::config::compile::{Route, Target};
use crate::config::validate::ClassSpec;
use crate::error::Reject;
use crate::gateway::Gateway;
use crate::log_limit::LogLimit;
use crate::metrics::RequestMetrics;
use crate::proxy::body::{Body, BodyState, CappedBody, boxed, full};
use crate::proxy::headers::{self, Forwarded};
use crate::proxy::{UpstreamError, echo, response};
use crate::ratelimit::Decision;
use crate::request_check;
use crate::request_id::{self, RequestId};
use crate::route::{Found, check_encoded_slashes, normalize_path};
use crate::trace::{RequestTrace, Step, span::SpanEnd};
use crate::tunnel::{self, limits::Tunnels};

/// What the server knows about the connection a request came on (built once per connection).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The peer's address as header text, for `X-Forwarded-For`.
    pub peer_text: HeaderValue,
    /// Whether the connection is TLS.
    pub tls: bool,
}

impl ConnInfo {
    /// The connection from `peer`.
    pub fn new(peer: SocketAddr, tls: bool) -> Self {
        let peer_text = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or(HeaderValue::from_static("unknown"));
        Self {
            peer,
            peer_text,
            tls,
        }
    }
}

/// What the steps learned, for the response and the access log.
struct Ctx<'a> {
    request_id: RequestId,
    class: &'a ClassSpec,
    metrics: &'a RequestMetrics,
    route: Option<&'a Route>,
    client_ip: Option<IpAddr>,
    principal: Option<Arc<Principal>>,
    rate: Option<Decision>,
    tunnels: &'a Arc<Tunnels>,
    /// The catalogue code of the gateway's refusal.
    code: Option<&'static str>,
    /// The request body's counters, once it is being forwarded.
    body: Option<Arc<BodyState>>,
    /// Request sent upstream to its response head.
    upstream_latency: Option<Duration>,
    /// Trace context (continued from a trusted proxy or new) and the span when exporting.
    trace: RequestTrace,
}

/// Serves one request: runs the pipeline, renders rejects, logs. `request_id` is the id the
/// server stamped (and would answer a panic with).
pub async fn handle(
    gw: Arc<Gateway>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
    request_id: RequestId,
) -> Response<Body> {
    let started = Instant::now();
    let snap = gw.snapshot();
    // What the access log needs from the request, kept only when the log is on.
    let logged =
        access_log::enabled().then(|| (req.method().clone(), req.uri().path().to_string()));
    let mut ctx = Ctx {
        request_id,
        class: &snap.default_class,
        metrics: &snap.default_metrics,
        route: None,
        client_ip: None,
        principal: None,
        rate: None,
        tunnels: &gw.shared().tunnels,
        code: None,
        body: None,
        upstream_latency: None,
        trace: snap
            .trace
            .begin(&req, snap.trusted.contains(conn.peer.ip())),
    };
    let mut resp = match run(&snap, &conn, req, &mut ctx).await {
        Ok(resp) => resp,
        Err(reject) => reject_response(&reject, &mut ctx),
    };
    ctx.metrics
        .request(resp.status().as_u16(), started.elapsed());
    finish_headers(resp.headers_mut(), &ctx);
    let status = resp.status().as_u16();
    let end = SpanEnd {
        status,
        route: ctx.route.map(|r| r.spec.name.as_str()),
        client_ip: ctx.client_ip,
        refusal: ctx.code,
    };
    snap.trace.finish(&mut ctx.trace, end);
    match tunnel::take_plan(&mut resp) {
        // A tunnel writes the request's one access event when it ends.
        Some(plan) => plan
            .start(logged.map(|(m, p)| log_entry(ctx, m, p, status, started).into_tunnel_record())),
        None => {
            if let Some((method, path)) = logged {
                resp = access_log::attach(resp, log_entry(ctx, method, path, status, started));
            }
        }
    }
    resp
}

/// The request path.
async fn run<'a>(
    snap: &'a Snapshot,
    conn: &ConnInfo,
    mut req: Request<Incoming>,
    ctx: &mut Ctx<'a>,
) -> Result<Response<Body>, Reject> {
    let rules = &snap.config.http;
    request_check::framing(req.headers())?;
    request_check::fragment(&req)?;
    request_check::target_length(req.uri(), rules.max_uri_bytes)?;
    request_check::head_size(&req, snap.config.limits.max_header_bytes)?;
    // Before the method check: an RFC 8441 extended CONNECT goes on as the GET it becomes.
    let ask = tunnel::ask(&mut req)?;
    request_check::method(req.method())?;
    request_check::host(&req)?;
    request_check::header_names(req.headers_mut(), rules.underscores)?;
    snap.config.forwarding.check_loop(req.headers())?;
    let client_ip = snap.trusted.client_ip(conn.peer.ip(), req.headers());
    ctx.client_ip = Some(client_ip);
    // Owned: the request moves into `forward` while the path is still needed.
    let path = normalize_path(req.uri().path())?.into_owned();
    let route = find_route(snap, &req, &path, ctx)?;
    ctx.trace.step(Step::RouteMatched(&route.spec.name));
    check_encoded_slashes(&path, route.spec.allow_encoded_slashes)?;
    rate_limit(snap, route, client_ip, ctx).await?;
    tunnel::allowed(ask, route.spec.websocket)?;
    if let Some(answer) = request_check::options_reply(&req, route.spec.methods.as_deref()) {
        return Ok(answer);
    }
    let (headers, query) = (req.headers(), req.uri().query());
    let principal = snap
        .auth
        .authenticate_route(
            route.spec.auth,
            route.providers,
            &route.spec.api_key,
            headers,
            query,
        )
        .await?;
    check_client_active(snap, principal.as_deref())?;
    auth::authorize(principal.as_deref(), &route.spec.scopes)?;
    let method = principal.as_ref().map(|p| p.method().as_str());
    ctx.trace.step(Step::Authenticated(method));
    ctx.principal = principal;
    request_check::declared_length(req.headers(), route.spec.max_body_bytes)?;
    let (parts, incoming) = req.into_parts();
    let body = match ask {
        // Last: a refused request never holds a place under the tunnel caps.
        Some(ask) => {
            let permit = ctx.tunnels.try_open(client_ip, &snap.config.tunnels)?;
            RequestBody::Tunnel(tunnel::Admitted::new(ask, permit))
        }
        None => verify_webhook(snap, route, &parts.headers, incoming).await?,
    };
    let key = body.replay_key();
    let resp = forward(snap, route, conn, parts, body, &path, ctx).await;
    if let Ok(r) = &resp {
        ctx.trace.step(Step::UpstreamResponse(r.status().as_u16()));
    }
    // Decided before awaiting: a response body is not `Sync`, so no reference to it may be held.
    let delivered = resp.as_ref().is_ok_and(|r| !r.status().is_server_error());
    settle_webhook(route, key, delivered).await;
    resp
}

/// A request body: streamed as it arrives, already buffered and verified (webhook routes), or
/// none: an admitted WebSocket handshake.
enum RequestBody {
    Streaming(Incoming),
    Verified(crate::webhook::Verified),
    Tunnel(tunnel::Admitted),
}

impl RequestBody {
    fn replay_key(&self) -> Option<crate::webhook::replay::ReplayKey> {
        match self {
            RequestBody::Streaming(_) | RequestBody::Tunnel(_) => None,
            RequestBody::Verified(v) => Some(v.key),
        }
    }
}

/// `auth = "webhook"` routes: the body is buffered under the scheme's cap and its signature,
/// timestamp and freshness checked before anything is forwarded.
async fn verify_webhook(
    snap: &Snapshot,
    route: &Route,
    headers: &HeaderMap,
    incoming: Incoming,
) -> Result<RequestBody, Reject> {
    let Some(scheme) = &route.webhook else {
        return Ok(RequestBody::Streaming(incoming));
    };
    let idle = snap.config.limits.body_idle_timeout;
    let verified = scheme
        .verify(headers, incoming, route.spec.max_body_bytes, idle)
        .await?;
    Ok(RequestBody::Verified(verified))
}

/// A verified webhook the upstream did not take (no answer, or 5xx) is forgotten by replay
/// memory, so the sender's retry of it is accepted.
async fn settle_webhook(
    route: &Route,
    key: Option<crate::webhook::replay::ReplayKey>,
    delivered: bool,
) {
    let (Some(scheme), Some(key)) = (&route.webhook, key) else {
        return;
    };
    scheme.settle(key, delivered).await;
}

/// Finds the route owning the path; a 405 is answered in the owning route's class envelope.
fn find_route<'a>(
    snap: &'a Snapshot,
    req: &Request<Incoming>,
    path: &str,
    ctx: &mut Ctx<'a>,
) -> Result<&'a Route, Reject> {
    match snap
        .routes
        .find(req.method(), request_check::routing_host(req), path)
    {
        Found::Route(r) => {
            ctx.route = Some(r);
            ctx.class = &r.class;
            ctx.metrics = &r.metrics;
            Ok(r)
        }
        Found::MethodNotAllowed(allow, owner) => {
            // Logged, counted and traced under the route that owns the path.
            ctx.route = Some(owner);
            ctx.class = &owner.class;
            ctx.metrics = &owner.metrics;
            Err(Reject::MethodNotAllowed { allow })
        }
        Found::NotFound => Err(Reject::NotFound),
    }
}

/// Counts the request against its route's rolling window; refused requests do not count.
/// Runs before authentication, so credential guessing is limited too.
/// On Redis, a backend failure follows the class's `on_backend_error` (`open`: no decision).
async fn rate_limit(
    snap: &Snapshot,
    route: &Route,
    ip: IpAddr,
    ctx: &mut Ctx<'_>,
) -> Result<(), Reject> {
    let Some(limit) = route.spec.limit else {
        return Ok(());
    };
    let on_error = route.class.on_backend_error;
    let checked = snap
        .limiter
        .check(&route.spec.limit_key, ip, limit, on_error);
    let Some(decision) = checked.await? else {
        return Ok(());
    };
    ctx.rate = Some(decision);
    ctx.trace.step(Step::RateLimit {
        allowed: decision.allowed,
        remaining: decision.remaining,
    });
    if decision.allowed {
        Ok(())
    } else {
        Err(Reject::RateLimited {
            retry_after_secs: decision.retry_after_secs,
        })
    }
}

/// Tokens of a suspended client of the gateway's own token service are refused before `exp`.
fn check_client_active(snap: &Snapshot, p: Option<&Principal>) -> Result<(), Reject> {
    let (Some(svc), Some(p)) = (&snap.oauth, p) else {
        return Ok(());
    };
    match (p.client_id(), p.method()) {
        (Some(id), AuthMethod::Bearer) if svc.client_suspended(id) => Err(Reject::Auth(
            AuthError::InvalidToken("the client that obtained this token is suspended".into()),
        )),
        _ => Ok(()),
    }
}

/// Rewrites the request for the backend and relays it; the response streams back.
async fn forward(
    snap: &Snapshot,
    route: &Route,
    conn: &ConnInfo,
    mut parts: http::request::Parts,
    body: RequestBody,
    path: &str,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Reject> {
    let limits = &snap.config.limits;
    let limit = body_limit(snap, route);
    let (body, state) = match body {
        RequestBody::Streaming(incoming) => {
            let state = Arc::new(BodyState::default());
            let capped = CappedBody::new(incoming, limit, limits.body_idle_timeout, state.clone());
            (boxed(capped), state)
        }
        // The exact bytes that were verified.
        RequestBody::Verified(v) => {
            let state = Arc::new(BodyState::read_in_full(v.body.len() as u64));
            (full(v.body), state)
        }
        // Boxed: the handshake stays out of the future every forwarded request moves.
        RequestBody::Tunnel(t) => {
            return Box::pin(forward_tunnel(snap, route, conn, parts, t, path, ctx)).await;
        }
    };
    rewrite_headers(&mut parts, snap, route, conn, ctx);
    ctx.body = Some(state.clone());
    let query = || parts.uri.query().map(str::to_string);
    let too_large = |e: String| {
        if state.timed_out() {
            Reject::RequestTimeout
        } else if state.too_large() {
            Reject::PayloadTooLarge { limit }
        } else {
            Reject::BadRequest(format!("the request body could not be read: {e}"))
        }
    };
    match &route.target {
        Target::Echo => {
            parts.uri = crate::proxy::local_uri(path, query().as_deref())?;
            // Boxed, like the token service below: local answers stay out of the size of the
            // future every forwarded request moves.
            Box::pin(echo::respond(Request::from_parts(parts, body)))
                .await
                .map_err(|e| too_large(e.to_string()))
        }
        Target::OAuth => {
            let Some(svc) = &snap.oauth else {
                return Err(Reject::Internal(
                    "oauth route without a token service".into(),
                ));
            };
            parts.uri = crate::proxy::local_uri(path, query().as_deref())?;
            let bytes = Box::pin(body.collect())
                .await
                .map_err(|e| too_large(e.to_string()))?
                .to_bytes();
            let resp = Box::pin(svc.handle(Request::from_parts(parts, bytes))).await;
            if let Some(refused) = resp.extensions().get::<crate::oauth::error::Refused>() {
                ctx.metrics.reject(refused.0);
                ctx.code = Some(refused.0);
            }
            Ok(resp.map(full))
        }
        Target::WebhookOut(sender) => {
            let bytes = body
                .collect()
                .await
                .map_err(|e| too_large(e.to_string()))?
                .to_bytes();
            sender.deliver(&parts.headers, bytes).await
        }
        Target::Http(up) => {
            up.set_target(&mut parts.uri, path)?;
            headers::set_host(&mut parts.headers, up.host());
            let asked_upgrade = parts.headers.contains_key(UPGRADE);
            let (head, idle) = (
                limits.upstream_response_timeout,
                limits.upstream_body_idle_timeout,
            );
            let (sent, version) = (Instant::now(), parts.version);
            let resp = up.send(Request::from_parts(parts, body), head, idle).await;
            let took = sent.elapsed();
            ctx.upstream_latency = Some(took);
            route.metrics.upstream(took);
            let resp = resp.map_err(|e| upstream_reject(e, &state, route))?;
            let (mut parts, incoming) = resp.into_parts();
            response::check(parts.status, &mut parts.headers, asked_upgrade)?;
            headers::strip_hop_by_hop(&mut parts.headers);
            snap.config
                .forwarding
                .append_via(&mut parts.headers, parts.version);
            let unread = incoming.left_request_unread();
            response::close_if_request_unread(&mut parts.headers, unread, version);
            // Its error is already a `BoxError`: boxed as it is, without a `map_err` layer.
            Ok(Response::from_parts(parts, incoming.boxed_unsync()))
        }
    }
}

/// Forwards an admitted WebSocket handshake with the same rewrites as any request.
async fn forward_tunnel(
    snap: &Snapshot,
    route: &Route,
    conn: &ConnInfo,
    mut parts: http::request::Parts,
    admitted: tunnel::Admitted,
    path: &str,
    ctx: &Ctx<'_>,
) -> Result<Response<Body>, Reject> {
    let Target::Http(up) = &route.target else {
        return Err(Reject::Internal(
            "a WebSocket route without an http upstream".into(),
        ));
    };
    rewrite_headers(&mut parts, snap, route, conn, ctx);
    let query = parts.uri.query().map(str::to_string);
    parts.uri = up.uri_for(path, query.as_deref())?;
    headers::set_host(&mut parts.headers, up.host());
    let bounds = tunnel::Bounds {
        settings: snap.config.tunnels,
        closing: ctx.tunnels.closing(),
        head_timeout: snap.config.limits.upstream_response_timeout,
        upstream: route.upstream_name.clone(),
    };
    tunnel::open(up, parts, admitted, bounds, &snap.config.forwarding).await
}

/// The route's body limit; the token service's own, smaller cap on its routes.
fn body_limit(snap: &Snapshot, route: &Route) -> u64 {
    match (&route.target, &snap.oauth) {
        (Target::OAuth, Some(svc)) => route.spec.max_body_bytes.min(svc.max_body_bytes()),
        _ => route.spec.max_body_bytes,
    }
}

/// What the backend sees: hop-by-hop gone, headers only trusted proxies may send removed,
/// forwarding, `Via` and identity headers set, consumed credentials removed, the request id
/// attached.
fn rewrite_headers(
    parts: &mut http::request::Parts,
    snap: &Snapshot,
    route: &Route,
    conn: &ConnInfo,
    ctx: &Ctx<'_>,
) {
    let h = &mut parts.headers;
    // `:authority` (h2) or an absolute-form target decides the host, as it decided routing.
    let original_host = match parts.uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => h.get(HOST).cloned(),
    };
    let peer_trusted = snap.trusted.contains(conn.peer.ip());
    headers::strip_hop_by_hop(h);
    if !peer_trusted {
        snap.config.forwarding.strip_untrusted(h);
    }
    headers::set_forwarded(
        h,
        Forwarded {
            peer: &conn.peer_text,
            peer_trusted,
            proto: if conn.tls { "https" } else { "http" },
            host: original_host.as_ref(),
        },
    );
    snap.config.forwarding.append_via(h, parts.version);
    request_check::decrement_max_forwards(h, &parts.method);
    headers::set_identity(h, &snap.config.identity, ctx.principal.as_deref());
    if route.spec.strip_credentials {
        match ctx.principal.as_ref().map(|p| p.method()) {
            Some(AuthMethod::Bearer) => drop(h.remove(http::header::AUTHORIZATION)),
            Some(AuthMethod::ApiKey) => drop(h.remove(&route.spec.api_key.key)),
            None => {}
        }
    }
    h.insert(request_id::HEADER, ctx.request_id.header_value());
    ctx.trace.context().write_headers(h);
}

/// A broken client body is the client's doing (413, 408), not the upstream's (502).
fn upstream_reject(e: UpstreamError, body: &BodyState, route: &Route) -> Reject {
    if body.timed_out() {
        return Reject::RequestTimeout;
    }
    if body.too_large() {
        return Reject::PayloadTooLarge {
            limit: route.spec.max_body_bytes,
        };
    }
    if body.broken() {
        return Reject::BadRequest("the request body ended before its declared length".into());
    }
    static FAILED: LogLimit = LogLimit::per_secs(10);
    crate::metrics::upstream_error(&route.upstream_name, e.failure());
    if let Some(suppressed) = FAILED.admit() {
        tracing::warn!(suppressed, upstream = %route.upstream_name, error = %e, "upstream request failed");
    }
    match e {
        UpstreamError::Timeout => Reject::UpstreamTimeout,
        UpstreamError::Connect(_) | UpstreamError::Tls(_) | UpstreamError::Failed(_) => {
            Reject::BadGateway
        }
    }
}

/// Renders a reject in the class's envelope.
fn reject_response(reject: &Reject, ctx: &mut Ctx<'_>) -> Response<Body> {
    if let Reject::Internal(why) = reject {
        tracing::error!(request_id = %ctx.request_id, error = %why, "internal error");
    }
    let mut problem = reject.problem();
    if let Some(route) = ctx.route {
        problem.name_key_headers(reject, &route.spec.api_key);
    }
    ctx.metrics.reject(problem.code);
    ctx.code = Some(problem.code);
    let body = ctx.class.envelope.render(&problem, ctx.request_id.as_str());
    let mut resp = Response::new(full(body));
    *resp.status_mut() = problem.status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    for (name, value) in problem.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(name, v);
        }
    }
    resp
}

fn finish_headers(h: &mut HeaderMap, ctx: &Ctx<'_>) {
    let policy = ctx.route.and_then(|r| r.spec.rate_headers.as_ref());
    if let (Some(d), Some(policy)) = (&ctx.rate, policy) {
        response::keep_upstream_rate_limit(h, |h| d.write_headers(policy, h));
    }
    h.insert(request_id::HEADER, ctx.request_id.header_value());
}

/// The access-log fields of a finished request (only built when the log is on).
fn log_entry(
    ctx: Ctx<'_>,
    method: http::Method,
    path: String,
    status: u16,
    started: Instant,
) -> access_log::Entry {
    let webhook_verified = ctx.code.is_none() && ctx.route.is_some_and(|r| r.webhook.is_some());
    access_log::Entry {
        request_id: ctx.request_id.clone(),
        trace_id: ctx.trace.id(),
        route: ctx.route.map_or("-", |r| r.spec.name.as_str()).to_string(),
        class: ctx.class.name.clone(),
        client_ip: ctx.client_ip,
        auth: access_log::auth_name(ctx.principal.as_deref(), webhook_verified),
        principal: ctx.principal,
        method,
        path,
        status,
        code: ctx.code,
        body: ctx.body,
        upstream_latency: ctx.upstream_latency,
        upstream: ctx.route.map_or(String::new(), |r| r.upstream_name.clone()),
        started,
    }
}
