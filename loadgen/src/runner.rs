//! One run from start to finish: check the limits and that the server answers, open the
//! clients (in ramp steps), wait for the room traffic of the joins to settle, open the
//! measurement window, drain, stop every task, and assemble the [`Report`]. Every phase
//! has a deadline, so a run always ends by itself.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::conn::{self, AckRecord, Ctx, Phase};
use crate::measure::Shared;
use crate::procstat::{ticks_per_sec, Proc, ProcError, Sample};
use crate::report::{self, Connect, Params, RampPoint, Report, Server};
use crate::scenario::{Load, Scenario, ScenarioError};

/// How long the server must be reachable within before the run starts.
const REACH_TIMEOUT: Duration = Duration::from_secs(3);
/// The joins are over when no presence or notification frame arrived for this long.
const QUIET: Duration = Duration::from_millis(500);
/// ... and the server below this CPU use (% of a core) over that time.
const SETTLED_CPU_PCT: f64 = 20.0;
/// Longest wait for that quiet after every client joined.
const MAX_SETTLE: Duration = Duration::from_secs(60);
/// How often server memory is sampled during the window.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// The drain ends once every send is answered and delivered for this long.
const SETTLED_FOR: Duration = Duration::from_millis(100);
/// Longest wait for the connection tasks to end after `Stop`.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What to run, and what to do around it.
#[derive(Debug, Clone)]
pub struct Options {
    pub scenario: Scenario,
    /// Names the run in the report.
    pub label: String,
    /// Server processes to measure (CPU, RSS) and, with `kill_at_end`, to kill.
    pub server_pids: Vec<u32>,
    /// Keep every ack (room, offset, id, nick) for a later `verify`.
    pub record_acks: bool,
    /// SIGKILL the server processes at the end of the window, while sends are still in
    /// flight, instead of draining: the crash test of the `durable` scenario.
    pub kill_at_end: bool,
}

/// A finished run.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    /// The acks, when `record_acks` was set.
    pub acks: Vec<AckRecord>,
}

/// A run that could not start or could not be measured; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(
        "this run needs {needed} open files but the limit is {limit}: raise it with \
         `ulimit -n {needed}` in this shell (as root, or after raising the hard limit), or run \
         it through `cargo xtask bench`, which raises it"
    )]
    FdLimit { needed: u64, limit: u64 },
    #[error(
        "the server (pid {pid}) may open only {limit} files but needs about {needed} for \
         this run: restart it under a higher limit (`ulimit -n {needed}`) or raise it live \
         with `prlimit --pid {pid} --nofile={needed}:{needed}`"
    )]
    ServerFdLimit { pid: u32, needed: u64, limit: u64 },
    #[error(
        "cannot reach the server at {url}: {why}; is huddle running there? Start it (or \
         let `cargo xtask bench` start one)"
    )]
    Unreachable { url: String, why: String },
    #[error("cannot measure a process (is --server-pid right?)")]
    Proc(#[from] ProcError),
    #[error("could not kill the server (pid {pid}): {why}")]
    Kill { pid: u32, why: String },
}

/// Runs one scenario against running servers.
pub async fn run(opts: Options) -> Result<Outcome, RunError> {
    let s = opts.scenario.clone();
    s.validate()?;
    let addrs = s.server_addrs()?;
    check_fd_limits(&s, &opts.server_pids)?;
    for (url, addr) in s.urls.iter().zip(&addrs) {
        let why = match tokio::time::timeout(REACH_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {}s", REACH_TIMEOUT.as_secs()),
        };
        return Err(RunError::Unreachable {
            url: url.clone(),
            why,
        });
    }

    let ticks = ticks_per_sec();
    let servers = Servers::new(&opts.server_pids);
    let server_before = servers.sample()?;

    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let ctx = Arc::new(Ctx {
        scenario: s.clone(),
        addrs,
        shared: Shared::new(s.rooms),
        phase: phase_rx,
        acks: opts.record_acks.then(|| Mutex::new(Vec::new())),
        check_tail: !opts.kill_at_end,
        ws_config: Ctx::ws_config(),
    });
    let shared = &ctx.shared;
    let gate = Arc::new(Semaphore::new(s.connect_concurrency));
    let mut tasks = JoinSet::new();

    // Set-up, in ramp steps.
    let setup_deadline = Instant::now() + s.setup_timeout;
    let mut setup_time = Duration::ZERO;
    let mut ramp = Vec::new();
    let mut attempted = 0usize;
    let mut setup_complete = true;
    for step in 0..s.ramp_steps {
        let end = s.clients * (step + 1) / s.ramp_steps;
        let started = Instant::now();
        while attempted < end {
            let permit = tokio::select! {
                p = Arc::clone(&gate).acquire_owned() => p.expect("the gate is never closed"),
                () = tokio::time::sleep_until(setup_deadline.into()) => break,
            };
            tasks.spawn(conn::client(Arc::clone(&ctx), attempted, permit));
            attempted += 1;
        }
        while shared.ready.load(Relaxed) + shared.setup_failed.load(Relaxed) < attempted as u64
            && Instant::now() < setup_deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        setup_time += started.elapsed();
        if let Some(rss) = servers.sample()?.map(|x| x.rss_bytes) {
            ramp.push(RampPoint {
                connections: shared.ready.load(Relaxed),
                server_rss_bytes: rss,
            });
        }
        if Instant::now() >= setup_deadline {
            setup_complete = false;
            shared.reason(format!(
                "setup: run gave up after --setup-timeout {}s",
                s.setup_timeout.as_secs()
            ));
            break;
        }
    }

    // Let the presence lists and join notices of the set-up finish arriving, and the
    // server finish the work they caused, so the window measures chat traffic only:
    // no event frame for QUIET, and (when measured) the server mostly idle over it.
    if setup_complete {
        let settle_deadline = (Instant::now() + MAX_SETTLE).min(setup_deadline);
        let mut last = shared.events.load(Relaxed);
        let mut quiet_since = Instant::now();
        let mut cpu_from = servers.sample()?;
        while Instant::now() < settle_deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = shared.events.load(Relaxed);
            if now != last {
                (last, quiet_since) = (now, Instant::now());
            } else if quiet_since.elapsed() >= QUIET {
                let cpu_now = servers.sample()?;
                let busy = match (cpu_from, cpu_now) {
                    (Some(a), Some(b)) => a.cpu_pct_until(&b, ticks) > SETTLED_CPU_PCT,
                    _ => false,
                };
                if !busy {
                    break;
                }
                (cpu_from, quiet_since) = (cpu_now, Instant::now());
            }
        }
    }
    let server_setup = servers.sample()?;

    // The window.
    shared.reset_latency();
    let me_start = Proc::This.sample()?;
    let server_start = servers.sample()?;
    let start = Instant::now();
    shared.in_window.store(true, Relaxed);
    let _ = phase_tx.send(Phase::Run { start });
    let mut rss_max = server_start.map_or(0, |x| x.rss_bytes);
    let window_end = start + s.duration;
    while Instant::now() < window_end {
        let left = window_end.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(SAMPLE_EVERY)).await;
        if let Some(x) = servers.sample()? {
            rss_max = rss_max.max(x.rss_bytes);
        }
    }
    shared.in_window.store(false, Relaxed);
    let window = start.elapsed();
    let server_end = servers.sample()?;
    let me_end = Proc::This.sample()?;
    let acked_in_window = shared.acked.load(Relaxed);

    if opts.kill_at_end {
        for &pid in &opts.server_pids {
            kill9(pid)?;
        }
    } else {
        let _ = phase_tx.send(Phase::Drain);
        // Settled must hold for a while: a sender that passed its "window open" check
        // just before it closed may still be counting its last send.
        let drain_end = Instant::now() + s.drain;
        let mut settled_since: Option<Instant> = None;
        while Instant::now() < drain_end {
            if !shared.settled() {
                settled_since = None;
            } else if settled_since.get_or_insert_with(Instant::now).elapsed() >= SETTLED_FOR {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let _ = phase_tx.send(Phase::Stop);
    let stop_deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    while let Ok(Some(_)) = tokio::time::timeout_at(stop_deadline, tasks.join_next()).await {}
    tasks.abort_all();

    let latency = shared.latency();
    let ready = shared.ready.load(Relaxed);
    let sent = shared.sent.load(Relaxed);
    let acked = shared.acked.load(Relaxed);
    let refused = shared.refused.load(Relaxed);
    let window_s = window.as_secs_f64();
    let server = match (server_before, server_setup, server_start, server_end) {
        (Some(before), Some(setup), Some(a), Some(b)) => Some(Server {
            pids: opts.server_pids.clone(),
            cpu_pct: a.cpu_pct_until(&b, ticks),
            rss_bytes_before: before.rss_bytes,
            rss_bytes_end: b.rss_bytes,
            rss_bytes_max: rss_max.max(b.rss_bytes),
            rss_per_conn_bytes: if ready > 0 {
                setup.rss_bytes.saturating_sub(before.rss_bytes) as f64 / ready as f64
            } else {
                0.0
            },
        }),
        _ => None,
    };
    let report = Report {
        schema: report::SCHEMA,
        label: opts.label.clone(),
        params: params(&s),
        connect: Connect {
            attempted: attempted as u64,
            connected: shared.connected.load(Relaxed),
            ready,
            failed: shared.setup_failed.load(Relaxed),
            seconds: setup_time.as_secs_f64(),
            per_s: ready as f64 / setup_time.as_secs_f64().max(1e-9),
        },
        window_s,
        sent,
        acked,
        refused,
        unanswered: sent.saturating_sub(acked + refused),
        acked_per_s: acked_in_window as f64 / window_s,
        offered_per_s: s.offered_deliveries_per_sec(),
        delivered: shared.delivered.load(Relaxed),
        delivered_per_s: shared.delivered_in_window.load(Relaxed) as f64 / window_s,
        lost: shared.lost.load(Relaxed),
        duplicated: shared.duplicated.load(Relaxed),
        undelivered: shared.undelivered.load(Relaxed),
        events: shared.events.load(Relaxed),
        latency,
        disconnected: shared.disconnected.load(Relaxed),
        reasons: shared.reasons(),
        server,
        loadgen_cpu_pct: me_start.cpu_pct_until(&me_end, ticks),
        loadgen_rss_bytes: me_end.rss_bytes,
        ramp,
        ok: false,
    };
    let ok = report.connect.ready == s.clients as u64
        && report.lost == 0
        && report.duplicated == 0
        && (opts.kill_at_end
            || (report.undelivered == 0 && report.unanswered == 0 && report.disconnected == 0));
    let acks = match &ctx.acks {
        Some(all) => std::mem::take(&mut *all.lock().unwrap_or_else(|e| e.into_inner())),
        None => Vec::new(),
    };
    Ok(Outcome {
        report: Report { ok, ..report },
        acks,
    })
}

fn params(s: &Scenario) -> Params {
    Params {
        urls: s.urls.clone(),
        clients: s.clients,
        rooms: s.rooms,
        senders: s.senders,
        rate: match s.load {
            Load::Rate(r) => Some(r),
            _ => None,
        },
        in_flight: match s.load {
            Load::InFlight(n) => Some(n),
            _ => None,
        },
        duration_s: s.duration.as_secs_f64(),
        drain_s: s.drain.as_secs_f64(),
        msg_bytes: s.msg_bytes,
        source_ips: s.source_ips,
        transport: s.transport.name().to_owned(),
        sender_transport: s.sender_transport.name().to_owned(),
    }
}

/// Refuses to start when either side would run out of file descriptors part-way.
fn check_fd_limits(s: &Scenario, server_pids: &[u32]) -> Result<(), RunError> {
    let needed = s.needed_fds();
    if let Some(limit) = Proc::This.nofile_limit()? {
        if limit < needed {
            return Err(RunError::FdLimit { needed, limit });
        }
    }
    let per_server = (s.clients / s.urls.len().max(1)) as u64 + 64;
    for &pid in server_pids {
        if let Some(limit) = Proc::Pid(pid).nofile_limit()? {
            if limit < per_server {
                return Err(RunError::ServerFdLimit {
                    pid,
                    needed: per_server,
                    limit,
                });
            }
        }
    }
    Ok(())
}

fn kill9(pid: u32) -> Result<(), RunError> {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .map_err(|e| RunError::Kill {
            pid,
            why: e.to_string(),
        })?;
    if !status.success() {
        return Err(RunError::Kill {
            pid,
            why: format!("kill exited with {status}"),
        });
    }
    Ok(())
}

/// The server processes, measured together (a cluster counts as one server).
struct Servers(Vec<Proc>);

impl Servers {
    fn new(pids: &[u32]) -> Self {
        Servers(pids.iter().map(|&p| Proc::Pid(p)).collect())
    }

    /// The summed sample, or `None` without server pids.
    fn sample(&self) -> Result<Option<Sample>, ProcError> {
        let mut total: Option<Sample> = None;
        for p in &self.0 {
            let x = p.sample()?;
            total = Some(match total {
                None => x,
                Some(t) => Sample {
                    at: x.at,
                    cpu_ticks: t.cpu_ticks + x.cpu_ticks,
                    rss_bytes: t.rss_bytes + x.rss_bytes,
                },
            });
        }
        Ok(total)
    }
}
