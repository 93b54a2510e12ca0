//! The smoke bench, run by `cargo test` (so in `cargo xtask test` and CI): a few hundred
//! clients against the real `huddle` binary for a few seconds, with the server's default
//! limits, asserting that every message reached every member exactly once.
//!
//! A second test points the same load generator at a deliberately faulty server (it
//! drops one message for one client and repeats one for another) and asserts the run is
//! reported as failed: the smoke bench can fail, and would catch a dropped message.
//!
//! Another runs clients over the SSE fallback instead of WebSockets.
//!
//! Two more run `alerts` (both variants, a room of 30) and `pushes` (10 users, 3 alerts
//! each, through the load generator's own push service) against the real server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{ClientMsg, Limits, ServerMsg};
use futures_util::{SinkExt as _, StreamExt as _};
use loadgen::alerts::{AlertOptions, Mode};
use loadgen::pushes::PushOptions;
use loadgen::report::RunReport;
use loadgen::{Load, Options, Scenario, Transport};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_hundred_clients_get_every_message_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&huddle_bin(), &dir.path().join("smoke.db")).await;

    // 300 clients in 3 rooms of 100, 15 senders at 10 msg/s each (under the default
    // 20/s per connection), from 255 source addresses: 2 connections and 4 hello/join
    // per address, within the default per-address limits.
    let mut s = Scenario::new(server.url());
    s.clients = 300;
    s.rooms = 3;
    s.senders = 15;
    s.load = Load::Rate(150.0);
    s.duration = Duration::from_secs(3);
    s.drain = Duration::from_secs(10);
    s.setup_timeout = Duration::from_secs(60);
    let started = std::time::Instant::now();
    let outcome = loadgen::run(Options {
        scenario: s,
        label: "smoke".to_owned(),
        server_pids: vec![server.pid()],
        record_acks: false,
        kill_at_end: false,
    })
    .await
    .expect("the smoke run could not start");
    let r = &outcome.report;
    eprintln!("{}\n(took {:.1?})", r.human(), started.elapsed());

    assert_eq!(r.connect.ready, 300, "every client connects and joins");
    assert!(
        r.sent >= 400,
        "the senders sent (~450 expected): {}",
        r.sent
    );
    assert_eq!(r.acked, r.sent, "every send is acked");
    assert_eq!((r.lost, r.duplicated, r.undelivered), (0, 0, 0));
    // Each message reaches its room's 100 members, its author included.
    assert_eq!(r.delivered, r.acked * 100);
    assert_eq!(r.latency.count, r.delivered);
    assert_eq!(r.disconnected, 0, "{:?}", r.reasons);
    assert!(r.ok);
    let server_stats = r.server.as_ref().expect("server measured");
    // Delivering ~45,000 frames takes measurable CPU (far above one 10 ms clock tick),
    // and a server holding 300 connections takes more than a megabyte: zeros would mean
    // the wrong process, or none, was measured.
    assert!(
        server_stats.cpu_pct > 0.0,
        "server CPU not measured: {server_stats:?}"
    );
    assert!(
        server_stats.rss_bytes_end > 1 << 20,
        "server RSS not measured: {server_stats:?}"
    );
    // The line is JSON with the documented field names.
    let line: serde_json::Value = serde_json::from_str(&r.json_line()).unwrap();
    for field in [
        "delivered_per_s",
        "latency",
        "lost",
        "duplicated",
        "server",
        "connect",
    ] {
        assert!(line.get(field).is_some(), "missing {field}");
    }
}

/// The same over the SSE fallback (`GET /sse`, `POST /sse/send`), senders included,
/// and once with the senders on WebSockets: the stream carries every message once, in
/// order, and the POSTs' frames are all acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_clients_get_every_message_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    for senders in [Transport::Sse, Transport::WebSocket] {
        // A server each: the first run's nicks stay held for the presence grace.
        let db = dir.path().join(format!("sse-{}.db", senders.name()));
        let server = Server::start(&huddle_bin(), &db).await;
        // 200 clients in 2 rooms of 100 (at most one stream per source address), 10
        // senders at 10 msg/s each.
        let mut s = Scenario::new(server.url());
        s.clients = 200;
        s.rooms = 2;
        s.senders = 10;
        s.load = Load::Rate(100.0);
        s.duration = Duration::from_secs(2);
        s.drain = Duration::from_secs(10);
        s.setup_timeout = Duration::from_secs(60);
        s.transport = Transport::Sse;
        s.sender_transport = senders;
        s.room_prefix = format!("sse-{}-", senders.name());
        let outcome = loadgen::run(Options {
            scenario: s,
            label: format!("smoke sse, senders {}", senders.name()),
            server_pids: vec![server.pid()],
            record_acks: false,
            kill_at_end: false,
        })
        .await
        .expect("the SSE run could not start");
        let r = &outcome.report;
        eprintln!("{}", r.human());
        assert_eq!(r.connect.ready, 200, "every stream opens and joins");
        assert!(
            r.sent >= 150,
            "the senders sent (~200 expected): {}",
            r.sent
        );
        assert_eq!(r.acked, r.sent, "every posted send is acked on the stream");
        assert_eq!((r.lost, r.duplicated, r.undelivered), (0, 0, 0));
        assert_eq!(r.delivered, r.acked * 100);
        assert_eq!(r.latency.count, r.delivered);
        assert_eq!(r.disconnected, 0, "{:?}", r.reasons);
        assert_eq!(r.params.transport, "sse");
        assert_eq!(r.params.sender_transport, senders.name());
        assert!(r.ok);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_or_repeated_message_fails_the_run() {
    let fake = Faulty::start().await;
    let mut s = Scenario::new(fake.url());
    s.clients = 20;
    s.rooms = 1;
    s.senders = 2;
    s.load = Load::Rate(40.0);
    s.duration = Duration::from_secs(1);
    s.drain = Duration::from_secs(2);
    let outcome = loadgen::run(Options {
        scenario: s,
        label: "faulty".to_owned(),
        server_pids: vec![],
        record_acks: false,
        kill_at_end: false,
    })
    .await
    .unwrap();
    let r = &outcome.report;
    eprintln!("{}", r.human());
    assert!(
        r.acked >= 20,
        "the run sent enough to reach the faults: {}",
        r.acked
    );
    assert_eq!(r.lost, 1, "one client missed offset {DROPPED}");
    assert_eq!(r.duplicated, 1, "one client got offset {REPEATED} twice");
    assert!(!r.ok, "a run with loss or duplicates is not OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_every_inbox_once_in_seq_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&huddle_bin(), &dir.path().join("alerts.db")).await;
    // Both variants against the default limits: 30 members, few enough sends for the
    // sender's default rate.
    for (mode, messages, room) in [
        (Mode::Mentions { per_message: 12 }, 8, "smoke-mentions"),
        (Mode::All, 6, "smoke-all"),
    ] {
        let report = loadgen::alerts::alerts(AlertOptions {
            url: server.url(),
            members: 30,
            messages,
            mode,
            in_flight: 2,
            rate: None,
            nick_prefix: format!("{room}-"),
            room: room.to_owned(),
            connect_concurrency: 16,
            drain: Duration::from_secs(30),
            server_pid: Some(server.pid()),
            label: "smoke".to_owned(),
        })
        .await
        .expect("the alerts run could not start");
        eprint!("{}", report.human());
        let expected = match mode {
            Mode::Mentions { per_message } => (per_message * messages) as u64,
            Mode::All => 29 * messages as u64,
        };
        assert_eq!(report.expected, expected);
        assert_eq!(report.received, expected);
        assert_eq!(
            (
                report.duplicated,
                report.missing,
                report.undelivered,
                report.wrong_kind
            ),
            (0, 0, 0, 0)
        );
        assert_eq!(report.latency.count, expected);
        assert!(report.ok, "{report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_posted_alert_is_pushed_once_and_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let token = "smoke-token-0123456789abcdef0123456789";
    let server = Server::start_with(
        &huddle_bin(),
        &dir.path().join("pushes.db"),
        &[
            "--api-token",
            token,
            "--push-hosts",
            "127.0.0.1",
            "--push-rate",
            "100000",
        ],
    )
    .await;
    let report = loadgen::pushes::pushes(PushOptions {
        url: server.url(),
        api_token: token.to_owned(),
        users: 10,
        per_user: 3,
        concurrency: 4,
        drain: Duration::from_secs(30),
        nick_prefix: "smoke-push-".to_owned(),
        server_pid: Some(server.pid()),
        label: "smoke".to_owned(),
    })
    .await
    .expect("the pushes run could not start");
    eprint!("{}", report.human());
    assert_eq!(report.accepted, 30, "{:?}", report.post_failures);
    assert_eq!(report.pushed, 30);
    assert_eq!((report.duplicated, report.missing), (0, 0));
    assert_eq!((report.refused, report.unexpected), (0, 0));
    assert_eq!(report.latency.count, 30);
    assert!(report.ok, "{report:?}");
}

/// The `huddle` binary next to this test's target directory, built first if it is
/// missing or older than the server's sources (e.g. after `cargo test -p loadgen` alone;
/// `cargo test --workspace` builds it for the backend's own tests anyway).
/// `HUDDLE_BIN` overrides it.
fn huddle_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("HUDDLE_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().unwrap();
    // <target>/<profile>/deps/smoke-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join(format!("huddle{}", std::env::consts::EXE_SUFFIX));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if built.is_some_and(|t| t >= newest_source(workspace)) {
        return bin;
    }
    let mut cargo = std::process::Command::new(env!("CARGO"));
    cargo
        .args(["build", "-p", "backend", "--bin", "huddle"])
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("run cargo to build huddle");
    assert!(status.success(), "building huddle failed");
    bin
}

/// The newest modification time among the server's and the protocol's sources.
fn newest_source(workspace: &Path) -> SystemTime {
    fn walk(dir: &Path, newest: &mut SystemTime) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if let Ok(t) = entry.metadata().and_then(|m| m.modified()) {
                *newest = (*newest).max(t);
            }
        }
    }
    let mut newest = SystemTime::UNIX_EPOCH;
    for dir in ["backend/src", "common/src"] {
        walk(&workspace.join(dir), &mut newest);
    }
    for file in ["Cargo.lock", "backend/Cargo.toml", "common/Cargo.toml"] {
        if let Ok(t) = std::fs::metadata(workspace.join(file)).and_then(|m| m.modified()) {
            newest = newest.max(t);
        }
    }
    newest
}

/// The real server as its own process, killed on drop.
struct Server {
    child: tokio::process::Child,
    addr: SocketAddr,
}

impl Server {
    async fn start(bin: &Path, db: &Path) -> Server {
        Server::start_with(bin, db, &[]).await
    }

    /// Starts the server with `extra` flags besides the defaults.
    async fn start_with(bin: &Path, db: &Path, extra: &[&str]) -> Server {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let mut child = tokio::process::Command::new(bin)
                .arg("--addr")
                .arg(addr.to_string())
                .arg("--db")
                .arg(db)
                .args(["--log", "warn"])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            while tokio::time::Instant::now() < deadline {
                if TcpStream::connect(addr).await.is_ok() {
                    return Server { child, addr };
                }
                if child.try_wait().unwrap().is_some() {
                    break; // the port was taken after all: try another
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "huddle did not start"
            );
            let _ = child.kill().await;
        }
    }

    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("huddle is running")
    }
}

/// The offset the faulty server withholds from its first member.
const DROPPED: u64 = 5;
/// The offset it sends twice to its second member.
const REPEATED: u64 = 7;

/// Just enough of protocol v1 for one room (hello, join, send → ack and broadcast),
/// with two planted faults: member 0 never gets offset [`DROPPED`], member 1 gets
/// offset [`REPEATED`] twice.
struct Faulty {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Faulty {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The room's last offset and its broadcast, changed together under one lock so a
/// joiner's head and its subscription agree.
struct Room {
    head: u64,
    tx: broadcast::Sender<(u64, String)>,
}

impl Faulty {
    async fn start() -> Faulty {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let room = Arc::new(Mutex::new(Room {
            head: 0,
            tx: broadcast::channel(4096).0,
        }));
        // Members are numbered in the order their WebSocket handshakes complete (the load
        // generator's reachability probe connects without one).
        let members = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(fake_session(
                    stream,
                    Arc::clone(&room),
                    Arc::clone(&members),
                ));
            }
        });
        Faulty { addr, task }
    }

    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}

async fn fake_session(stream: TcpStream, room: Arc<Mutex<Room>>, members: Arc<AtomicUsize>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let member = members.fetch_add(1, Ordering::Relaxed);
    let encode = |m: &ServerMsg| Message::text(serde_json::to_string(m).unwrap());
    let mut rx: Option<broadcast::Receiver<(u64, String)>> = None;
    let mut nick = String::new();
    loop {
        let incoming = async {
            match rx.as_mut() {
                Some(rx) => rx.recv().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = ws.next() => {
                let Some(Ok(Message::Text(t))) = frame else { return };
                let Ok(msg) = common::decode_client(t.as_str()) else { return };
                let reply = match msg {
                    ClientMsg::Hello { nick: n, .. } => {
                        let n = n.unwrap_or_default();
                        nick = n.clone();
                        ServerMsg::Welcome { nick: n, session: "s".into(), server: "faulty".into(), limits: Limits::default(), user: "u".into(), rooms: vec![], inbox: Default::default(), quiet: None }
                    }
                    ClientMsg::Join { room: name, .. } => {
                        let r = room.lock().unwrap();
                        rx = Some(r.tx.subscribe());
                        ServerMsg::Joined { room: name, head: r.head, epoch: "e".into(), nicks: vec![], recovered: None, members: None, next: None }
                    }
                    ClientMsg::Send {
                        room: name, text, id, ..
                    } => {
                        let mut r = room.lock().unwrap();
                        r.head += 1;
                        let offset = r.head;
                        let frame = ServerMsg::Message(common::ChatMessage {
                            room: name.clone(), offset, id: id.clone(), nick: nick.clone(), text, ts: 0,
                            ..Default::default()
                        });
                        let _ = r.tx.send((offset, serde_json::to_string(&frame).unwrap()));
                        ServerMsg::Ack { id, room: name, offset }
                    }
                    _ => continue,
                };
                if ws.send(encode(&reply)).await.is_err() { return; }
            }
            Some((offset, frame)) = incoming => {
                let copies = match (member, offset) {
                    (0, DROPPED) => 0,
                    (1, REPEATED) => 2,
                    _ => 1,
                };
                for _ in 0..copies {
                    if ws.send(Message::text(frame.clone())).await.is_err() { return; }
                }
            }
        }
    }
}
