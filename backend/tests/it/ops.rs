//! What an operator sees: `/metrics` moving with real traffic, `/readyz` following the
//! history store, JSON logs carrying the connection's id, and logs that client text
//! cannot forge. The log tests run the real `huddle` binary and read its output.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{
    free_port, get, labelled, readyz_becomes, settle, Client, Scrape, TestServer,
};
use backend::metric_names as metrics;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn metrics_follow_traffic_errors_and_closes_and_live_sessions_return_to_zero() {
    let server = TestServer::start().await;
    let before = Scrape::of(&server).await;
    assert_eq!(before.value(metrics::SESSIONS_LIVE), 0.0);
    assert_eq!(before.value(metrics::CONNECTIONS_ACCEPTED), 0.0);

    let mut a = server.member("alice", "lobby").await;
    let mut b = server.member("bob", "lobby").await;
    a.next_of("presence").await;
    a.say_acked("lobby", "hello").await;
    b.next_of("message").await;
    a.send_raw("this is not json").await;
    a.expect_error("bad_json").await;
    b.send(json!({"type": "send", "room": "elsewhere", "text": "x", "id": "1"}))
        .await;
    b.expect_error("not_joined").await;

    let during = Scrape::of(&server).await;
    assert_eq!(during.value(metrics::CONNECTIONS_ACCEPTED), 2.0);
    assert_eq!(during.value(metrics::CONNECTIONS_OPEN), 2.0);
    assert_eq!(during.value(metrics::SESSIONS_LIVE), 2.0);
    assert_eq!(during.value(metrics::MESSAGES_IN), 1.0);
    // welcome + joined each, presence + notification to alice, ack + echo, the message
    // to bob, two errors: at least ten frames were written.
    assert!(during.value(metrics::MESSAGES_OUT) >= 10.0);
    assert_eq!(
        during.value(&labelled(metrics::BROADCASTS, "kind", "message")),
        1.0
    );
    assert!(during.value(&labelled(metrics::BROADCASTS, "kind", "event")) >= 2.0);
    assert_eq!(during.value(&format!("{}_count", metrics::BATCH_SIZE)), 1.0);
    assert_eq!(during.value(&format!("{}_sum", metrics::BATCH_SIZE)), 1.0);
    assert_eq!(
        during.value(&format!("{}_count", metrics::COMMIT_SECONDS)),
        1.0
    );
    assert!(during.value(&format!("{}_sum", metrics::COMMIT_SECONDS)) > 0.0);
    assert_eq!(
        during.value(&labelled(metrics::ERRORS, "code", "bad_json")),
        1.0
    );
    assert_eq!(
        during.value(&labelled(metrics::ERRORS, "code", "not_joined")),
        1.0
    );
    assert_eq!(
        during.value(&labelled(metrics::ERRORS, "code", "internal")),
        0.0
    );

    // One leaves politely, the other is closed by the server (binary frame: 1003).
    a.ws().close(None).await.unwrap();
    a.expect_close().await;
    b.ws().send(Message::binary(vec![0u8])).await.unwrap();
    assert_eq!(b.expect_close().await, Some(1003));
    settle(&server, metrics::SESSIONS_LIVE, 0.0).await;
    settle(&server, metrics::CONNECTIONS_OPEN, 0.0).await;
    let after = Scrape::of(&server).await;
    assert_eq!(
        after.value(&labelled(metrics::PEER_CLOSES, "how", "close")),
        1.0
    );
    assert_eq!(after.value(&labelled(metrics::CLOSES, "code", "1003")), 1.0);
    assert_eq!(after.value(metrics::CONNECTIONS_ACCEPTED), 2.0);
}

#[tokio::test]
async fn servers_in_one_process_count_only_their_own_traffic_and_refusals_count_as_1008() {
    let busy = TestServer::with(|c| c.max_connections = 1).await;
    let quiet = TestServer::start().await;
    let _a = busy.login("alice").await;
    let mut refused = busy.client().await;
    assert_eq!(refused.expect_close().await, Some(1008));
    let busy_now = Scrape::of(&busy).await;
    assert_eq!(busy_now.value(metrics::CONNECTIONS_ACCEPTED), 2.0);
    assert_eq!(
        busy_now.value(&labelled(metrics::CLOSES, "code", "1008")),
        1.0
    );
    assert_eq!(busy_now.value(metrics::SESSIONS_LIVE), 1.0);
    let quiet_now = Scrape::of(&quiet).await;
    assert_eq!(quiet_now.value(metrics::CONNECTIONS_ACCEPTED), 0.0);
    assert_eq!(quiet_now.value(metrics::SESSIONS_LIVE), 0.0);
}

#[tokio::test]
async fn readyz_follows_whether_the_history_store_can_be_written() {
    let server = TestServer::start().await;
    let (status, body) = get(server.addr, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, r#"{"ready":true}"#));

    // Every write to the database fails, as on a broken disk. (chmod is no test of
    // this: tests may run as root, whom file modes do not stop.)
    let db = rusqlite::Connection::open(&server.db).unwrap();
    db.execute_batch(
        "CREATE TRIGGER ro_insert BEFORE INSERT ON meta BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;
         CREATE TRIGGER ro_update BEFORE UPDATE ON meta BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
    )
    .unwrap();
    let body = readyz_becomes(server.addr, 503).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.contains("cannot be written"), "{reason}");
    assert!(!reason.contains("disk on fire"), "internals leak: {reason}");
    // /healthz still says the process is up: liveness is not readiness.
    assert_eq!(get(server.addr, "/healthz").await.0, 200);

    db.execute_batch("DROP TRIGGER ro_insert; DROP TRIGGER ro_update;")
        .unwrap();
    readyz_becomes(server.addr, 200).await;

    // Another process holding the write lock: the probe cannot commit, and a probe that
    // hangs is answered 503 within its timeout rather than hanging the prober.
    db.execute_batch("BEGIN IMMEDIATE;").unwrap();
    let started = std::time::Instant::now();
    let body = readyz_becomes(server.addr, 503).await;
    assert!(body.contains("did not answer"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    db.execute_batch("ROLLBACK;").unwrap();
    readyz_becomes(server.addr, 200).await;
}

#[tokio::test]
async fn readyz_probes_the_disk_at_most_about_once_a_second_however_often_it_is_asked() {
    let server = TestServer::start().await;
    // The first probe creates the row the others update.
    readyz_becomes(server.addr, 200).await;
    // Count the probe's commits.
    let db = rusqlite::Connection::open(&server.db).unwrap();
    db.execute_batch(
        "CREATE TABLE probes (at INTEGER);
         CREATE TRIGGER count_insert AFTER INSERT ON meta BEGIN INSERT INTO probes VALUES (1); END;
         CREATE TRIGGER count_update AFTER UPDATE ON meta BEGIN INSERT INTO probes VALUES (1); END;",
    )
    .unwrap();
    // Fifty at once, as a flood of a public route would come: each probe is an fsync.
    let asks: Vec<_> = (0..50)
        .map(|_| tokio::spawn(get(server.addr, "/readyz")))
        .collect();
    for ask in asks {
        assert_eq!(ask.await.unwrap().0, 200);
    }
    let count = || -> u64 {
        db.query_row("SELECT COUNT(*) FROM probes", [], |r| r.get(0))
            .unwrap()
    };
    let probes = count();
    assert!(probes <= 3, "{probes} probes for 50 requests");
    // And the counter does count: a later request probes again.
    let deadline = tokio::time::Instant::now() + crate::support::WAIT;
    while count() == probes {
        assert!(tokio::time::Instant::now() < deadline, "no new probe, ever");
        assert_eq!(get(server.addr, "/readyz").await.0, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the real binary with `args`, lets `drive` talk to it, stops it with SIGTERM and
/// returns everything it logged (stdout and stderr).
async fn logs_of<F, Fut>(args: &[&str], log: &str, drive: F) -> String
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_huddle"))
        .args(["--addr", &addr, "--db"])
        .arg(dir.path().join("h.db"))
        .args(args)
        .env("HUDDLE_LOG", log)
        .env_remove("HUDDLE_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start huddle");
    let deadline = tokio::time::Instant::now() + crate::support::WAIT;
    while tokio::net::TcpStream::connect(&addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "huddle did not listen"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    drive(format!("ws://{addr}/ws")).await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = tokio::time::timeout(crate::support::WAIT, child.wait_with_output())
        .await
        .expect("huddle did not stop")
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap()
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_carry_the_connection_id() {
    let logs = logs_of(&["--log-format", "json"], "info", |url| async move {
        let mut c = Client::connect(&url).await;
        assert_eq!(c.hello("alice").await["type"], "welcome");
        c.ws().send(Message::binary(vec![1u8])).await.unwrap();
        assert_eq!(c.expect_close().await, Some(1003));
        // JSON escapes control characters itself, but not line separators: those must
        // not reach a `tail -f` of the log raw either. (Bidi overrides no longer pass
        // the nick rule at all.)
        let mut d = Client::connect(&url).await;
        assert_eq!(d.hello("bi\u{2028}di").await["type"], "welcome");
        d.ws().close(None).await.unwrap();
        d.expect_close().await;
    })
    .await;
    assert!(!logs.contains('\u{2028}'), "raw U+2028 in the log:\n{logs}");
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in {logs}"))
    };
    let opened = find("connection opened");
    assert_eq!(opened["span"]["name"], "conn", "{opened}");
    let id = &opened["span"]["id"];
    assert!(id.is_u64(), "{opened}");
    assert!(opened["span"]["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));
    let closed = lines
        .iter()
        .find(|l| l["message"] == "connection closed" && l["span"]["id"] == *id)
        .unwrap_or_else(|| panic!("no close line for connection {id}: {logs}"));
    assert_eq!(closed["close_code"], 1003, "{closed}");
    assert_eq!(closed["nick"], "alice", "{closed}");
    assert!(lines.iter().all(|l| l["level"].is_string()));
    assert!(
        lines
            .iter()
            .any(|l| l["nick"] == r"bi\u{2028}di" && l["span"]["id"] != *id),
        "{logs}"
    );
}

#[tokio::test]
async fn client_text_cannot_forge_or_colour_pretty_log_lines() {
    // A line separator passes the nick rule (it is neither a control character nor
    // invisible), so this nick is accepted and logged.
    let sneaky = "mal\u{2028}2026-01-01 INFO forged";
    let logs = logs_of(&[], "debug", |url| async move {
        let mut c = Client::connect(&url).await;
        // Refused values: the nick and room rules reject control characters and
        // direction overrides.
        c.hello("evil\nINFO forged line\x1b[31m").await;
        assert_eq!(c.hello("mal\u{202e}forged").await["code"], "invalid_nick");
        let w = c.hello(sneaky).await;
        assert_eq!(w["type"], "welcome", "{w}");
        c.send(json!({"type": "join", "room": "lobby\n\x1b[2J"}))
            .await;
        c.expect_error("invalid_room").await;
        assert_eq!(c.join("lobby").await["type"], "joined");
        let id = c.say("lobby", "text\nINFO forged\x1b[31m").await;
        c.next_of("ack").await;
        assert!(!id.is_empty());
        c.ws().close(None).await.unwrap();
        c.expect_close().await;
    })
    .await;
    assert!(!logs.contains('\x1b'), "raw escape in the log:\n{logs}");
    for c in ['\u{2028}', '\u{202e}', '\r'] {
        assert!(!logs.contains(c), "raw {c:?} in the log:\n{logs}");
    }
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("forged") && !l.contains("mal\\u{2028}")),
        "a forged line:\n{logs}"
    );
    // Every line is one event: it starts with its own timestamp.
    for line in logs.lines() {
        assert!(
            line.len() > 20 && line.as_bytes()[4] == b'-' && line.as_bytes()[10] == b'T',
            "a line that is not an event: {line:?}\n{logs}"
        );
    }
    // The nick was logged, visibly escaped, with the connection's span.
    assert!(
        logs.contains(r"mal\u{2028}2026-01-01 INFO forged"),
        "{logs}"
    );
    assert!(logs.contains("conn{id="), "{logs}");
}
