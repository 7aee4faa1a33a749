//! Upstream HTTP/1.1 request framing, over the wire: what the upstream receives. How a body is
//! framed (Content-Length, chunked, none, empty), that the request line and header values arrive
//! byte-exact, an upstream that answers before reading a large upload, `Expect: 100-continue`,
//! and an upstream that never answers. The harness and the response side are in
//! `framing_support` and `upstream_framing.rs`.

mod common;
mod framing_support;

use framing_support::*;

// ---------------------------------------------------------------------------------------------
// Request framing (what the upstream receives)
// ---------------------------------------------------------------------------------------------

/// A 1 MiB request body with Content-Length arrives with exactly one `content-length` and no
/// `transfer-encoding`, byte for byte; the connection then carries the next request (so nothing
/// was sent past the body).
#[tokio::test]
async fn a_content_length_request_body_arrives_with_one_content_length() {
    let up = Up::start(|g, i| tagged(g.conn, i)).await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let c = client();
    let body = noise(1 << 20, 3);
    let got = fetch(c.post(gw.url("/p")).body(body.clone())).await;
    assert_eq!(text(&got.body.unwrap()), "c0r0");
    let seen = up.last();
    assert!(seen.request_line().starts_with("POST /p HTTP/1.1"));
    assert_eq!(seen.values("content-length"), ["1048576"]);
    assert!(
        seen.values("transfer-encoding").is_empty(),
        "{}",
        seen.head_text()
    );
    assert!(
        sha256(&seen.raw_body) == sha256(&body),
        "the body arrives as sent"
    );
    get_ok(&c, gw.url("/next"), "c0r1").await;
    assert_eq!(up.last().request_line(), "GET /next HTTP/1.1");
    assert_eq!(up.conn_of_each(), [0, 0]);
}

/// A body of unknown length (streamed by the client, chunked to the gateway) arrives chunked:
/// `transfer-encoding: chunked`, no `content-length`, chunks that decode to the sent bytes, and
/// an empty piece of the stream does not end the body early; the connection then carries the
/// next request.
#[tokio::test]
async fn a_streamed_request_body_arrives_chunked() {
    let up = Up::start(|g, i| tagged(g.conn, i)).await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let pieces: Vec<Vec<u8>> = vec![
        b"ab".to_vec(),
        Vec::new(),
        b"cdef".to_vec(),
        noise(70_000, 5),
        b"z".to_vec(),
    ];
    let sent: Vec<u8> = pieces.concat();
    let stream = futures_util::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>));
    let c = client();
    let got = fetch(
        c.post(gw.url("/p"))
            .body(reqwest::Body::wrap_stream(stream)),
    )
    .await;
    assert_eq!(got.status, Some(200), "{got:?}");
    let seen = up.last();
    assert_eq!(seen.values("transfer-encoding"), ["chunked"]);
    assert!(
        seen.values("content-length").is_empty(),
        "{}",
        seen.head_text()
    );
    assert!(seen.body == sent, "the chunks decode to the sent bytes");
    assert!(
        seen.raw_body.ends_with(b"\r\n0\r\n\r\n"),
        "one last chunk, no trailers"
    );
    get_ok(&c, gw.url("/next"), "c0r1").await;
    assert_eq!(up.last().request_line(), "GET /next HTTP/1.1");
    assert_eq!(up.conn_of_each(), [0, 0]);
}

/// A GET without a body carries neither `content-length` nor `transfer-encoding`; a POST with
/// `Content-Length: 0` arrives with `content-length: 0`; a POST with no framing at all (empty by
/// RFC 9112 section 6.3) arrives with neither (current behaviour).
#[tokio::test]
async fn bodyless_and_empty_requests_are_framed_as_such() {
    let up = Up::start(|g, i| tagged(g.conn, i)).await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    for (request, cl) in [
        (
            &b"GET /g HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"[..],
            None,
        ),
        (
            b"POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            Some("0"),
        ),
        (
            b"POST /q HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            None,
        ),
        (
            b"DELETE /d HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            None,
        ),
    ] {
        let label = text(request);
        let raw = text(&raw_client(gw.addr, request).await);
        assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{label}: {raw}");
        let seen = up.last();
        let line = label.lines().next().unwrap();
        assert_eq!(seen.request_line(), line, "{label}");
        assert_eq!(
            seen.values("content-length"),
            cl.into_iter().collect::<Vec<_>>(),
            "{label}: {}",
            seen.head_text()
        );
        assert!(seen.values("transfer-encoding").is_empty(), "{label}");
        assert!(seen.raw_body.is_empty(), "{label}");
    }
}

/// The request line goes out as `METHOD /path?query HTTP/1.1` with the query byte-exact, and
/// header values byte-exact (case, inner whitespace, tabs, obs-text, repeated fields in order).
/// Names arrive lowercased (current behaviour: hyper's `HeaderMap`), `Host` is the upstream's,
/// and the gateway's client adds no `connection`, `keep-alive`, `te` or framing fields of its own.
#[tokio::test]
async fn the_request_line_and_field_values_arrive_byte_exact() {
    let up = Up::start(|g, i| tagged(g.conn, i)).await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let query = "q=a%20b&Sort=DESC&e=&x=%C3%A9&p=a+b;c&t=%7E~!$'()*,:@/?&z=%25";
    let request = format!(
        "GET /items/v1?{query} HTTP/1.1\r\nHost: gw.example\r\nX-Mixed-Case: VaLuE  With   Spaces\r\nx-tab: a\tb\r\nX-Multi: 1\r\nx-multi: two, Three\r\nconnection: close\r\n\r\n"
    );
    let mut request = request.into_bytes();
    let at = request.len() - 2;
    request.splice(at..at, b"x-obs: caf\xe9\r\n".iter().copied());
    let raw = text(&raw_client(gw.addr, &request).await);
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    let seen = up.last();
    assert_eq!(
        seen.request_line(),
        format!("GET /items/v1?{query} HTTP/1.1")
    );
    let fields = seen.fields();
    let names: Vec<String> = fields.iter().map(|(n, _)| text(n)).collect();
    for name in ["x-mixed-case", "x-tab", "x-multi", "x-obs", "host"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    assert!(
        names.iter().all(|n| *n == n.to_ascii_lowercase()),
        "names lowercased: {names:?}"
    );
    assert_eq!(seen.values("x-mixed-case"), ["VaLuE  With   Spaces"]);
    assert_eq!(seen.values("x-tab"), ["a\tb"]);
    assert_eq!(seen.values("x-multi"), ["1", "two, Three"]);
    let obs: Vec<_> = fields.iter().filter(|(n, _)| n == b"x-obs").collect();
    assert_eq!(obs.len(), 1);
    assert_eq!(obs[0].1, b"caf\xe9");
    assert_eq!(
        seen.values("host"),
        [up.addr.to_string()],
        "exactly one host"
    );
    for hop in [
        "connection",
        "keep-alive",
        "te",
        "transfer-encoding",
        "content-length",
    ] {
        assert!(seen.values(hop).is_empty(), "{hop}: {}", seen.head_text());
    }
    assert_eq!(seen.values("x-forwarded-host"), ["gw.example"]);
}

/// Reads one response head from `s` (through its blank line); bounded.
async fn read_response_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    match take_through(s, buf, b"\r\n\r\n", Instant::now() + WAIT).await {
        Ok(head) => text(&head),
        Err(Stop::Closed) => panic!("closed before a response head: {}", text(buf)),
        Err(Stop::TimedOut) => panic!("no response head within the bound: {}", text(buf)),
    }
}

/// Posts a 4 MiB body on a raw connection (written by a task that stops at the first error) and
/// reads what the gateway answers until it closes: (answer, bytes the client managed to write).
async fn post_large_raw(addr: SocketAddr) -> (String, usize) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 4194304\r\n\r\n")
        .await
        .unwrap();
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        let piece = vec![b'x'; 64 * 1024];
        let mut wrote = 0;
        for _ in 0..64 {
            if w.write_all(&piece).await.is_err() {
                break;
            }
            wrote += piece.len();
        }
        wrote
    });
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline.into(), r.read_buf(&mut out)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => panic!("the gateway neither finished nor closed: {}", text(&out)),
        }
    }
    let wrote = tokio::time::timeout(WAIT, writer)
        .await
        .expect("the upload stops within the bound")
        .unwrap();
    (text(&out), wrote)
}

/// An upstream that answers `413` as soon as it has the head of a 4 MiB upload, leaves the body
/// unread and closes: nothing hangs, the gateway closes the client connection, and the upstream
/// connection is not reused. When the upstream closes carefully (shuts down its side and drains
/// what still comes) the client gets the `413` and its body. When it closes at once, the kernel
/// resets the connection under the unread upload: the client gets the `413` or a
/// `502 bad_gateway` (current behaviour: `502`, every run so far).
#[tokio::test]
async fn an_early_answer_to_a_large_upload_is_relayed_or_502_and_nothing_hangs() {
    for linger in [true, false] {
        let up = Up::start(move |g, i| match (g.conn, i) {
            (0, 0) => Reply::Early {
                bytes: b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbig!".to_vec(),
                linger,
            },
            (c, i) => tagged(c, i),
        })
        .await;
        let gw = gateway(CONFIG, Some(up.addr)).await;
        let started = Instant::now();
        let (answer, wrote) = post_large_raw(gw.addr).await;
        assert!(started.elapsed() < WAIT, "linger {linger}");
        assert!(
            wrote < 4 << 20,
            "the gateway stopped reading the upload (linger {linger})"
        );
        let status = &answer[..answer.find("\r\n").unwrap_or(answer.len())];
        if linger {
            assert_eq!(status, "HTTP/1.1 413 Payload Too Large", "{answer}");
            assert!(answer.ends_with("\r\n\r\nbig!"), "{answer}");
        } else {
            assert!(
                status == "HTTP/1.1 413 Payload Too Large" || status == "HTTP/1.1 502 Bad Gateway",
                "{answer}"
            );
            if status.contains("502") {
                assert!(answer.contains("\"code\":\"bad_gateway\""), "{answer}");
            }
        }
        assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
        assert!(up.got()[0].request_line().starts_with("POST /up HTTP/1.1"));
        get_ok(&client(), gw.url("/b"), "c1r0").await;
        assert_eq!(up.conn_of_each(), [0, 1], "linger {linger}");
        gw.stop().await;
    }
}

/// `Expect: 100-continue`: the client gets one `100 Continue` (the gateway's own) before it
/// sends the body, then the upstream's final response; the upstream gets the body and, today,
/// the `expect` field too (it answers its own `100 Continue`, which the gateway reads past).
#[tokio::test]
async fn expect_100_continue_gets_one_100_then_the_final_response() {
    let up = Up::start(|g, i| tagged(g.conn, i)).await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(
        b"POST /e HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let interim = read_response_head(&mut s, &mut buf).await;
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.unwrap();
    let mut rest = buf;
    rest.extend_from_slice(&read_to_close(&mut s).await);
    let rest = text(&rest);
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "{rest}");
    assert!(rest.ends_with("\r\n\r\nc0r0"), "{rest}");
    assert!(!rest.contains(" 100 "), "only one 100: {rest}");
    let seen = up.last();
    assert_eq!(seen.body, b"hello");
    assert_eq!(seen.values("content-length"), ["5"]);
    assert_eq!(seen.values("expect"), ["100-continue"]);
}

/// An upstream that reads the request and never answers: `504 upstream_timeout` after
/// `upstream_response_timeout`, and that connection is closed by the gateway, never reused (a
/// late answer on it would be taken for the next request's). `forwarding.rs` covers the 504.
#[tokio::test]
async fn an_upstream_that_never_answers_is_504_and_its_connection_closed() {
    let up = Up::start(|g, i| match (g.conn, i) {
        (0, 0) => Reply::Silent,
        (c, i) => tagged(c, i),
    })
    .await;
    let config = CONFIG.replace(
        "upstream_response_timeout = \"1s\"",
        "upstream_response_timeout = \"300ms\"",
    );
    let gw = gateway(&config, Some(up.addr)).await;
    let c = client();
    let started = Instant::now();
    let resp = tokio::time::timeout(WAIT, c.get(gw.url("/a")).send())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 504);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(json(resp).await["code"], "upstream_timeout");
    assert!(
        up.closed_by_gateway(0).await,
        "the silent connection is closed"
    );
    get_ok(&c, gw.url("/b"), "c1r0").await;
    assert_eq!(up.conn_of_each(), [0, 1]);
    assert_eq!(up.conns(), 2);
    gw.stop().await;
}

/// While a response is still coming (head and part of the body relayed, the rest held back),
/// its connection carries no second request: one sent meanwhile goes out on a new connection
/// (no pipelining), and each gets its own answer.
#[tokio::test]
async fn a_busy_connection_never_carries_a_second_request() {
    let gate = Arc::new(Notify::new());
    let held = gate.clone();
    let up = Up::start(move |g, i| match (g.conn, i) {
        (0, 0) => Reply::Gated {
            before: b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nfirs".to_vec(),
            gate: held.clone(),
            after: b"t-c0".to_vec(),
        },
        (c, i) => tagged(c, i),
    })
    .await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let c = client();
    let first = tokio::time::timeout(WAIT, c.get(gw.url("/a")).send())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status(), 200);
    assert!(up.read_requests(1).await);
    get_ok(&c, gw.url("/b"), "c1r0").await;
    gate.notify_one();
    let body = tokio::time::timeout(WAIT, first.bytes())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&body[..], b"first-c0");
    assert_eq!(up.conn_of_each(), [0, 1]);
    // Both connections are idle now, and either carries the next request.
    let got = get(&c, gw.url("/c")).await;
    let body = text(&got.body.unwrap());
    assert!(body == "c0r1" || body == "c1r1", "{body}");
    assert_eq!(up.conns(), 2);
    gw.stop().await;
}
