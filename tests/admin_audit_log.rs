//! Audit log events: every change made through the credential API is one structured
//! `portcullis::audit` event naming the operator token, the action and the id, and no secret
//! (neither the one shown at creation nor the rotated one) appears anywhere in the log.

mod admin_api_support;
mod common;

use admin_api_support::*;
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn every_change_is_one_audit_event_without_secrets() {
    let buf = LogBuf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let e = env().await;
    let (id, secret) = e.new_client().await;
    let path = format!("/admin/v1/clients/{id}");
    let (_, rotated) = e.api("POST", &format!("{path}/rotate"), None).await;
    let new_secret = rotated["client_secret"].as_str().unwrap().to_string();
    e.api("PATCH", &path, Some(json!({"status": "suspended"})))
        .await;
    e.api("DELETE", &path, None).await;
    let (_, app) = e
        .api("POST", "/admin/v1/apps", Some(json!({"name": "a"})))
        .await;
    let key = app["api_key"].as_str().unwrap().to_string();

    let text = buf.text();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "portcullis::audit")
        .collect();
    let got: Vec<(&str, &str, &str, &str)> = events
        .iter()
        .map(|v| {
            (
                v["actor"].as_str().unwrap(),
                v["action"].as_str().unwrap(),
                v["kind"].as_str().unwrap(),
                v["id"].as_str().unwrap(),
            )
        })
        .collect();
    let app_id = app["client_id"].as_str().unwrap();
    assert_eq!(
        got,
        [
            ("ops", "create", "client", id.as_str()),
            ("ops", "rotate", "client", id.as_str()),
            ("ops", "update", "client", id.as_str()),
            ("ops", "delete", "client", id.as_str()),
            ("ops", "create", "app", app_id),
        ]
    );
    assert!(events[2]["changed"].as_str().unwrap().contains("status"));
    for leak in [&secret, &new_secret, &key, &sha(&secret), &sha(&key)] {
        assert!(
            !text.contains(leak.as_str()),
            "the log holds a secret or its hash"
        );
    }
    assert!(!text.contains(OPS), "the log holds the operator token");
}
