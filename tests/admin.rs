//! Admin listener and reload: health, readiness, metrics, and reload without dropping traffic.

mod common;
use std::time::Duration;

use common::*;
use portcullis::clock::SystemClock;
use portcullis::config::{self, Shared};
use portcullis::gateway::Gateway;
use portcullis::server::Server;

struct Running {
    url: String,
    admin: String,
    path: std::path::PathBuf,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(toml: &str) -> Running {
    portcullis::install_crypto();
    let dir = temp_dir("admin");
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, toml).unwrap();
    let shared = Shared::new(SystemClock::shared());
    let snap = config::load(&path, &shared).unwrap();
    let gw = Gateway::from_file_snapshot(snap, shared, &path);
    let server = Server::bind(gw.clone()).await.unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}", admin_listener.local_addr().unwrap());
    let _ = portcullis::metrics::handle();
    tokio::spawn(portcullis::admin::serve(gw.clone(), admin_listener));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        url,
        admin,
        path,
        _stop: stop,
    }
}

#[tokio::test]
async fn health_readiness_metrics_and_reload() {
    let up = Upstream::start().await;
    let cfg = BASIC.replace("{UPSTREAM}", &up.addr.to_string());
    let gw = start(&cfg).await;
    let c = client();
    assert_eq!(
        c.get(format!("{}/healthz", gw.admin))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{}/readyz", gw.admin))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    assert_eq!(
        c.get(format!("{}/v1/partner/user/a", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{}/reloaded/x", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let metrics = c
        .get(format!("{}/metrics", gw.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("portcullis_requests_total{class=\"user\",status=\"2xx\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_rejects_total{code=\"not_found\"}"),
        "{metrics}"
    );

    // A slow request in flight keeps its snapshot while the config changes under it.
    let inflight = tokio::spawn(client().get(format!("{}/slow/400", gw.url)).send());
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A broken file is refused and changes nothing.
    std::fs::write(
        &gw.path,
        cfg.replace("class = \"admin\"", "class = \"nope\""),
    )
    .unwrap();
    let r = c.post(format!("{}/reload", gw.admin)).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body = json(r).await;
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .contains("unknown class \"nope\""),
        "{body}"
    );
    assert_eq!(
        c.get(format!("{}/v1/partner/user/a", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A good file adds a route; the /slow/ route is removed.
    let added = cfg
        .replace("path = \"/slow/\"", "path = \"/reloaded/\"")
        .replace(
            "upstream_response_timeout = \"500ms\"",
            "upstream_response_timeout = \"5s\"",
        );
    std::fs::write(&gw.path, added).unwrap();
    let r = c.post(format!("{}/reload", gw.admin)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        c.get(format!("{}/reloaded/x", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{}/slow/1", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let done = inflight.await.unwrap().unwrap();
    assert_eq!(
        done.status(),
        200,
        "the in-flight request finished on its own snapshot"
    );
}
