//! `loadgen`: the command line over the load generator library. Flags in, one JSON line
//! on stdout and a short summary on stderr out; bad flags, a low open-files limit or an
//! unreachable server end with a message saying what to do (exit status 2), a run that
//! found problems (loss, duplicates, failed connections) with exit status 3.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};

use common::parse_duration;
use loadgen::report::RunReport;
use loadgen::scenario::{Load, Scenario, Transport, MAX_SOURCE_IPS};
use loadgen::{alerts, floor, history, plot, pushes, signins, verify, Options};

/// Exit status of a run that finished but found problems.
const NOT_OK: u8 = 3;

#[derive(Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator for Huddle (protocol v1): many clients, delivered rate, latency, loss, server CPU and RSS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open clients, join rooms, send at a fixed rate (or as fast as acks allow, or not
    /// at all), and report one JSON line.
    Run(RunArgs),
    /// Read history back and check that every ack in an acks file is stored.
    Verify {
        /// Server URL, e.g. ws://127.0.0.1:3000/ws.
        #[arg(long)]
        url: String,
        /// Acks written by `run --acks-out`.
        #[arg(long)]
        acks: PathBuf,
    },
    /// Draw the fanout chart (SVG) from a results file written by `cargo xtask bench`.
    Plot {
        #[arg(long)]
        results: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Which scenario's lines to plot.
        #[arg(long, default_value = "fanout")]
        scenario: String,
        #[arg(long, default_value = "Huddle fanout: one room, 10 senders")]
        title: String,
    },
    /// Sign-ins per second: registers one account per client, then measures
    /// `POST /api/auth/login`, `hello {token}` and guest `hello {nick}` in turn (protocol
    /// v2 servers only). Start the server with `--ip-join-rate 0`.
    Signins(SigninArgs),
    /// Alerts per second into the inboxes of one big room: N guests join it, one posts
    /// messages naming K members as `@nick` (`--mentions K`) or, with `--all`, every
    /// member sets the room to level `all` so each message alerts all the others.
    Alerts(AlertArgs),
    /// Web Pushes per second: N guests subscribe to a local push service (in this
    /// process) and disconnect; alerts are then posted for them through the
    /// notifications API. Start the server with `--api-token T --push-hosts 127.0.0.1
    /// --push-rate 100000`.
    Pushes(PushArgs),
    /// `history` page latency: fills one room with messages carrying reactions, edits
    /// and deletions (or, with `--plain`, messages only), checks every page once, then
    /// times `history {before, limit}` over its pages. Start the server with
    /// `--read-rate` and `--read-bytes` far above their defaults (and a high
    /// `--rate-per-sec`, or the fill is paced to the default 20/s per connection).
    History(HistoryArgs),
    /// A minimal broadcast server (the floor Huddle is measured against): `hello`,
    /// `join` and `send` only, each message encoded once and written to every member,
    /// nothing stored. Prints its address on stdout and serves until killed.
    Floor(FloorArgs),
}

#[derive(Args)]
struct FloorArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Runtime worker threads (default: the CPUs this process may use, as Huddle).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct HistoryArgs {
    /// Server WebSocket URL (ws://127.0.0.1:PORT/ws).
    #[arg(long)]
    url: String,
    /// Messages posted into the room.
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// Messages only: no reactions, edits or deletions.
    #[arg(long)]
    plain: bool,
    /// Reacting users, one connection each.
    #[arg(long, default_value_t = 5)]
    reactors: usize,
    /// Reactions per message cycle from --reactions-min to --reactions-max, each from
    /// another reactor.
    #[arg(long, default_value_t = 3)]
    reactions_min: usize,
    #[arg(long, default_value_t = 5)]
    reactions_max: usize,
    /// Every this-many-th message is edited, once or twice alternately (0: none).
    #[arg(long, default_value_t = 2)]
    edit_every: usize,
    /// Every this-many-th message is deleted (0: none).
    #[arg(long, default_value_t = 50)]
    delete_every: usize,
    /// Bytes of each message text and edit.
    #[arg(long, default_value_t = 100)]
    text_bytes: usize,
    /// Messages per round of the fill (each round followed by its edits, reactions and
    /// deletions, so they interleave in the log).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Unacked frames per connection during the fill.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Pages to ask for (over all readers).
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Longest the measurement lasts (at most 10m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Messages per page (`history.limit`).
    #[arg(long, default_value_t = 100)]
    limit: u64,
    /// Connections reading at once, one request in flight each.
    #[arg(long, default_value_t = 1)]
    readers: usize,
    #[arg(long, default_value = "bench-history")]
    room: String,
    /// Nicks are <prefix>a, <prefix>r<i>, <prefix>h<i> (default: unique to this process).
    #[arg(long)]
    nick_prefix: Option<String>,
    /// Server process to measure (CPU, RSS).
    #[arg(long)]
    server_pid: Option<u32>,
    /// The store's process (a redis-server) to measure too (CPU).
    #[arg(long)]
    store_pid: Option<u32>,
    /// Names the run in the report.
    #[arg(long, default_value = "")]
    label: String,
    /// Runtime worker threads (default: the CPUs this process may use).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct AlertArgs {
    /// Server WebSocket URL (ws://127.0.0.1:PORT/ws).
    #[arg(long)]
    url: String,
    /// Members of the room, the sender included.
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Messages the sender posts.
    #[arg(long, default_value_t = 100)]
    messages: usize,
    /// Members each message names as `@nick`.
    #[arg(long, default_value_t = 250, conflicts_with = "all")]
    mentions: usize,
    /// Every member sets the room to level `all`; messages name nobody.
    #[arg(long)]
    all: bool,
    /// Unacked sends at once.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Messages per second (open loop, within --in-flight); default: as fast as acks
    /// allow, which measures the most alerts/s but queues them (latency grows with the
    /// backlog).
    #[arg(long)]
    rate: Option<f64>,
    /// After the last ack, wait at most this long for the alerts (at most 10m).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    drain: Duration,
    /// Nicks are <prefix><i> (default: short and unique to this process).
    #[arg(long)]
    nick_prefix: Option<String>,
    #[arg(long, default_value = "bench-alerts")]
    room: String,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
    /// Server process to measure (CPU, RSS).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Names the run in the report.
    #[arg(long, default_value = "")]
    label: String,
    /// Runtime worker threads (default: the CPUs this process may use).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct PushArgs {
    /// Server WebSocket URL (ws://127.0.0.1:PORT/ws); the API is on the same address.
    #[arg(long)]
    url: String,
    /// The server's --api-token (or HUDDLE_API_TOKEN).
    #[arg(long, env = "HUDDLE_API_TOKEN", hide_env_values = true)]
    api_token: String,
    /// Users, each with one push subscription.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Alerts posted per user.
    #[arg(long, default_value_t = 25)]
    per_user: usize,
    /// HTTP clients posting at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// After the last POST, wait at most this long for the pushes (at most 10m).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    drain: Duration,
    /// Nicks are <prefix><i> (default: unique to this process).
    #[arg(long)]
    nick_prefix: Option<String>,
    /// Server process to measure (CPU, RSS).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Names the run in the report.
    #[arg(long, default_value = "")]
    label: String,
    /// Runtime worker threads (default: the CPUs this process may use).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct SigninArgs {
    /// Server WebSocket URL (ws://127.0.0.1:PORT/ws); the accounts API is on the same
    /// address.
    #[arg(long)]
    url: String,
    /// Clients at once in each part (each on its own source address and account).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long each of the three parts lasts (e.g. 5s; at most 2m).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Account names are <prefix><i> (default: unique to this process).
    #[arg(long)]
    prefix: Option<String>,
    /// Server process to measure (CPU per part).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Names the run in the report.
    #[arg(long, default_value = "")]
    label: String,
    /// Runtime worker threads (default: the CPUs this process may use).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct RunArgs {
    /// Server WebSocket URL (ws://127.0.0.1:PORT/ws); repeat for several servers, clients
    /// are spread over them in turn.
    #[arg(long, required = true)]
    url: Vec<String>,
    /// Connections to open (at most 300,000).
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Rooms; members are spread evenly (client i joins room i mod rooms).
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Clients that send (the first ones, so they are spread over the rooms).
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Total messages per second over all senders (open loop).
    #[arg(long, conflicts_with_all = ["in_flight", "idle"])]
    rate: Option<f64>,
    /// Closed loop: unacked sends each sender keeps outstanding (as fast as acks allow).
    #[arg(long, conflicts_with = "idle")]
    in_flight: Option<usize>,
    /// No traffic: hold the connections open for --duration.
    #[arg(long)]
    idle: bool,
    /// Measurement window (e.g. 10s, 500ms, 2m; at most 10m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// After the window, wait at most this long for outstanding acks and deliveries.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain: Duration,
    /// Size of each send frame in bytes (the text is padded).
    #[arg(long, default_value_t = 100)]
    msg_bytes: usize,
    /// Spread connections over 127.0.0.1 ..= 127.0.0.N (more than ~28k connections need
    /// more than one source address).
    #[arg(long, default_value_t = MAX_SOURCE_IPS)]
    source_ips: u8,
    /// Connections being set up (connect, hello, join) at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Open the clients in this many batches, sampling server memory after each.
    #[arg(long, default_value_t = 1)]
    ramp_steps: usize,
    /// Give up on connecting and joining after this long.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    setup_timeout: Duration,
    #[arg(long, default_value = "bench-")]
    room_prefix: String,
    /// Nicks are <prefix><index> (default: unique to this process).
    #[arg(long)]
    nick_prefix: Option<String>,
    /// Server process to measure (CPU, RSS); repeat for a cluster.
    #[arg(long)]
    server_pid: Vec<u32>,
    /// Names the run in the report.
    #[arg(long, default_value = "")]
    label: String,
    /// Write every ack (room offset id nick) to this file, for `verify`.
    #[arg(long)]
    acks_out: Option<PathBuf>,
    /// SIGKILL the --server-pid processes at the end of the window, with sends in
    /// flight, instead of draining (the crash test; then `verify` the acks).
    #[arg(long, requires = "server_pid")]
    kill_server_at_end: bool,
    /// Runtime worker threads (default: the CPUs this process may use).
    #[arg(long)]
    threads: Option<usize>,
    /// How the clients connect: `ws`, or `sse` for the fallback over plain HTTP
    /// (`GET /sse` for the server's frames, `POST /sse/send` for theirs, at the address
    /// of --url).
    #[arg(long, value_enum, default_value_t = Transport::WebSocket)]
    transport: Transport,
    /// How the senders connect (default: as --transport).
    #[arg(long, value_enum)]
    sender_transport: Option<Transport>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("loadgen: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => run(args),
        Command::Verify { url, acks } => {
            let text = std::fs::read_to_string(&acks)
                .with_context(|| format!("cannot read {}", acks.display()))?;
            let acks = verify::parse_acks(&text)?;
            let verdict = runtime(None)?.block_on(loadgen::verify(&url, &acks))?;
            println!("{}", serde_json::to_string(&verdict)?);
            eprintln!(
                "verify: {} acked, {} present, {} missing, {} mismatched in {} room(s): {}",
                verdict.acked,
                verdict.present,
                verdict.missing,
                verdict.mismatched,
                verdict.rooms,
                if verdict.ok() { "OK" } else { "NOT OK" }
            );
            for e in &verdict.examples {
                eprintln!("  {e}");
            }
            Ok(exit(verdict.ok()))
        }
        Command::Signins(a) => {
            let opts = signins::SigninOptions {
                url: a.url,
                concurrency: a.concurrency,
                duration: a.duration,
                prefix: a
                    .prefix
                    .unwrap_or_else(|| format!("sb{}-", std::process::id())),
                server_pid: a.server_pid,
                label: a.label,
            };
            let report = runtime(a.threads)?.block_on(signins::signins(opts))?;
            Ok(finish(&report))
        }
        Command::Alerts(a) => {
            let opts = alerts::AlertOptions {
                url: a.url,
                members: a.members,
                messages: a.messages,
                mode: if a.all {
                    alerts::Mode::All
                } else {
                    alerts::Mode::Mentions {
                        per_message: a.mentions,
                    }
                },
                in_flight: a.in_flight,
                rate: a.rate,
                nick_prefix: a
                    .nick_prefix
                    .unwrap_or_else(|| format!("a{}x", std::process::id() % 1000)),
                room: a.room,
                connect_concurrency: a.connect_concurrency,
                drain: a.drain,
                server_pid: a.server_pid,
                label: a.label,
            };
            let report = runtime(a.threads)?.block_on(alerts::alerts(opts))?;
            Ok(finish(&report))
        }
        Command::Pushes(a) => {
            let opts = pushes::PushOptions {
                url: a.url,
                api_token: a.api_token,
                users: a.users,
                per_user: a.per_user,
                concurrency: a.concurrency,
                drain: a.drain,
                nick_prefix: a
                    .nick_prefix
                    .unwrap_or_else(|| format!("p{}x", std::process::id() % 1000)),
                server_pid: a.server_pid,
                label: a.label,
            };
            let report = runtime(a.threads)?.block_on(pushes::pushes(opts))?;
            Ok(finish(&report))
        }
        Command::History(a) => {
            let mut opts = history::HistoryOptions {
                url: a.url,
                messages: a.messages,
                reactors: a.reactors,
                reactions_min: a.reactions_min,
                reactions_max: a.reactions_max,
                edit_every: a.edit_every,
                delete_every: a.delete_every,
                text_bytes: a.text_bytes,
                batch: a.batch,
                in_flight: a.in_flight,
                requests: a.requests,
                duration: a.duration,
                limit: a.limit,
                readers: a.readers,
                room: a.room,
                nick_prefix: a
                    .nick_prefix
                    .unwrap_or_else(|| format!("h{}x", std::process::id() % 1000)),
                server_pid: a.server_pid,
                store_pid: a.store_pid,
                label: a.label,
            };
            if a.plain {
                opts.plain();
            }
            let report = runtime(a.threads)?.block_on(history::history(opts))?;
            Ok(finish(&report))
        }
        Command::Floor(a) => {
            let rt = runtime(a.threads)?;
            rt.block_on(async {
                let listener = floor::bind(a.listen)
                    .await
                    .with_context(|| format!("cannot listen on {}", a.listen))?;
                println!("{}", listener.local_addr()?);
                floor::serve(listener)
                    .await
                    .context("the floor server failed")
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plot {
            results,
            out,
            scenario,
            title,
        } => {
            let text = std::fs::read_to_string(&results)
                .with_context(|| format!("cannot read {}", results.display()))?;
            let series = plot::fanout_points(&text, &scenario);
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            plot::draw_fanout(&series, &title, &out)?;
            eprintln!("wrote {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let load = match (a.rate, a.in_flight, a.idle) {
        (Some(rate), None, false) => Load::Rate(rate),
        (None, Some(n), false) => Load::InFlight(n),
        (None, None, true) => Load::Idle,
        _ => bail!("say how the senders send: --rate MSGS_PER_SEC, --in-flight N or --idle"),
    };
    let mut scenario = Scenario::new(a.url[0].clone());
    scenario.urls = a.url;
    scenario.clients = a.clients;
    scenario.rooms = a.rooms;
    scenario.senders = if load == Load::Idle { 0 } else { a.senders };
    scenario.load = load;
    scenario.duration = a.duration;
    scenario.drain = a.drain;
    scenario.msg_bytes = a.msg_bytes;
    scenario.source_ips = a.source_ips;
    scenario.connect_concurrency = a.connect_concurrency;
    scenario.ramp_steps = a.ramp_steps;
    scenario.setup_timeout = a.setup_timeout;
    scenario.room_prefix = a.room_prefix;
    scenario.transport = a.transport;
    scenario.sender_transport = a.sender_transport.unwrap_or(a.transport);
    if let Some(prefix) = a.nick_prefix {
        scenario.nick_prefix = prefix;
    }
    // Bad flags fail before any runtime or connection exists.
    scenario.validate()?;
    let opts = Options {
        scenario,
        label: a.label,
        server_pids: a.server_pid,
        record_acks: a.acks_out.is_some(),
        kill_at_end: a.kill_server_at_end,
    };
    let outcome = runtime(a.threads)?.block_on(loadgen::run(opts))?;
    if let Some(path) = &a.acks_out {
        std::fs::write(path, verify::format_acks(&outcome.acks))
            .with_context(|| format!("cannot write acks to {}", path.display()))?;
    }
    println!("{}", outcome.report.json_line());
    eprintln!("{}", outcome.report.human());
    Ok(exit(outcome.report.ok))
}

fn runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1));
    }
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Prints a mode's report (the JSON line on stdout, the summary on stderr) and says how
/// the run went.
fn finish(report: &impl RunReport) -> ExitCode {
    println!("{}", report.json_line());
    eprint!("{}", report.human());
    exit(report.passed())
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOT_OK)
    }
}
