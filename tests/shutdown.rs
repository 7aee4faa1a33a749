//! Shutdown: the real binary drains in-flight requests on SIGTERM, and a second SIGTERM during
//! the drain exits at once.

mod common;
mod wire;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tokio::net::TcpStream;
use wire::*;

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

async fn wait_exit(child: &mut std::process::Child, bound: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < bound {
        if child.try_wait().unwrap().is_some() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn a_second_sigterm_during_the_drain_exits_at_once() {
    let up = Upstream::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = temp_dir("shutdown");
    let cfg = BASIC
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
        .replace(
            "default_class = \"user\"",
            "default_class = \"user\"\nshutdown_grace = \"60s\"",
        )
        .replace(
            "upstream_response_timeout = \"500ms\"",
            "upstream_response_timeout = \"60s\"",
        )
        .replace("{UPSTREAM}", &up.addr.to_string());
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut inflight = None;
    let started = Instant::now();
    while inflight.is_none() && started.elapsed() < Duration::from_secs(20) {
        match TcpStream::connect(addr).await {
            Ok(s) => inflight = Some(s),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let mut inflight = inflight.expect("the gateway listens");
    send(
        &mut inflight,
        b"GET /slow/30000 HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await;
    assert!(
        eventually(Duration::from_secs(5), || up.count() == 1).await,
        "request in flight"
    );
    signal(child.id(), "-TERM");
    assert!(
        wait_exit(&mut child, Duration::from_millis(700))
            .await
            .is_none(),
        "one SIGTERM drains: the in-flight request keeps the process up"
    );
    signal(child.id(), "-TERM");
    let took = wait_exit(&mut child, Duration::from_secs(3)).await;
    if took.is_none() {
        let _ = child.kill();
    }
    assert!(took.is_some(), "the second SIGTERM exits at once");
}
