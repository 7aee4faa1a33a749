//! Connection caps: `max_connections_per_ip` and `max_connections` refuse at accept (closed at
//! once, nothing forwarded), and a freed place is usable again.

mod common;
mod wire;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::*;
use tokio::net::TcpStream;
use wire::*;

async fn get_ok(s: &mut TcpStream) -> String {
    send(s, b"GET /v1/partner/user/ok HTTP/1.1\r\nHost: t\r\n\r\n").await;
    read_head(s).await.unwrap_or_default()
}

#[tokio::test]
async fn per_ip_cap_refuses_at_accept_and_other_ips_still_connect() {
    let up = Upstream::start().await;
    let cfg = BASIC.replace("[limits]", "[limits]\nmax_connections_per_ip = 3");
    let gw = gateway(&cfg, Some(up.addr)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 1], gw.addr).await);
    }
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert!(
        eventually(Duration::from_secs(2), || gw
            .gw
            .connections()
            .open_from(local)
            == 3)
        .await
    );
    let mut over = connect_from([127, 0, 0, 1], gw.addr).await;
    send(
        &mut over,
        b"GET /v1/partner/user/over HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await;
    let (bytes, took) = read_until_closed(&mut over, Duration::from_secs(3))
        .await
        .expect("refused at once");
    assert!(
        bytes.is_empty(),
        "no HTTP answer: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(took < Duration::from_secs(1));
    // Another client IP is not held to this one's cap.
    let mut other = connect_from([127, 0, 0, 2], gw.addr).await;
    assert!(get_ok(&mut other).await.starts_with("HTTP/1.1 200"));
    // A freed place is usable again.
    drop(held.pop());
    assert!(
        eventually(Duration::from_secs(2), || gw
            .gw
            .connections()
            .open_from(local)
            == 2)
        .await
    );
    let mut again = connect_from([127, 0, 0, 1], gw.addr).await;
    assert!(get_ok(&mut again).await.starts_with("HTTP/1.1 200"));
    assert_eq!(up.count(), 2, "the refused request was never forwarded");
}

#[tokio::test]
async fn total_cap_refuses_at_accept() {
    let up = Upstream::start().await;
    let cfg = BASIC.replace("[limits]", "[limits]\nmax_connections = 2");
    let gw = gateway(&cfg, Some(up.addr)).await;
    let _a = connect_from([127, 0, 0, 3], gw.addr).await;
    let _b = connect_from([127, 0, 0, 4], gw.addr).await;
    assert!(eventually(Duration::from_secs(2), || gw.gw.connections().open() == 2).await);
    let mut over = connect_from([127, 0, 0, 5], gw.addr).await;
    send(
        &mut over,
        b"GET /v1/partner/user/over HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await;
    let (bytes, _) = read_until_closed(&mut over, Duration::from_secs(3))
        .await
        .expect("refused at once");
    assert!(bytes.is_empty());
    assert_eq!(gw.gw.connections().open(), 2);
    assert_eq!(up.count(), 0);
}
