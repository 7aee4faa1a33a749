//! Configuration: TOML route policies loaded in three stages (raw -> validate -> compile).

pub mod diagnostic;
pub mod raw;
