//! `cargo xtask bench <scenario>`: the benchmarks of BENCHMARKS.md, run against release
//! `huddle` processes this command starts itself (fresh database, random free port,
//! pinned to CPU 0) and driven by the release `loadgen` (pinned to CPU 1), with the
//! open-files limit raised for both.
//!
//! `fanout`, `idle`, `rooms` and `targets` also measure the floor (`loadgen floor`: a
//! minimal broadcast server on the same sockets, started the same way) with the same
//! clients and steps, alternating which server goes first at each step, so every figure
//! is also a ratio to the floor taken on the same machine at the same moment (absolute
//! numbers on these shared machines move by 30 % from day to day; the ratios much
//! less). `targets` produces the table of targets in one session.
//!
//! Each measurement is one `loadgen run` against a freshly started server, so no step
//! inherits another's rooms, backlog or memory. Every result is appended as one JSON line
//! to `<target>/bench/results.jsonl` (`{"scenario", "run", "step", "report"}`, the
//! report being loadgen's line); `fanout` also redraws `docs/bench/fanout.svg`. With
//! `--transport sse` the clients use the SSE fallback instead of WebSockets, and the
//! results are their own series (`fanout-sse`; no floor, no chart). The
//! scenarios are bounded: a fixed list of steps, each with loadgen's own time limits.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use crate::process::Supervised;
use crate::{exe, setup, Ctx};

mod targets;

/// The p99 the `fanout` ramp must stay within (the target).
const P99_LIMIT_MS: f64 = 100.0;
/// Offered deliveries/s of the `fanout` ramp's steps (send rate × room size).
const FANOUT_STEPS: [f64; 12] = [
    10e3, 25e3, 50e3, 75e3, 100e3, 150e3, 200e3, 300e3, 500e3, 750e3, 1e6, 2e6,
];
/// The room sizes for `fanout`.
const FANOUT_SIZES: [usize; 3] = [1_000, 5_000, 20_000];
/// Senders in `fanout` and `cluster`.
const FANOUT_SENDERS: usize = 10;
/// `idle` aims for this many connections (the target).
const IDLE_TARGET: usize = 250_000;
/// File descriptors kept free beyond one per connection (listener, database, logs, …).
const FD_MARGIN: u64 = 500;
/// The flags every bench server gets: all load comes from one machine, so the
/// per-address limits and the per-connection send rate would measure themselves.
const SERVER_FLAGS: [&str; 12] = [
    "--log",
    "warn",
    "--max-connections",
    "300000",
    "--max-connections-per-ip",
    "0",
    "--ip-join-rate",
    "0",
    "--rate-per-sec",
    "1000000",
    "--rate-burst",
    "1000000",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// One room of N (1,000 / 5,000 / 20,000), 10 senders, ramping until p99 > 100 ms.
    Fanout,
    /// Ramp to 250,000 idle connections in rooms of 10; server RSS per connection.
    Idle,
    /// 10,000 rooms of 5, everyone sending 1 msg/s.
    Rooms,
    /// Acked messages/s into SQLite (or Redis with --redis), then kill -9, restart, verify.
    Durable,
    /// `fanout` against three instances sharing one Redis.
    Cluster,
    /// Sign-ins per second: `POST /api/auth/login` (argon2id), `hello {token}` and guest
    /// `hello {nick}`, N clients at once (default 16), each part for --duration (default 5).
    Signins,
    /// Alerts per second into inboxes: one room of N (default 1,000); first each message
    /// names 250 members as `@nick`, then (a fresh server) every member is at level
    /// `all`, so each message alerts the other N − 1.
    Alerts,
    /// Web Pushes per second: N users (default 200) subscribed to a push service inside
    /// the load generator, 25 alerts each posted through the notifications API.
    Pushes,
    /// `history` page latency (pages of 100): a room of N messages (default 1,000) each
    /// with 3-5 reactions from different users, every 2nd edited once or twice, every
    /// 50th deleted, then the same room of plain messages; each on a fresh server
    /// (SQLite, or Redis with --redis), up to 10,000 pages or --duration (default 60).
    History,
    /// The targets in one session, each for Huddle and the floor with the ratio:
    /// one room of N (default 5,000): server CPU at 50k deliveries/s, the highest
    /// deliveries/s with p99 ≤ 100 ms (a ramp), 500k/s offered, RSS per connection; and
    /// idle connections in rooms of 10 (default 10,000): RSS per idle connection.
    Targets,
}

/// How the load generator's clients connect (`loadgen run --transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Transport {
    /// WebSockets (`/ws`).
    #[default]
    Ws,
    /// The SSE fallback: `GET /sse` for the server's frames, `POST /sse/send` for the
    /// client's.
    Sse,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Sse => "sse",
        }
    }
}

/// The transports of a run's members and senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transports {
    members: Transport,
    senders: Transport,
}

impl Transports {
    fn all_ws(self) -> bool {
        self.members == Transport::Ws && self.senders == Transport::Ws
    }

    /// What a scenario's name in the results gets: nothing for WebSockets, `-sse` for
    /// SSE throughout, `-sse-ws-senders` for SSE members with WebSocket senders.
    fn suffix(self) -> String {
        match (self.members, self.senders) {
            (Transport::Ws, Transport::Ws) => String::new(),
            (m, s) if m == s => format!("-{}", m.name()),
            (m, s) => format!("-{}-{}-senders", m.name(), s.name()),
        }
    }

    /// `loadgen run`'s flags for them (none for WebSockets, the default).
    fn args(self) -> Vec<String> {
        if self.all_ws() {
            return Vec::new();
        }
        vec![
            format!("--transport={}", self.members.name()),
            format!("--sender-transport={}", self.senders.name()),
        ]
    }
}

/// Which server a measurement is of; results lines carry it as `"server"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    Huddle,
    /// `loadgen floor`: the least a broadcast server can do with the same sockets.
    Floor,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Huddle => "huddle",
            Server::Floor => "floor",
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    #[arg(value_enum)]
    scenario: Scenario,
    /// fanout/cluster: this room size only; idle: connections to reach; rooms: rooms of 5;
    /// durable: senders; signins: clients at once; alerts: room members; pushes: users;
    /// history: messages in the room.
    #[arg(long)]
    n: Option<usize>,
    /// Seconds each measurement window lasts (default 10; signins: each of its three
    /// parts, default 5; history: at most, default 60).
    #[arg(long)]
    duration: Option<u64>,
    /// Scaled-down parameters: a quick check that everything works (about a minute).
    #[arg(long)]
    quick: bool,
    /// durable, history: history in Redis (`huddle --redis`, a private redis-server)
    /// instead of SQLite.
    #[arg(long)]
    redis: bool,
    /// fanout/cluster: offered deliveries/s of each step, comma-separated (default: a ramp
    /// from 10k to 2M that stops once p99 passes 100 ms).
    #[arg(long, value_delimiter = ',')]
    offered: Vec<f64>,
    /// Benchmark this `huddle` binary instead of building the working tree's (e.g. a
    /// release build of an earlier commit, for a before/after comparison).
    #[arg(long, value_name = "PATH")]
    server_bin: Option<PathBuf>,
    /// fanout, idle, rooms, targets: measure Huddle only, not the floor beside it.
    #[arg(long)]
    no_floor: bool,
    /// fanout, cluster: how the room's members connect. `sse`: the fallback over plain
    /// HTTP (`GET /sse`, `POST /sse/send`); its results are recorded as `fanout-sse`
    /// (`cluster-sse`), without the floor (it speaks WebSocket only), and
    /// docs/bench/fanout.svg is not redrawn.
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    transport: Transport,
    /// fanout, cluster: how the senders connect (default: as --transport); SSE members
    /// with WebSocket senders are recorded as `fanout-sse-ws-senders`.
    #[arg(long, value_enum)]
    sender_transport: Option<Transport>,
    /// Extra flags for every `huddle` the bench starts, after `--` (e.g. `-- --outbox 65536`);
    /// one that the bench also sets (e.g. `--rate-per-sec`) replaces the bench's value.
    #[arg(last = true)]
    server_args: Vec<String>,
}

impl BenchArgs {
    fn transports(&self) -> Transports {
        Transports {
            members: self.transport,
            senders: self.sender_transport.unwrap_or(self.transport),
        }
    }

    /// Seconds of each measurement window: `--duration`, 10 by default, 3 with `--quick`.
    fn window(&self) -> u64 {
        match (self.duration, self.quick) {
            (Some(d), _) => d,
            (None, true) => 3,
            (None, false) => 10,
        }
    }
}

pub(crate) fn bench(ctx: &Ctx, args: &BenchArgs) -> Result<()> {
    if args.duration.is_some_and(|d| d == 0 || d > 600) {
        bail!("--duration must be 1..=600 seconds");
    }
    if !args.transports().all_ws() && !matches!(args.scenario, Scenario::Fanout | Scenario::Cluster)
    {
        bail!("--transport and --sender-transport apply to fanout and cluster only");
    }
    let b = Bench::prepare(ctx, args)?;
    let result = match args.scenario {
        Scenario::Fanout => fanout(&b, args, Topology::Single),
        Scenario::Cluster => fanout(&b, args, Topology::Cluster),
        Scenario::Idle => idle(&b, args),
        Scenario::Rooms => rooms(&b, args),
        Scenario::Durable => durable(&b, args),
        Scenario::Signins => signins(&b, args),
        Scenario::Alerts => alerts(&b, args),
        Scenario::Pushes => pushes(&b, args),
        Scenario::History => history(&b, args),
        Scenario::Targets => targets::targets(&b, args),
    };
    let _ = fs::remove_dir_all(&b.scratch);
    result?;
    println!();
    println!("results appended to {}", b.results.display());
    Ok(())
}

/// Built binaries, limits and paths shared by every step.
struct Bench<'a> {
    ctx: &'a Ctx,
    huddle: PathBuf,
    /// `huddle` flags given after `--`.
    server_args: Vec<String>,
    loadgen: PathBuf,
    redis: Option<PathBuf>,
    /// Open-files limit both sides run with.
    nofile: u64,
    /// `taskset` when there are two CPUs to pin to.
    pin: bool,
    results: PathBuf,
    scratch: PathBuf,
    /// Whether the floor runs beside Huddle.
    floor: bool,
    /// How `loadgen run`'s clients connect.
    transports: Transports,
    /// Names this invocation in the results.
    run: String,
    steps: std::cell::Cell<u32>,
}

impl<'a> Bench<'a> {
    fn prepare(ctx: &'a Ctx, args: &BenchArgs) -> Result<Self> {
        let release = ctx.target_dir().join("release");
        let huddle = match &args.server_bin {
            Some(bin) if bin.is_file() => fs::canonicalize(bin)?,
            Some(bin) => bail!("--server-bin {}: no such file", bin.display()),
            None => {
                // The release server embeds dist/ (rust-embed); the bench needs no web
                // app, so an empty folder will do when the bundle was never built.
                let dist = ctx.root.join("dist");
                if !dist.exists() {
                    fs::create_dir_all(&dist).context("cannot create dist/")?;
                }
                ctx.run(ctx.cargo().args([
                    "build",
                    "--release",
                    "-p",
                    "backend",
                    "--bin",
                    "huddle",
                ]))
                .context("building the release server failed: see the compiler output above")?;
                release.join(exe("huddle"))
            }
        };
        ctx.run(
            ctx.cargo()
                .args(["build", "--release", "-p", "loadgen", "--bin", "loadgen"]),
        )
        .context("building the load generator failed: see the compiler output above")?;
        let redis = ctx.which(setup::REDIS_SERVER);
        let needs_redis = args.scenario == Scenario::Cluster || args.redis;
        if needs_redis && redis.is_none() {
            bail!("this scenario needs redis-server: run `cargo xtask setup` as root, or `apt-get install redis-server`");
        }
        for tool in ["prlimit", "taskset", "kill"] {
            if ctx.which(tool).is_none() {
                bail!("`{tool}` is missing: install util-linux (and procps)");
            }
        }
        let pin = thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
        if !pin {
            println!("warning: fewer than 2 CPUs: server and load generator are not pinned apart");
        }
        let dir = ctx.target_dir().join("bench");
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let scratch = dir.join(format!("tmp-{secs}"));
        fs::create_dir_all(&scratch)
            .with_context(|| format!("cannot create {}", scratch.display()))?;
        let nofile = raise_nofile(ctx, IDLE_TARGET as u64 + FD_MARGIN)?;
        println!("open files: {nofile} per process (server and load generator)");
        Ok(Bench {
            ctx,
            huddle,
            server_args: args.server_args.clone(),
            loadgen: release.join(exe("loadgen")),
            redis,
            nofile,
            pin,
            results: dir.join("results.jsonl"),
            scratch,
            // The floor speaks WebSocket only: an SSE run measures Huddle alone.
            floor: !args.no_floor && args.transports().all_ws(),
            transports: args.transports(),
            run: format!("{secs:012}"),
            steps: std::cell::Cell::new(0),
        })
    }

    /// The bench's own server flags, less those given again after `--` (huddle refuses a
    /// flag twice, and the user's choice wins).
    fn server_flags(&self) -> Vec<&'static str> {
        let given = |flag: &str| {
            self.server_args
                .iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        };
        SERVER_FLAGS
            .chunks(2)
            .filter(|pair| !given(pair[0]))
            .flatten()
            .copied()
            .collect()
    }

    /// Every flag a bench server gets: the bench's, `extra`, and those after `--`.
    fn flags_shown(&self, extra: &[&str]) -> Vec<String> {
        let mut flags: Vec<String> = self
            .server_flags()
            .iter()
            .map(|f| (*f).to_owned())
            .collect();
        flags.extend(extra.iter().map(|f| (*f).to_owned()));
        flags.extend(self.server_args.iter().cloned());
        flags
    }

    /// Most connections one process can hold here.
    fn max_connections(&self) -> usize {
        self.nofile.saturating_sub(FD_MARGIN) as usize
    }

    /// A command under the raised limit, pinned to `cpu`.
    fn pinned(&self, cpu: u32, program: &Path) -> Command {
        let limit = format!("--nofile={0}:{0}", self.nofile);
        let mut cmd = self.ctx.cmd("prlimit");
        cmd.arg(limit);
        if self.pin {
            cmd.args(["taskset", "-c", &cpu.to_string()]);
        }
        cmd.arg(program);
        cmd
    }

    /// A fresh scratch directory for one step.
    fn step_dir(&self) -> Result<PathBuf> {
        let n = self.steps.get() + 1;
        self.steps.set(n);
        let dir = self.scratch.join(format!("step-{n}"));
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    /// Starts `huddle` on a free port with `db` and the bench flags plus `extra`.
    fn start_huddle(&self, dir: &Path, db: &Path, extra: &[&str]) -> Result<Proc> {
        self.start_huddle_at(dir, db, free_port()?, extra)
    }

    fn start_huddle_at(&self, dir: &Path, db: &Path, port: u16, extra: &[&str]) -> Result<Proc> {
        self.start_huddle_env(dir, db, port, extra, &[])
    }

    /// [`Bench::start_huddle_at`] with environment variables (secrets stay off the
    /// command line).
    fn start_huddle_env(
        &self,
        dir: &Path,
        db: &Path,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Proc> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = dir.join(format!("huddle-{port}.log"));
        let mut cmd = self.pinned(0, &self.huddle);
        cmd.envs(env.iter().copied());
        cmd.arg("--addr")
            .arg(addr.to_string())
            .arg("--db")
            .arg(db)
            .args(self.server_flags())
            .args(extra)
            .args(&self.server_args);
        let mut proc = Proc::spawn("huddle", cmd, &log)?;
        proc.process.wait_listening(addr)?;
        proc.addr = Some(addr);
        Ok(proc)
    }

    /// Starts the floor (`loadgen floor`) on a free port, pinned and limited like
    /// `huddle`.
    fn start_floor(&self, dir: &Path) -> Result<Proc> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = self.pinned(0, &self.loadgen);
        cmd.arg("floor").arg("--listen").arg(addr.to_string());
        let mut proc = Proc::spawn("floor", cmd, &dir.join(format!("floor-{port}.log")))?;
        proc.process.wait_listening(addr)?;
        proc.addr = Some(addr);
        Ok(proc)
    }

    /// The servers a floor-aware scenario measures, in the order of `step` (which
    /// alternates, so neither always runs first on a warmer or busier machine).
    fn servers(&self, step: usize) -> Vec<Server> {
        match (self.floor, step % 2) {
            (false, _) => vec![Server::Huddle],
            (true, 0) => vec![Server::Huddle, Server::Floor],
            (true, _) => vec![Server::Floor, Server::Huddle],
        }
    }

    /// Starts a fresh `server` (Huddle with a new database) for one step.
    fn start(&self, server: Server, dir: &Path) -> Result<Proc> {
        match server {
            Server::Huddle => self.start_huddle(dir, &dir.join("bench.db"), &[]),
            Server::Floor => self.start_floor(dir),
        }
    }

    /// Starts a private `redis-server` on a free port, pinned with the servers.
    fn start_redis(&self, dir: &Path) -> Result<(Proc, String)> {
        let redis = self
            .redis
            .as_ref()
            .context("redis-server is not installed")?;
        let port = free_port()?;
        let mut cmd = self.pinned(0, redis);
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--maxclients", "10000"])
            .arg("--dir")
            .arg(dir);
        let proc = Proc::spawn("redis-server", cmd, &dir.join("redis.log"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !redis_pong(addr) {
            if Instant::now() > deadline {
                bail!("redis-server did not answer PING on {addr} within 10s");
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok((proc, format!("redis://{addr}/0")))
    }

    /// Runs `loadgen` with `args` (plus `--server-pid` for each of `servers`) and
    /// returns its report; the run's own summary goes to the terminal.
    fn loadgen(&self, label: &str, servers: &[&Proc], args: &[String]) -> Result<Value> {
        let mut cmd = self.pinned(1, &self.loadgen);
        let transport = self.transports.args();
        cmd.arg("run")
            .args(args)
            .args(&transport)
            .args(["--label", label]);
        cmd.args(["--threads", "1"]);
        for s in servers {
            cmd.args(["--server-pid", &s.pid().to_string()]);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        println!();
        println!(
            "$ loadgen run {} --label {label:?}",
            [args, &transport[..]].concat().join(" ")
        );
        let out = cmd.output().context("could not start loadgen")?;
        // 0: all good; 3: the run finished but found problems (still a result).
        if !matches!(out.status.code(), Some(0 | 3)) {
            bail!("loadgen failed ({}): see its message above", out.status);
        }
        let line = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(line.trim()).context("loadgen printed no JSON report")
    }

    /// Appends one result line (of Huddle).
    fn record(&self, scenario: &str, step: &Value, report: &Value) -> Result<()> {
        self.record_of(Server::Huddle, scenario, step, report)
    }

    /// Appends one result line of `server`.
    fn record_of(
        &self,
        server: Server,
        scenario: &str,
        step: &Value,
        report: &Value,
    ) -> Result<()> {
        let line = json!({"scenario": scenario, "run": self.run, "server": server.name(),
                          "step": step, "report": report});
        if let Some(dir) = self.results.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.results)
            .with_context(|| format!("cannot open {}", self.results.display()))?;
        writeln!(f, "{line}")?;
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Topology {
    Single,
    /// Three instances and one Redis.
    Cluster,
}

/// `fanout` and `cluster`: per room size, a fresh server per step, ramping the offered
/// load until p99 passes 100 ms, delivery falls behind, or anything is lost. `fanout`
/// ramps the floor beside Huddle, step by step (each server's ramp stops on its own).
fn fanout(b: &Bench<'_>, args: &BenchArgs, topology: Topology) -> Result<()> {
    let base = match topology {
        Topology::Single => "fanout",
        Topology::Cluster => "cluster",
    };
    // Other transports are their own series: the chart and the floor are WebSocket's.
    let name = &format!("{base}{}", b.transports.suffix());
    let sizes: Vec<usize> = match (args.n, args.quick) {
        (Some(n), _) => vec![n],
        (None, true) => vec![500],
        (None, false) => FANOUT_SIZES.to_vec(),
    };
    let steps: Vec<f64> = match (args.offered.is_empty(), args.quick) {
        (false, _) => args.offered.clone(),
        (true, true) => vec![10e3, 50e3],
        (true, false) => FANOUT_STEPS.to_vec(),
    };
    let duration = args.window();
    let mut summary = Vec::new();
    for &n in &sizes {
        if n > b.max_connections() {
            let why = format!(
                "N = {n} needs {} open files per process, but the limit here is {} and cannot \
                 be raised (no CAP_SYS_RESOURCE): skipped",
                n as u64 + FD_MARGIN,
                b.nofile
            );
            println!("\n{name} N={n}: {why}");
            b.record(name, &json!({"n": n, "skipped": why}), &Value::Null)?;
            summary.push(format!("N = {n}: skipped (open-files limit {})", b.nofile));
            continue;
        }
        let ramps = match topology {
            Topology::Single => ramp(b, name, n, &steps, duration)?,
            Topology::Cluster => cluster_ramp(b, n, &steps, duration)?,
        };
        for r in &ramps {
            summary.push(format!("N = {n}, {}", r.line()));
        }
        if let [h, f] = &ramps[..] {
            summary.push(format!(
                "N = {n}, huddle / floor: server CPU at 50k/s {}, highest with p99 ≤ 100 ms {}",
                ratio(
                    h.at_50k.as_ref().map(|x| x.server_cpu),
                    f.at_50k.as_ref().map(|x| x.server_cpu)
                ),
                ratio(h.best.map(|x| x.0), f.best.map(|x| x.0)),
            ));
        }
    }
    if topology == Topology::Single && b.transports.all_ws() {
        plot(b)?;
    }
    println!();
    println!("{name} summary:");
    for line in summary {
        println!("  {line}");
    }
    Ok(())
}

/// One server's way up the ramp.
struct Ramp {
    server: Server,
    /// Highest delivered/s that passed, with its p99 (ms).
    best: Option<(f64, f64)>,
    /// The step at 50k offered deliveries/s.
    at_50k: Option<Numbers>,
    /// Every step run, by offered deliveries/s.
    points: Vec<(f64, Numbers)>,
    /// Why the ramp ended.
    stopped: String,
    done: bool,
}

impl Ramp {
    fn new(server: Server) -> Self {
        Ramp {
            server,
            best: None,
            at_50k: None,
            points: Vec::new(),
            stopped: "every step passed".to_owned(),
            done: false,
        }
    }

    /// Takes one step's result; marks the ramp done when the step failed.
    fn take(&mut self, n: usize, offered: f64, r: Numbers) {
        if (offered - 50e3).abs() < 1.0 {
            self.at_50k = Some(r.clone());
        }
        if r.ready < n as u64 || r.disconnected > 0 {
            self.stopped = format!(
                "stopped at {offered} offered: {} of {n} clients joined, {} disconnected ({})",
                r.ready, r.disconnected, r.reasons
            );
            self.done = true;
        } else if r.p99_ms <= P99_LIMIT_MS && r.lossless && r.delivered_per_s >= 0.9 * offered {
            self.best = Some((r.delivered_per_s, r.p99_ms));
        } else {
            self.stopped = format!(
                "stopped at {offered} offered: p99 {:.1} ms, delivered {:.0}/s, lost {}, dup {}, undelivered {}",
                r.p99_ms, r.delivered_per_s, r.lost, r.duplicated, r.undelivered
            );
            self.done = true;
        }
        self.points.push((offered, r));
    }

    fn line(&self) -> String {
        let best = self.best.map_or("none".to_owned(), |(d, p)| {
            format!("{d:.0} msg/s (p99 {p:.1} ms)")
        });
        let cpu = self.at_50k.as_ref().map_or("not measured".to_owned(), |c| {
            format!("{:.1} %", c.server_cpu)
        });
        format!(
            "{}: highest delivered with p99 ≤ 100 ms: {best}; server CPU at 50k/s: {cpu}; {}",
            self.server.name(),
            self.stopped
        )
    }
}

/// `a / b` as "1.23×", or "—" when either is missing or b is 0.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".to_owned(),
    }
}

/// Ramps Huddle and (unless `--no-floor`) the floor together over `steps` with one room
/// of `n`: at each step each server still ramping runs once, a fresh process each time,
/// the order alternating from step to step. Results are recorded under `scenario`.
fn ramp(
    b: &Bench<'_>,
    scenario: &str,
    n: usize,
    steps: &[f64],
    duration: u64,
) -> Result<Vec<Ramp>> {
    let mut ramps: Vec<Ramp> = b.servers(0).into_iter().map(Ramp::new).collect();
    for (i, &offered) in steps.iter().enumerate() {
        for server in b.servers(i) {
            let Some(ramp) = ramps.iter_mut().find(|r| r.server == server && !r.done) else {
                continue;
            };
            let report = one_room_run(b, server, scenario, n, offered, duration)?;
            ramp.take(n, offered, Numbers::of(&report));
        }
        if ramps.iter().all(|r| r.done) {
            break;
        }
    }
    Ok(ramps)
}

/// One `loadgen run` with one room of `n` at `offered` deliveries/s against a fresh
/// `server`; its report, recorded under `scenario`.
fn one_room_run(
    b: &Bench<'_>,
    server: Server,
    scenario: &str,
    n: usize,
    offered: f64,
    duration: u64,
) -> Result<Value> {
    let rate = offered / n as f64;
    let dir = b.step_dir()?;
    let proc = b.start(server, &dir)?;
    let mut la = one_room_args(n, rate, duration);
    la.push(format!("--url={}", proc.url()));
    let label = format!(
        "{scenario} n={n} offered={offered} server={}",
        server.name()
    );
    let report = b.loadgen(&label, &[&proc], &la)?;
    drop(proc);
    let step = json!({"n": n, "offered": offered, "rate": rate});
    b.record_of(server, scenario, &step, &report)?;
    Ok(report)
}

/// loadgen's flags for one room of `n` with the fan-out senders at `rate` messages/s
/// each (the servers' `--url`s still to add).
fn one_room_args(n: usize, rate: f64, duration: u64) -> Vec<String> {
    vec![
        format!("--clients={n}"),
        "--rooms=1".to_owned(),
        format!("--senders={FANOUT_SENDERS}"),
        format!("--rate={rate}"),
        format!("--duration={duration}s"),
        "--drain=5s".to_owned(),
        "--setup-timeout=120s".to_owned(),
    ]
}

/// The `cluster` ramp: three instances and one Redis per step (no floor: it has no
/// cluster to compare with).
fn cluster_ramp(b: &Bench<'_>, n: usize, steps: &[f64], duration: u64) -> Result<Vec<Ramp>> {
    let mut ramp = Ramp::new(Server::Huddle);
    for &offered in steps {
        let rate = offered / n as f64;
        let dir = b.step_dir()?;
        let mut fleet = Vec::new();
        let mut urls = Vec::new();
        let (redis, url) = b.start_redis(&dir)?;
        fleet.push(redis);
        for i in 0..3 {
            let db = dir.join(format!("unused-{i}.db"));
            let s = b.start_huddle(&dir, &db, &["--redis", url.as_str()])?;
            urls.push(s.url());
            fleet.push(s);
        }
        let mut la = one_room_args(n, rate, duration);
        la.extend(urls.iter().map(|u| format!("--url={u}")));
        let label = format!("cluster{} n={n} offered={offered}", b.transports.suffix());
        let servers: Vec<&Proc> = fleet.iter().collect();
        let report = b.loadgen(&label, &servers, &la)?;
        drop(fleet);
        b.record(
            &format!("cluster{}", b.transports.suffix()),
            &json!({"n": n, "offered": offered, "rate": rate}),
            &report,
        )?;
        ramp.take(n, offered, Numbers::of(&report));
        if ramp.done {
            break;
        }
    }
    Ok(vec![ramp])
}

/// Draws `docs/bench/fanout.svg` from every fanout result so far (newest run per size).
fn plot(b: &Bench<'_>) -> Result<()> {
    let out = b.ctx.root.join("docs").join("bench").join("fanout.svg");
    let mut cmd = Command::new(&b.loadgen);
    cmd.arg("plot")
        .arg("--results")
        .arg(&b.results)
        .arg("--out")
        .arg(&out);
    b.ctx
        .run(&mut cmd)
        .context("drawing the fanout chart failed")
}

/// `idle`: ramp to 250,000 (or the most the open-files limit allows) idle connections
/// in rooms of 10, sampling server memory after each fifth.
fn idle(b: &Bench<'_>, args: &BenchArgs) -> Result<()> {
    let wanted = args
        .n
        .unwrap_or(if args.quick { 2_000 } else { IDLE_TARGET });
    let n = wanted.min(b.max_connections());
    if n < wanted {
        println!(
            "\nidle: the open-files limit here is {} and cannot be raised, so the ramp stops \
             at {n} connections instead of {wanted}",
            b.nofile
        );
    }
    let mut held = Vec::new();
    for server in b.servers(0) {
        let report = idle_run(b, server, "idle", n, args.window(), 5)?;
        b.record_of(server, "idle", &json!({"n": n, "wanted": wanted}), &report)?;
        held.push((server, Numbers::of(&report)));
    }
    println!();
    println!("idle summary (wanted {wanted}):");
    for (server, r) in &held {
        println!(
            "  {}: {} connections held, {:.0} bytes of server RSS per connection, connected at \
             {:.0} conn/s",
            server.name(),
            r.ready,
            r.rss_per_conn,
            r.connect_per_s
        );
    }
    if let [(_, h), (_, f)] = &held[..] {
        println!(
            "  huddle / floor: RSS per connection {}",
            ratio(Some(h.rss_per_conn), Some(f.rss_per_conn))
        );
    }
    Ok(())
}

/// One `idle` run: `n` idle connections in rooms of 10 against a fresh `server`,
/// opened in `ramp_steps` batches.
fn idle_run(
    b: &Bench<'_>,
    server: Server,
    scenario: &str,
    n: usize,
    window: u64,
    ramp_steps: usize,
) -> Result<Value> {
    let dir = b.step_dir()?;
    let proc = b.start(server, &dir)?;
    let la = vec![
        format!("--url={}", proc.url()),
        format!("--clients={n}"),
        format!("--rooms={}", (n / 10).max(1)),
        "--idle".to_owned(),
        format!("--duration={window}s"),
        format!("--ramp-steps={ramp_steps}"),
        "--connect-concurrency=512".to_owned(),
        "--setup-timeout=600s".to_owned(),
    ];
    let label = format!("{scenario} idle n={n} server={}", server.name());
    let report = b.loadgen(&label, &[&proc], &la)?;
    drop(proc);
    Ok(report)
}

/// `rooms`: rooms of 5, everyone sending 1 msg/s (10,000 rooms, or as many as the
/// open-files limit allows).
fn rooms(b: &Bench<'_>, args: &BenchArgs) -> Result<()> {
    let wanted = args.n.unwrap_or(if args.quick { 200 } else { 10_000 });
    let rooms = wanted.min(b.max_connections() / 5);
    if rooms < wanted {
        println!(
            "\nrooms: the open-files limit here is {}, so {rooms} rooms of 5 instead of {wanted}",
            b.nofile
        );
    }
    let clients = rooms * 5;
    let mut done = Vec::new();
    for server in b.servers(0) {
        let dir = b.step_dir()?;
        let proc = b.start(server, &dir)?;
        let la = vec![
            format!("--url={}", proc.url()),
            format!("--clients={clients}"),
            format!("--rooms={rooms}"),
            format!("--senders={clients}"),
            format!("--rate={clients}"),
            format!("--duration={}s", args.window()),
            "--drain=10s".to_owned(),
            "--connect-concurrency=512".to_owned(),
            "--setup-timeout=300s".to_owned(),
        ];
        let label = format!("rooms rooms={rooms} server={}", server.name());
        let report = b.loadgen(&label, &[&proc], &la)?;
        drop(proc);
        b.record_of(
            server,
            "rooms",
            &json!({"rooms": rooms, "wanted": wanted, "clients": clients}),
            &report,
        )?;
        done.push((server, Numbers::of(&report)));
    }
    println!();
    println!("rooms summary ({rooms} rooms of 5, 1 msg/s each):");
    for (server, r) in &done {
        println!(
            "  {}: delivered {:.0} msg/s (offered {:.0}), p99 {:.1} ms, server CPU {:.1} %, lost {}, \
             dup {}, undelivered {}",
            server.name(),
            r.delivered_per_s,
            r.offered,
            r.p99_ms,
            r.server_cpu,
            r.lost,
            r.duplicated,
            r.undelivered
        );
    }
    if let [(_, h), (_, f)] = &done[..] {
        println!(
            "  huddle / floor: server CPU {}, p99 {}",
            ratio(Some(h.server_cpu), Some(f.server_cpu)),
            ratio(Some(h.p99_ms), Some(f.p99_ms))
        );
    }
    Ok(())
}

/// `durable`: many senders as fast as acks allow (bounded in flight) for the window;
/// then the server is killed with SIGKILL with sends in flight, restarted on the same
/// database (or Redis), and every acked message is read back.
fn durable(b: &Bench<'_>, args: &BenchArgs) -> Result<()> {
    let senders = args.n.unwrap_or(if args.quick { 20 } else { 100 });
    let in_flight = 32;
    let dir = b.step_dir()?;
    let db = dir.join("bench.db");
    let port = free_port()?;
    let mut redis = None;
    let mut extra: Vec<String> = Vec::new();
    if args.redis {
        let (proc, url) = b.start_redis(&dir)?;
        extra = vec!["--redis".to_owned(), url];
        redis = Some(proc);
    }
    let extra_ref: Vec<&str> = extra.iter().map(String::as_str).collect();
    let server = b.start_huddle_at(&dir, &db, port, &extra_ref)?;
    let acks = dir.join("acks.txt");
    let la = vec![
        format!("--url={}", server.url()),
        format!("--clients={senders}"),
        format!("--rooms={senders}"),
        format!("--senders={senders}"),
        format!("--in-flight={in_flight}"),
        format!("--duration={}s", args.window()),
        format!("--acks-out={}", acks.display()),
        "--kill-server-at-end".to_owned(),
    ];
    let store = if args.redis { "redis" } else { "sqlite" };
    let report = b.loadgen(&format!("durable store={store}"), &[&server], &la)?;
    drop(server);

    // Same address and database: the restarted server must hold every acked message.
    // `verify` reads every room's whole history, far beyond the default read budget
    // (it would be refused `rate_limited`), so the restarted server gets the history
    // bench's budget.
    // (Unless given after `--`: a flag twice is an error.)
    let given = |flag: &str| {
        b.server_args
            .iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    let budget = HISTORY_FLAGS
        .chunks(2)
        .filter(|pair| !given(pair[0]))
        .flatten();
    let verify_flags: Vec<&str> = extra_ref.iter().chain(budget).copied().collect();
    let restarted = b.start_huddle_at(&dir, &db, port, &verify_flags)?;
    let mut verify = Command::new(&b.loadgen);
    verify
        .arg("verify")
        .arg(format!("--url={}", restarted.url()))
        .arg("--acks")
        .arg(&acks)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    println!(
        "\n$ loadgen verify --url={} --acks {}",
        restarted.url(),
        acks.display()
    );
    let out = verify.output().context("could not start loadgen verify")?;
    if !matches!(out.status.code(), Some(0 | 3)) {
        bail!(
            "loadgen verify failed ({}): see its message above",
            out.status
        );
    }
    let verdict: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
        .context("loadgen verify printed no JSON")?;
    drop(restarted);
    drop(redis);
    b.record(
        "durable",
        &json!({"store": store, "senders": senders, "in_flight": in_flight, "verify": verdict}),
        &report,
    )?;
    let r = Numbers::of(&report);
    println!();
    println!(
        "durable summary ({store}): {:.0} acked msg/s with {senders} senders × {in_flight} in flight; \
         after kill -9: {} of {} acked messages present, {} missing, {} mismatched",
        r.acked_per_s,
        verdict["present"],
        verdict["acked"],
        verdict["missing"],
        verdict["mismatched"]
    );
    if verdict["missing"] != 0 || verdict["mismatched"] != 0 {
        bail!(
            "acked messages were lost after kill -9: see {}",
            b.results.display()
        );
    }
    Ok(())
}

/// `signins`: one fresh server; `loadgen signins` registers one account per client, then
/// measures logins, `hello {token}` and guest `hello`s per second, one part after the
/// other, N clients at once for the window each.
fn signins(b: &Bench<'_>, args: &BenchArgs) -> Result<()> {
    let concurrency = args.n.unwrap_or(if args.quick { 4 } else { 16 });
    let secs = args.duration.unwrap_or(if args.quick { 2 } else { 5 });
    let dir = b.step_dir()?;
    let db = dir.join("bench.db");
    let server = b.start_huddle(&dir, &db, &[])?;
    let mut flags: Vec<String> = b.server_flags().iter().map(|f| (*f).to_owned()).collect();
    flags.extend(b.server_args.iter().cloned());
    let la = vec![
        format!("--url={}", server.url()),
        format!("--concurrency={concurrency}"),
        format!("--duration={secs}s"),
        format!("--label=signins c={concurrency}"),
        format!("--server-pid={}", server.pid()),
        "--threads=1".to_owned(),
    ];
    println!();
    println!("server flags: {}", flags.join(" "));
    println!("$ loadgen signins {}", la.join(" "));
    let mut cmd = b.pinned(1, &b.loadgen);
    cmd.arg("signins")
        .args(&la)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let out = cmd.output().context("could not start loadgen")?;
    if !matches!(out.status.code(), Some(0 | 3)) {
        bail!(
            "loadgen signins failed ({}): see its message above",
            out.status
        );
    }
    let report: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
        .context("loadgen signins printed no JSON report")?;
    // What the server really stored, beside what the load generator assumes.
    let stored = stored_argon2(&db);
    drop(server);
    b.record(
        "signins",
        &json!({"concurrency": concurrency, "part_s": secs, "server_flags": flags,
                "argon2_stored": stored}),
        &report,
    )?;
    println!();
    println!(
        "signins summary: {} CPUs online, server on CPU {}, load generator on CPU {}; \
         password hashes stored as {}; {} clients at once, {secs} s per part",
        report["cpus"],
        report["server_cpus"].as_str().unwrap_or("?"),
        report["loadgen_cpus"].as_str().unwrap_or("?"),
        stored.as_deref().unwrap_or("(not found in the database)"),
        concurrency
    );
    for p in report["parts"].as_array().into_iter().flatten() {
        let ms = |v: &Value| v.as_f64().unwrap_or(0.0) / 1000.0;
        println!(
            "  {:<6} {:>8.1}/s  p50 {:.2} ms  p99 {:.2} ms  failed {}  server CPU {:.0} %",
            p["name"].as_str().unwrap_or("?"),
            p["per_s"].as_f64().unwrap_or(0.0),
            ms(&p["p50_us"]),
            ms(&p["p99_us"]),
            p["failed"],
            p["server_cpu_pct"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(())
}

/// Runs `loadgen <sub> <args>` pinned to CPU 1 (its summary to the terminal) and returns
/// its JSON report.
fn loadgen_report(
    b: &Bench<'_>,
    sub: &str,
    args: &[String],
    env: &[(&str, &str)],
) -> Result<Value> {
    println!();
    println!("$ loadgen {sub} {}", args.join(" "));
    let mut cmd = b.pinned(1, &b.loadgen);
    cmd.arg(sub)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let out = cmd.output().context("could not start loadgen")?;
    // 0: all good; 3: the run finished but found problems (still a result).
    if !matches!(out.status.code(), Some(0 | 3)) {
        bail!(
            "loadgen {sub} failed ({}): see its message above",
            out.status
        );
    }
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
        .with_context(|| format!("loadgen {sub} printed no JSON report"))
}

/// Members each `alerts` message names (a 2,500-character text with short nicks).
const ALERT_MENTIONS: usize = 250;

/// `alerts`: per variant, a fresh server per run; N guests join one room. Variant
/// `mentions`: each message names 250 members (400 messages: 100,000 alerts); variant
/// `all`: every member at level `all`, messages naming nobody (100 messages: 999 alerts
/// each at N = 1,000). Each variant runs twice: as fast as acks allow (the most
/// alerts/s; the alerts queue up, so latency is the backlog's), then paced at half the
/// message rate that run reached, for the window (latency below saturation).
fn alerts(b: &Bench<'_>, args: &BenchArgs) -> Result<()> {
    let n = args.n.unwrap_or(if args.quick { 200 } else { 1_000 });
    if n < 2 {
        bail!("alerts needs --n of 2 or more");
    }
    let mentions = ALERT_MENTIONS.min(n - 1);
    let (mention_msgs, all_msgs) = if args.quick { (20, 10) } else { (400, 100) };
    let flags = b.flags_shown(&[]);
    println!();
    println!("server flags: {}", flags.join(" "));
    let mut summary = Vec::new();
    for (variant, messages, per_message) in [
        ("mentions", mention_msgs, mentions),
        ("all", all_msgs, n - 1),
    ] {
        let burst = alerts_run(b, n, variant, mentions, messages, None, &flags)?;
        summary.push(alerts_line(variant, "burst", &burst));
        // Half the message rate the burst sustained, for the window.
        let rate = burst["alerts_per_s"].as_f64().unwrap_or(0.0) / per_message as f64 / 2.0;
        if rate > 0.0 {
            let paced_msgs = ((rate * args.window() as f64).ceil() as usize).max(5);
            let paced = alerts_run(b, n, variant, mentions, paced_msgs, Some(rate), &flags)?;
            summary.push(alerts_line(variant, &format!("{rate:.2} msg/s"), &paced));
        }
    }
    println!();
    println!("alerts summary (room of {n}, {mentions} mentions per message in `mentions`):");
    for line in summary {
        println!("  {line}");
    }
    Ok(())
}

/// One `loadgen alerts` against a fresh server; its report, recorded.
fn alerts_run(
    b: &Bench<'_>,
    n: usize,
    variant: &str,
    mentions: usize,
    messages: usize,
    rate: Option<f64>,
    flags: &[String],
) -> Result<Value> {
    let dir = b.step_dir()?;
    let server = b.start_huddle(&dir, &dir.join("bench.db"), &[])?;
    let pace = rate.map_or("burst".to_owned(), |r| format!("rate={r:.2}"));
    let mut la = vec![
        format!("--url={}", server.url()),
        format!("--members={n}"),
        format!("--messages={messages}"),
        format!("--server-pid={}", server.pid()),
        format!("--label=alerts {variant} n={n} {pace}"),
        "--drain=300s".to_owned(),
        "--threads=1".to_owned(),
    ];
    la.push(if variant == "all" {
        "--all".to_owned()
    } else {
        format!("--mentions={mentions}")
    });
    if let Some(rate) = rate {
        la.push(format!("--rate={rate:.3}"));
    }
    let report = loadgen_report(b, "alerts", &la, &[])?;
    drop(server);
    b.record(
        "alerts",
        &json!({"variant": variant, "n": n, "messages": messages, "rate": rate,
                "server_flags": flags}),
        &report,
    )?;
    Ok(report)
}

fn alerts_line(variant: &str, pace: &str, report: &Value) -> String {
    let f = |k: &str| report[k].as_f64().unwrap_or(0.0);
    let ms = |k: &str| report["latency"][k].as_f64().unwrap_or(0.0) / 1000.0;
    format!(
        "{variant:<8} {pace:<12} {:>7.0} alerts/s ({} of {} in {:.1} s)  p50 {:.0} ms  \
         p99 {:.0} ms  server CPU {:.0} %  RSS {:.0} MiB  dup {} missing {} undelivered {}: {}",
        f("alerts_per_s"),
        report["received"],
        report["expected"],
        f("window_s"),
        ms("p50_us"),
        ms("p99_us"),
        f("server_cpu_pct"),
        f("server_rss_after") / 1048576.0,
        report["duplicated"],
        report["missing"],
        report["undelivered"],
        if report["ok"] == true { "OK" } else { "NOT OK" },
    )
}

/// `pushes`: one fresh server with the notifications API on (a random token, passed in
/// the environment), loopback push endpoints allowed and the per-user push cap out of
/// the way; N users subscribe, then 25 alerts each are posted by 16 clients at once.
fn pushes(b: &Bench<'_>, args: &BenchArgs) -> Result<()> {
    let users = args.n.unwrap_or(if args.quick { 20 } else { 200 });
    let per_user = if args.quick { 5 } else { 25 };
    let token = random_token()?;
    let extra = ["--push-hosts", "127.0.0.1", "--push-rate", "100000"];
    let flags = b.flags_shown(&extra);
    let env = [("HUDDLE_API_TOKEN", token.as_str())];
    let dir = b.step_dir()?;
    let server = b.start_huddle_env(&dir, &dir.join("bench.db"), free_port()?, &extra, &env)?;
    println!();
    println!("server flags: {} (and HUDDLE_API_TOKEN)", flags.join(" "));
    let la = vec![
        format!("--url={}", server.url()),
        format!("--users={users}"),
        format!("--per-user={per_user}"),
        "--concurrency=16".to_owned(),
        format!("--server-pid={}", server.pid()),
        format!("--label=pushes users={users}"),
        "--drain=300s".to_owned(),
        "--threads=1".to_owned(),
    ];
    let report = loadgen_report(b, "pushes", &la, &env)?;
    drop(server);
    b.record(
        "pushes",
        &json!({"users": users, "per_user": per_user, "server_flags": flags}),
        &report,
    )?;
    let f = |k: &str| report[k].as_f64().unwrap_or(0.0);
    let ms = |k: &str, p: &str| report[k][p].as_f64().unwrap_or(0.0) / 1000.0;
    println!();
    println!(
        "pushes summary: {:.0} pushes/s ({} of {} in {:.1} s), POST→push p50 {:.0} ms p99 {:.0} ms; \
         POSTs {:.0}/s (p99 {:.0} ms); server CPU {:.0} %; dup {} missing {} refused {}: {}",
        f("pushes_per_s"),
        report["pushed"],
        report["accepted"],
        f("window_s"),
        ms("latency", "p50_us"),
        ms("latency", "p99_us"),
        f("posts_per_s"),
        ms("post_latency", "p99_us"),
        f("server_cpu_pct"),
        report["duplicated"],
        report["missing"],
        report["refused"],
        if report["ok"] == true { "OK" } else { "NOT OK" },
    );
    Ok(())
}

/// What `history` raises beyond the bench flags: the per-connection read budget
/// (default 200 messages and 256 KiB per second, 2 pages a second), which would
/// otherwise measure itself.
const HISTORY_FLAGS: [&str; 4] = ["--read-rate", "1000000", "--read-bytes", "2000000000"];

/// `history`: per variant (reactions, plain), a fresh server (and Redis with --redis);
/// `loadgen history` fills one room, checks every page once, then times `history
/// {limit: 100}` over all its pages, one request at a time, up to 10,000 pages or the
/// window (60 s by default).
fn history(b: &Bench<'_>, args: &BenchArgs) -> Result<()> {
    let messages = args.n.unwrap_or(if args.quick { 300 } else { 1_000 });
    // 10,000 pages (a few seconds at SQLite's pace) so that the newest page alone, one
    // in ten, still has 1,000 samples for its p99.
    let (requests, secs) = if args.quick {
        (200, args.duration.unwrap_or(10))
    } else {
        (10_000, args.duration.unwrap_or(60))
    };
    let store = if args.redis { "redis" } else { "sqlite" };
    // A flag given after `--` replaces the bench's (huddle refuses one twice).
    let extra: Vec<&str> = HISTORY_FLAGS
        .chunks(2)
        .filter(|pair| !b.server_args.iter().any(|a| a == pair[0]))
        .flatten()
        .copied()
        .collect();
    let mut flags = b.flags_shown(&extra);
    if args.redis {
        flags.extend(["--redis".to_owned(), "<private redis-server>".to_owned()]);
    }
    println!();
    println!("server flags: {}", flags.join(" "));
    let mut summary = Vec::new();
    for variant in ["reactions", "plain"] {
        let dir = b.step_dir()?;
        let mut redis = None;
        let mut server_extra: Vec<String> = extra.iter().map(|f| (*f).to_owned()).collect();
        if args.redis {
            let (proc, url) = b.start_redis(&dir)?;
            server_extra.extend(["--redis".to_owned(), url]);
            redis = Some(proc);
        }
        let server_extra: Vec<&str> = server_extra.iter().map(String::as_str).collect();
        let server = b.start_huddle(&dir, &dir.join("bench.db"), &server_extra)?;
        let mut la = vec![
            format!("--url={}", server.url()),
            format!("--messages={messages}"),
            format!("--requests={requests}"),
            format!("--duration={secs}s"),
            format!("--server-pid={}", server.pid()),
            format!("--label=history {variant} {store} n={messages}"),
            "--threads=1".to_owned(),
        ];
        if variant == "plain" {
            la.push("--plain".to_owned());
        }
        if let Some(redis) = &redis {
            la.push(format!("--store-pid={}", redis.pid()));
        }
        let report = loadgen_report(b, "history", &la, &[])?;
        drop(server);
        drop(redis);
        b.record(
            "history",
            &json!({"variant": variant, "store": store, "messages": messages,
                    "requests": requests, "duration_s": secs, "server_flags": flags}),
            &report,
        )?;
        summary.push(history_line(variant, &report));
    }
    println!();
    println!("history summary ({store}, {messages} messages, pages of 100, one reader):");
    for line in summary {
        println!("  {line}");
    }
    Ok(())
}

fn history_line(variant: &str, r: &Value) -> String {
    let ms = |k: &str, p: &str| r[k][p].as_f64().unwrap_or(0.0) / 1000.0;
    format!(
        "{variant:<9} {} log entries; page {} bytes; p50 {:.2} ms p99 {:.2} ms max {:.2} ms \
         (newest p50 {:.2} / p99 {:.2}; with before p50 {:.2} / p99 {:.2}); {:.0} pages/s \
         ({} in {:.1} s); server CPU {:.0} %{}; rate limited {}, mismatches {}: {}",
        r["log_entries"],
        r["page_bytes"],
        ms("latency", "p50_us"),
        ms("latency", "p99_us"),
        ms("latency", "max_us"),
        ms("latency_newest", "p50_us"),
        ms("latency_newest", "p99_us"),
        ms("latency_before", "p50_us"),
        ms("latency_before", "p99_us"),
        r["pages_per_s"].as_f64().unwrap_or(0.0),
        r["requests"],
        r["window_s"].as_f64().unwrap_or(0.0),
        r["server_cpu_pct"].as_f64().unwrap_or(0.0),
        r["store_cpu_pct"]
            .as_f64()
            .map_or(String::new(), |c| format!(", redis-server CPU {c:.0} %")),
        r["rate_limited"],
        r["mismatches"],
        if r["ok"] == true { "OK" } else { "NOT OK" },
    )
}

/// 32 random bytes as hex: a throwaway API token for one bench server.
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The argon2 version and parameters of the first password hash in the SQLite
/// database (or its write-ahead log), e.g. `argon2id v=19 m=19456,t=2,p=1`.
fn stored_argon2(db: &Path) -> Option<String> {
    let needle = b"$argon2id$";
    [db.to_path_buf(), db.with_extension("db-wal")]
        .iter()
        .filter_map(|path| fs::read(path).ok())
        .find_map(|bytes| {
            let at = bytes.windows(needle.len()).position(|w| w == needle)?;
            // "", "argon2id", "v=19", "m=…,t=…,p=…", salt and hash.
            let fields: Vec<&[u8]> = bytes[at..].splitn(5, |&c| c == b'$').collect();
            let text = |f: &[u8]| String::from_utf8_lossy(f).into_owned();
            (fields.len() == 5).then(|| format!("argon2id {} {}", text(fields[2]), text(fields[3])))
        })
}

/// The figures the summaries need, read from a loadgen report.
#[derive(Debug, Clone)]
struct Numbers {
    ready: u64,
    disconnected: u64,
    delivered_per_s: f64,
    offered: f64,
    acked_per_s: f64,
    p99_ms: f64,
    lost: u64,
    duplicated: u64,
    undelivered: u64,
    lossless: bool,
    server_cpu: f64,
    rss_per_conn: f64,
    connect_per_s: f64,
    /// The load generator's own CPU (% of its core): near 100 it is the limit.
    loadgen_cpu: f64,
    reasons: String,
}

impl Numbers {
    fn of(r: &Value) -> Self {
        let f = |v: &Value| v.as_f64().unwrap_or(0.0);
        let u = |v: &Value| v.as_u64().unwrap_or(0);
        let (lost, duplicated, undelivered) =
            (u(&r["lost"]), u(&r["duplicated"]), u(&r["undelivered"]));
        Numbers {
            ready: u(&r["connect"]["ready"]),
            disconnected: u(&r["disconnected"]),
            delivered_per_s: f(&r["delivered_per_s"]),
            offered: f(&r["offered_per_s"]),
            acked_per_s: f(&r["acked_per_s"]),
            p99_ms: f(&r["latency"]["p99_us"]) / 1000.0,
            lost,
            duplicated,
            undelivered,
            lossless: lost == 0 && duplicated == 0 && undelivered == 0,
            server_cpu: f(&r["server"]["cpu_pct"]),
            rss_per_conn: f(&r["server"]["rss_per_conn_bytes"]),
            connect_per_s: f(&r["connect"]["per_s"]),
            loadgen_cpu: f(&r["loadgen_cpu_pct"]),
            reasons: r["reasons"].to_string(),
        }
    }
}

/// A server or Redis for one step, stopped when dropped, with the address it serves.
struct Proc {
    process: Supervised,
    addr: Option<SocketAddr>,
}

impl Proc {
    /// Starts `cmd` with its output in `log`.
    fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> Result<Proc> {
        Ok(Proc {
            process: Supervised::spawn_logged(name, &mut cmd, log)?,
            addr: None,
        })
    }

    /// The process id: `prlimit` and `taskset` exec the program, so it is the server's.
    fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn url(&self) -> String {
        match self.addr {
            Some(addr) => format!("ws://{addr}/ws"),
            None => String::new(),
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .context("cannot bind 127.0.0.1:0 to find a free port")?
        .local_addr()?
        .port())
}

fn redis_pong(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

/// The open-files limit the bench processes get: `wanted` if the hard limit may be
/// raised that far (root with CAP_SYS_RESOURCE), else the current hard limit.
fn raise_nofile(ctx: &Ctx, wanted: u64) -> Result<u64> {
    let probe = |n: u64| {
        ctx.cmd("prlimit")
            .arg(format!("--nofile={n}:{n}"))
            .arg("true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if probe(wanted) {
        return Ok(wanted);
    }
    let limits =
        fs::read_to_string("/proc/self/limits").context("cannot read /proc/self/limits")?;
    let hard = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|h| h.parse::<u64>().ok())
        .context("no open-files limit in /proc/self/limits")?;
    if !probe(hard) {
        bail!("cannot set the open-files limit even to the hard limit ({hard}) with prlimit");
    }
    println!(
        "warning: the hard open-files limit is {hard} and cannot be raised here (needs root with \
         CAP_SYS_RESOURCE): scenarios are capped at about {} connections",
        hard.saturating_sub(FD_MARGIN)
    );
    Ok(hard)
}
