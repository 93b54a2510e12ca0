//! Three in-process Huddle instances sharing one private `redis-server` (`--redis`):
//! fan-out, order and exactly-once delivery across instances, `since` recovery across
//! instances and after data loss, and a Redis crash mid-stream.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;
use support::redis::{available, RedisServer};
use support::{Client, Huddle, TestServer, WAIT};

/// Three instances on one Redis; each with its own (unused) database path.
async fn cluster(redis: &RedisServer) -> Vec<TestServer> {
    let mut servers = Vec::new();
    for _ in 0..3 {
        let url = redis.url();
        servers.push(TestServer::with(move |c| c.redis = Some(url)).await);
    }
    servers
}

/// Reads frames until the message with offset `last` arrived; returns every message's
/// (offset, text) in arrival order. Other frames (acks, presence…) are skipped.
async fn messages_until(client: &mut Client, last: u64) -> Vec<(u64, String)> {
    let mut got = Vec::new();
    while got.last().is_none_or(|(o, _)| *o < last) {
        let v = client.recv().await;
        if v["type"] == "message" {
            got.push((
                v["offset"].as_u64().unwrap(),
                v["text"].as_str().unwrap().to_owned(),
            ));
        }
    }
    got
}

/// Sends one message and waits for its outcome: `Ok(offset)` on `ack`, `Err(code)` on
/// an `error` about it. Room traffic in between is skipped.
async fn send_one(client: &mut Client, room: &str, text: &str) -> Result<u64, String> {
    let id = client.say(room, text).await;
    loop {
        let v = client.recv().await;
        match v["type"].as_str() {
            Some("ack") if v["id"] == id.as_str() => return Ok(v["offset"].as_u64().unwrap()),
            Some("error") if v["ref"] == id.as_str() => {
                return Err(v["code"].as_str().unwrap().to_owned())
            }
            _ => {}
        }
    }
}

fn assert_gap_free(offsets: impl IntoIterator<Item = u64>, from: u64, to: u64) {
    let got: Vec<u64> = offsets.into_iter().collect();
    let want: Vec<u64> = (from..=to).collect();
    assert_eq!(
        got, want,
        "offsets must be {from}..={to}, each once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_client_gets_every_message_once_in_one_order() {
    if !available() {
        return;
    }
    const SENDERS: usize = 5;
    const EACH: usize = 30;
    let redis = RedisServer::start().await;
    let servers = cluster(&redis).await;
    // Two listeners per instance and five senders on different instances; senders are
    // members too, so they must also see everyone's messages.
    let mut listeners = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        for j in 0..2 {
            listeners.push(server.member(&format!("l{i}{j}"), "lobby").await);
        }
    }
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        senders.push(servers[i % 3].member(&format!("s{i}"), "lobby").await);
    }

    let total = (SENDERS * EACH) as u64;
    let mut tasks = Vec::new();
    for (i, mut sender) in senders.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut ids = BTreeMap::new();
            for k in 0..EACH {
                let text = format!("s{i}-{k}");
                ids.insert(sender.say("lobby", &text).await, text);
            }
            // Own acks, and everyone's messages (own ones included, exactly once).
            let mut acks = BTreeMap::new();
            let mut got = Vec::new();
            while acks.len() < EACH || (got.len() as u64) < total {
                let v = sender.recv().await;
                match v["type"].as_str() {
                    Some("ack") => {
                        let text = ids[v["id"].as_str().unwrap()].clone();
                        acks.insert(v["offset"].as_u64().unwrap(), text);
                    }
                    Some("message") => got.push((
                        v["offset"].as_u64().unwrap(),
                        v["text"].as_str().unwrap().to_owned(),
                    )),
                    Some("error") => panic!("send failed: {v}"),
                    _ => {}
                }
            }
            (got, acks, sender)
        }));
    }
    let mut sequences = Vec::new();
    let mut acked = BTreeMap::new();
    let mut senders = Vec::new();
    for task in tasks {
        let (got, acks, sender) = task.await.unwrap();
        sequences.push(got);
        acked.extend(acks);
        senders.push(sender);
    }
    for listener in &mut listeners {
        sequences.push(messages_until(listener, total).await);
    }

    // Every ack names a distinct offset, and together they are 1..=total.
    assert_gap_free(acked.keys().copied(), 1, total);
    let reference = &sequences[0];
    assert_gap_free(reference.iter().map(|(o, _)| *o), 1, total);
    for (offset, text) in reference {
        assert_eq!(
            &acked[offset], text,
            "offset {offset} carries the acked text"
        );
    }
    for (n, seq) in sequences.iter().enumerate() {
        assert_eq!(seq, reference, "client {n} saw another sequence");
    }
    // Each sender's own messages are in its sending order.
    for i in 0..SENDERS {
        let mine: Vec<&String> = reference
            .iter()
            .map(|(_, t)| t)
            .filter(|t| t.starts_with(&format!("s{i}-")))
            .collect();
        let want: Vec<String> = (0..EACH).map(|k| format!("s{i}-{k}")).collect();
        assert_eq!(mine, want.iter().collect::<Vec<_>>());
    }
    // The senders go: every listener, on every instance, hears each one leave exactly
    // once (events cross instances through pub/sub), and no message arrives late or twice.
    drop(senders);
    for listener in &mut listeners {
        let mut left = Vec::new();
        while left.len() < SENDERS {
            let v = listener.recv().await;
            assert_ne!(v["type"], "message", "late duplicate: {v}");
            if v["type"] == "notification" && v["kind"] == "left" {
                left.push(v["nick"].as_str().unwrap().to_owned());
            }
        }
        left.sort();
        let want: Vec<String> = (0..SENDERS).map(|i| format!("s{i}")).collect();
        assert_eq!(left, want);
        loop {
            match tokio::time::timeout(Duration::from_millis(300), listener.recv()).await {
                Err(_) => break,
                Ok(v) => assert!(v["type"] == "presence", "unexpected frame {v}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn since_recovers_across_instances_and_not_after_data_loss() {
    if !available() {
        return;
    }
    let redis = RedisServer::start().await;
    let servers = cluster(&redis).await;
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);

    // A client on C sees the empty room, then goes away.
    let mut early = c.member("early", "news").await;
    early.send(json!({"type": "leave", "room": "news"})).await;
    early.next_of("left").await;

    let mut writer = a.member("writer", "news").await;
    for k in 1..=5 {
        writer.say_acked("news", &format!("n{k}")).await;
    }

    // Back on C, from where it left off: everything written on A is replayed.
    let mut back = c.login("back").await;
    back.send(json!({"type": "join", "room": "news", "since": 0}))
        .await;
    let joined = back.expect("joined").await;
    assert_eq!(joined["recovered"], true, "{joined}");
    assert_eq!(joined["head"], 5);
    let epoch = joined["epoch"].as_str().unwrap().to_owned();
    let replayed = messages_until(&mut back, 5).await;
    assert_eq!(
        replayed,
        (1..=5).map(|k| (k, format!("n{k}"))).collect::<Vec<_>>()
    );

    // Redis loses everything: the old epoch cannot be trusted any more.
    let () = redis.cmd(&["FLUSHALL"]).await;
    let mut after = c.login("after").await;
    after
        .send(json!({"type": "join", "room": "news", "since": 5, "epoch": epoch}))
        .await;
    let joined = after.expect("joined").await;
    assert_eq!(joined["recovered"], false, "{joined}");
    assert_ne!(joined["epoch"], epoch.as_str(), "{joined}");
    assert_eq!(joined["head"], 0);

    // Fan-out follows the new history: a message sent on A after the loss (offset 1
    // again) reaches fresh members on B and C.
    let mut listener = b.member("listener", "news").await;
    let mut sender = a.member("sender", "news").await;
    let offset = sender.say_acked("news", "fresh").await;
    assert_eq!(offset, 1);
    assert_eq!(
        messages_until(&mut listener, 1).await,
        vec![(1, "fresh".to_owned())]
    );
    assert_eq!(
        messages_until(&mut after, 1).await,
        vec![(1, "fresh".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_crash_mid_stream_loses_no_acked_message() {
    if !available() {
        return;
    }
    let mut redis = RedisServer::start_persistent().await;
    let servers = cluster(&redis).await;
    let mut members = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        members.push(server.member(&format!("m{i}"), "ops").await);
    }
    // Two senders on different instances, each sending one message at a time and
    // waiting for its outcome, spaced to stay under the rate limit.
    let (phase_tx, phase_rx) = tokio::sync::watch::channel(0u8);
    let mut tasks = Vec::new();
    for (i, server) in servers.iter().take(2).enumerate() {
        let mut sender = server.member(&format!("w{i}"), "ops").await;
        let phase = phase_rx.clone();
        tasks.push(tokio::spawn(async move {
            let (mut acked, mut failed) = (Vec::new(), Vec::new());
            let mut acked_after_restart = 0;
            for k in 0.. {
                let stage = *phase.borrow();
                if stage == 2 && acked_after_restart >= 10 {
                    break;
                }
                let text = format!("w{i}-{k}");
                match send_one(&mut sender, "ops", &text).await {
                    Ok(offset) => {
                        acked.push((offset, text));
                        if stage >= 2 {
                            acked_after_restart += 1;
                        }
                    }
                    Err(code) => {
                        assert_eq!(code, "internal", "a failed send says internal");
                        failed.push(text);
                    }
                }
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            (acked, failed)
        }));
    }

    tokio::time::sleep(Duration::from_millis(600)).await;
    redis.kill9().await;
    phase_tx.send_replace(1);
    // Let the senders run into the outage for a while.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let restarted = Instant::now();
    redis.restart().await;
    phase_tx.send_replace(2);

    let mut acked = BTreeMap::new();
    let mut failed = BTreeSet::new();
    for task in tasks {
        let (a, f) = tokio::time::timeout(WAIT * 3, task)
            .await
            .expect("senders did not recover after the restart")
            .unwrap();
        acked.extend(a);
        failed.extend(f);
    }
    eprintln!(
        "{} acked, {} failed during the outage; 10 more acks each {:?} after the restart",
        acked.len(),
        failed.len(),
        restarted.elapsed()
    );
    assert!(!failed.is_empty(), "sends during the outage must fail");

    // The history holds every acked message at its acked offset, gap-free; the only
    // others are sends that failed (stored before the crash, answer lost).
    let mut reader = servers[2].login("reader").await;
    reader
        .send(json!({"type": "join", "room": "ops", "since": 0}))
        .await;
    let joined = reader.expect("joined").await;
    assert_eq!(joined["recovered"], true, "{joined}");
    let head = joined["head"].as_u64().unwrap();
    let stored = messages_until(&mut reader, head).await;
    assert_gap_free(stored.iter().map(|(o, _)| *o), 1, head);
    let stored: BTreeMap<u64, String> = stored.into_iter().collect();
    for (offset, text) in &acked {
        assert_eq!(
            stored.get(offset),
            Some(text),
            "acked message lost or moved"
        );
    }
    for (offset, text) in &stored {
        assert!(
            acked.get(offset) == Some(text) || failed.contains(text),
            "offset {offset} holds {text:?}, which was neither acked nor failed"
        );
    }

    // The members, one per instance, got the whole history live: the instances resumed
    // reading from where they were, so nothing from before or after the crash is missing.
    let want: Vec<(u64, String)> = stored.into_iter().collect();
    for member in &mut members {
        assert_eq!(messages_until(member, head).await, want);
    }
}

#[tokio::test]
async fn an_unreachable_redis_at_start_is_a_configuration_error() {
    // Nothing listens on a port that was just free: the connection is refused.
    let url = format!("redis://127.0.0.1:{}/0", support::free_port());
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_huddle"))
        .args(["--addr", "127.0.0.1:0", "--redis", &url])
        .arg("--db")
        .arg(dir.path().join("unused.db"))
        .output();
    let out = tokio::time::timeout(WAIT, out).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--redis") && stderr.contains(&url),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_cross_instances_and_skip_only_their_actor() {
    if !available() {
        return;
    }
    let redis = RedisServer::start().await;
    let servers = cluster(&redis).await;
    let mut typist = servers[0].member("typist", "quiet").await;
    let mut near = servers[0].member("near", "quiet").await;
    let mut far = servers[1].member("far", "quiet").await;
    // Idle past the subscriber's keep-alive ping: the subscription must survive it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    typist
        .send(json!({"type": "typing", "room": "quiet"}))
        .await;
    for member in [&mut near, &mut far] {
        let v = member.next_of("typing").await;
        assert_eq!(v["nick"], "typist", "{v}");
    }
    // The actor's connection id means nothing on the other instance, so it is applied
    // only where it was published: the typist does not hear itself.
    loop {
        match tokio::time::timeout(Duration::from_millis(300), typist.recv()).await {
            Err(_) => break,
            Ok(v) => assert_ne!(v["type"], "typing", "{v}"),
        }
    }
}

/// Reads frames until a `presence` for `room` lists exactly `want`; other frames are
/// skipped (lists from concurrent changes may arrive first).
async fn presence_until(client: &mut Client, room: &str, want: &[&str]) {
    loop {
        let v = client.next_of("presence").await;
        if v["room"] == room && v["nicks"] == json!(want) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_spans_instances_and_a_killed_instance_is_announced_left() {
    if !available() {
        return;
    }
    let redis = RedisServer::start().await;
    let url = redis.url();
    let servers = cluster(&redis).await;
    let (a, b) = (&servers[0], &servers[1]);
    // The third instance is the real binary, so it can die without cleaning up.
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    let mut c = Huddle::start(&dir.path().join("c.db"), addr, &["--redis", &url]).await;

    let mut ant = a.member("ant", "hall").await;
    let _bee = b.member("bee", "hall").await;
    presence_until(&mut ant, "hall", &["ant", "bee"]).await;
    let mut sea = Client::connect(&c.ws_url()).await;
    assert_eq!(sea.hello("sea").await["type"], "welcome");
    let joined = sea.join("hall").await;
    assert_eq!(joined["nicks"], json!(["ant", "bee", "sea"]), "{joined}");
    presence_until(&mut ant, "hall", &["ant", "bee", "sea"]).await;
    let mut late = a.login("late").await;
    let joined = late.join("hall").await;
    assert_eq!(
        joined["nicks"],
        json!(["ant", "bee", "late", "sea"]),
        "{joined}"
    );
    presence_until(&mut ant, "hall", &["ant", "bee", "late", "sea"]).await;

    // C dies without a word: its heartbeat expires and a survivor announces its member.
    c.kill9().await;
    let killed = Instant::now();
    loop {
        let v = ant.next_of("notification").await;
        if v["kind"] == "left" {
            assert_eq!(v["nick"], "sea", "{v}");
            break;
        }
    }
    presence_until(&mut ant, "hall", &["ant", "bee", "late"]).await;
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(8), "announced after {took:?}");
    // Exactly once, although two survivors sweep.
    loop {
        match tokio::time::timeout(Duration::from_millis(1500), ant.recv()).await {
            Err(_) => break,
            Ok(v) => assert_ne!(v["kind"], "left", "announced twice: {v}"),
        }
    }
}
