//! `cargo xtask cluster`: a local multi-instance Huddle to try in the browser.
//!
//! Starts a private `redis-server`, three release `huddle` instances sharing it on
//! 127.0.0.1:3001-3003, and nginx on 127.0.0.1:3000 in front of them, configured from
//! `deploy/nginx-cluster.conf` (the file docs/deploy.md describes). Everything runs in
//! the foreground until Ctrl-C, or until one process dies, which stops the rest. State
//! lives in `target/cluster/` and starts empty each time.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::process::Supervised;
use crate::{dist, setup, Ctx};

/// Where nginx listens: the URL to open.
const BALANCER: &str = "127.0.0.1:3000";
/// The instances' addresses.
const INSTANCES: [&str; 3] = ["127.0.0.1:3001", "127.0.0.1:3002", "127.0.0.1:3003"];
/// The private Redis (not 6379, which a system Redis may hold).
const REDIS_PORT: u16 = 6391;
const NGINX_TEMPLATE: &str = include_str!("../../deploy/nginx-cluster.conf");

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

    // Every process is stopped when this is dropped, also when starting one fails.
    let mut fleet: Vec<Supervised> = Vec::new();
    let port = REDIS_PORT.to_string();
    let mut redis_cmd = ctx.cmd(redis);
    redis_cmd.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port,
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    redis_cmd.arg("--dir").arg(&state).stdout(Stdio::null());
    fleet.push(Supervised::spawn("redis-server", &mut redis_cmd)?);
    let redis_addr = SocketAddr::from(([127, 0, 0, 1], REDIS_PORT));
    fleet[0].wait_listening(redis_addr)?;

    let huddle = ctx.target_dir().join("release").join(crate::exe("huddle"));
    let url = format!("redis://127.0.0.1:{port}/0");
    for (i, addr) in INSTANCES.iter().enumerate() {
        let mut cmd = Command::new(&huddle);
        cmd.args(["--addr", addr, "--redis", &url])
            .arg("--db")
            .arg(state.join(format!("unused-{i}.db")));
        fleet.push(Supervised::spawn(format!("huddle on {addr}"), &mut cmd)?);
    }
    for (i, addr) in INSTANCES.iter().enumerate() {
        fleet[1 + i].wait_listening(addr.parse()?)?;
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
            let mut cmd = Command::new(nginx);
            cmd.arg("-p").arg(&state).arg("-c").arg(&conf_path).args([
                "-e",
                "stderr",
                "-g",
                "daemon off;",
            ]);
            let mut balancer = Supervised::spawn("nginx", &mut cmd)?;
            balancer.wait_listening(BALANCER.parse()?)?;
            fleet.push(balancer);
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
    for process in &fleet {
        println!("  {}: pid {}", process.name(), process.pid());
    }
    println!("Ctrl-C stops everything.");
    println!();

    // Ctrl-C reaches every process of the foreground group. An instance may die (that
    // is the point of the demo); without Redis, nginx or any instance, stop.
    let mut gone = vec![false; fleet.len()];
    loop {
        for (i, process) in fleet.iter_mut().enumerate() {
            if gone[i] {
                continue;
            }
            if let Some(status) = process.exited()? {
                gone[i] = true;
                let name = process.name();
                if !name.starts_with("huddle") {
                    println!("{name} exited ({status}); stopping the cluster");
                    return Ok(());
                }
                println!("{name} exited ({status}); the others carry on");
            }
        }
        let mut instances = fleet
            .iter()
            .zip(&gone)
            .filter(|(p, _)| p.name().starts_with("huddle"));
        if instances.all(|(_, g)| *g) {
            println!("every instance exited; stopping the cluster");
            return Ok(());
        }
        thread::sleep(Duration::from_millis(200));
    }
}
