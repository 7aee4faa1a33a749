//! portcullis: an authenticating reverse-proxy gateway.
//!
//! Every request takes one path, written out in `pipeline`:
//!
//! ```text
//! accept (TLS?) -> request id -> request checks (framing, 414/431, method, Host, `_` names,
//!   Via loop) -> route match (path rules) -> client IP -> rate limit (route class)
//!   -> authenticate (route policy: bearer JWT | API-key pair | webhook | none; mixed = refused)
//!   -> authorize (scopes) -> webhook signature (webhook routes: buffered, verified, replay)
//!      | WebSocket handshake (websocket routes: tunnel caps)
//!   -> forward upstream (streaming) -> response (| 101: the tunnel, `tunnel`)
//!   any Reject -> Problem (status, code, description, headers) -> envelope of the route class
//! ```
//!
//! Configuration loads in three stages (`config::raw` -> `config::validate` ->
//! `config::compile`) into an immutable `Snapshot` held by the `gateway::Gateway`; `server`
//! accepts connections and hands each request to `pipeline::handle`, which counts it in
//! `metrics` and writes its `access_log` event when its response body ends. Several instances share
//! limiter counters and OAuth state through `state` (`[state] backend = "redis"`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access_log;
pub mod admin;
pub mod admin_api;
pub mod admin_client;
pub mod auth;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod console;
pub mod credentials;
pub mod error;
pub mod fuzz_targets;
pub mod gateway;
pub mod idle_timer;
pub mod log_limit;
pub mod metrics;
pub mod oauth;
pub mod outbound_tls;
pub mod pipeline;
pub mod proxy;
pub mod ratelimit;
pub mod reload;
pub mod request_check;
pub mod request_id;
pub mod route;
pub mod server;
pub mod state;
pub mod store;
pub mod trace;
pub mod tunnel;
pub mod webhook;

/// Installs the process-wide crypto providers (aws-lc-rs) for rustls and jsonwebtoken. Call once
/// at start-up and in every test binary: with none installed, both panic on first use.
pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}
