//! WebSocket access log: a tunnelled request is logged once, when its tunnel ends, with its
//! duration and bytes each way (own binary: it installs the global log subscriber).

mod common;
mod ws_echo;

use common::*;
use ws_echo::*;

#[tokio::test]
async fn a_tunnel_is_logged_once_with_duration_and_bytes() {
    let buf = global_json_logs();

    let up = EchoUpstream::start().await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let (mut ws, _) = connect(gw.addr, "/ws/logged", &ACME).await.unwrap();
    assert_eq!(round_trip(&mut ws, "hello").await, "hello");
    let events = |buf: &LogBuf| -> Vec<serde_json::Value> {
        buf.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "access" && v["path"] == "/ws/logged")
            .collect()
    };
    assert!(events(buf).is_empty(), "logged before the tunnel ended");
    ws.close(None).await.unwrap();
    assert!(closed(&mut ws).await);
    assert!(
        eventually(|| !events(buf).is_empty()).await,
        "{}",
        buf.text()
    );
    let all = events(buf);
    assert_eq!(all.len(), 1, "{}", buf.text());
    let e = &all[0];
    assert_eq!(e["status"], 101);
    assert_eq!(e["tunnel"], true);
    assert_eq!(e["tunnel_end"], "closed");
    assert_eq!(e["principal"], "acme");
    assert_eq!(e["auth"], "api_key");
    assert!(e["tunnel_ms"].is_u64());
    // "hello" from a client is a masked frame of 2 + 4 + 5 bytes; the echo is 2 + 5.
    assert!(e["bytes_up"].as_u64().unwrap() >= 11, "{e}");
    assert!(e["bytes_down"].as_u64().unwrap() >= 7, "{e}");
    // The tunnel's event carries the trace id the upstream's handshake carried.
    let handshake = up.handshakes.lock().unwrap()[0].clone();
    let tp = handshake.headers["traceparent"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(e["trace_id"], tp.split('-').nth(1).unwrap(), "{e}");
}
