//! Test harness for the Redis backend: a real redis-server spawned on a free loopback port
//! (no persistence, or AOF where a test asks), killed on drop; SIGKILL/SIGSTOP/SIGCONT and a
//! restart on the same port; a direct client for inspecting and flushing.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long redis-server gets to answer PING after a start.
const READY_WITHIN: Duration = Duration::from_secs(10);

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    aof: bool,
    /// A TLS port beside the plain one, serving `tls/server.pem` (see [`RedisServer::start_tls`]).
    pub tls_port: Option<u16>,
    child: Option<Child>,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// Starts redis-server without persistence.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// Starts redis-server; `aof` = `appendonly yes` with `appendfsync always`.
    pub async fn start_with(aof: bool) -> Self {
        Self::start_on(free_port(), aof).await
    }

    /// A free loopback port nothing listens on (yet).
    pub fn unused_port() -> u16 {
        free_port()
    }

    /// Starts redis-server on `port`.
    pub async fn start_on(port: u16, aof: bool) -> Self {
        let which = Command::new("sh")
            .args(["-c", "command -v redis-server"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            which,
            "redis-server is not installed: `apt-get install -y redis-server` (.ci/run does this)"
        );
        // Named like every test temp dir, so a harness's sweep finds it after a crash.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("portcullis-test-{}-redis-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut s = Self {
            port,
            dir,
            aof,
            tls_port: None,
            child: None,
        };
        s.spawn().await;
        s
    }

    /// Starts redis-server with a TLS port too, serving `cert`/`key` (signed by `ca`); the plain
    /// port stays for the harness's own commands.
    pub async fn start_tls(
        cert: &std::path::Path,
        key: &std::path::Path,
        ca: &std::path::Path,
    ) -> Self {
        let mut s = Self::start().await;
        s.kill9();
        let tls = s.dir.join("tls");
        std::fs::create_dir_all(&tls).expect("tls dir");
        for (from, to) in [(cert, "server.pem"), (key, "server.key"), (ca, "ca.pem")] {
            std::fs::copy(from, tls.join(to)).expect("copy a TLS file");
        }
        s.tls_port = Some(free_port());
        s.spawn().await;
        s
    }

    /// `rediss://127.0.0.1:<tls port>/0`.
    pub fn tls_url(&self) -> String {
        format!(
            "rediss://127.0.0.1:{}/0",
            self.tls_port.expect("started with TLS")
        )
    }

    async fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--dir"])
            .arg(&self.dir)
            .args(["--protected-mode", "yes"]);
        if let Some(port) = self.tls_port {
            let tls = self.dir.join("tls");
            cmd.arg("--tls-port")
                .arg(port.to_string())
                .arg("--tls-cert-file")
                .arg(tls.join("server.pem"))
                .arg("--tls-key-file")
                .arg(tls.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(tls.join("ca.pem"))
                .args(["--tls-auth-clients", "no"]);
        }
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if self.ping().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "redis-server on port {} did not answer within {READY_WITHIN:?}",
            self.port
        );
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server is running").id()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {sig} failed");
    }

    /// SIGSTOP: the socket stays open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (data survives only with AOF).
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    async fn connection(&self) -> Option<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url()).ok()?;
        let conn = client.get_multiplexed_async_connection();
        tokio::time::timeout(Duration::from_millis(500), conn)
            .await
            .ok()?
            .ok()
    }

    async fn ping(&self) -> bool {
        let Some(mut c) = self.connection().await else {
            return false;
        };
        let cmd = redis::cmd("PING");
        let fut = cmd.query_async::<String>(&mut c);
        matches!(
            tokio::time::timeout(Duration::from_millis(500), fut).await,
            Ok(Ok(_))
        )
    }

    /// Runs one command (bounded) and returns its answer.
    pub async fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut c = self.connection().await.expect("connect to redis-server");
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let fut = cmd.query_async::<T>(&mut c);
        tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .expect("redis command timed out")
            .expect("redis command failed")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A paused server ignores SIGKILL until continued on some systems; continue first.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
