//! Upstreams: validation of `[upstreams.NAME]` (an `http(s)` URL with its pool and TLS options,
//! or a `webhook_out` sender), split from `validate` which composes it.

use http::Uri;

use super::diagnostic::Diagnostics;
use super::raw::{self, RawConfig, SString};
use super::validate::{UpstreamSpec, UpstreamTarget, existing_file, reference, span};

pub(super) fn upstreams(
    raw_config: &RawConfig,
    base: &std::path::Path,
    d: &mut Diagnostics,
) -> Vec<UpstreamSpec> {
    let raw = &raw_config.upstreams;
    raw.iter()
        .map(|(name, u)| {
            let key = format!("upstreams.{name}");
            let u_ref = u.get_ref();
            let kind = u_ref.kind.as_ref().map_or("http", |k| k.get_ref().as_str());
            let target = match (kind, &u_ref.url) {
                ("echo", None) => UpstreamTarget::Echo,
                ("oauth", None) => UpstreamTarget::OAuth,
                ("oauth", Some(url)) => {
                    d.push(
                        span(url),
                        format!("{key}.url"),
                        "an oauth upstream takes no url",
                        "remove `url`: the gateway's token service answers these routes",
                    );
                    UpstreamTarget::OAuth
                }
                ("echo", Some(url)) => {
                    d.push(
                        span(url),
                        format!("{key}.url"),
                        "an echo upstream takes no url",
                        "remove `url`, or set `kind = \"http\"`",
                    );
                    UpstreamTarget::Echo
                }
                ("http", Some(url)) => http_url(url, &format!("{key}.url"), d),
                ("webhook_out", None) => webhook_out(raw_config, u_ref, &key, d),
                ("webhook_out", Some(url)) => {
                    d.push(
                        span(url),
                        format!("{key}.url"),
                        "a webhook_out upstream takes no url",
                        "list the URLs in [webhooks.outbound.NAME] destinations; the request picks one",
                    );
                    UpstreamTarget::Echo
                }
                ("http", None) => {
                    d.push(
                        span(u),
                        key.clone(),
                        "upstream has no url",
                        "add `url = \"http://127.0.0.1:9001\"`, or `kind = \"echo\"`",
                    );
                    UpstreamTarget::Echo
                }
                (other, _) => {
                    let at = u_ref.kind.as_ref().map(|k| k.span());
                    d.push(
                        at,
                        format!("{key}.kind"),
                        format!("unknown upstream kind \"{other}\""),
                        "use \"http\", \"echo\", \"oauth\" or \"webhook_out\"",
                    );
                    UpstreamTarget::Echo
                }
            };
            if let (Some(w), false) = (&u_ref.webhook, kind == "webhook_out") {
                d.push(
                    span(w),
                    format!("{key}.webhook"),
                    "webhook applies only to an upstream with kind = \"webhook_out\"",
                    "remove `webhook`, or set `kind = \"webhook_out\"`",
                );
            }
            let ca_file = u_ref.ca_file.as_ref().map(|ca| {
                let https =
                    matches!(&target, UpstreamTarget::Http(u) if u.scheme_str() == Some("https"));
                if !https {
                    d.push(
                        span(ca),
                        format!("{key}.ca_file"),
                        "ca_file applies only to an https upstream",
                        "remove `ca_file`, or use an https:// url",
                    );
                }
                existing_file(ca, &format!("{key}.ca_file"), base, d)
            });
            UpstreamSpec {
                name: name.clone(),
                target,
                ca_file,
            }
        })
        .collect()
}

/// A `kind = "webhook_out"` upstream: its `webhook` names a `[webhooks.outbound.NAME]`.
fn webhook_out(
    raw: &RawConfig,
    u: &raw::Upstream,
    key: &str,
    d: &mut Diagnostics,
) -> UpstreamTarget {
    let names: Vec<&str> = raw
        .webhooks
        .as_ref()
        .map(|w| w.outbound.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let Some(w) = &u.webhook else {
        d.push(
            None,
            format!("{key}.webhook"),
            "a webhook_out upstream names no sender",
            "add webhook = \"NAME\" naming a [webhooks.outbound.NAME] section",
        );
        return UpstreamTarget::Echo;
    };
    match reference(w, &names, &format!("{key}.webhook"), "webhooks.outbound", d) {
        Some(i) => UpstreamTarget::WebhookOut(names[i].to_string()),
        None => UpstreamTarget::Echo,
    }
}

fn http_url(url: &SString, key: &str, d: &mut Diagnostics) -> UpstreamTarget {
    match url.get_ref().parse::<Uri>() {
        Ok(u)
            if matches!(u.scheme_str(), Some("http" | "https"))
                && u.authority().is_some()
                && u.query().is_none() =>
        {
            UpstreamTarget::Http(u)
        }
        _ => {
            d.push(
                span(url),
                key,
                format!("\"{}\" is not an http(s) URL", url.get_ref()),
                "write e.g. \"http://127.0.0.1:9001\" (scheme, host, port; no query)",
            );
            UpstreamTarget::Echo
        }
    }
}
