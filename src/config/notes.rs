//! Notes: every relaxation of a secure default a compiled config makes, one line each, so that
//! `portcullis check` shows the operator what they opted into.
//!
//! Each feature reports its own relaxations (`TokenService::notes`, the routes' API-key header
//! styles); this module only collects them in a stable order.

use super::Snapshot;
use super::compile::Target;
use crate::route::Found;

/// The relaxations of `snap`, in config order.
pub fn notes(snap: &Snapshot) -> Vec<String> {
    let mut out = snap.config.relaxations();
    for r in &snap.config.routes {
        if r.api_key.key_only() {
            out.push(format!(
                "route {} identifies API-key apps by the {} header alone (api_key_headers without client_id)",
                r.prefix, r.api_key.key_text
            ));
        }
    }
    if let Some(svc) = &snap.oauth {
        out.extend(svc.notes());
    }
    out.extend(snap.webhooks.relaxations());
    out
}

/// Paths named in `[oauth.endpoints]` that no route sends to a `kind = "oauth"` upstream:
/// unreachable, so most likely a moved endpoint whose route was forgotten.
pub fn unrouted(snap: &Snapshot) -> Vec<String> {
    let Some(svc) = &snap.oauth else {
        return Vec::new();
    };
    svc.configured_paths()
        .into_iter()
        .filter(|(path, method)| {
            !matches!(
                snap.routes.find(method, None, path),
                Found::Route(r) if matches!(r.target, Target::OAuth)
            )
        })
        .map(|(path, method)| {
            format!(
                "{method} {path} of the token service is not routed to a kind = \"oauth\" upstream"
            )
        })
        .collect()
}
