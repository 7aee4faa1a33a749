//! Secret: webhook signing keys from `env:NAME` / `file:PATH` references, never from the config
//! text, and never printed (`Debug` is redacted).
//!
//! A Standard Webhooks secret is `whsec_` followed by base64; the HMAC key is the decoded bytes.
//! A custom scheme's key is the referenced bytes as they are (a trailing newline of a file is
//! dropped). Either way the key must be at least 16 bytes.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::scheme::SecretFormat;
use crate::config::diagnostic::Diagnostics;
use crate::config::raw::SString;

/// Shortest accepted key, bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// An HMAC key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The key bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Turns the text of a secret (as referenced, or typed on stdin) into a key.
    pub fn from_text(text: &[u8], format: SecretFormat) -> Result<Self, String> {
        let key = match format {
            SecretFormat::Raw => text.to_vec(),
            SecretFormat::Whsec => {
                let b64 = text
                    .strip_prefix(b"whsec_")
                    .ok_or("a Standard Webhooks secret starts with whsec_")?;
                STANDARD
                    .decode(b64)
                    .map_err(|_| "the part after whsec_ is not base64")?
            }
        };
        if key.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the key is {} bytes; at least {MIN_KEY_BYTES} are needed",
                key.len()
            ));
        }
        Ok(Self(key))
    }

    /// Resolves a configured reference (`key` = its key path; relative files against `base`).
    pub fn resolve(
        value: &SString,
        format: SecretFormat,
        key: &str,
        base: &Path,
        d: &mut Diagnostics,
    ) -> Option<Self> {
        let bytes = crate::config::secret_ref::resolve(value, key, base, d)?;
        match Self::from_text(&bytes, format) {
            Ok(s) => Some(s),
            Err(why) => {
                d.push(
                    Some(value.span()),
                    key,
                    format!("unusable webhook secret: {why}"),
                    match format {
                        SecretFormat::Whsec => {
                            "use the whsec_... secret the sender shows (e.g. `echo whsec_$(openssl rand -base64 32)`)"
                        }
                        SecretFormat::Raw => "use the partner's secret, or `openssl rand -hex 32`",
                    },
                );
                None
            }
        }
    }
}
