//! Webhooks: inbound verification as a route policy, and outbound signing to allow-listed
//! destinations (DESIGN section 2, the `[webhook signature]` step).
//!
//! `[webhooks.inbound.NAME]` describes how a partner signs what it sends (`scheme`), with which
//! secrets; a route with `auth = "webhook"` and `webhook = "NAME"` accepts only requests that
//! verify, instead of any Bearer or API-key check. `[webhooks.outbound.NAME]` describes how the
//! gateway signs what the backend sends out and where it may go; an upstream with
//! `kind = "webhook_out"` delivers to those destinations only. `portcullis sign-webhook`
//! (`cli`) prints the headers of a signed request so operators can try a route with curl.
//!
//! Files: `scheme` (header names, encoding, template, presets), `secret` (env/file keys),
//! `signature` (parsing, HMAC, constant-time compare), `replay` (memory or Redis),
//! `inbound` (the pipeline step), `outbound` (signing and delivery), `cli`.

pub mod cli;
pub mod inbound;
pub mod outbound;
pub mod replay;
pub mod scheme;
pub mod secret;
pub mod signature;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::clock::SharedClock;
use crate::config::diagnostic::Diagnostics;
use crate::proxy::{PoolSettings, Pools};
use crate::state::RedisState;

pub use inbound::{Inbound, RawInbound, Verified};
pub use outbound::{Outbound, RawOutbound};
pub use replay::{MemoryReplay, Replay};

/// `[webhooks]`: inbound schemes and outbound senders by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhooks {
    /// `[webhooks.inbound.NAME]`
    #[serde(default)]
    pub inbound: BTreeMap<String, Spanned<RawInbound>>,
    /// `[webhooks.outbound.NAME]`
    #[serde(default)]
    pub outbound: BTreeMap<String, Spanned<RawOutbound>>,
}

/// Why a webhook was refused (inbound) or not delivered (outbound); mapped to HTTP in
/// `error::Reject::problem`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// A signature, timestamp or id header came more than once.
    #[error("the {0} header is repeated")]
    Repeated(String),
    /// No signature header.
    #[error("missing {0} header")]
    MissingSignature(String),
    /// The signature header is not in the scheme's format.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// No secret's HMAC matches.
    #[error("the signature does not match")]
    InvalidSignature,
    /// No timestamp header.
    #[error("missing {0} header")]
    MissingTimestamp(String),
    /// The timestamp is not 1 to 12 ASCII digits.
    #[error("malformed {0} header")]
    MalformedTimestamp(String),
    /// The timestamp is further than the tolerance (seconds) from now, either way.
    #[error("timestamp outside the {0} s window")]
    OutOfWindow(u64),
    /// The scheme's id header is missing or not 1 to 256 visible ASCII bytes.
    #[error("missing or malformed {0} header")]
    MissingId(String),
    /// This webhook was already accepted inside its window.
    #[error("replayed webhook")]
    Replayed,
    /// Replay memory is full or its backend is unreachable.
    #[error("replay memory unavailable")]
    ReplayUnavailable,
    /// An outbound request named no destination.
    #[error("missing {0} header")]
    MissingDestination(String),
    /// An outbound request named a destination that is not on the allow-list.
    #[error("destination not allowed")]
    DestinationNotAllowed,
    /// Every delivery attempt failed; `last_status` is the last HTTP status, if any came.
    #[error("delivery failed after {attempts} attempts")]
    DeliveryFailed {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's status; `None` when it could not connect or timed out.
        last_status: Option<u16>,
    },
}

impl WebhookError {
    /// True for the refusals answered `401` (they carry a `WWW-Authenticate: Webhook` challenge).
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            WebhookError::MissingSignature(_)
                | WebhookError::MalformedSignature(_)
                | WebhookError::InvalidSignature
                | WebhookError::MissingTimestamp(_)
                | WebhookError::MalformedTimestamp(_)
                | WebhookError::OutOfWindow(_)
                | WebhookError::MissingId(_)
                | WebhookError::Replayed
        )
    }
}

impl From<WebhookError> for crate::error::Reject {
    fn from(e: WebhookError) -> Self {
        crate::error::Reject::Webhook(e)
    }
}

/// Compiled `[webhooks]`.
#[derive(Debug, Default)]
pub struct Webhooks {
    inbound: BTreeMap<String, Arc<Inbound>>,
    outbound: BTreeMap<String, Arc<Outbound>>,
}

/// What building `[webhooks]` needs from the gateway.
pub struct BuildContext<'a> {
    /// Time source for windows.
    pub clock: SharedClock,
    /// In-memory replay memory (kept across reloads).
    pub memory: Arc<MemoryReplay>,
    /// The shared state backend, when `[state] backend = "redis"`.
    pub redis: Option<Arc<RedisState>>,
    /// Upstream pools (outbound destinations get one each).
    pub pools: &'a Pools,
    /// Connection settings for destination pools.
    pub pool_settings: PoolSettings,
}

impl Webhooks {
    /// Compiles every section; problems go to `d`.
    pub fn build(raw: Option<&RawWebhooks>, cx: &BuildContext<'_>, d: &mut Diagnostics) -> Self {
        let Some(raw) = raw else {
            return Self::default();
        };
        let base = d.source().base_dir();
        let replay = match &cx.redis {
            Some(r) => Replay::Redis(r.clone()),
            None => Replay::Memory(cx.memory.clone()),
        };
        let mut out = Self::default();
        for (name, r) in &raw.inbound {
            let built = Inbound::compile(
                name,
                r.get_ref(),
                &base,
                replay.clone(),
                cx.clock.clone(),
                d,
            );
            if let Some(i) = built {
                out.inbound.insert(name.clone(), Arc::new(i));
            }
        }
        for (name, r) in &raw.outbound {
            if let Some(o) = Outbound::compile(name, r.get_ref(), &base, cx, d) {
                out.outbound.insert(name.clone(), Arc::new(o));
            }
        }
        out
    }

    /// The inbound scheme `name`.
    pub fn inbound(&self, name: &str) -> Option<Arc<Inbound>> {
        self.inbound.get(name).cloned()
    }

    /// The outbound sender `name`.
    pub fn outbound(&self, name: &str) -> Option<Arc<Outbound>> {
        self.outbound.get(name).cloned()
    }

    /// One note per relaxation (`portcullis check`): plain-HTTP destinations.
    pub fn relaxations(&self) -> Vec<String> {
        self.outbound
            .values()
            .flat_map(|o| o.relaxations())
            .collect()
    }
}
