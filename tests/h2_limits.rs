//! HTTP/2 limits over raw frames: the advertised and enforced stream cap, PING and SETTINGS
//! floods answered with GOAWAY, and the idle timeout.

mod common;
mod wire;

use std::time::Duration;

use common::*;
use tokio::net::TcpStream;
use wire::*;

async fn h2_conn(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut hello = H2_PREFACE.to_vec();
    hello.extend(h2_frame(SETTINGS, 0, 0, &[]));
    send(&mut s, &hello).await;
    s
}

async fn frames_until_closed(s: &mut TcpStream, bound: Duration) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let (bytes, _) = read_until_closed(s, bound)
        .await
        .expect("the gateway closed");
    h2_frames(&bytes)
}

#[tokio::test]
async fn max_concurrent_streams_is_advertised_and_enforced() {
    let up = Upstream::start().await;
    let cfg = BASIC.replace("[limits]", "[limits]\nh2_max_concurrent_streams = 3");
    let gw = gateway(&cfg, Some(up.addr)).await;
    let mut s = h2_conn(gw.addr).await;
    let mut reqs = Vec::new();
    for i in 0..5u32 {
        reqs.extend(h2_get(1 + 2 * i, "/slow/400"));
    }
    // Ack the server's SETTINGS so it applies its limits, then open five streams at once.
    send(&mut s, &h2_frame(SETTINGS, 1, 0, &[])).await;
    send(&mut s, &reqs).await;
    let mut bytes = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        match tokio::time::timeout(
            Duration::from_secs(1),
            tokio::io::AsyncReadExt::read(&mut s, &mut buf),
        )
        .await
        {
            Ok(Ok(n)) if n > 0 => bytes.extend_from_slice(&buf[..n]),
            _ => break,
        }
        let frames = h2_frames(&bytes);
        let done = frames
            .iter()
            .filter(|f| f.0 == 0x1 || f.0 == RST_STREAM)
            .count();
        if done >= 5 {
            break;
        }
    }
    let frames = h2_frames(&bytes);
    let settings = frames
        .iter()
        .find(|f| f.0 == SETTINGS && f.1 & 1 == 0)
        .expect("server SETTINGS");
    let advertised = settings
        .3
        .chunks(6)
        .find(|p| p[..2] == [0, 3])
        .map(|p| u32::from_be_bytes([p[2], p[3], p[4], p[5]]));
    assert_eq!(advertised, Some(3));
    let refused: Vec<u32> = frames
        .iter()
        .filter(|f| f.0 == RST_STREAM && f.3 == [0, 0, 0, 7])
        .map(|f| f.2)
        .collect();
    let answered = frames.iter().filter(|f| f.0 == 0x1).count();
    assert_eq!(answered, 3, "three streams served");
    assert_eq!(
        refused.len(),
        2,
        "two refused with REFUSED_STREAM: {frames:?}"
    );
    assert_eq!(up.count(), 3);
}

async fn flood_gets_goaway(kind: u8, payload: &[u8]) {
    let up = Upstream::start().await;
    let cfg = BASIC.replace("[limits]", "[limits]\nh2_max_control_frames_per_sec = 50");
    let gw = gateway(&cfg, Some(up.addr)).await;
    let mut s = h2_conn(gw.addr).await;
    let mut flood = Vec::new();
    for _ in 0..500 {
        flood.extend(h2_frame(kind, 0, 0, payload));
    }
    send(&mut s, &flood).await;
    let frames = frames_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(
        frames.iter().any(|f| f.0 == GOAWAY),
        "GOAWAY before close: {:?}",
        frames.iter().map(|f| f.0).collect::<Vec<_>>()
    );
    let acks = frames
        .iter()
        .filter(|f| f.0 == kind && f.1 & 1 == 1)
        .count();
    assert!(
        acks <= 52,
        "answered at most the budget, not the flood: {acks}"
    );
    assert!(eventually(Duration::from_secs(3), || gw.gw.connections().open() == 0).await);
}

#[tokio::test]
async fn ping_flood_is_answered_with_goaway() {
    flood_gets_goaway(PING, &[0; 8]).await;
}

#[tokio::test]
async fn settings_flood_is_answered_with_goaway() {
    flood_gets_goaway(SETTINGS, &[]).await;
}

#[tokio::test]
async fn pings_within_the_budget_keep_the_connection() {
    let up = Upstream::start().await;
    let cfg = BASIC.replace("[limits]", "[limits]\nh2_max_control_frames_per_sec = 50");
    let gw = gateway(&cfg, Some(up.addr)).await;
    let mut s = h2_conn(gw.addr).await;
    for _ in 0..10 {
        send(&mut s, &h2_frame(PING, 0, 0, &[1; 8])).await;
    }
    send(&mut s, &h2_get(1, "/v1/partner/user/ok")).await;
    assert!(eventually(Duration::from_secs(3), || up.count() == 1).await);
    assert_eq!(gw.gw.connections().open(), 1);
}

#[tokio::test]
async fn idle_h2_connection_gets_goaway_after_client_idle_timeout() {
    let up = Upstream::start().await;
    let cfg = BASIC.replace("[limits]", "[limits]\nclient_idle_timeout = \"300ms\"");
    let gw = gateway(&cfg, Some(up.addr)).await;
    let mut s = h2_conn(gw.addr).await;
    send(&mut s, &h2_frame(SETTINGS, 1, 0, &[])).await;
    let started = std::time::Instant::now();
    let frames = frames_until_closed(&mut s, Duration::from_secs(6)).await;
    assert!(frames.iter().any(|f| f.0 == GOAWAY));
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(eventually(Duration::from_secs(3), || gw.gw.connections().open() == 0).await);
}

/// An h2 client that grants no flow-control window never lets the response body move: it is
/// cut off after `client_write_timeout`, and the upstream connection goes with it.
#[tokio::test]
async fn h2_client_granting_no_window_is_cut_off_after_client_write_timeout() {
    let (up, log) = raw_upstream(|mut s, _, log| async move {
        if read_head(&mut s).await.is_none() {
            return;
        }
        send(
            &mut s,
            b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n",
        )
        .await;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..16_384 {
            let w = tokio::io::AsyncWriteExt::write_all(&mut s, &chunk);
            if !matches!(
                tokio::time::timeout(Duration::from_secs(20), w).await,
                Ok(Ok(()))
            ) {
                break;
            }
        }
        log.closed_by_gateway
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    })
    .await;
    let cfg = BASIC.replace("[limits]", "[limits]\nclient_write_timeout = \"500ms\"");
    let gw = gateway(&cfg, Some(up)).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut hello = H2_PREFACE.to_vec();
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: no DATA may be sent on any stream.
    hello.extend(h2_frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0]));
    hello.extend(h2_get(1, "/v1/partner/user/big"));
    send(&mut s, &hello).await;
    let frames = frames_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(
        frames.iter().any(|f| f.0 == 0x1),
        "the response head was sent"
    );
    assert!(
        !frames.iter().any(|f| f.0 == 0x0 && !f.3.is_empty()),
        "no body could be"
    );
    assert!(eventually(Duration::from_secs(3), || gw.gw.connections().open() == 0).await);
    assert!(eventually(Duration::from_secs(3), || log.closed_by_gateway() == 1).await);
}
