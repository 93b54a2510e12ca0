//! nginx as the load balancer in front of several Huddle instances, configured from the
//! same file `cargo xtask cluster` uses (`deploy/nginx-cluster.conf`): a real proxy on
//! its own free port, its own prefix directory, killed on drop.
//!
//! The binary is `$HUDDLE_NGINX` (`cargo xtask test` sets it to the one `cargo xtask
//! setup` unpacked into `target/tools`) or `nginx` on PATH.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::{free_port, which};

/// The deployed configuration, with its placeholders (see the file's header).
pub const TEMPLATE: &str = include_str!("../../../../deploy/nginx-cluster.conf");

/// The nginx binary to run, if there is one: `$HUDDLE_NGINX`, `nginx` on PATH, or the one
/// `cargo xtask setup` unpacks into the default target directory.
pub fn binary() -> Option<PathBuf> {
    let unpacked =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/nginx/usr/sbin/nginx");
    std::env::var_os("HUDDLE_NGINX")
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .or_else(|| which("nginx"))
        .or_else(|| unpacked.exists().then_some(unpacked))
}

/// One nginx process balancing over some instances.
pub struct Nginx {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then stops its worker, which would otherwise
        // outlive it, holding the port.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Nginx {
    /// Starts nginx in front of `upstreams` and waits until it accepts connections.
    pub async fn start(upstreams: &[SocketAddr]) -> Nginx {
        Nginx::start_with(TEMPLATE, upstreams).await
    }

    /// Like [`Nginx::start`], with a configuration of its own: `template` has the
    /// placeholders of [`TEMPLATE`] (a test's variation of it).
    pub async fn start_with(template: &str, upstreams: &[SocketAddr]) -> Nginx {
        let binary = binary().expect("nginx is not installed (run `cargo xtask setup`)");
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let servers: Vec<String> = upstreams
            .iter()
            .map(|a| format!("server {a} max_fails=1 fail_timeout=5s;"))
            .collect();
        let conf = template
            .replace("__PREFIX__", &dir.path().display().to_string())
            .replace("__LISTEN__", &addr.to_string())
            .replace("__UPSTREAMS__", &servers.join("\n        "));
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .args(["-e", "stderr", "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start nginx");
        for _ in 0..200 {
            if TcpStream::connect(addr).await.is_ok() {
                return Nginx {
                    addr,
                    child,
                    _dir: dir,
                };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("nginx exited with {status} (its error is above)");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("nginx did not start listening on {addr}");
    }
}
