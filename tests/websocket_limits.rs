//! WebSocket tunnel limits: idle timeout, maximum lifetime, and graceful shutdown closing
//! tunnels after the grace period; each observed by a real client and the real echo upstream.

mod common;
mod ws_echo;

use std::time::{Duration, Instant};

use common::*;
use ws_echo::*;

#[tokio::test]
async fn an_idle_tunnel_is_closed_and_traffic_keeps_it_open() {
    let up = EchoUpstream::start().await;
    let gw = gateway(
        &config("[tunnels]\nidle_timeout = \"500ms\""),
        Some(up.addr),
    )
    .await;
    let (mut ws, _) = connect(gw.addr, "/ws/idle", &ACME).await.unwrap();
    // Busy for longer than the idle timeout: every message still comes back.
    for i in 0..8 {
        let text = format!("busy {i}");
        assert_eq!(round_trip(&mut ws, &text).await, text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let quiet = Instant::now();
    assert!(closed(&mut ws).await, "the idle tunnel stayed open");
    assert!(quiet.elapsed() >= Duration::from_millis(300));
    assert!(
        eventually(|| up.ended() == 1).await,
        "the upstream side stayed open"
    );
    assert!(eventually(|| gw.gw.shared().tunnels.open() == 0).await);
}

#[tokio::test]
async fn a_busy_tunnel_is_closed_at_its_max_lifetime() {
    let up = EchoUpstream::start().await;
    let gw = gateway(
        &config("[tunnels]\nmax_lifetime = \"600ms\""),
        Some(up.addr),
    )
    .await;
    let (mut ws, _) = connect(gw.addr, "/ws/life", &ACME).await.unwrap();
    let opened = Instant::now();
    let mut echoed = 0;
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            use futures_util::{SinkExt, StreamExt};
            let sent = ws.send(tokio_tungstenite::tungstenite::Message::text("tick"));
            if sent.await.is_err() {
                return;
            }
            match tokio::time::timeout(WAIT, ws.next()).await {
                Ok(Some(Ok(m))) if m.is_text() => echoed += 1,
                _ => return,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(ended.is_ok(), "the tunnel outlived max_lifetime");
    assert!(opened.elapsed() >= Duration::from_millis(500));
    assert!(echoed >= 3, "only {echoed} echoes before the close");
    assert!(eventually(|| up.ended() == 1).await);
}

#[tokio::test]
async fn shutdown_closes_tunnels_after_the_grace_period() {
    let up = EchoUpstream::start().await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let (mut ws, _) = connect(gw.addr, "/ws/drain", &ACME).await.unwrap();
    assert_eq!(round_trip(&mut ws, "before").await, "before");
    let tunnels = gw.gw.shared().tunnels.clone();
    let stopping = Instant::now();
    let stop = tokio::spawn(gw.stop());
    // Within the grace period (1s) the tunnel still carries traffic.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(round_trip(&mut ws, "during").await, "during");
    assert!(closed(&mut ws).await, "the tunnel outlived the shutdown");
    assert!(stopping.elapsed() >= Duration::from_millis(900));
    tokio::time::timeout(WAIT, stop).await.unwrap().unwrap();
    assert_eq!(tunnels.open(), 0);
    assert!(eventually(|| up.ended() == 1).await);
}
