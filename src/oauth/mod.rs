//! OAuth placeholder.
