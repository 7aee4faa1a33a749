//! `portcullis check` on the `[limits]` bounds: a relaxed bound is reported with its default, a
//! zero bound is an error naming file:line:column.

mod common;

fn check(limits: &str) -> (i32, String, String) {
    common::check_text(&common::BASIC.replace("[limits]", &format!("[limits]\n{limits}")))
}

#[test]
fn relaxed_bounds_are_reported_and_defaults_are_quiet() {
    let (code, out, _) = check("");
    assert_eq!(code, 0);
    assert!(!out.contains("note:"), "{out}");
    let (code, out, _) = check("max_connections_per_ip = 4096\nclient_idle_timeout = \"5m\"");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("note: limits.max_connections_per_ip = 4096 is higher than the default 256"),
        "{out}"
    );
    assert!(
        out.contains("note: limits.client_idle_timeout = 300s is longer than the default 60s"),
        "{out}"
    );
}

#[test]
fn a_zero_body_idle_timeout_is_an_error_with_its_position() {
    let (code, _, err) = check("body_idle_timeout = \"0s\"");
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "portcullis.toml:7:21: limits.body_idle_timeout: duration must be greater than zero"
        ),
        "{err}"
    );
}
