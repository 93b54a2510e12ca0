//! A private `redis-server` per test: its own free port on 127.0.0.1, its own data
//! directory, killed on drop. Never touches a Redis the machine may run on 6379.
//!
//! Tests that need one are `#[ignore]`d (a plain `cargo test` lists them as ignored;
//! `cargo xtask test` runs them) and call [`require`] first, which fails the test with
//! what to install when `redis-server` is missing: an ignored test that is asked to run
//! must run or fail, never pass without running.

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::which;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long a starting server may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Panics unless `redis-server` is on PATH.
pub fn require() {
    assert!(
        which("redis-server").is_some(),
        "Redis test cannot run: redis-server is not on PATH (run `cargo xtask setup`)"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `redis-server` process.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    appendonly: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// A server keeping nothing on disk: a restart loses every key.
    pub async fn start() -> Self {
        require();
        Self::start_with(false).await
    }

    /// `n` Huddle instances sharing this Redis, each also set up by `tweak`.
    pub async fn instances(
        &self,
        n: usize,
        tweak: impl Fn(&mut backend::Config) + Clone,
    ) -> Vec<super::TestServer> {
        let mut servers = Vec::with_capacity(n);
        for _ in 0..n {
            let (url, tweak) = (self.url(), tweak.clone());
            servers.push(
                super::TestServer::with(move |c| {
                    c.redis = Some(url);
                    tweak(c);
                })
                .await,
            );
        }
        servers
    }

    /// A server with an fsynced-every-write append-only file: a restart keeps every key.
    pub async fn start_persistent() -> Self {
        require();
        Self::start_with(true).await
    }

    async fn start_with(appendonly: bool) -> Self {
        let mut dir = tempfile::tempdir().unwrap();
        // The port is free when picked but could be taken before redis-server binds it.
        let mut last_err = String::new();
        for _ in 0..5 {
            let mut server = RedisServer {
                port: free_port(),
                dir,
                appendonly,
                child: None,
            };
            match server.spawn().await {
                Ok(()) => return server,
                Err(e) => {
                    last_err = e;
                    dir = server.take_dir();
                }
            }
        }
        panic!("redis-server did not start: {last_err}");
    }

    fn take_dir(self) -> tempfile::TempDir {
        let RedisServer { dir, mut child, .. } = self;
        if let Some(c) = child.as_mut() {
            let _ = c.start_kill();
        }
        dir
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let log = self.dir.path().join("redis.log");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", if self.appendonly { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("exited with {status}; log:\n{log}"));
            }
            if self.ping().await {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.start_kill();
                return Err(format!(
                    "no PONG on port {} within {START_TIMEOUT:?}",
                    self.port
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// True when the server answers PING now (and is done loading its data).
    async fn ping(&self) -> bool {
        let attempt = async {
            let mut s = TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
            s.write_all(b"PING\r\n").await.ok()?;
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await.ok()?;
            buf[..n].starts_with(b"+PONG").then_some(())
        };
        tokio::time::timeout(Duration::from_millis(500), attempt)
            .await
            .ok()
            .flatten()
            .is_some()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Runs one command on a fresh connection (test set-up and inspection).
    pub async fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut conn).await.unwrap()
    }

    /// Shuts the server down cleanly (`SHUTDOWN`: the append-only file is flushed).
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)).await {
            let _ = s.write_all(b"SHUTDOWN\r\n").await;
        }
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }

    /// Kills the server with SIGKILL: no chance to flush anything.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same port and directory (stopping it first if it
    /// runs). With [`start`](Self::start) it comes back empty, with
    /// [`start_persistent`](Self::start_persistent) with its data.
    pub async fn restart(&mut self) {
        self.stop().await;
        if let Err(e) = self.spawn().await {
            panic!("redis-server did not restart on port {}: {e}", self.port);
        }
    }
}
