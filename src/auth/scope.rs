//! Scope authorization: does the principal hold every scope the route requires.

use super::{AuthError, AuthMethod, Principal};

/// Succeeds when `required` is empty or `principal` holds every required scope.
///
/// A missing principal (unauthenticated route) passes only when nothing is required. The error
/// lists all of the route's required scopes, space-separated, for `WWW-Authenticate`.
pub fn authorize(principal: Option<&Principal>, required: &[String]) -> Result<(), AuthError> {
    if required.is_empty() {
        return Ok(());
    }
    let held = principal.map_or(&[][..], |p| p.scopes());
    if required.iter().all(|r| held.iter().any(|h| h == r)) {
        return Ok(());
    }
    let required = required.join(" ");
    match principal.map(|p| p.method()) {
        Some(AuthMethod::ApiKey) => Err(AuthError::AppScopeMissing(required)),
        _ => Err(AuthError::InsufficientScope(required)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMethod;

    fn p(scopes: &[&str]) -> Principal {
        Principal::new(
            "s".into(),
            None,
            scopes.iter().map(|s| s.to_string()).collect(),
            AuthMethod::Bearer,
        )
    }

    #[test]
    fn scopes() {
        let req = vec!["a".to_string(), "b".to_string()];
        assert!(authorize(Some(&p(&["b", "a", "c"])), &req).is_ok());
        assert_eq!(
            authorize(Some(&p(&["a"])), &req),
            Err(AuthError::InsufficientScope("a b".into()))
        );
        assert!(authorize(None, &[]).is_ok());
        assert!(authorize(None, &req).is_err());
    }
}
