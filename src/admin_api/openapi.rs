//! OpenAPI: the checked-in OpenAPI 3.1 document of the credential API
//! (`docs/admin-api.openapi.json`), compiled into the binary and served at
//! `GET /admin/v1/openapi.json`. A unit test holds it to [`super::ROUTES`] both ways.

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;

/// The document, as checked in.
pub const DOCUMENT: &str = include_str!("../../docs/admin-api.openapi.json");

/// `GET /admin/v1/openapi.json`.
pub fn document() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(DOCUMENT.as_bytes())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::super::ROUTES;
    use super::DOCUMENT;

    /// `(METHOD, path)` of every operation in the document.
    fn documented() -> Vec<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("the document is JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
        let paths = doc["paths"].as_object().expect("paths");
        let mut out = Vec::new();
        for (path, item) in paths {
            for method in ["get", "post", "patch", "put", "delete"] {
                if item.get(method).is_some() {
                    out.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_in_the_code_is_in_the_document_and_back() {
        let documented = documented();
        for (m, p) in ROUTES {
            assert!(
                documented.contains(&(m.to_string(), p.to_string())),
                "{m} {p} is served but not in docs/admin-api.openapi.json"
            );
        }
        for (m, p) in &documented {
            assert!(
                ROUTES.contains(&(m.as_str(), p.as_str())),
                "{m} {p} is documented but not served"
            );
        }
    }
}
