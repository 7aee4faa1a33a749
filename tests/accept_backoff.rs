//! Accept errors: with the file-descriptor limit exhausted (EMFILE), the main and the admin
//! listener back off instead of spinning, and serve again once descriptors are free.
//! Its own test binary: it lowers this process's RLIMIT_NOFILE.

mod common;
mod wire;

use std::time::Duration;

use common::*;
use tokio::net::TcpSocket;
use wire::*;

fn set_nofile_soft(n: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid, owned struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        let old = lim.rlim_cur;
        lim.rlim_cur = n;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        old
    }
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[tokio::test]
async fn emfile_on_accept_backs_off_and_recovers_on_main_and_admin_listeners() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    tokio::spawn(portcullis::admin::serve(gw.gw.clone(), admin));
    // The client sockets exist before the limit drops; connecting needs no new descriptor.
    let (main_sock, admin_sock) = (TcpSocket::new_v4().unwrap(), TcpSocket::new_v4().unwrap());
    let errors_before = portcullis::server::accept::errors();
    let old = set_nofile_soft(open_fds());
    let mut main_conn = main_sock.connect(gw.addr).await.unwrap();
    let mut admin_conn = admin_sock.connect(admin_addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let errors = portcullis::server::accept::errors() - errors_before;
    set_nofile_soft(old);
    // Two listeners backing off from 10 ms, doubling: about 8 errors each in 1.5 s; a hot loop
    // makes thousands, a fixed 50 ms pause 60.
    assert!(
        (2..=24).contains(&errors),
        "accept errors in 1.5 s: {errors}"
    );
    send(
        &mut main_conn,
        b"GET /v1/partner/user/x HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await;
    let head = read_head(&mut main_conn)
        .await
        .expect("served once descriptors are free");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    send(&mut admin_conn, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let head = read_head(&mut admin_conn)
        .await
        .expect("admin serves again");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}
