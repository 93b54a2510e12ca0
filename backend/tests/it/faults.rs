//! Faults the server must survive, each provoked for real on 127.0.0.1: the disk refusing
//! writes (a file size limit set on the running process), `kill -9` under load, a
//! thousand clients vanishing at once, a client that stops reading while others flood,
//! and a peer that vanishes without a FIN (a proxy that turns into a black hole), with
//! the server idle or busy writing to it.
//!
//! Related tests elsewhere: `limits.rs` has the in-process slow reader (4008, others
//! unaffected), the idle peer that never pongs and a storage failure injected with a
//! trigger; `lifecycle.rs` has `kill -9` after a burst. The tests here run the real
//! `huddle` binary where the fault is a process-level one (file size limit, SIGKILL, RSS)
//! or needs the process's own `/metrics`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{free_port, Client, Huddle, Stored, TestServer, WAIT};
use backend::metric_names as metrics;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;
use tokio_util::sync::CancellationToken;

/// Every client here connects from 127.0.0.1, so the per-address limits are switched off.
const ONE_ADDRESS: [&str; 4] = ["--max-connections-per-ip", "0", "--ip-join-rate", "0"];

/// A server on a fresh port with the per-address limits off and `extra` flags.
async fn start(db: &Path, extra: &[&str]) -> Huddle {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let args: Vec<&str> = ONE_ADDRESS.iter().chain(extra).copied().collect();
    Huddle::start(db, addr, &args).await
}

fn pid(huddle: &Huddle) -> u32 {
    huddle.child.id().expect("huddle is running")
}

async fn connect(huddle: &Huddle) -> Client {
    Client::connect(&huddle.ws_url()).await
}

/// A client that said hello as `nick` and joined `room`.
async fn member(huddle: &Huddle, nick: &str, room: &str) -> Client {
    let mut c = connect(huddle).await;
    assert_eq!(c.hello(nick).await["type"], "welcome");
    assert_eq!(c.join(room).await["type"], "joined");
    c
}

/// `GET path` over a fresh connection: (status code, body).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("HTTP answer timed out")
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// The value of `series` (a name, with labels if it has any) in the server's `/metrics`.
async fn metric(addr: SocketAddr, series: &str) -> f64 {
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200, "/metrics: {body}");
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} is not in /metrics:\n{body}"))
}

/// Waits until `series` reads `want`, failing after `within` with the last value seen.
async fn wait_for_metric(addr: SocketAddr, series: &str, want: f64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = metric(addr, series).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} is {got}, not {want}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts offsets 1..=n with no gap and no reuse.
fn assert_gap_free(room: &str, stored: &[Stored]) {
    let offsets: Vec<u64> = stored.iter().map(|m| m.0).collect();
    assert_eq!(
        offsets,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "{room}: offsets are not 1..=head"
    );
}

/// The nicks of a `presence` frame, sorted (the server lists them in join order).
fn sorted(presence: &Value) -> Vec<&str> {
    let mut nicks: Vec<&str> = presence["nicks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    nicks.sort_unstable();
    nicks
}

/// A field of `/proc/<pid>/status` in kB (e.g. `VmRSS`).
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

// ---------------------------------------------------------------------------------------
// 1. The disk refuses writes.

/// Starts `huddle` with SIGXFSZ ignored, so that a write beyond its file size limit fails
/// with EFBIG (the way a full disk fails with ENOSPC) instead of killing the process.
/// `sh` ignores the signal and `exec`s the server: an ignored signal stays ignored across
/// exec, and no `unsafe` `pre_exec` is needed.
async fn start_ignoring_sigxfsz(db: &Path, extra: &[&str]) -> Huddle {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_huddle"))
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--db")
        .arg(db)
        .args(ONE_ADDRESS)
        .args(extra)
        // The fault makes the writer log an error per failed batch; that is expected.
        .env("HUDDLE_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start sh");
    let deadline = tokio::time::Instant::now() + WAIT;
    while TcpStream::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "huddle did not start listening on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let huddle = Huddle { child, addr };
    let pid = pid(&huddle);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "huddle", "sh did not exec the server");
    // SigIgn is a hex mask; SIGXFSZ is signal 25, bit 24.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .unwrap();
    assert_ne!(ignored & (1 << 24), 0, "SIGXFSZ is not ignored by huddle");
    huddle
}

/// The soft RLIMIT_FSIZE of a process as `prlimit` writes it (`unlimited` or bytes).
fn soft_fsize(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max file size"))
        .unwrap();
    line["Max file size".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Sets the soft RLIMIT_FSIZE of a running process (`prlimit` from util-linux). Lowering
/// the soft limit, and raising it back up to the unchanged hard limit, needs no privilege.
fn set_soft_fsize(pid: u32, soft: &str) {
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--fsize={soft}:"))
        .status()
        .expect("this test needs `prlimit` (util-linux) on PATH");
    assert!(status.success(), "prlimit --fsize={soft}: failed");
    assert_eq!(soft_fsize(pid), soft);
}

#[tokio::test]
async fn a_disk_that_refuses_writes_fails_sends_with_internal_loses_nothing_acked_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("disk.db");
    let mut huddle = start_ignoring_sigxfsz(&db, &[]).await;
    let pid = pid(&huddle);
    let mut alice = member(&huddle, "alice", "lobby").await;
    let mut bob = member(&huddle, "bob", "lobby").await;
    alice.next_of("presence").await;
    let mut acked: Vec<(u64, String)> = Vec::new();
    for i in 1..=5 {
        let text = format!("before {i}");
        acked.push((alice.say_acked("lobby", &text).await, text));
    }
    for _ in 0..5 {
        bob.next_of("message").await;
    }
    assert_eq!(http_get(huddle.addr, "/readyz").await.0, 200);

    // The fault: from now on every write(2) of the process to a regular file fails with
    // EFBIG (the limit counts from offset 0, so overwrites fail too): a disk that takes
    // nothing more, for this process only, and it works as root, where a read-only
    // directory would not stop anything.
    let normal = soft_fsize(pid);
    set_soft_fsize(pid, "0");
    let faulted: Vec<String> = (1..=6).map(|i| format!("f{i}")).collect();
    for id in &faulted {
        alice
            .send(
                json!({"type": "send", "room": "lobby", "text": format!("during {id}"), "id": id}),
            )
            .await;
    }
    let mut refused = BTreeSet::new();
    while refused.len() < faulted.len() {
        let v = alice.recv().await;
        assert_ne!(
            v["type"], "ack",
            "a send was acked while the disk refused writes: {v}"
        );
        assert_ne!(v["type"], "message", "a send was delivered unstored: {v}");
        if v["type"] == "error" {
            assert_eq!(v["code"], "internal", "{v}");
            refused.insert(v["ref"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(refused, faulted.iter().cloned().collect::<BTreeSet<_>>());
    bob.expect_nothing_queued().await;
    // The server stays up and says it is not ready; reading history still works.
    crate::support::readyz_becomes(huddle.addr, 503).await;
    let during = bob.whole_history("lobby").await;
    assert_eq!(during.len(), 5, "{during:?}");
    assert!(metric(huddle.addr, metrics::WRITE_FAILURES).await >= 1.0);

    // The fault clears: half of the refused sends are retried under their ids, and new
    // ones are sent. Every one lands right after the last acked offset.
    set_soft_fsize(pid, &normal);
    crate::support::readyz_becomes(huddle.addr, 200).await;
    for id in &faulted[..3] {
        let text = format!("retried {id}");
        alice
            .send(json!({"type": "send", "room": "lobby", "text": text, "id": id}))
            .await;
        let ack = alice.next_of("ack").await;
        assert_eq!(ack["id"], id.as_str());
        acked.push((ack["offset"].as_u64().unwrap(), text));
    }
    for i in 1..=3 {
        let text = format!("after {i}");
        acked.push((alice.say_acked("lobby", &text).await, text));
    }
    let offsets: Vec<u64> = acked.iter().map(|a| a.0).collect();
    assert_eq!(
        offsets,
        (1..=11).collect::<Vec<_>>(),
        "acks skip or reuse offsets"
    );
    let m = bob.next_of("message").await;
    assert_eq!(
        (m["offset"].as_u64(), m["id"].as_str()),
        (Some(6), Some("f1"))
    );

    // The failed writes left nothing broken on disk: after kill -9 and a restart on the
    // same file, exactly the acked messages are there, and the refused ones that were
    // never retried are not.
    huddle.kill9().await;
    let huddle = start(&db, &[]).await;
    let mut auditor = connect(&huddle).await;
    auditor.hello("auditor").await;
    let stored = auditor.whole_history("lobby").await;
    assert_gap_free("lobby", &stored);
    let stored_texts: Vec<(u64, String)> = stored.iter().map(|m| (m.0, m.3.clone())).collect();
    assert_eq!(stored_texts, acked);
    assert!(stored.iter().all(|m| !faulted[3..].contains(&m.2)));
}

// ---------------------------------------------------------------------------------------
// 2. kill -9 under continuous load.

/// Sends at most this many messages ahead of their acks, per sender.
const WINDOW: usize = 16;

/// What one sender saw acked: (room, offset) → (nick, id).
type Acks = BTreeMap<(String, u64), (String, String)>;

/// Sends `text(n)` with id `n` = 1, 2, 3, … to `room`, keeping [`WINDOW`] sends in flight,
/// until `count` are acked or the connection dies; returns every ack it received. Only
/// acks and errors are parsed: the echoes of the sender's own messages may be large.
async fn send_stream(
    c: Client,
    nick: String,
    room: String,
    count: Option<usize>,
    text: impl Fn(u64) -> String + Send + 'static,
    total: Arc<AtomicUsize>,
) -> Acks {
    let (mut tx, mut rx) = c.into_ws().split();
    let window = Arc::new(tokio::sync::Semaphore::new(WINDOW));
    let sending = {
        let (window, room) = (Arc::clone(&window), room.clone());
        tokio::spawn(async move {
            for n in 1u64.. {
                let Ok(permit) = window.acquire().await else {
                    return;
                };
                permit.forget();
                // Texts here need no JSON escaping; formatting is much cheaper than
                // serializing a long string in a debug build.
                let text = text(n);
                debug_assert!(!text.contains(['"', '\\']) && !text.contains(char::is_control));
                let frame =
                    format!(r#"{{"type":"send","room":"{room}","id":"{n}","text":"{text}"}}"#);
                if tx.send(Message::text(frame)).await.is_err() {
                    return;
                }
            }
        })
    };
    let mut acks = Acks::new();
    // Read until done, or until the server is gone: the stream ends or fails.
    while count.is_none_or(|c| acks.len() < c) {
        let Ok(Some(Ok(msg))) = tokio::time::timeout(WAIT, rx.next()).await else {
            break;
        };
        let Message::Text(t) = msg else { continue };
        if t.starts_with(r#"{"type":"ack""#) {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            let id = v["id"].as_str().unwrap().to_owned();
            acks.insert(
                (room.clone(), v["offset"].as_u64().unwrap()),
                (nick.clone(), id),
            );
            total.fetch_add(1, Ordering::Relaxed);
            window.add_permits(1);
        } else if t.starts_with(r#"{"type":"error""#) {
            panic!("{nick}: a send was refused: {}", t.as_str());
        }
    }
    window.close();
    sending.abort();
    acks
}

#[tokio::test]
async fn kill_9_under_ten_continuous_senders_keeps_every_acked_message_and_gap_free_offsets() {
    const SENDERS: usize = 10;
    const ROOMS: [&str; 2] = ["alpha", "beta"];
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("load.db");
    // The auditor reads everything back at once: no read budget either.
    let rate = [
        "--rate-per-sec",
        "100000",
        "--rate-burst",
        "100000",
        "--read-rate",
        "1000000",
        "--read-bytes",
        "1000000000",
    ];
    let mut huddle = start(&db, &rate).await;
    let total = Arc::new(AtomicUsize::new(0));
    let mut senders = JoinSet::new();
    for i in 0..SENDERS {
        let nick = format!("s{i}");
        let room = ROOMS[i % ROOMS.len()].to_owned();
        let c = member(&huddle, &nick, &room).await;
        let of = nick.clone();
        let text = move |n| format!("{of} {n}");
        senders.spawn(send_stream(c, nick, room, None, text, Arc::clone(&total)));
    }
    // Kill mid-stream: once a good number of sends are acked, with every sender still
    // sending (each keeps WINDOW sends in flight).
    let deadline = tokio::time::Instant::now() + WAIT;
    while total.load(Ordering::Relaxed) < 500 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the senders stalled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    huddle.kill9().await;
    let mut acked = Acks::new();
    while let Some(acks) = senders.join_next().await {
        acked.extend(acks.unwrap());
    }

    let huddle = start(&db, &rate).await;
    let mut auditor = connect(&huddle).await;
    auditor.hello("auditor").await;
    let mut stored_total = 0;
    for room in ROOMS {
        let stored = auditor.whole_history(room).await;
        assert_gap_free(room, &stored);
        stored_total += stored.len();
        let by_offset: HashMap<u64, (&str, &str, &str)> = stored
            .iter()
            .map(|(o, nick, id, text)| (*o, (nick.as_str(), id.as_str(), text.as_str())))
            .collect();
        // Acked ⊆ stored, at the acked offset. (A message may be stored without its ack
        // having reached the client before the kill: that is allowed.)
        for ((r, offset), (nick, id)) in acked.iter().filter(|((r, _), _)| r == room) {
            let stored = by_offset
                .get(offset)
                .unwrap_or_else(|| panic!("acked {r}#{offset} ({nick} {id}) lost in the crash"));
            let text = format!("{nick} {id}");
            assert_eq!(
                *stored,
                (nick.as_str(), id.as_str(), text.as_str()),
                "{r}#{offset}"
            );
        }
        // Each sender's stored messages are its first k sends, in order: commits are a
        // prefix of the writer's FIFO queue, and nothing was stored twice.
        let mut per_nick: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for (_, nick, id, text) in &stored {
            assert_eq!(text, &format!("{nick} {id}"));
            per_nick.entry(nick).or_default().push(id.parse().unwrap());
        }
        for (nick, ns) in per_nick {
            assert_eq!(
                ns,
                (1..=ns.len() as u64).collect::<Vec<_>>(),
                "{room}: {nick}"
            );
        }
        // The room continues right after the last stored offset.
        assert_eq!(auditor.join(room).await["head"], stored.len() as u64);
        assert_eq!(
            auditor.say_acked(room, "after the crash").await,
            stored.len() as u64 + 1
        );
    }
    assert!(
        stored_total >= acked.len() && acked.len() >= 500,
        "{} acked, {stored_total} stored",
        acked.len()
    );
}

// ---------------------------------------------------------------------------------------
// 3. A thousand clients vanish at once.

/// How every `presence` frame starts (the codec writes the tag first).
const PRESENCE: &str = r#"{"type":"presence""#;

/// The next text frame, unparsed (pings and pongs skipped).
async fn next_text(c: &mut Client) -> String {
    loop {
        let msg = tokio::time::timeout(WAIT, c.ws().next())
            .await
            .expect("timed out waiting for a frame")
            .expect("connection ended")
            .expect("read error");
        match msg {
            Message::Text(t) => return t.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The offset of a `message` frame, found without parsing its (long) text.
fn offset_of(frame: &str) -> u64 {
    let rest = &frame[frame.find(r#""offset":"#).expect("a message has an offset") + 9..];
    rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap()]
        .parse()
        .unwrap()
}

/// Reads until the `presence` frames settle: the latest one (`last` so far) lists exactly
/// `want` and nothing more arrives for 300 ms. The one check here that waits for
/// silence: while the crowd is still in the room, the sessions that may publish a newer
/// list are blocked writing to clients that never read, so none can be asked a question
/// whose answer would prove its announcements are over (compare
/// [`latest_presence_queued`], used once they are gone).
async fn presence_settles_on(c: &mut Client, last: &str, want: &[String]) {
    let mut latest = last.to_owned();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout(Duration::from_millis(300), next_text(c)).await {
            Ok(t) if t.starts_with(PRESENCE) => latest = t,
            Ok(_) => {}
            Err(_) if !latest.is_empty() && presence_nicks(&latest) == want => return,
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "presence settled on a stale list: {latest:.300}"
            ),
        }
    }
}

/// The last `presence` frame among those queued for `c` now (`last` if none), read up to
/// the answer to a question it asks: a session writes what is queued for it before it
/// reads the next request, so every list already published to `c` comes first.
async fn latest_presence_queued(c: &mut Client, last: String) -> String {
    c.send(json!({"type": "list_rooms"})).await;
    let mut latest = last;
    loop {
        let t = next_text(c).await;
        if t.starts_with(PRESENCE) {
            latest = t;
        } else if t.starts_with(r#"{"type":"rooms""#) {
            return latest;
        }
    }
}

/// The nicks of a `presence` frame, sorted.
fn presence_nicks(frame: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(frame).unwrap();
    let mut nicks: Vec<String> = serde_json::from_value(v["nicks"].clone()).unwrap();
    nicks.sort_unstable();
    nicks
}

/// The nick of a `notification` frame of `kind`; None for any other frame.
fn notification(frame: &str, kind: &str) -> Option<String> {
    if !frame.starts_with(r#"{"type":"notification""#) {
        return None;
    }
    let v: Value = serde_json::from_str(frame).unwrap();
    (v["kind"] == kind).then(|| v["nick"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_thousand_clients_vanishing_at_once_leave_correct_presence_and_no_live_sessions() {
    const CROWD: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    // Every join sends the whole member list to every member: filling a room of 1,000
    // queues ~2,000 frames per member, and these clients never read. The outbox bound is
    // raised above that so the crowd is not closed as slow consumers before it vanishes,
    // and the announce limit above the crowd, since every arrival and departure is the
    // point here.
    // No nick grace: the newcomer below takes a departed member's nick at once.
    let huddle = start(
        &dir.path().join("crowd.db"),
        &[
            "--outbox",
            "8192",
            "--announce-limit",
            "2000",
            "--presence-grace",
            "0s",
        ],
    )
    .await;
    let mut watcher = member(&huddle, "watcher", "crowd").await;

    let mut connecting = JoinSet::new();
    let url = huddle.ws_url();
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    for i in 0..CROWD {
        let (url, gate) = (url.clone(), Arc::clone(&gate));
        connecting.spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            // A small receive window keeps the kernel's copies of the frames these
            // clients never read small; zero linger makes dropping the socket a reset,
            // not a FIN: the peer aborts, it does not say goodbye.
            socket.set_recv_buffer_size(4096).unwrap();
            socket.set_zero_linger().unwrap();
            let addr = url
                .trim_start_matches("ws://")
                .trim_end_matches("/ws")
                .parse()
                .unwrap();
            let stream = socket.connect(addr).await.unwrap();
            let (mut ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
                .await
                .unwrap();
            let nick = format!("c{i:04}");
            ws.send(Message::text(
                json!({"type": "hello", "nick": nick}).to_string(),
            ))
            .await
            .unwrap();
            ws.send(Message::text(
                json!({"type": "join", "room": "crowd"}).to_string(),
            ))
            .await
            .unwrap();
            ws
        });
    }
    let mut crowd = Vec::with_capacity(CROWD);
    while let Some(ws) = connecting.join_next().await {
        crowd.push(ws.unwrap());
    }
    // The watcher sees every one of them join. Presence frames carry up to 1,001 nicks:
    // only the latest is parsed, which keeps this debug-built client fast.
    let mut joined = BTreeSet::new();
    let mut presence = String::new();
    while joined.len() < CROWD {
        let t = next_text(&mut watcher).await;
        if t.starts_with(PRESENCE) {
            presence = t;
        } else if let Some(nick) = notification(&t, "joined") {
            joined.insert(nick);
        }
    }
    let mut everyone: Vec<String> = (0..CROWD).map(|i| format!("c{i:04}")).collect();
    assert_eq!(joined, everyone.iter().cloned().collect());
    // The member list the watcher ends with is the room as it is.
    everyone.push("watcher".to_owned());
    presence_settles_on(&mut watcher, &presence, &everyone).await;
    everyone.pop();
    wait_for_metric(
        huddle.addr,
        metrics::SESSIONS_LIVE,
        (CROWD + 1) as f64,
        WAIT,
    )
    .await;

    // All at once, no close handshake.
    drop(crowd);
    let started = tokio::time::Instant::now();
    let mut left = BTreeSet::new();
    let mut presence = String::new();
    while left.len() < CROWD {
        let t = next_text(&mut watcher).await;
        if t.starts_with(PRESENCE) {
            presence = t;
        } else if let Some(nick) = notification(&t, "left") {
            assert!(left.insert(nick.clone()), "{nick} left twice");
        }
    }
    assert_eq!(left, everyone.iter().cloned().collect());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    // Only the watcher is left, in the room and in the process.
    wait_for_metric(
        huddle.addr,
        metrics::SESSIONS_LIVE,
        1.0,
        Duration::from_secs(5),
    )
    .await;
    // Every session ended after its departure's announcements, so the lists are all
    // queued for the watcher now, and the last of them must be the room as it is.
    let presence = latest_presence_queued(&mut watcher, presence).await;
    assert!(!presence.is_empty(), "no member list after the departures");
    assert_eq!(
        presence_nicks(&presence),
        ["watcher"],
        "a stale member list"
    );
    wait_for_metric(
        huddle.addr,
        metrics::CONNECTIONS_OPEN,
        1.0,
        Duration::from_secs(5),
    )
    .await;
    // Listed once it has a message.
    watcher.say_acked("crowd", "still here").await;
    watcher.send(json!({"type": "list_rooms"})).await;
    let rooms = watcher.next_of("rooms").await;
    assert_eq!(rooms["rooms"][0]["members"], 1, "{rooms}");
    // The nicks are free again, and a newcomer sees the room as it is.
    let newcomer = member(&huddle, "c0000", "crowd").await;
    assert_eq!(
        sorted(&watcher.next_of("presence").await),
        ["c0000", "watcher"]
    );
    drop(newcomer);
    drop(watcher);
    wait_for_metric(
        huddle.addr,
        metrics::SESSIONS_LIVE,
        0.0,
        Duration::from_secs(5),
    )
    .await;
    wait_for_metric(
        huddle.addr,
        metrics::CONNECTIONS_OPEN,
        0.0,
        Duration::from_secs(5),
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// 4. A client that stops reading, while the room floods.

#[tokio::test]
async fn a_reader_that_stops_is_closed_with_4008_and_server_memory_stays_bounded() {
    // 2,000 messages of 4,000 four-byte characters: 32 MB of 16 kB frames. With its
    // outbox bound (256 frames here), the server keeps at most 4 MB of them for a reader
    // that stopped; without one it would keep them all, and grow by more than the limit
    // (measured: ~40 MB unbounded, ~8 MB bounded).
    const FLOOD: usize = 2000;
    const FRAME_KIB: usize = 16;
    const GROWTH_LIMIT_KIB: u64 = 20 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let huddle = start(
        &dir.path().join("flood.db"),
        &[
            "--outbox",
            "256",
            "--rate-per-sec",
            "100000",
            "--rate-burst",
            "100000",
        ],
    )
    .await;
    let pid = pid(&huddle);
    let mut fast = member(&huddle, "fast", "lobby").await;
    // The reader that stops: a tiny receive buffer, and after `join` it reads nothing.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(huddle.addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(huddle.ws_url(), MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    let mut stuck = Client::from_stream(ws);
    stuck.hello("stuck").await;
    stuck.join("lobby").await;
    fast.next_of("presence").await;
    let sender = member(&huddle, "sender", "lobby").await;
    fast.next_of("presence").await;
    let baseline = proc_status_kib(pid, "VmRSS");

    let sampling = CancellationToken::new();
    let peak = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !sampling.is_cancelled() {
                peak = peak.max(proc_status_kib(pid, "VmRSS"));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        })
    };
    // The sender keeps a window of sends in flight, so the writer's queue stays short and
    // only the reader that stopped falls behind.
    let text = "🦀".repeat(4000);
    let sending = tokio::spawn(send_stream(
        sender,
        "sender".to_owned(),
        "lobby".to_owned(),
        Some(FLOOD),
        move |_| text.clone(),
        Arc::default(),
    ));
    let (left_tx, left_rx) = tokio::sync::oneshot::channel();
    let reading = tokio::spawn(async move {
        let mut left_tx = Some(left_tx);
        let mut offsets = Vec::with_capacity(FLOOD);
        while offsets.len() < FLOOD {
            let t = next_text(&mut fast).await;
            if t.starts_with(r#"{"type":"message""#) {
                offsets.push(offset_of(&t));
            } else if notification(&t, "left").as_deref() == Some("stuck") {
                if let Some(tx) = left_tx.take() {
                    let _ = tx.send(());
                }
            }
        }
        offsets
    });
    // Once the server has dropped it from the room, the reader that stopped reads again:
    // what was already in flight, then the close frame.
    let closed = tokio::spawn(async move {
        left_rx.await.ok()?;
        stuck.expect_close().await
    });
    let offsets = tokio::time::timeout(Duration::from_secs(20), reading)
        .await
        .expect("the flood did not finish")
        .unwrap();
    sending.await.unwrap();
    sampling.cancel();
    let peak = peak.await.unwrap();
    assert!(
        peak < baseline + GROWTH_LIMIT_KIB,
        "RSS grew from {baseline} kB to {peak} kB while {} MB flooded past a reader that stopped",
        FLOOD * FRAME_KIB / 1024
    );
    assert_eq!(
        closed.await.unwrap(),
        Some(4008),
        "the reader that stopped was not closed as a slow consumer"
    );
    // The others were unaffected: every message, in order.
    assert_eq!(
        offsets,
        (1..=FLOOD as u64).collect::<Vec<_>>(),
        "the fast reader missed frames"
    );
    assert_eq!(
        metric(huddle.addr, metrics::SLOW_CONSUMER_CLOSES).await,
        1.0
    );
}

// ---------------------------------------------------------------------------------------
// 5. Half-open TCP.

/// A TCP proxy on 127.0.0.1 for one connection that can turn into a black hole: it stops
/// forwarding in both directions but keeps both sockets open, so neither side ever sees a
/// FIN or a reset, as when a peer's network vanishes.
struct Proxy {
    addr: SocketAddr,
    cut: CancellationToken,
    /// The forwarding tasks; they own the sockets, and dropping the proxy aborts them.
    tasks: JoinSet<()>,
}

impl Proxy {
    async fn to(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let accept_cut = cut.clone();
        tasks.spawn(async move {
            let (client, _) = listener.accept().await.unwrap();
            let server = TcpStream::connect(upstream).await.unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let up = tokio::spawn(forward(cr, sw, accept_cut.clone()));
            let down = tokio::spawn(forward(sr, cw, accept_cut));
            // Owned here, so aborting this task (dropping the proxy) ends them too.
            struct AbortOnDrop(tokio::task::JoinHandle<()>);
            impl Drop for AbortOnDrop {
                fn drop(&mut self) {
                    self.0.abort();
                }
            }
            let _guards = (AbortOnDrop(up), AbortOnDrop(down));
            std::future::pending::<()>().await;
        });
        Proxy { addr, cut, tasks }
    }

    fn blackhole(&self) {
        self.cut.cancel();
    }
}

/// Copies bytes until `cut`, then holds both halves open forever, reading nothing.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: CancellationToken,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            () = cut.cancelled() => break,
            n = from.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if cut.is_cancelled() || to.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    std::future::pending::<()>().await;
    drop((from, to));
}

#[tokio::test]
async fn a_peer_that_vanishes_without_a_fin_is_reaped_by_the_heartbeat() {
    const PING: Duration = Duration::from_millis(100);
    const IDLE: Duration = Duration::from_millis(600);
    let server = TestServer::with(|c| {
        c.ping_interval = PING;
        c.idle_timeout = IDLE;
        // Released at once, so the check below shows the reaping freed the nick.
        c.presence_grace = Duration::ZERO;
    })
    .await;
    let mut watcher = server.member("watcher", "lobby").await;
    let mut proxy = Proxy::to(server.addr).await;
    let mut ghost = Client::connect(&format!("ws://{}/ws", proxy.addr)).await;
    assert_eq!(ghost.hello("ghost").await["type"], "welcome");
    assert_eq!(ghost.join("lobby").await["type"], "joined");
    assert_eq!(
        sorted(&watcher.next_of("presence").await),
        ["ghost", "watcher"]
    );
    ghost.say("lobby", "through the proxy").await;
    assert_eq!(
        watcher.next_of("message").await["text"],
        "through the proxy"
    );
    // While frames flow, the proxied peer outlives the idle timeout several times over:
    // reading answers the server's pings.
    let ghost_reader =
        tokio::spawn(async move { while let Some(Ok(_)) = ghost.ws().next().await {} });
    let quiet_until = tokio::time::Instant::now() + IDLE * 3;
    while let Ok(frame) = tokio::time::timeout_at(quiet_until, watcher.ws().next()).await {
        match frame {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("the proxied peer was dropped while it answered pings: {other:?}"),
        }
    }

    proxy.blackhole();
    let cut_at = tokio::time::Instant::now();
    let note = watcher.next_of("notification").await;
    let reaped_after = cut_at.elapsed();
    assert_eq!(
        (note["kind"].as_str(), note["nick"].as_str()),
        (Some("left"), Some("ghost"))
    );
    assert_eq!(
        watcher.next_of("presence").await["nicks"],
        json!(["watcher"])
    );
    // Reaped by the heartbeat (no pong within the idle timeout), not by anything the
    // proxy did: it still holds both sockets open.
    assert!(
        reaped_after >= IDLE - PING * 2 && reaped_after < IDLE * 4,
        "reaped after {reaped_after:?}"
    );
    assert!(!ghost_reader.is_finished(), "the ghost's socket saw an end");
    assert!(
        proxy.tasks.try_join_next().is_none(),
        "the proxy closed a socket"
    );
    wait_for_metric(
        server.addr,
        metrics::SESSIONS_LIVE,
        1.0,
        Duration::from_secs(5),
    )
    .await;
    // The nick is free again.
    let mut back = server.client().await;
    assert_eq!(back.hello("ghost").await["type"], "welcome");
    ghost_reader.abort();
}

#[tokio::test]
async fn a_peer_that_vanishes_while_the_server_is_writing_to_it_is_reaped_too() {
    const IDLE: Duration = Duration::from_millis(600);
    let server = TestServer::with(|c| {
        c.ping_interval = Duration::from_millis(100);
        c.idle_timeout = IDLE;
        // Released at once, so the check below shows the reaping freed the nick.
        c.presence_grace = Duration::ZERO;
        c.rate_per_sec = 100_000;
        c.rate_burst = 100_000;
    })
    .await;
    let mut watcher = server.member("watcher", "lobby").await;
    let mut proxy = Proxy::to(server.addr).await;
    let mut ghost = Client::connect(&format!("ws://{}/ws", proxy.addr)).await;
    assert_eq!(ghost.hello("ghost").await["type"], "welcome");
    assert_eq!(ghost.join("lobby").await["type"], "joined");
    watcher.next_of("presence").await;
    proxy.blackhole();
    let cut_at = tokio::time::Instant::now();
    // 300 messages of 16 kB: more than the socket buffers between the server and the
    // proxy hold, far fewer than the outbox (1,024), so no 4008 comes to the rescue. The
    // server's write to the ghost blocks, and the heartbeat must still reap it.
    let text = "🦀".repeat(4000);
    for _ in 0..300 {
        watcher.say("lobby", &text).await;
    }
    let deadline = cut_at + Duration::from_secs(5);
    loop {
        let t = tokio::time::timeout_at(deadline, next_text(&mut watcher))
            .await
            .expect("a peer the server could not write to was never reaped");
        if notification(&t, "left").as_deref() == Some("ghost") {
            break;
        }
    }
    let reaped_after = cut_at.elapsed();
    assert!(reaped_after >= IDLE / 2, "reaped after {reaped_after:?}");
    assert!(
        proxy.tasks.try_join_next().is_none(),
        "the proxy closed a socket"
    );
    let presence = loop {
        let t = next_text(&mut watcher).await;
        if t.starts_with(PRESENCE) {
            break t;
        }
    };
    assert_eq!(
        sorted(&serde_json::from_str(&presence).unwrap()),
        ["watcher"]
    );
    let mut back = server.client().await;
    assert_eq!(back.hello("ghost").await["type"], "welcome");
}
