//! The delivery guarantees: gap-free offsets in one order, ack after store, recovery
//! with `since`/`epoch` (all or nothing), and idempotent sends.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::{Client, TestServer};
use serde_json::{json, Value};

/// Reads frames until `n` chat messages arrived; returns (offset, id, nick) in arrival order.
async fn collect_messages(c: &mut Client, n: usize) -> Vec<(u64, String, String)> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let v = c.recv().await;
        if v["type"] == "message" {
            out.push((
                v["offset"].as_u64().unwrap(),
                v["id"].as_str().unwrap().to_owned(),
                v["nick"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn five_concurrent_senders_yield_gap_free_offsets_in_one_order_for_everyone() {
    const PER_SENDER: usize = 30;
    let server = TestServer::start().await;
    let mut listeners = vec![
        server.member("watcher1", "lobby").await,
        server.member("watcher2", "lobby").await,
    ];
    let mut senders = Vec::new();
    for i in 0..5 {
        senders.push(server.member(&format!("sender{i}"), "lobby").await);
    }
    let total = PER_SENDER * senders.len();
    let mut tasks = Vec::new();
    for mut s in senders {
        tasks.push(tokio::spawn(async move {
            for _ in 0..PER_SENDER {
                s.say("lobby", "concurrent").await;
            }
            let mut acks = HashMap::new();
            let mut seen = Vec::new();
            while acks.len() < PER_SENDER || seen.len() < total {
                let v = s.recv().await;
                match v["type"].as_str().unwrap() {
                    "ack" => {
                        acks.insert(
                            v["id"].as_str().unwrap().to_owned(),
                            v["offset"].as_u64().unwrap(),
                        );
                    }
                    "message" => seen.push((
                        v["offset"].as_u64().unwrap(),
                        v["id"].as_str().unwrap().to_owned(),
                        v["nick"].as_str().unwrap().to_owned(),
                    )),
                    _ => {}
                }
            }
            (acks, seen)
        }));
    }
    let mut orders = Vec::new();
    for l in &mut listeners {
        orders.push(collect_messages(l, total).await);
    }
    let mut acked = 0;
    for t in tasks {
        let (acks, seen) = t.await.unwrap();
        // Each ack names the offset at which everyone saw that message.
        let nick = &seen
            .iter()
            .find(|(o, _, _)| acks.values().any(|a| a == o))
            .unwrap()
            .2
            .clone();
        for (id, offset) in &acks {
            assert!(
                seen.iter()
                    .any(|(o, i, n)| o == offset && i == id && n == nick),
                "ack {id}@{offset} does not match the broadcast"
            );
        }
        acked += acks.len();
        orders.push(seen);
    }
    assert_eq!(acked, total);
    let expected: Vec<u64> = (1..=total as u64).collect();
    for order in &orders {
        let offsets: Vec<u64> = order.iter().map(|m| m.0).collect();
        assert_eq!(
            offsets, expected,
            "offsets must be 1..=n, gap-free, in order"
        );
        assert_eq!(order, &orders[0], "every member sees the same order");
    }
}

#[tokio::test]
async fn a_member_joining_mid_stream_gets_everything_after_head_exactly_once() {
    let server = TestServer::with(|c| {
        c.rate_per_sec = 10_000;
        c.rate_burst = 10_000;
    })
    .await;
    let mut sender = server.member("sender", "lobby").await;
    let sending = tokio::spawn(async move {
        for _ in 0..300 {
            sender.say("lobby", "stream").await;
            tokio::task::yield_now().await;
        }
        sender.next_of("presence").await;
        sender
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut late = server.login("late").await;
    let joined = late.join("lobby").await;
    let head = joined["head"].as_u64().unwrap();
    let _sender = sending.await.unwrap();
    let got = collect_messages(&mut late, (300 - head) as usize).await;
    let offsets: Vec<u64> = got.iter().map(|m| m.0).collect();
    assert_eq!(offsets, (head + 1..=300).collect::<Vec<_>>());
    late.expect_nothing_queued().await;
}

#[tokio::test]
async fn a_repeated_id_is_acked_with_its_original_offset_and_not_broadcast_again() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let session = a.hello("alice").await["session"].clone();
    a.join("lobby").await;
    let mut b = server.member("bob", "lobby").await;
    a.next_of("presence").await;
    a.send(json!({"type": "send", "room": "lobby", "text": "first", "id": "dup"}))
        .await;
    assert_eq!(a.next_of("ack").await["offset"], 1);
    a.send(json!({"type": "send", "room": "lobby", "text": "retry", "id": "dup"}))
        .await;
    assert_eq!(
        a.next_of("ack").await,
        json!({"type": "ack", "id": "dup", "room": "lobby", "offset": 1})
    );
    assert_eq!(b.expect("message").await["text"], "first");
    b.expect_nothing_queued().await;

    // The key is room + nick + id: it survives a reconnect of the same nick…
    a.ws().close(None).await.unwrap();
    b.next_of("presence").await;
    let mut a2 = server.client().await;
    a2.send(json!({"type": "hello", "nick": "alice", "session": session}))
        .await;
    a2.expect("welcome").await;
    a2.join("lobby").await;
    a2.send(json!({"type": "send", "room": "lobby", "text": "after reconnect", "id": "dup"}))
        .await;
    assert_eq!(a2.next_of("ack").await["offset"], 1);
    // …but another nick, or another room, with the same id is a new message.
    b.send(json!({"type": "send", "room": "lobby", "text": "bob's", "id": "dup"}))
        .await;
    assert_eq!(b.next_of("ack").await["offset"], 2);
    a2.join("other").await;
    a2.send(json!({"type": "send", "room": "other", "text": "elsewhere", "id": "dup"}))
        .await;
    assert_eq!(a2.next_of("ack").await["offset"], 1);

    let texts = a2.history_texts("lobby").await;
    assert_eq!(texts, ["first", "bob's"]);
}

async fn room_with_messages(server: &TestServer, n: usize) -> (Client, String) {
    let mut a = server.member("alice", "lobby").await;
    for i in 0..n {
        a.say_acked("lobby", &format!("m{}", i + 1)).await;
    }
    let mut probe = server.login("probe").await;
    let epoch = probe.join("lobby").await["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    probe.ws().close(None).await.unwrap();
    a.next_of("presence").await;
    a.next_of("presence").await;
    (a, epoch)
}

#[tokio::test]
async fn join_with_since_recovers_exactly_the_missing_messages_then_continues_live() {
    let server = TestServer::start().await;
    let (mut a, epoch) = room_with_messages(&server, 10).await;
    let mut b = server.login("bob").await;
    b.send(json!({"type": "join", "room": "lobby", "since": 4, "epoch": epoch}))
        .await;
    let j = b.expect("joined").await;
    assert_eq!(
        (j["head"].as_u64(), j["recovered"].as_bool()),
        (Some(10), Some(true))
    );
    let replayed: Vec<u64> = collect_messages(&mut b, 6)
        .await
        .iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(replayed, (5..=10).collect::<Vec<_>>());
    a.say("lobby", "live").await;
    let live = b.next_of("message").await;
    assert_eq!(live["offset"], 11);
    b.expect_nothing_queued().await;

    // Up to date already: recovered, nothing replayed. Without an epoch, since alone works.
    let mut c = server.login("carol").await;
    c.send(json!({"type": "join", "room": "lobby", "since": 11}))
        .await;
    assert_eq!(c.expect("joined").await["recovered"], true);
    c.expect_nothing_queued().await;
}

#[tokio::test]
async fn recovery_is_refused_for_another_epoch_or_a_since_beyond_head() {
    let server = TestServer::start().await;
    let (_a, epoch) = room_with_messages(&server, 3).await;
    let mut b = server.login("bob").await;
    b.send(json!({"type": "join", "room": "lobby", "since": 1, "epoch": format!("{epoch}x")}))
        .await;
    let j = b.expect("joined").await;
    assert_eq!(
        (j["recovered"].as_bool(), j["head"].as_u64()),
        (Some(false), Some(3))
    );
    b.expect_nothing_queued().await;
    b.send(json!({"type": "leave", "room": "lobby"})).await;
    b.expect("left").await;
    b.send(json!({"type": "join", "room": "lobby", "since": 4, "epoch": epoch}))
        .await;
    assert_eq!(b.expect("joined").await["recovered"], false);
    b.expect_nothing_queued().await;
}

#[tokio::test]
async fn a_new_database_is_a_new_epoch() {
    let first = TestServer::start().await;
    let (_a, epoch) = room_with_messages(&first, 2).await;
    let second = TestServer::start().await;
    let (_a2, _) = room_with_messages(&second, 2).await;
    let mut b = second.login("bob").await;
    b.send(json!({"type": "join", "room": "lobby", "since": 1, "epoch": epoch}))
        .await;
    assert_eq!(
        b.expect("joined").await["recovered"],
        false,
        "history of another database must not be resumed"
    );
}

#[tokio::test]
async fn recovery_is_all_or_nothing_when_a_message_is_no_longer_stored() {
    let server = TestServer::start().await;
    let (_a, epoch) = room_with_messages(&server, 6).await;
    // Lose one stored message behind the server's back (as retention or damage would).
    let db = rusqlite::Connection::open(&server.db).unwrap();
    db.execute(
        "DELETE FROM messages WHERE room = 'lobby' AND offset = 4",
        [],
    )
    .unwrap();
    drop(db);
    let mut b = server.login("bob").await;
    b.send(json!({"type": "join", "room": "lobby", "since": 2, "epoch": epoch}))
        .await;
    assert_eq!(b.expect("joined").await["recovered"], false);
    b.expect_nothing_queued().await;
    // After the hole, recovery works again.
    b.send(json!({"type": "leave", "room": "lobby"})).await;
    b.expect("left").await;
    b.send(json!({"type": "join", "room": "lobby", "since": 4, "epoch": epoch}))
        .await;
    assert_eq!(b.expect("joined").await["recovered"], true);
    let got: Vec<Value> = vec![b.expect("message").await, b.expect("message").await];
    assert_eq!(
        (got[0]["offset"].as_u64(), got[1]["offset"].as_u64()),
        (Some(5), Some(6))
    );
}
