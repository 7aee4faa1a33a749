//! portcullis: an authenticating reverse-proxy gateway.
//!
//! Every request takes one path, written out in `pipeline`:
//!
//! ```text
//! accept (TLS?) -> request id -> route match -> client IP -> rate limit (route class)
//!   -> authenticate (route policy: bearer JWT | API-key pair | none; mixed = refused)
//!   -> authorize (scopes) -> forward upstream (streaming) -> response
//!   any Reject -> Problem (status, code, description, headers) -> envelope of the route class
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod oauth;
pub mod ratelimit;
pub mod store;
