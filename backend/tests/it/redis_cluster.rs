//! Three in-process Huddle instances sharing one private `redis-server` (`--redis`):
//! fan-out, order and exactly-once delivery across instances, `since` recovery across
//! instances and after data loss, and a Redis crash mid-stream.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::redis::{require, RedisServer};
use crate::support::{settle, Client, Huddle, TestServer, WAIT};
use backend::{metric_names, RedisKeys};
use serde_json::json;

/// Three instances on one Redis; each with its own (unused) database path.
async fn cluster(redis: &RedisServer) -> Vec<TestServer> {
    redis.instances(3, |_| {}).await
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

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_client_gets_every_message_once_in_one_order() {
    require();
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
    }
    // Nothing more comes: not a timeout, but two markers that must be the next things
    // each listener hears besides member lists. A message: a room's messages arrive in
    // stream order, so a late or repeated message would come before the marker. A typing
    // event from every listener: each instance's events reach every subscriber in the
    // order Redis took them, so a repeated `left` published before would come first.
    let marker = listeners[0].say("lobby", "marker").await;
    for listener in &mut listeners {
        listener
            .send(json!({"type": "typing", "room": "lobby"}))
            .await;
    }
    let nicks: Vec<String> = (0..3)
        .flat_map(|i| (0..2).map(move |j| format!("l{i}{j}")))
        .collect();
    for (n, listener) in listeners.iter_mut().enumerate() {
        let mut typists = BTreeSet::new();
        let mut marked = false;
        while !marked || typists.len() < nicks.len() - 1 {
            let v = listener.recv().await;
            match v["type"].as_str() {
                Some("presence") => {}
                Some("ack") if n == 0 && v["id"] == marker.as_str() => {}
                Some("message") if v["nick"] == "l00" && v["id"] == marker.as_str() && !marked => {
                    marked = true;
                }
                Some("typing") => assert!(typists.insert(v["nick"].to_string()), "{v}"),
                _ => panic!("{}: unexpected frame {v}", nicks[n]),
            }
        }
    }
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn since_recovers_across_instances_and_not_after_data_loss() {
    require();
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
    // Members connected through the loss would drop the new history's offsets as already
    // seen: they are closed so they rejoin, on A and on C alike.
    assert_eq!(writer.expect_close().await, Some(1001));
    assert_eq!(back.expect_close().await, Some(1001));
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

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_crash_mid_stream_loses_no_acked_message() {
    require();
    let mut redis = RedisServer::start_persistent().await;
    let servers = cluster(&redis).await;
    let mut members = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        members.push(server.member(&format!("m{i}"), "ops").await);
    }
    // Two senders on different instances, each sending one message at a time and
    // waiting for its outcome, spaced to stay under the rate limit.
    let (phase_tx, phase_rx) = tokio::sync::watch::channel(0u8);
    // Each sender's (acks, failures) so far, for the test to move on when they show.
    let outcomes: Arc<[(AtomicUsize, AtomicUsize); 2]> = Arc::default();
    let mut tasks = Vec::new();
    for (i, server) in servers.iter().take(2).enumerate() {
        let mut sender = server.member(&format!("w{i}"), "ops").await;
        let phase = phase_rx.clone();
        let outcomes = Arc::clone(&outcomes);
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
                        outcomes[i].0.fetch_add(1, Ordering::Relaxed);
                        acked.push((offset, text));
                        if stage >= 2 {
                            acked_after_restart += 1;
                        }
                    }
                    Err(code) => {
                        assert_eq!(code, "internal", "a failed send says internal");
                        outcomes[i].1.fetch_add(1, Ordering::Relaxed);
                        failed.push(text);
                    }
                }
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            (acked, failed)
        }));
    }

    // Redis dies once both senders have messages acked, and comes back once both have
    // seen sends fail.
    let both = |what: &str, count: fn(&(AtomicUsize, AtomicUsize)) -> usize| {
        let outcomes = Arc::clone(&outcomes);
        let what = what.to_owned();
        async move {
            let deadline = Instant::now() + WAIT;
            while outcomes.iter().any(|o| count(o) < 3) {
                assert!(Instant::now() < deadline, "senders never got 3 {what}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    both("acks", |o| o.0.load(Ordering::Relaxed)).await;
    redis.kill9().await;
    phase_tx.send_replace(1);
    both("failures in the outage", |o| o.1.load(Ordering::Relaxed)).await;
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
    let url = format!("redis://127.0.0.1:{}/0", crate::support::free_port());
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

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_cross_instances_and_skip_only_their_actor() {
    require();
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
    // only where it was published: the typist does not hear itself. The proof is the
    // next event: `far` types after its instance got the typist's event, so Redis had
    // already handed that event to the typist's instance too, and an echo to the typist
    // would arrive before `far`'s.
    far.send(json!({"type": "typing", "room": "quiet"})).await;
    let v = typist.next_of("typing").await;
    assert_eq!(v["nick"], "far", "the typist heard itself: {v}");
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

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_spans_instances_and_a_killed_instance_is_announced_left() {
    require();
    let redis = RedisServer::start().await;
    let url = redis.url();
    let servers = cluster(&redis).await;
    let (a, b) = (&servers[0], &servers[1]);
    // The third instance is the real binary, so it can die without cleaning up.
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", crate::support::free_port())
        .parse()
        .unwrap();
    let mut c = Huddle::start(&dir.path().join("c.db"), addr, &["--redis", &url]).await;

    let mut ant = a.member("ant", "hall").await;
    let mut bee = b.member("bee", "hall").await;
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
    // Its nicks are free again, and the sweep deleted its entries for them.
    let mut again = b.client().await;
    assert_eq!(again.hello("sea").await["type"], "welcome");
    let left: u64 = redis.cmd(&["SCARD", "huddle:instances"]).await;
    assert_eq!(left, 3, "the dead instance is unregistered");
    let stale: Vec<String> = redis.cmd(&["KEYS", "huddle:instance:*:nicks"]).await;
    assert_eq!(
        stale.len(),
        2,
        "only instances holding nicks keep sets: {stale:?}"
    );
    // Exactly once, although every survivor sweeps. Once each survivor has run a whole
    // round (beat, sweep) after the dead instance was unregistered, none can claim it any
    // more; then an event from each survivor, which reaches `ant` after anything that
    // survivor published before, shows that no second announcement was on its way.
    every_instance_beats_twice(&redis).await;
    late.send(json!({"type": "typing", "room": "hall"})).await;
    bee.send(json!({"type": "typing", "room": "hall"})).await;
    let _cat = servers[2].member("cat", "hall").await;
    let mut heard = BTreeSet::new();
    while heard.len() < 3 {
        let v = ant.recv().await;
        match (v["type"].as_str(), v["kind"].as_str(), v["nick"].as_str()) {
            (Some("presence"), _, _) => {}
            (Some("typing"), _, Some(who @ ("late" | "bee")))
            | (Some("notification"), Some("joined"), Some(who @ "cat")) => {
                heard.insert(who.to_owned());
            }
            _ => panic!("expected nothing but the markers, got {v}"),
        }
    }
}

/// Waits until every registered instance has refreshed its heartbeat twice from now.
/// A keeper beats, then sweeps, then beats again, so by the second refresh it has run a
/// whole sweep that started after this call (and finished any it was in).
async fn every_instance_beats_twice(redis: &RedisServer) {
    let keys = RedisKeys::default();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.instances())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!ids.is_empty(), "no instance registered");
    // A heartbeat's time to live only falls between refreshes: a rise is a refresh.
    let mut ttl = vec![i64::MAX; ids.len()];
    let mut beats = vec![0; ids.len()];
    let deadline = Instant::now() + WAIT;
    while beats.iter().any(|&b| b < 2) {
        for (i, id) in ids.iter().enumerate() {
            let now: i64 = redis::cmd("PTTL")
                .arg(keys.heartbeat(id))
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(now > 0, "instance {id} lost its heartbeat (PTTL {now})");
            if now > ttl[i] {
                beats[i] += 1;
            }
            ttl[i] = now;
        }
        assert!(
            Instant::now() < deadline,
            "heartbeats refreshed {beats:?} times in {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_user_on_two_instances_keeps_both_and_a_dm_and_read_state_cross_them() {
    require();
    let redis = RedisServer::start().await;
    let servers = cluster(&redis).await;
    let mut first = servers[0].client().await;
    let welcome = first.hello("Alice").await;
    let session = welcome["session"].as_str().unwrap().to_owned();
    let alice = welcome["user"].as_str().unwrap().to_owned();
    first.join("hall").await;

    // Another instance, another person: refused, case-insensitively, with or without a
    // made-up session.
    let mut other = servers[1].client().await;
    other.send(json!({"type": "hello", "nick": "alice"})).await;
    other.expect_error("nick_taken").await;
    other
        .send(json!({"type": "hello", "nick": "ALICE", "session": "s_aaaaaaaaaaaaaaaaaaaaaaaa"}))
        .await;
    other.expect_error("nick_taken").await;

    // The same person on a third instance with the session: a second connection of the
    // same user, and the first stays open.
    let mut second = servers[2].client().await;
    second
        .send(json!({"type": "hello", "nick": "Alice", "session": session}))
        .await;
    let again = second.expect("welcome").await;
    assert_eq!(again["user"], alice.as_str());
    assert_eq!(again["rooms"][0]["room"], "hall", "{again}");
    first.expect_nothing_queued().await;

    // Bob, on the second instance, opens a DM with her: both of her connections hear it.
    let mut bob = servers[1].client().await;
    let bob_id = bob.hello("bob").await["user"].as_str().unwrap().to_owned();
    bob.send(json!({"type": "open_dm", "user": alice})).await;
    let room = bob.expect("dm").await["room"].as_str().unwrap().to_owned();
    for tab in [&mut first, &mut second] {
        let dm = tab.next_of("dm").await;
        assert_eq!(
            (dm["room"].as_str(), dm["user"].as_str()),
            (Some(room.as_str()), Some(bob_id.as_str()))
        );
    }
    first.join(&room).await;
    second.join(&room).await;
    bob.join(&room).await;
    let offset = bob.say_acked(&room, "psst").await;
    assert_eq!(first.next_of("message").await["text"], "psst");
    assert_eq!(second.next_of("message").await["text"], "psst");
    // An outsider on any instance cannot enter it.
    other.send(json!({"type": "hello", "nick": "carol"})).await;
    other.expect("welcome").await;
    other.send(json!({"type": "join", "room": room})).await;
    other.expect_error("forbidden").await;
    // Reading on one instance clears the badge on the other.
    first
        .send(json!({"type": "read", "room": room, "offset": offset}))
        .await;
    let read = second.next_of("read").await;
    assert_eq!(
        (read["room"].as_str(), read["offset"].as_u64()),
        (Some(room.as_str()), Some(offset))
    );

    // Her newest connection going does not free the nick while the first is open.
    second.ws().close(None).await.unwrap();
    settle(&servers[2], metric_names::SESSIONS_LIVE, 0.0).await;
    let mut late = servers[1].client().await;
    late.send(json!({"type": "hello", "nick": "alice"})).await;
    late.expect_error("nick_taken").await;
    // Once her last one goes, it is free anywhere (the grace is 0 in tests).
    first.ws().close(None).await.unwrap();
    settle(&servers[0], metric_names::SESSIONS_LIVE, 0.0).await;
    let deadline = Instant::now() + WAIT;
    loop {
        late.send(json!({"type": "hello", "nick": "alice"})).await;
        let v = late.recv().await;
        if v["type"] == "welcome" {
            break;
        }
        assert_eq!(v["code"], "nick_taken", "{v}");
        assert!(Instant::now() < deadline, "nick never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads until the connection dies; returns the (offset, id) of every message and the
/// ids of every ack seen.
async fn drain_until_dead(client: &mut Client) -> (Vec<(u64, String)>, BTreeSet<String>) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let (mut messages, mut acks) = (Vec::new(), BTreeSet::new());
    loop {
        let next = tokio::time::timeout(WAIT, client.ws().next())
            .await
            .expect("a killed server's connection must end");
        let Some(Ok(Message::Text(text))) = next else {
            if matches!(next, Some(Ok(_))) {
                continue;
            }
            return (messages, acks);
        };
        let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        match v["type"].as_str() {
            Some("message") => messages.push((
                v["offset"].as_u64().unwrap(),
                v["id"].as_str().unwrap().to_owned(),
            )),
            Some("ack") => {
                acks.insert(v["id"].as_str().unwrap().to_owned());
            }
            _ => {}
        }
    }
}

/// Says hello with a session and joins with `since`/`epoch`; returns the `joined` frame.
async fn resume(
    url: &str,
    nick: &str,
    session: &str,
    since: u64,
    epoch: &str,
) -> (Client, serde_json::Value) {
    let mut client = Client::connect(url).await;
    client
        .send(json!({"type": "hello", "nick": nick, "session": session}))
        .await;
    client.expect("welcome").await;
    client
        .send(json!({"type": "join", "room": "flow", "since": since, "epoch": epoch}))
        .await;
    let joined = client.next_of("joined").await;
    (client, joined)
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_of_a_killed_instance_resume_on_another_without_loss() {
    require();
    const TOTAL: usize = 40;
    let redis = RedisServer::start().await;
    let url = redis.url();
    let servers = cluster(&redis).await;
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", crate::support::free_port())
        .parse()
        .unwrap();
    let mut doomed = Huddle::start(&dir.path().join("c.db"), addr, &["--redis", &url]).await;

    let mut observer = servers[1].member("observer", "flow").await;
    let mut sender = Client::connect(&doomed.ws_url()).await;
    let sender_session = sender.hello("sender").await["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let epoch = sender.join("flow").await["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut reader = Client::connect(&doomed.ws_url()).await;
    let reader_session = reader.hello("reader").await["session"]
        .as_str()
        .unwrap()
        .to_owned();
    reader.join("flow").await;

    // Half the messages go out; the instance dies right after the first few acks, with
    // the rest in flight (stored or not, acked or not).
    let ids: Vec<String> = (1..=TOTAL).map(|i| format!("m{i}")).collect();
    for id in &ids[..TOTAL / 2] {
        sender
            .send(json!({"type": "send", "room": "flow", "id": id, "text": id}))
            .await;
    }
    loop {
        let v = sender.recv().await;
        if v["type"] == "ack" && v["id"] == "m5" {
            break;
        }
    }
    doomed.kill9().await;
    let (_, mut acked) = drain_until_dead(&mut sender).await;
    acked.extend(["m1", "m2", "m3", "m4", "m5"].map(str::to_owned));
    let (seen, _) = drain_until_dead(&mut reader).await;

    // Both come back on other instances with their sessions (the dead instance still
    // "holds" their nicks until its heartbeat expires) and resume from what they saw.
    let last = seen.last().map_or(0, |(o, _)| *o);
    let (mut reader, joined) = resume(
        &servers[0].ws_url(),
        "reader",
        &reader_session,
        last,
        &epoch,
    )
    .await;
    assert_eq!(joined["recovered"], true, "{joined}");
    let (mut sender, joined) =
        resume(&servers[2].ws_url(), "sender", &sender_session, 0, &epoch).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    // The client resends everything it has no ack for, under the same ids, then goes on.
    for id in ids.iter().filter(|id| !acked.contains(*id)) {
        sender
            .send(json!({"type": "send", "room": "flow", "id": id, "text": id}))
            .await;
    }
    let resent = TOTAL - acked.len();
    let mut acks = 0;
    while acks < resent {
        let v = sender.recv().await;
        match v["type"].as_str() {
            Some("ack") => acks += 1,
            Some("error") => panic!("resend refused: {v}"),
            _ => {}
        }
    }
    let total = TOTAL as u64;

    // Every reader sees every offset once, in order, across the failover.
    let mut reader_seen: Vec<u64> = seen.iter().map(|(o, _)| *o).collect();
    reader_seen.extend(
        messages_until(&mut reader, total)
            .await
            .iter()
            .map(|(o, _)| *o),
    );
    assert_gap_free(reader_seen, 1, total);
    let watched = messages_until(&mut observer, total).await;
    assert_gap_free(watched.iter().map(|(o, _)| *o), 1, total);
    let stored = observer.whole_history("flow").await;
    assert_gap_free(stored.iter().map(|m| m.0), 1, total);
    let mut got: Vec<&str> = stored.iter().map(|m| m.3.as_str()).collect();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "each message stored exactly once");
}

/// Sends a signal to a process (`STOP`, `CONT`).
fn signal(child: &tokio::process::Child, name: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_that_falls_behind_the_trimmed_stream_closes_its_members() {
    require();
    let redis = RedisServer::start().await;
    let url = redis.url();
    let busy = {
        let url = url.clone();
        TestServer::with(move |c| {
            c.redis = Some(url);
            c.history_max = 100;
            c.rate_per_sec = 10_000;
            c.rate_burst = 10_000;
            c.outbox = 100_000;
        })
        .await
    };
    // The lagging instance has room to queue everything: a 4008 from it can only mean
    // that its reader found the stream trimmed past its position.
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", crate::support::free_port())
        .parse()
        .unwrap();
    let mut frozen = Huddle::start(
        &dir.path().join("c.db"),
        addr,
        &["--redis", &url, "--outbox", "100000"],
    )
    .await;
    let mut slowpoke = Client::connect(&frozen.ws_url()).await;
    slowpoke.hello("slowpoke").await;
    let epoch = slowpoke.join("busy").await["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut talker = busy.member("talker", "busy").await;
    talker.say_acked("busy", "first").await;
    assert_eq!(messages_until(&mut slowpoke, 1).await[0].0, 1);

    // Frozen for less than the heartbeat TTL, while far more than the stream keeps goes by.
    signal(&frozen.child, "STOP");
    // In chunks smaller than the stream keeps, each delivered before the next, so the
    // talker's own instance never falls behind.
    const CHUNK: u64 = 50;
    const BURST: u64 = 12 * CHUNK;
    for chunk in 0..BURST / CHUNK {
        for k in 0..CHUNK {
            talker.say("busy", &format!("b{chunk}-{k}")).await;
        }
        messages_until(&mut talker, 1 + (chunk + 1) * CHUNK).await;
    }
    let oldest: Vec<Vec<redis::Value>> = redis
        .cmd(&["XRANGE", "huddle:room:busy:log", "-", "+", "COUNT", "1"])
        .await;
    assert!(!oldest.is_empty());
    let len: u64 = redis.cmd(&["XLEN", "huddle:room:busy:log"]).await;
    assert!(len < BURST, "the stream was trimmed ({len} entries kept)");
    signal(&frozen.child, "CONT");

    assert_eq!(slowpoke.expect_close().await, Some(4008));
    // Resuming tells it that part of the history is gone, instead of a silent gap.
    let mut back = Client::connect(&frozen.ws_url()).await;
    back.hello("back").await;
    back.send(json!({"type": "join", "room": "busy", "since": 1, "epoch": epoch}))
        .await;
    let joined = back.expect("joined").await;
    assert_eq!(joined["recovered"], false, "{joined}");
    assert_eq!(joined["head"], BURST + 1);
    frozen.kill9().await;
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_prefixes_on_one_redis_are_two_separate_chats() {
    require();
    let redis = RedisServer::start().await;
    let deployment = |prefix: &'static str| {
        let url = redis.url();
        TestServer::with(move |c| {
            c.redis = Some(url);
            c.redis_prefix = prefix.to_owned();
        })
    };
    let (blue, green) = (deployment("blue").await, deployment("team:green").await);
    // The same nick in each: nick ownership is per deployment.
    let mut b = blue.member("alice", "lobby").await;
    let mut g = green.member("alice", "lobby").await;
    assert_eq!(send_one(&mut b, "lobby", "blue 1").await, Ok(1));
    assert_eq!(send_one(&mut b, "lobby", "blue 2").await, Ok(2));
    // Green's history starts over: its own first message is its offset 1.
    assert_eq!(send_one(&mut g, "lobby", "green 1").await, Ok(1));
    assert_eq!(g.history_texts("lobby").await, ["green 1"]);
    assert_eq!(b.history_texts("lobby").await, ["blue 1", "blue 2"]);
    // Every key either deployment wrote is under its prefix.
    let keys: Vec<String> = redis.cmd(&["KEYS", "*"]).await;
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(
            key.starts_with("blue:") || key.starts_with("team:green:"),
            "{key} is outside both prefixes"
        );
    }
    assert!(keys.iter().any(|k| k == "blue:room:lobby:seq"), "{keys:?}");
    assert!(
        keys.iter().any(|k| k == "team:green:room:lobby:seq"),
        "{keys:?}"
    );
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_is_one_member_and_one_count_across_instances() {
    require();
    let redis = RedisServer::start().await;
    let servers = redis.instances(3, |c| c.max_connections_per_user = 2).await;
    let mut watcher = servers[2].client().await;
    watcher.hello("watcher").await;
    watcher.join("hall").await;

    // Alice in the hall on two instances: one arrival, one name in the list.
    let mut a0 = servers[0].client().await;
    let session = a0.hello("alice").await["session"]
        .as_str()
        .unwrap()
        .to_owned();
    a0.join("hall").await;
    let note = watcher.next_of("notification").await;
    assert_eq!(note["text"], "alice joined");
    presence_until(&mut watcher, "hall", &["alice", "watcher"]).await;
    let mut a1 = servers[1].client().await;
    a1.send(json!({"type": "hello", "nick": "alice", "session": session}))
        .await;
    a1.expect("welcome").await;
    a1.join("hall").await;
    watcher.expect_nothing_queued().await;

    // Her connection on one instance going is no departure while the other is there.
    a0.ws().close(None).await.unwrap();
    settle(&servers[0], metric_names::SESSIONS_LIVE, 0.0).await;
    watcher.expect_nothing_queued().await;

    // The cap counts her connections on every instance: a third closes her oldest.
    let mut a2 = servers[2].client().await;
    a2.send(json!({"type": "hello", "nick": "alice", "session": session}))
        .await;
    a2.expect("welcome").await;
    let mut a0b = servers[0].client().await;
    a0b.send(json!({"type": "hello", "nick": "alice", "session": session}))
        .await;
    a0b.expect("welcome").await;
    assert_eq!(
        a1.expect_close().await,
        Some(4001),
        "the oldest, on another instance"
    );
    a2.expect_nothing_queued().await;
    a0b.expect_nothing_queued().await;
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alerts_reach_a_user_on_every_instance_and_each_push_is_sent_once() {
    use crate::support::push_service::PushService;
    require();
    let redis = RedisServer::start().await;
    let service = PushService::start().await;
    // Three instances with the pusher running on each, and a short push delay.
    let servers = redis
        .instances(3, |c| c.push_delay = Duration::from_millis(500))
        .await;
    let mut ann = servers[0].client().await;
    let welcome = ann.hello("ann").await;
    let session = welcome["session"].as_str().unwrap().to_owned();
    ann.join("hall").await;
    let mut ann2 = servers[1].client().await;
    ann2.send(json!({"type": "hello", "nick": "ann", "session": session}))
        .await;
    ann2.expect("welcome").await;
    let mut bob = servers[2].client().await;
    bob.hello("bob").await;
    bob.join("hall").await;

    // A mention made on the third instance reaches both of ann's connections.
    let offset = bob.say_acked("hall", "@ann ship it?").await;
    for tab in [&mut ann, &mut ann2] {
        let alert = tab.next_of("alert").await;
        assert_eq!(
            (
                alert["seq"].clone(),
                alert["kind"].clone(),
                alert["offset"].clone()
            ),
            (json!(1), json!("mention"), json!(offset))
        );
    }
    // Read on one instance, cleared on the other.
    ann2.send(json!({"type": "alert_read", "seq": 1})).await;
    assert_eq!(ann.next_of("alert_read").await["seq"], 1);

    // Every instance shares one VAPID key, and a push is sent once however many
    // pushers look at the schedule.
    let keys: BTreeSet<String> = {
        let mut keys = BTreeSet::new();
        for s in &servers {
            keys.insert(crate::support::get(s.addr, "/api/push/key").await.1);
        }
        keys
    };
    assert_eq!(keys.len(), 1, "{keys:?}");
    let sub = service.subscriber();
    let mut frame = sub.subscription_json();
    frame["type"] = json!("push_subscribe");
    ann.send(frame).await;
    ann.next_of("push_subscribed").await;
    drop(ann);
    drop(ann2);
    // Her connections are gone everywhere: the next alert is due at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 0..5 {
        bob.say_acked("hall", &format!("@ann number {n}")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while service.count() < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut seqs: Vec<u64> = service
        .received()
        .iter()
        .map(|p| {
            serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [2, 3, 4, 5, 6], "each alert pushed once");
    assert!(service.failures().is_empty(), "{:?}", service.failures());
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_scheduled_by_an_instance_that_is_gone_is_sent_by_another() {
    use crate::support::push_service::PushService;
    require();
    let redis = RedisServer::start().await;
    let service = PushService::start().await;
    const KEY: &str = "cluster-key-0123456789abcdef0123456789";
    let mut servers = Vec::new();
    for _ in 0..2 {
        let url = redis.url();
        servers.push(
            TestServer::with(move |c| {
                c.redis = Some(url);
                c.push_delay = Duration::from_secs(2);
                c.api_token = Some(KEY.parse().unwrap());
            })
            .await,
        );
    }
    let mut ann = servers[0].client().await;
    let user = ann.hello("ann").await["user"].as_str().unwrap().to_owned();
    let sub = service.subscriber();
    let mut frame = sub.subscription_json();
    frame["type"] = json!("push_subscribe");
    ann.send(frame).await;
    ann.next_of("push_subscribed").await;
    // The alert is made on the first instance while ann is connected there: its push
    // waits for the delay, and the first instance goes away before it is due.
    let body = json!({"title": "outlives its instance"}).to_string();
    let sent = crate::api::request(
        servers[0].addr,
        "POST",
        &format!("/api/users/{user}/notifications"),
        &[
            "Content-Type: application/json",
            &format!("Authorization: Bearer {KEY}"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(sent.status, 202, "{sent:?}");
    ann.next_of("alert").await;
    drop(ann);
    servers[0].stop().await.unwrap();
    let push = service
        .next_push(Duration::from_secs(10))
        .await
        .expect("the other instance pushes it");
    let payload: serde_json::Value = serde_json::from_slice(&push.payload).unwrap();
    assert_eq!(payload["title"], "outlives its instance");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(service.count(), 1, "once");
}

/// One entry of the log (message, edit, deletion, reaction) as "offset type", if `v` is
/// one.
fn as_entry(v: &serde_json::Value) -> Option<(u64, String)> {
    let kind = v["type"].as_str()?;
    ["message", "edited", "deleted", "reacted"]
        .contains(&kind)
        .then(|| {
            (
                v["offset"].as_u64().unwrap(),
                format!("{} {kind}", v["offset"]),
            )
        })
}

/// Reads until the ack of `id`, noting every entry seen on the way in `seen`.
async fn until_ack(client: &mut Client, id: &str, seen: &mut Vec<(u64, String)>) -> u64 {
    loop {
        let v = client.recv().await;
        assert!(v["type"] != "error", "{v}");
        seen.extend(as_entry(&v));
        if v["type"] == "ack" && v["id"] == id {
            return v["offset"].as_u64().unwrap();
        }
    }
}

/// Reads entries into `seen` until it holds the one at offset `last`.
async fn entries_until(client: &mut Client, last: u64, seen: &mut Vec<(u64, String)>) {
    while seen.iter().all(|(o, _)| *o < last) {
        let v = client.recv().await;
        assert!(v["type"] != "error", "{v}");
        seen.extend(as_entry(&v));
    }
}

/// Edits, reactions and deletions made on two instances at once: every member on every
/// instance gets the same entries in the same order, the entries a deletion erased leave
/// no hole that closes anyone (4008), and `history` on a third instance shows the result.
#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_and_reactions_from_two_instances_reach_everyone_in_one_order() {
    require();
    let redis = RedisServer::start().await;
    let servers = cluster(&redis).await;
    let mut ann = servers[0].member("ann", "talk").await;
    let mut bob = servers[1].member("bob", "talk").await;
    let mut carol = servers[2].member("carol", "talk").await;
    let mut ann_seen = Vec::new();
    ann.send(json!({"type": "send", "room": "talk", "text": "first draft", "id": "m0"}))
        .await;
    let first = until_ack(&mut ann, "m0", &mut ann_seen).await;
    let (ann_tx, bob_tx) = (
        tokio::spawn(async move {
            let mut seen = ann_seen;
            let mut last = 0;
            for i in 0..12 {
                let id = format!("e{i}");
                ann.send(json!({"type": "edit", "room": "talk", "offset": first, "text": format!("draft {i}"), "id": id}))
                    .await;
                until_ack(&mut ann, &id, &mut seen).await;
                // A message deleted as soon as it is sent: its hole is erased, not lost.
                let m = format!("m{}", i + 1);
                ann.send(json!({"type": "send", "room": "talk", "text": "oops", "id": m}))
                    .await;
                let said = until_ack(&mut ann, &m, &mut seen).await;
                let d = format!("d{i}");
                ann.send(json!({"type": "delete", "room": "talk", "offset": said, "id": d}))
                    .await;
                last = until_ack(&mut ann, &d, &mut seen).await;
            }
            (ann, seen, last)
        }),
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut last = 0;
            for i in 0..12 {
                let id = format!("r{i}");
                bob.send(json!({"type": "react", "room": "talk", "offset": first, "emoji": "👍", "on": i % 2 == 0, "id": id}))
                    .await;
                last = until_ack(&mut bob, &id, &mut seen).await;
            }
            (bob, seen, last)
        }),
    );
    let (mut ann, mut ann_seen, a_last) = ann_tx.await.unwrap();
    let (mut bob, mut bob_seen, b_last) = bob_tx.await.unwrap();
    let last = a_last.max(b_last);
    let mut carol_seen = Vec::new();
    entries_until(&mut carol, last, &mut carol_seen).await;
    entries_until(&mut ann, last, &mut ann_seen).await;
    entries_until(&mut bob, last, &mut bob_seen).await;
    // All three joined before the first message: each sees the same entries in the
    // same order after it. (Every later message is deleted at once, and whether an
    // instance read it before its deletion erased it is a race of that instance's
    // stream reader, so those are left out of the comparison.)
    let after_first = |seen: &[(u64, String)]| -> Vec<String> {
        seen.iter()
            .filter(|(o, e)| *o > first && !e.ends_with(" message"))
            .map(|(_, e)| e.clone())
            .collect()
    };
    let carol_list = after_first(&carol_seen);
    assert_eq!(carol_list, after_first(&ann_seen));
    assert_eq!(carol_list, after_first(&bob_seen));
    let count = |kind: &str| carol_seen.iter().filter(|(_, e)| e.ends_with(kind)).count();
    // 12 edits, 12 reactions, 12 deletions (within the send rate's burst: edits and
    // reactions draw on it like messages). A message deleted before an instance read it
    // from the stream is never delivered there (its deletion is), and nobody was closed.
    assert_eq!(
        (count("edited"), count("reacted"), count("deleted")),
        (12, 12, 12)
    );
    assert!(count("message") <= 13);
    carol.expect_nothing_queued().await;

    // History read through the third instance: the last edit and no reaction (bob's
    // last, the 12th, took it back); the deleted messages as deleted.
    carol
        .send(json!({"type": "history", "room": "talk", "limit": 100}))
        .await;
    let h = carol.next_of("history").await;
    let msgs = h["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["text"], "draft 11", "{h}");
    assert!(msgs[0].get("reactions").is_none(), "{h}");
    assert_eq!(msgs.len(), 13);
    assert!(msgs[1..].iter().all(|m| m["deleted"] == true), "{h}");
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sse_posts_reach_the_stream_on_any_instance_and_a_stream_resumes_on_another() {
    use crate::support::sse;
    require();
    let redis = RedisServer::start().await;
    let servers = cluster(&redis).await;
    let mut bob = servers[2].member("bob", "lobby").await;
    // Alice's stream is on instance 0; every one of her POSTs lands elsewhere, as a
    // round-robin proxy would send them.
    let mut alice = Client::connect_sse(servers[0].addr, None).await;
    let id = alice.sse().id.clone();
    let http = sse::http();
    let post = |to: usize, frames: serde_json::Value| {
        let http = &http;
        let (addr, id) = (servers[to].addr, &id);
        async move { sse::post(http, addr, Some(id), frames.to_string(), &[]).await }
    };
    let (status, body) = post(
        1,
        json!([{"type": "hello", "nick": "alice"}, {"type": "join", "room": "lobby"}]),
    )
    .await;
    assert_eq!((status, body), (202, json!({"accepted": 2})));
    assert_eq!(alice.expect("welcome").await["nick"], "alice");
    assert_eq!(alice.expect("joined").await["room"], "lobby");
    bob.next_of("presence").await;
    // Order, acks and de-duplication as on a WebSocket: five sends over two instances,
    // one repeated, one POST at a time.
    for i in 1..=5u64 {
        let send = json!([{"type": "send", "room": "lobby", "id": format!("m{i}"), "text": format!("t{i}")}]);
        assert_eq!(post(1 + (i as usize % 2), send).await.0, 202);
    }
    let again = json!([{"type": "send", "room": "lobby", "id": "m3", "text": "t3"}]);
    assert_eq!(post(2, again).await.0, 202);
    let mut acks = Vec::new();
    let mut seen = Vec::new();
    while acks.len() < 6 {
        let v = alice.recv().await;
        match v["type"].as_str() {
            Some("ack") => acks.push((
                v["id"].as_str().unwrap().to_owned(),
                v["offset"].as_u64().unwrap(),
            )),
            Some("message") => seen.push(v["offset"].as_u64().unwrap()),
            _ => {}
        }
    }
    let want: Vec<(String, u64)> = (1..=5)
        .map(|i| (format!("m{i}"), i))
        .chain([("m3".to_owned(), 3)])
        .collect();
    assert_eq!(
        acks, want,
        "acked in order; the repeat gets its original offset"
    );
    let got = messages_until(&mut bob, 5).await;
    assert_gap_free(got.iter().map(|(o, _)| *o), 1, 5);
    while seen.len() < 5 {
        let v = alice.recv().await;
        if v["type"] == "message" {
            seen.push(v["offset"].as_u64().unwrap());
        }
    }
    assert_gap_free(seen, 1, 5);
    // The stream drops; its EventSource reconnects through the proxy to another
    // instance, which resumes the session from Redis and replays what was missed.
    let last = alice.sse().last_id.clone().unwrap();
    assert!(last.ends_with(",lobby:5"), "{last}");
    alice.close().await;
    send_one(&mut bob, "lobby", "while away").await.unwrap();
    let mut back = Client::connect_sse(servers[1].addr, Some(&last)).await;
    assert!(back.sse().resumed);
    assert_eq!(back.expect("welcome").await["nick"], "alice");
    assert_eq!(back.expect("joined").await["recovered"], true);
    assert_eq!(
        messages_until(&mut back, 6).await,
        vec![(6, "while away".to_owned())]
    );
    // A POST for the old stream finds nobody once its instance let it go (the resume
    // told it to close): the client must use the new one.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = post(2, json!([])).await;
        if status == 404 {
            assert_eq!(body["code"], "no_stream");
            break;
        }
        assert_eq!(status, 202);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old stream never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
