//! Notes: every relaxation of a secure default a compiled config makes, one line each, so that
//! `portcullis check` shows the operator what they opted into.
//!
//! Each feature reports its own relaxations (`TokenService::notes`, the routes' API-key header
//! styles); this module only collects them in a stable order.

use super::Snapshot;

/// The relaxations of `snap`, in config order.
pub fn notes(snap: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
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
    out
}
