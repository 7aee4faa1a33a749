//! Durability: a process killed with SIGKILL right after a 200 loses nothing that response
//! promised. The test re-runs this test binary as a child that issues a token and a rotation,
//! prints the refresh token it answered with, and waits; the parent kills it (SIGKILL) and opens
//! the same store file.

mod oauth_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use oauth_support::*;
use portcullis::clock::ManualClock;

const CHILD_ENV: &str = "PORTCULLIS_OAUTH_KILL_CHILD_DIR";

/// The child half: does nothing unless started by `kill_9_after_200_loses_nothing`.
#[tokio::test]
async fn child_issue_then_wait_for_kill() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let svc = try_build(
        &dir,
        &config_text(&Opts::default()),
        ManualClock::new(T0),
        None,
    )
    .expect("child builds");
    let (status, _, body) = split(
        svc.handle(post(
            "/oauth2/token",
            Enc::Form,
            Auth::Basic,
            (SVC_ID, SVC_SECRET),
            &[("grant_type", "client_credentials")],
        ))
        .await,
    );
    assert_eq!(status, 200);
    let first = body["refresh_token"].as_str().expect("r").to_string();
    let (status, _, body) = split(
        svc.handle(refresh_req(&first, Enc::Form, Auth::Basic))
            .await,
    );
    assert_eq!(status, 200);
    let second = body["refresh_token"].as_str().expect("r").to_string();
    println!("SPENT={first}");
    println!("LIVE={second}");
    std::thread::sleep(std::time::Duration::from_secs(120));
}

#[tokio::test]
async fn kill_9_after_200_loses_nothing() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = TempDir::new();
    write_keys(dir.path());
    let exe = std::env::current_exe().expect("exe");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_issue_then_wait_for_kill",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut spent = None;
    let mut live = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        // libtest may print "test NAME ... " on the same line before the child's output.
        if let Some((_, t)) = line.split_once("SPENT=") {
            spent = Some(t.trim().to_string());
        }
        if let Some((_, t)) = line.split_once("LIVE=") {
            live = Some(t.trim().to_string());
            break;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let (spent, live) = (spent.expect("spent token"), live.expect("live token"));

    let svc = try_build(
        dir.path(),
        &config_text(&Opts::default()),
        ManualClock::new(T0),
        None,
    )
    .expect("reopens");
    // The rotation the child answered 200 for is on disk: the new token works once...
    let (status, _, body) = split(svc.handle(refresh_req(&live, Enc::Form, Auth::Basic)).await);
    assert_eq!(status, 200, "{body}");
    // ...and the token it spent is known as spent (reuse detection still works).
    let (status, _, body) = split(
        svc.handle(refresh_req(&spent, Enc::Form, Auth::Basic))
            .await,
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}
