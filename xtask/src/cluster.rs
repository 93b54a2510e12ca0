//! `cargo xtask cluster`: a local multi-instance Huddle to try in the browser.
//!
//! Starts a private `redis-server`, three release `huddle` instances sharing it on
//! 127.0.0.1:3001-3003, and nginx on 127.0.0.1:3000 in front of them, configured from
//! `deploy/nginx-cluster.conf` (the file docs/deploy.md describes). Everything runs in
//! the foreground until Ctrl-C, or until one process dies, which stops the rest. State
//! lives in `target/cluster/` and starts empty each time.

use std::fs;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use crate::{dist, setup, Ctx};

/// Where nginx listens: the URL to open.
const BALANCER: &str = "127.0.0.1:3000";
/// The instances' addresses.
const INSTANCES: [&str; 3] = ["127.0.0.1:3001", "127.0.0.1:3002", "127.0.0.1:3003"];
/// The private Redis (not 6379, which a system Redis may hold).
const REDIS_PORT: u16 = 6391;
const NGINX_TEMPLATE: &str = include_str!("../../deploy/nginx-cluster.conf");

/// Child processes, killed when dropped (also when starting one of them fails).
struct Fleet(Vec<(String, Child)>);

impl Drop for Fleet {
    fn drop(&mut self) {
        // SIGTERM first: nginx's master passes it on to its workers, which a SIGKILL to
        // the master would leave running.
        for (_, child) in &self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, child) in &mut self.0 {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) fn cluster(ctx: &Ctx) -> Result<()> {
    dist(ctx)?;
    let redis = ctx
        .which(setup::REDIS_SERVER)
        .context("redis-server is not installed: run `cargo xtask setup` as root, or `sudo apt-get install redis-server`")?;
    for addr in INSTANCES.iter().chain([&BALANCER]) {
        if TcpStream::connect(addr).is_ok() {
            bail!("{addr} is already in use: stop whatever listens there (another `cargo xtask cluster` or `run`?)");
        }
    }
    let state = ctx.target_dir().join("cluster");
    if state.exists() {
        fs::remove_dir_all(&state).with_context(|| format!("cannot clear {}", state.display()))?;
    }
    fs::create_dir_all(&state).with_context(|| format!("cannot create {}", state.display()))?;

    let mut fleet = Fleet(Vec::new());
    let port = REDIS_PORT.to_string();
    let redis_child = ctx
        .cmd(redis)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&state)
        .stdout(Stdio::null())
        .spawn()
        .context("could not start redis-server")?;
    fleet.0.push(("redis-server".to_owned(), redis_child));
    wait_listening(&format!("127.0.0.1:{port}"), "redis-server")?;

    let huddle = ctx.target_dir().join("release").join(crate::exe("huddle"));
    let url = format!("redis://127.0.0.1:{port}/0");
    for (i, addr) in INSTANCES.iter().enumerate() {
        let child = Command::new(&huddle)
            .args(["--addr", addr, "--redis", &url])
            .arg("--db")
            .arg(state.join(format!("unused-{i}.db")))
            .spawn()
            .with_context(|| format!("could not start {}", huddle.display()))?;
        fleet.0.push((format!("huddle on {addr}"), child));
    }
    for addr in INSTANCES {
        wait_listening(addr, "huddle")?;
    }

    let open = match setup::nginx_binary(ctx) {
        Some(nginx) => {
            let servers: Vec<String> = INSTANCES
                .iter()
                .map(|a| format!("server {a} max_fails=1 fail_timeout=5s;"))
                .collect();
            let conf = NGINX_TEMPLATE
                .replace("__PREFIX__", &state.display().to_string())
                .replace("__LISTEN__", BALANCER)
                .replace("__UPSTREAMS__", &servers.join("\n        "));
            let conf_path = state.join("nginx.conf");
            fs::write(&conf_path, conf)?;
            let child = Command::new(nginx)
                .arg("-p")
                .arg(&state)
                .arg("-c")
                .arg(&conf_path)
                .args(["-e", "stderr", "-g", "daemon off;"])
                .spawn()
                .context("could not start nginx")?;
            fleet.0.push(("nginx".to_owned(), child));
            wait_listening(BALANCER, "nginx")?;
            format!("http://{BALANCER}/ (nginx, round robin over the three)")
        }
        None => {
            println!("note: nginx is not available (`cargo xtask setup` unpacks it); open an instance directly");
            format!("http://{}/", INSTANCES[0])
        }
    };
    println!();
    println!(
        "Huddle cluster: redis on 127.0.0.1:{port}, instances on {}",
        INSTANCES.join(", ")
    );
    println!("open {open}");
    println!("Open it in several windows, then stop one instance (`kill -9` its pid from the");
    println!("list below): its clients reconnect to another and nothing is lost.");
    for (name, child) in &fleet.0 {
        println!("  {name}: pid {}", child.id());
    }
    println!("Ctrl-C stops everything.");
    println!();

    // Ctrl-C reaches every process of the foreground group. An instance may die (that
    // is the point of the demo); without Redis, nginx or any instance, stop.
    let mut gone = vec![false; fleet.0.len()];
    loop {
        for (i, (name, child)) in fleet.0.iter_mut().enumerate() {
            if gone[i] {
                continue;
            }
            if let Some(status) = child.try_wait()? {
                gone[i] = true;
                if !name.starts_with("huddle") {
                    println!("{name} exited ({status}); stopping the cluster");
                    return Ok(());
                }
                println!("{name} exited ({status}); the others carry on");
            }
        }
        let instances = fleet
            .0
            .iter()
            .zip(&gone)
            .filter(|((n, _), _)| n.starts_with("huddle"));
        if instances.clone().all(|(_, g)| *g) {
            println!("every instance exited; stopping the cluster");
            return Ok(());
        }
        thread::sleep(Duration::from_millis(200));
    }
}

fn wait_listening(addr: &str, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not start listening on {addr}; see its output above")
}
