//! OAuth clients: the registered clients, their hashed secrets, client authentication, and the
//! `portcullis new-client` helper that mints a client id and a secret shown once.

use std::collections::HashMap;
use std::sync::Arc;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::OAuthError;
use super::params::ClientCredentials;

/// A grant type a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// `client_credentials`
    ClientCredentials,
    /// `authorization_code`
    AuthorizationCode,
    /// `refresh_token`
    RefreshToken,
}

impl GrantType {
    /// Parses the RFC 6749 name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_credentials" => Some(Self::ClientCredentials),
            "authorization_code" => Some(Self::AuthorizationCode),
            "refresh_token" => Some(Self::RefreshToken),
            _ => None,
        }
    }

    /// The RFC 6749 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// A stored secret hash.
#[derive(Debug, Clone)]
pub enum SecretHash {
    /// `sha256:<hex>` for generated, high-entropy secrets.
    Sha256([u8; 32]),
    /// An argon2 PHC string for operator-chosen secrets.
    Argon2(String),
}

impl SecretHash {
    /// Parses `sha256:<64 hex>` or an argon2 PHC string; `Err` says what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(hex) = s.strip_prefix("sha256:") {
            let mut out = [0u8; 32];
            if hex.len() != 64 {
                return Err("sha256: must be followed by 64 hex digits".into());
            }
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                    .map_err(|_| "sha256: must be followed by 64 hex digits".to_string())?;
            }
            return Ok(Self::Sha256(out));
        }
        if s.starts_with("$argon2") {
            PasswordHash::new(s).map_err(|e| format!("not a valid argon2 PHC string: {e}"))?;
            return Ok(Self::Argon2(s.to_string()));
        }
        Err("expected `sha256:<hex>` or an argon2 PHC string ($argon2id$...)".into())
    }

    fn verify(&self, secret: &str) -> bool {
        match self {
            Self::Sha256(want) => {
                let got = Sha256::digest(secret.as_bytes());
                bool::from(got.as_slice().ct_eq(want.as_slice()))
            }
            Self::Argon2(phc) => PasswordHash::new(phc)
                .map(|h| {
                    Argon2::default()
                        .verify_password(secret.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false),
        }
    }
}

/// A registered client, compiled from `[[oauth.clients]]`.
#[derive(Debug, Clone)]
pub struct Client {
    /// The client id.
    pub client_id: String,
    /// Display name.
    pub name: Option<String>,
    /// The secret's hash; `None` for a public client (`token_endpoint_auth_method = "none"`).
    pub secret: Option<SecretHash>,
    /// Allowed grants.
    pub grant_types: Vec<GrantType>,
    /// Scopes the client may be granted.
    pub scopes: Vec<String>,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// False when suspended.
    pub active: bool,
    /// May confirm logins at `/oauth2/authorize/accept`.
    pub login_provider: bool,
    /// Authorization requests must carry a PKCE challenge; always true for public clients.
    pub require_pkce: bool,
    /// May refresh by sending the refresh token alone, without client credentials, at a token
    /// path whose dialect sets `default_grant_type` (the token still rotates).
    pub refresh_without_credentials: bool,
    /// The secret a rotation replaced and the Unix second until which it is still accepted
    /// (clients created through the admin API).
    pub previous_secret: Option<(SecretHash, u64)>,
}

impl Client {
    /// True when the client may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// A public client: no secret (RFC 6749 section 2.1).
    pub fn is_public(&self) -> bool {
        self.secret.is_none()
    }
}

/// All clients by id, with a cache that keeps argon2 off the per-request path.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    clients: HashMap<String, Arc<Client>>,
    /// client id -> SHA-256 of a secret that already passed argon2.
    verified: DashMap<String, [u8; 32]>,
}

impl ClientRegistry {
    /// A registry of these clients.
    pub fn new(clients: Vec<Client>) -> Self {
        Self {
            clients: clients
                .into_iter()
                .map(|c| (c.client_id.clone(), Arc::new(c)))
                .collect(),
            verified: DashMap::new(),
        }
    }

    /// A client by id (active or not).
    pub fn get(&self, client_id: &str) -> Option<&Arc<Client>> {
        self.clients.get(client_id)
    }

    /// True when a client has this id.
    pub fn contains(&self, client_id: &str) -> bool {
        self.clients.contains_key(client_id)
    }

    /// Every client, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.clients.values()
    }

    /// True when the client exists and is active.
    pub fn is_active(&self, client_id: &str) -> bool {
        self.get(client_id).is_some_and(|c| c.active)
    }

    /// Authenticates presented credentials: unknown id, wrong secret and suspended client are
    /// all `invalid_client` (the description does not say which, except for suspension). A
    /// rotated-out secret is accepted until its overlap ends (`now`, Unix seconds).
    pub fn authenticate(
        &self,
        creds: &ClientCredentials,
        now: u64,
    ) -> Result<Arc<Client>, OAuthError> {
        let fail = |why: &str| OAuthError::InvalidClient {
            basic: creds.basic,
            description: why.to_string(),
        };
        let Some(client) = self.clients.get(&creds.client_id) else {
            return Err(fail("client authentication failed"));
        };
        let ok = match (&client.secret, creds.has_secret()) {
            // RFC 6749 section 2.1: a public client has no secret to present; one that sends a
            // secret is misconfigured or an impostor.
            (None, true) => {
                return Err(fail(
                    "this is a public client: send client_id without a secret",
                ));
            }
            (None, false) => true,
            (Some(_), false) => {
                return Err(fail(
                    "client authentication is required: HTTP Basic, or client_id and client_secret in the body",
                ));
            }
            (Some(secret @ SecretHash::Sha256(_)), true) => {
                secret.verify(&creds.secret)
                    || client
                        .previous_secret
                        .as_ref()
                        .is_some_and(|(old, until)| now < *until && old.verify(&creds.secret))
            }
            (Some(secret @ SecretHash::Argon2(_)), true) => {
                let digest: [u8; 32] = Sha256::digest(creds.secret.as_bytes()).into();
                let cached = self
                    .verified
                    .get(&client.client_id)
                    .is_some_and(|d| bool::from(d.value().as_slice().ct_eq(digest.as_slice())));
                if cached {
                    true
                } else if secret.verify(&creds.secret) {
                    self.verified.insert(client.client_id.clone(), digest);
                    true
                } else {
                    false
                }
            }
        };
        if !ok {
            return Err(fail("client authentication failed"));
        }
        if !client.active {
            return Err(fail("this client is suspended"));
        }
        Ok(client.clone())
    }
}

/// A freshly minted client: id, the secret (show it once), and the `[[oauth.clients]]` block.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// The new client id.
    pub client_id: String,
    /// The secret in the clear: print it once, never store it.
    pub secret: String,
    /// The TOML block to paste into the config (holds only the hash).
    pub config_block: String,
}

/// Mints a client id and a 256-bit secret, and renders the config block with `sha256:<hex>`.
pub fn new_client(
    name: &str,
    grant_types: &[&str],
    scopes: &[&str],
    redirect_uris: &[&str],
) -> NewClient {
    let id_bytes: [u8; 12] = rand::random();
    let client_id = format!("pc_{}", URL_SAFE_NO_PAD.encode(id_bytes));
    let secret_bytes: [u8; 32] = rand::random();
    let secret = URL_SAFE_NO_PAD.encode(secret_bytes);
    let hash = crate::store::token_hash(&secret);
    let list = |items: &[&str]| {
        let quoted: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut block = String::from("[[oauth.clients]]\n");
    block.push_str(&format!("client_id = {}\n", toml_string(&client_id)));
    block.push_str(&format!("name = {}\n", toml_string(name)));
    block.push_str(&format!("secret_hash = \"sha256:{hash}\"\n"));
    block.push_str(&format!("grant_types = {}\n", list(grant_types)));
    block.push_str(&format!("scopes = {}\n", list(scopes)));
    if !redirect_uris.is_empty() {
        block.push_str(&format!("redirect_uris = {}\n", list(redirect_uris)));
    }
    block.push_str("status = \"active\"\n");
    NewClient {
        client_id,
        secret,
        config_block: block,
    }
}

/// Mints a public client (`token_endpoint_auth_method = "none"`): an id and no secret; `secret`
/// is empty and the block holds no `secret_hash`.
pub fn new_public_client(
    name: &str,
    grant_types: &[&str],
    scopes: &[&str],
    redirect_uris: &[&str],
) -> NewClient {
    let mut c = new_client(name, grant_types, scopes, redirect_uris);
    let block: Vec<&str> = c
        .config_block
        .lines()
        .filter(|l| !l.starts_with("secret_hash = "))
        .collect();
    let mut text = block.join("\n");
    text.push_str("\ntoken_endpoint_auth_method = \"none\"\n");
    c.secret = String::new();
    c.config_block = text;
    c
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
