//! The credentials a request presents: its `Authorization`, API-key and client-id headers,
//! found in one pass over the header map.
//!
//! Authentication asks several questions of the same three headers (is there a Bearer
//! credential, was any of them sent twice, what is the single value); one walk over the
//! request's (few) headers answers all of them, instead of a hash lookup per question.

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use super::AuthError;
use super::api_key::KeyHeaders;
use super::bearer::is_bearer_scheme;

/// One credential header of a request.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Slot<'h> {
    /// The first value, if the header is present.
    pub first: Option<&'h HeaderValue>,
    /// Whether the header came more than once.
    pub repeated: bool,
}

impl<'h> Slot<'h> {
    fn add(&mut self, value: &'h HeaderValue) {
        match self.first {
            None => self.first = Some(value),
            Some(_) => self.repeated = true,
        }
    }

    /// Whether the header is present.
    pub fn present(&self) -> bool {
        self.first.is_some()
    }

    /// `None` when the header is absent or empty; `Some(None)` when it is sent twice or is not
    /// UTF-8; otherwise the trimmed value.
    pub fn single(&self) -> Option<Option<&'h str>> {
        let text = self.first?.to_str().ok().map(str::trim);
        if text == Some("") {
            return None;
        }
        if self.repeated {
            return Some(None);
        }
        Some(text)
    }
}

/// The credential headers of one request, under a route's API-key header names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Presented<'h> {
    /// `Authorization`.
    pub authorization: Slot<'h>,
    /// Whether any `Authorization` value uses the Bearer scheme.
    pub any_bearer: bool,
    /// The API-key header.
    pub key: Slot<'h>,
    /// The client-id header (never present when the route has none).
    pub client_id: Slot<'h>,
}

impl<'h> Presented<'h> {
    /// Walks `headers` once.
    pub fn scan(headers: &'h HeaderMap, keys: &KeyHeaders) -> Self {
        let mut found = Presented {
            authorization: Slot::default(),
            any_bearer: false,
            key: Slot::default(),
            client_id: Slot::default(),
        };
        for (name, value) in headers {
            if *name == AUTHORIZATION {
                found.authorization.add(value);
                found.any_bearer |= is_bearer_scheme(value.as_bytes());
            } else if *name == keys.key {
                found.key.add(value);
            } else if keys.client_id.as_ref() == Some(name) {
                found.client_id.add(value);
            }
        }
        found
    }

    /// Each credential is sent once, in one place: one `Authorization`, one API key (not a
    /// comma-joined list), one client id, and no `access_token` query parameter beside an
    /// `Authorization` header (RFC 6750 section 2).
    pub fn check_single(&self, keys: &KeyHeaders, query: Option<&str>) -> Result<(), AuthError> {
        let listed_key = self.key.first.is_some_and(|v| v.as_bytes().contains(&b','));
        let repeated = if self.authorization.repeated {
            Some("Authorization")
        } else if self.key.repeated || listed_key {
            Some(keys.key_text.as_str())
        } else if self.client_id.repeated {
            Some(keys.client_id_text.as_deref().unwrap_or(""))
        } else {
            None
        };
        if let Some(shown) = repeated {
            return Err(AuthError::RepeatedCredential(shown.to_string()));
        }
        let token_in_query = query.is_some_and(|q| {
            q.split('&')
                .any(|p| p.split('=').next() == Some("access_token"))
        });
        if token_in_query && self.authorization.present() {
            return Err(AuthError::TokenInQueryAndHeader);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::API_KEY_HEADER;

    fn check(h: &HeaderMap, query: Option<&str>) -> Result<(), AuthError> {
        let keys = KeyHeaders::default();
        Presented::scan(h, &keys).check_single(&keys, query)
    }

    #[test]
    fn single_credentials() {
        let mut h = HeaderMap::new();
        h.insert(API_KEY_HEADER, HeaderValue::from_static("a, b"));
        assert_eq!(
            check(&h, None),
            Err(AuthError::RepeatedCredential("X-API-Key".into()))
        );
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(check(&h, Some("a=1&access_token_x=2")).is_ok());
        assert_eq!(
            check(&h, Some("a=1&access_token=2")),
            Err(AuthError::TokenInQueryAndHeader)
        );
        h.append(AUTHORIZATION, HeaderValue::from_static("Basic eA=="));
        assert_eq!(
            check(&h, None),
            Err(AuthError::RepeatedCredential("Authorization".into()))
        );
    }

    #[test]
    fn slots_answer_what_authentication_asks() {
        let keys = KeyHeaders::default();
        let mut h = HeaderMap::new();
        h.append(AUTHORIZATION, HeaderValue::from_static("Basic eA=="));
        h.append(AUTHORIZATION, HeaderValue::from_static("bearer t"));
        h.insert("x-client-id", HeaderValue::from_static("  app  "));
        h.insert(API_KEY_HEADER, HeaderValue::from_static(" "));
        let p = Presented::scan(&h, &keys);
        assert!(p.any_bearer && p.authorization.repeated);
        assert_eq!(p.client_id.single(), Some(Some("app")));
        assert_eq!(p.key.single(), None, "an empty key counts as absent");
        assert!(p.key.present());
        let no_client = KeyHeaders {
            client_id: None,
            ..KeyHeaders::default()
        };
        assert!(!Presented::scan(&h, &no_client).client_id.present());
    }
}
