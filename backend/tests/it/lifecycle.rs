//! The process around the protocol: graceful shutdown, crash durability, the CLI's
//! errors and the plain HTTP routes. Some tests run the real `huddle` binary.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{Client, TestServer, WAIT};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

const HUDDLE: &str = env!("CARGO_BIN_EXE_huddle");

/// A `huddle` process on a free port of 127.0.0.1.
struct Process {
    child: Child,
    addr: String,
}

impl Process {
    async fn start(db: &Path) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(HUDDLE)
            .args(["--addr", &addr, "--db"])
            .arg(db)
            .env("HUDDLE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start huddle");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                return Process { child, addr };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("huddle did not start listening on {addr}");
    }

    async fn client(&self) -> Client {
        Client::connect(&format!("ws://{}/ws", self.addr)).await
    }
}

/// Sends a raw HTTP/1.1 GET and returns (status line, headers+body text).
async fn http_get(addr: &str, path: &str, extra: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    (status, text)
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001_and_flushes_acked_messages() {
    let mut server = TestServer::start().await;
    let mut a = server.member("alice", "lobby").await;
    let mut b = server.member("bob", "lobby").await;
    let acked = a.say_acked("lobby", "before shutdown").await;
    server.stop().await.expect("run returns Ok after shutdown");
    assert_eq!(a.expect_close().await, Some(1001));
    assert_eq!(b.expect_close().await, Some(1001));
    // The history is intact on the same database.
    let restarted = TestServer::on_db(server.db.clone(), |_| {}).await;
    let mut c = restarted.login("carol").await;
    c.send(json!({"type": "history", "room": "lobby"})).await;
    let h = c.expect("history").await;
    assert_eq!(h["messages"][0]["offset"], acked);
    assert_eq!(h["messages"][0]["text"], "before shutdown");
}

#[tokio::test]
async fn acked_messages_survive_kill_9_and_offsets_stay_gap_free() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let mut proc = Process::start(&db).await;
    // Five senders flood; the server is killed while sends are still in flight.
    // How many senders wrote all their sends, and how many acks they read.
    let (sent, acks) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (sent, acks) = (Arc::clone(&sent), Arc::clone(&acks));
        let mut c = proc.client().await;
        assert_eq!(c.hello(&format!("s{i}")).await["type"], "welcome");
        assert_eq!(c.join("lobby").await["type"], "joined");
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                c.say("lobby", "durable?").await;
            }
            sent.fetch_add(1, Ordering::Relaxed);
            let mut acked = BTreeMap::new();
            // Read acks until the connection dies under us.
            loop {
                match tokio::time::timeout(
                    Duration::from_secs(10),
                    futures_util::StreamExt::next(c.ws()),
                )
                .await
                {
                    Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                        if v["type"] == "ack" {
                            acks.fetch_add(1, Ordering::Relaxed);
                            acked.insert(
                                v["offset"].as_u64().unwrap(),
                                v["id"].as_str().unwrap().to_owned(),
                            );
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            (format!("s{i}"), acked)
        }));
    }
    // Killed as soon as every send is written and one is acked.
    let deadline = tokio::time::Instant::now() + WAIT;
    while sent.load(Ordering::Relaxed) < 5 || acks.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the senders never got their sends out and one acked"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proc.child.start_kill().unwrap();
    proc.child.wait().await.unwrap();
    let mut acked = Vec::new();
    for t in tasks {
        let (nick, offsets) = t.await.unwrap();
        acked.extend(offsets.into_iter().map(|(o, id)| (o, nick.clone(), id)));
    }

    let proc = Process::start(&db).await;
    let mut c = proc.client().await;
    c.hello("auditor").await;
    let mut stored = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        c.send(json!({"type": "history", "room": "lobby", "before": before, "limit": 100}))
            .await;
        let h = c.expect("history").await;
        let page = h["messages"].as_array().unwrap();
        for m in page.iter().rev() {
            stored.push((
                m["offset"].as_u64().unwrap(),
                m["nick"].as_str().unwrap().to_owned(),
                m["id"].as_str().unwrap().to_owned(),
            ));
        }
        if h["has_more"] != true {
            break;
        }
        before = page.first().and_then(|m| m["offset"].as_u64());
    }
    stored.sort();
    let offsets: Vec<u64> = stored.iter().map(|m| m.0).collect();
    assert_eq!(
        offsets,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "offsets gap-free after restart"
    );
    for a in &acked {
        assert!(stored.contains(a), "acked message {a:?} lost in the crash");
    }
    // Offsets continue after the last stored one.
    c.join("lobby").await;
    assert_eq!(
        c.say_acked("lobby", "after restart").await,
        stored.len() as u64 + 1
    );
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1001_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Process::start(&dir.path().join("term.db")).await;
    let mut c = proc.client().await;
    c.hello("alice").await;
    let pid = proc.child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(c.expect_close().await, Some(1001));
    let exit = tokio::time::timeout(Duration::from_secs(10), proc.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code(), Some(0));
}

fn huddle(args: &[&str]) -> std::process::Output {
    std::process::Command::new(HUDDLE)
        .args(args)
        .env("HUDDLE_LOG", "off")
        .output()
        .unwrap()
}

#[test]
fn cli_errors_name_the_fix_and_exit_non_zero() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let out = huddle(&["--addr", &addr, "--db", db.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot listen on") && err.contains("--addr"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");

    let out = huddle(&[
        "--addr",
        "127.0.0.1:0",
        "--db",
        "/nonexistent-dir/sub/huddle.db",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--db") && err.contains("/nonexistent-dir/sub"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");

    for (args, names) in [
        (&["--bogus"][..], "--bogus"),
        (&["--addr", "not-an-address"][..], "--addr"),
        (&["--ping-interval", "soon"][..], "--ping-interval"),
    ] {
        let out = huddle(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(names) && err.contains("huddle --help"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    }
}

#[test]
fn help_explains_every_flag_and_its_environment_variable() {
    let out = huddle(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--addr",
        "--db",
        "--log",
        "--max-frame-bytes",
        "--rate-per-sec",
        "--rate-burst",
        "--outbox",
        "--ping-interval",
        "--idle-timeout",
        "--max-batch",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    for var in ["HUDDLE_ADDR", "HUDDLE_DB"] {
        assert!(help.contains(var), "--help lacks {var}");
    }
    assert!(help.contains("127.0.0.1:3000") && help.contains("huddle.db"));
}

#[tokio::test]
async fn healthz_and_the_web_app_or_build_hint_are_served() {
    let server = TestServer::start().await;
    let addr = server.addr.to_string();
    let (status, text) = http_get(&addr, "/healthz", "").await;
    assert!(status.contains("200"), "{status}");
    assert!(text.ends_with("ok\n"));
    for path in ["/", "/r/lobby"] {
        let (status, text) = http_get(&addr, path, "").await;
        assert!(status.contains("200"), "{path}: {status}");
        assert!(text.to_lowercase().contains("text/html"), "{path}");
        assert!(text.contains("Huddle"), "{path}");
    }
    let (status, _) = http_get(&addr, "/missing.js", "").await;
    assert!(status.contains("404"), "{status}");
}
