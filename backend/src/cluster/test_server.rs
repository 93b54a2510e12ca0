//! A private `redis-server` for the unit tests of the Redis implementations (the
//! directory's, the inbox's): started on a free port, killed on drop.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::keys::Keys;
use crate::store::RedisStore;

/// A private `redis-server` on a free port of 127.0.0.1, keeping nothing on disk,
/// killed on drop (the minimal start of `tests/it/support/redis.rs`).
pub(crate) struct Server {
    port: u16,
    _dir: tempfile::TempDir,
    _child: Child,
}

impl Server {
    pub(crate) async fn start() -> Self {
        let found = std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join("redis-server").is_file())
        });
        assert!(
            found,
            "Redis test cannot run: redis-server is not on PATH (run `cargo xtask setup`)"
        );
        let mut last = String::new();
        // The port is free when picked but could be taken before redis-server binds it.
        for _ in 0..5 {
            match Self::try_start().await {
                Ok(server) => return server,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    async fn try_start() -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        let url = format!("redis://127.0.0.1:{port}/0");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited with {status}"));
            }
            let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
                {
                    return Ok(Server {
                        port,
                        _dir: dir,
                        _child: child,
                    });
                }
            }
            if Instant::now() > deadline {
                return Err(format!("no PONG on port {port}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A store (and its directory and inbox) under its own prefix: a fresh data set.
    pub(crate) async fn store(&self, prefix: &str) -> RedisStore {
        RedisStore::connect(&self.url(), Keys::new(prefix).unwrap(), 10_000)
            .await
            .unwrap()
    }
}
