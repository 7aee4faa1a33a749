//! Rate limiting: rolling-window limits per (client IP, route class).
