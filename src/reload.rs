//! Reload report: what a config reload changed, logged as one event.
//!
//! [`Inventory`] is built with each snapshot: every credential the file names, by kind and id,
//! with a fingerprint (a truncated SHA-256 over its hash, key file contents or secret) so a
//! rotated key or secret shows as "rotated" without any secret or hash ever being logged.
//! [`Changes::between`] compares two snapshots: routes (by name) and upstreams added, removed or
//! changed, classes whose limit changed, `[rate_limit]` settings, credentials added, removed or
//! rotated. [`Changes::log`] writes one `info` event (target `reload`) with one field per list
//! and a one-line `summary` (`"no changes"` when nothing listed changed).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::config::Snapshot;
use crate::config::raw::{JwtKey, RawConfig};

/// Credentials named by one config: `"kind id"` -> fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory(BTreeMap<String, u64>);

impl Inventory {
    /// The credentials of `raw`; key files are read relative to `base` (an unreadable file
    /// fingerprints as its path alone; compile reports it).
    pub fn of(raw: &RawConfig, base: &Path) -> Self {
        let mut inv = Self::default();
        for app in &raw.apps {
            let a = app.get_ref();
            inv.add(
                "api_key",
                a.client_id.get_ref(),
                &[a.key_hash.get_ref().as_bytes()],
            );
        }
        if let Some(admin) = &raw.admin {
            for t in &admin.tokens {
                let t = t.get_ref();
                inv.add(
                    "admin_token",
                    t.name.get_ref(),
                    &[t.token_hash.get_ref().as_bytes()],
                );
            }
        }
        if let Some(oauth) = &raw.oauth {
            for c in &oauth.clients {
                let c = c.get_ref();
                let secret = c.secret_hash.as_ref().map_or("", |s| s.get_ref().as_str());
                inv.add("client", c.client_id.get_ref(), &[secret.as_bytes()]);
            }
            for k in &oauth.signing_keys {
                let k = k.get_ref();
                let file = read(base, k.private_key_file.get_ref());
                inv.add("signing_key", k.kid.get_ref(), &[&file]);
            }
        }
        if let Some(jwt) = &raw.jwt {
            inv.jwt_keys("", &jwt.keys, &jwt.jwks, base);
            for (name, p) in &jwt.providers {
                let p = p.get_ref();
                inv.jwt_keys(&format!("{name}/"), &p.keys, &p.jwks, base);
            }
        }
        inv
    }

    fn jwt_keys(
        &mut self,
        scope: &str,
        keys: &[toml::Spanned<JwtKey>],
        jwks: &[toml::Spanned<crate::config::raw::Jwks>],
        base: &Path,
    ) {
        for (i, k) in keys.iter().enumerate() {
            let k = k.get_ref();
            let id = k
                .kid
                .as_ref()
                .map_or(format!("#{i}"), |k| k.get_ref().clone());
            let file = |f: &Option<crate::config::raw::SString>| {
                f.as_ref()
                    .map_or_else(Vec::new, |f| read(base, f.get_ref()))
            };
            let (pem, jwk) = (file(&k.pem_file), file(&k.jwk_file));
            // The secret's bytes (an `env:` value rotated in place shows as rotated); its
            // reference when unreadable (compile reports that).
            let secret = k.secret.as_ref().map_or_else(Vec::new, |s| {
                crate::config::secret_ref::read(s.get_ref(), base)
                    .unwrap_or_else(|_| s.get_ref().as_bytes().to_vec())
            });
            let alg = k.alg.get_ref().as_bytes();
            self.add(
                "jwt_key",
                &format!("{scope}{id}"),
                &[alg, &pem, &jwk, &secret],
            );
        }
        for j in jwks {
            let url = j.get_ref().url.get_ref();
            self.add("jwks", &format!("{scope}{url}"), &[url.as_bytes()]);
        }
    }

    fn add(&mut self, kind: &str, id: &str, parts: &[&[u8]]) {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
        let digest = h.finalize();
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&digest[..8]);
        self.0
            .insert(format!("{kind} {id}"), u64::from_be_bytes(fp));
    }
}

/// A file's bytes, or its path when unreadable.
fn read(base: &Path, file: &str) -> Vec<u8> {
    std::fs::read(base.join(file)).unwrap_or_else(|_| file.as_bytes().to_vec())
}

/// What one reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Routes added, by name.
    pub routes_added: Vec<String>,
    /// Routes removed, by name.
    pub routes_removed: Vec<String>,
    /// Routes whose settings changed, by name.
    pub routes_changed: Vec<String>,
    /// Upstreams added, by name.
    pub upstreams_added: Vec<String>,
    /// Upstreams removed, by name.
    pub upstreams_removed: Vec<String>,
    /// Upstreams whose target changed, by name.
    pub upstreams_changed: Vec<String>,
    /// Classes whose limit changed (or that were added or removed): `name: old -> new`.
    pub class_limits: Vec<String>,
    /// `[rate_limit]` keys changed: `key old -> new`.
    pub rate_limit: Vec<String>,
    /// Credentials added: `kind id`.
    pub credentials_added: Vec<String>,
    /// Credentials removed: `kind id`.
    pub credentials_removed: Vec<String>,
    /// Credentials whose hash, key or secret reference changed: `kind id`.
    pub credentials_rotated: Vec<String>,
}

impl Changes {
    /// What changed from `old` to `new`.
    pub fn between(old: &Snapshot, new: &Snapshot) -> Self {
        let (o, n) = (&old.config, &new.config);
        let (routes_added, routes_removed, routes_changed) =
            diff(&route_prints(o), &route_prints(n));
        let (upstreams_added, upstreams_removed, upstreams_changed) =
            diff(&upstream_prints(o), &upstream_prints(n));
        let (ci, cr, ck) = diff(&new_map(&old.inventory.0), &new_map(&new.inventory.0));
        Self {
            routes_added,
            routes_removed,
            routes_changed,
            upstreams_added,
            upstreams_removed,
            upstreams_changed,
            class_limits: class_limits(o, n),
            rate_limit: rate_limit(o.rate_limit, n.rate_limit),
            credentials_added: ci,
            credentials_removed: cr,
            credentials_rotated: ck,
        }
    }

    /// Nothing listed changed.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// One line: `routes added: a, b; rate_limit: ...`, or `no changes`.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (label, list) in self.lists() {
            if list.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push_str("; ");
            }
            let _ = write!(out, "{label}: {}", list.join(", "));
        }
        if out.is_empty() {
            out.push_str("no changes");
        }
        out
    }

    /// Writes the one reload event.
    pub fn log(&self) {
        let j = |v: &Vec<String>| v.join(", ");
        tracing::info!(
            target: "reload",
            routes_added = %j(&self.routes_added),
            routes_removed = %j(&self.routes_removed),
            routes_changed = %j(&self.routes_changed),
            upstreams_added = %j(&self.upstreams_added),
            upstreams_removed = %j(&self.upstreams_removed),
            upstreams_changed = %j(&self.upstreams_changed),
            class_limits = %j(&self.class_limits),
            rate_limit = %j(&self.rate_limit),
            credentials_added = %j(&self.credentials_added),
            credentials_removed = %j(&self.credentials_removed),
            credentials_rotated = %j(&self.credentials_rotated),
            summary = %self.summary(),
            "config reloaded"
        );
    }

    fn lists(&self) -> [(&'static str, &Vec<String>); 11] {
        [
            ("routes added", &self.routes_added),
            ("routes removed", &self.routes_removed),
            ("routes changed", &self.routes_changed),
            ("upstreams added", &self.upstreams_added),
            ("upstreams removed", &self.upstreams_removed),
            ("upstreams changed", &self.upstreams_changed),
            ("class limits", &self.class_limits),
            ("rate_limit", &self.rate_limit),
            ("credentials added", &self.credentials_added),
            ("credentials removed", &self.credentials_removed),
            ("credentials rotated", &self.credentials_rotated),
        ]
    }
}

fn new_map(m: &BTreeMap<String, u64>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()
}

/// (added, removed, changed) keys between two name -> fingerprint maps.
fn diff(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let added = new
        .keys()
        .filter(|k| !old.contains_key(*k))
        .cloned()
        .collect();
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    let changed = new
        .iter()
        .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
        .map(|(k, _)| k.clone())
        .collect();
    (added, removed, changed)
}

/// Route name -> its settings, with class and upstream by name (their indexes move when
/// others are added).
fn route_prints(v: &crate::config::validate::Validated) -> BTreeMap<String, String> {
    v.routes
        .iter()
        .map(|r| {
            let mut spec = r.clone();
            let (class, upstream) = (spec.class, spec.upstream);
            spec.class = 0;
            spec.upstream = 0;
            let print = format!(
                "{spec:?}|{}|{}",
                v.classes.get(class).map_or("", |c| c.name.as_str()),
                v.upstreams.get(upstream).map_or("", |u| u.name.as_str())
            );
            (r.name.clone(), print)
        })
        .collect()
}

fn upstream_prints(v: &crate::config::validate::Validated) -> BTreeMap<String, String> {
    v.upstreams
        .iter()
        .map(|u| (u.name.clone(), format!("{u:?}")))
        .collect()
}

/// `name: old -> new` for every class whose limit differs (`none` for no limit or no class).
fn class_limits(
    o: &crate::config::validate::Validated,
    n: &crate::config::validate::Validated,
) -> Vec<String> {
    let limits = |v: &crate::config::validate::Validated| -> BTreeMap<String, String> {
        v.classes
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.limit.map_or("none".into(), |l| l.to_string()),
                )
            })
            .collect()
    };
    let (old, new) = (limits(o), limits(n));
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    let none = "none".to_string();
    names
        .into_iter()
        .filter_map(|name| {
            let (a, b) = (
                old.get(name).unwrap_or(&none),
                new.get(name).unwrap_or(&none),
            );
            (a != b).then(|| format!("{name}: {a} -> {b}"))
        })
        .collect()
}

fn rate_limit(o: crate::ratelimit::Settings, n: crate::ratelimit::Settings) -> Vec<String> {
    let mut out = Vec::new();
    if o.ipv6_prefix != n.ipv6_prefix {
        out.push(format!(
            "ipv6_prefix {} -> {}",
            o.ipv6_prefix, n.ipv6_prefix
        ));
    }
    if o.max_tracked_clients != n.max_tracked_clients {
        out.push(format!(
            "max_tracked_clients {} -> {}",
            o.max_tracked_clients, n.max_tracked_clients
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Inventory;
    use crate::config::raw::RawConfig;

    fn inventory(dir: &std::path::Path) -> Inventory {
        let text = "[server]\nlisten = \"127.0.0.1:0\"\n[[jwt.keys]]\nkid = \"k1\"\nalg = \"HS256\"\nsecret = \"file:hs.secret\"\n";
        let raw: RawConfig = toml::from_str(text).expect("config");
        Inventory::of(&raw, dir)
    }

    #[test]
    fn a_secret_rotated_behind_its_reference_changes_the_fingerprint() {
        let dir = std::env::temp_dir().join(format!("portcullis-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hs.secret"), "first-secret-0123456789abcdef0123").unwrap();
        let before = inventory(&dir);
        assert_eq!(
            before,
            inventory(&dir),
            "the same secret, the same fingerprint"
        );
        std::fs::write(dir.join("hs.secret"), "second-secret-0123456789abcdef012").unwrap();
        let after = inventory(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_ne!(before, after, "same reference, new bytes: rotated");
    }
}
