//! Storage that cannot grow without end: the room limit (`--max-rooms`), retention
//! (`--retention`) enforced in the background, and a clear answer when the storage
//! refuses writes (Redis out of memory).

use std::time::{Duration, Instant};

use crate::support::redis::{require, RedisServer};
use crate::support::{TestServer, WAIT};
use serde_json::json;

#[tokio::test]
async fn a_send_that_would_create_a_room_beyond_the_limit_is_refused() {
    let server = TestServer::with(|c| c.max_rooms = 2).await;
    let mut c = server.login("alice").await;
    for room in ["one", "two", "three"] {
        c.join(room).await;
    }
    c.say_acked("one", "first").await;
    c.say_acked("two", "second").await;
    c.send(json!({"type": "send", "room": "three", "text": "third", "id": "t1"}))
        .await;
    let e = c.expect_error("room_limit").await;
    assert_eq!(e["ref"], "t1");
    assert!(e["message"].as_str().unwrap().contains("(2)"), "{e}");
    // Nothing was stored; the existing rooms go on.
    assert!(c.history_texts("three").await.is_empty());
    c.say_acked("one", "still fine").await;
    c.send(json!({"type": "list_rooms"})).await;
    assert_eq!(c.expect("rooms").await["total"], 2);
}

#[tokio::test]
async fn retention_deletes_old_history_in_the_background() {
    let server = TestServer::with(|c| {
        c.retention = "3".parse().unwrap();
        c.prune_interval = Duration::from_millis(100);
    })
    .await;
    let mut c = server.member("alice", "lobby").await;
    for i in 1..=6 {
        c.say_acked("lobby", &format!("m{i}")).await;
    }
    let started = Instant::now();
    loop {
        let texts = c.history_texts("lobby").await;
        if texts == ["m4", "m5", "m6"] {
            break;
        }
        assert!(started.elapsed() < WAIT, "still {texts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A client that saw m1 and comes back cannot get a gap-free replay: it starts over.
    let mut back = server.login("bob").await;
    let epoch = back.join("lobby").await["epoch"].clone();
    back.send(json!({"type": "join", "room": "lobby", "since": 1, "epoch": epoch}))
        .await;
    assert_eq!(back.expect("joined").await["recovered"], false);
}

#[tokio::test]
async fn a_silent_room_is_forgotten_and_continues_its_offsets_when_used_again() {
    let server = TestServer::with(|c| {
        c.retention = "1s".parse().unwrap();
        c.prune_interval = Duration::from_millis(100);
    })
    .await;
    let mut c = server.member("alice", "quiet").await;
    assert_eq!(c.say_acked("quiet", "hello").await, 1);
    let started = Instant::now();
    loop {
        c.send(json!({"type": "list_rooms"})).await;
        if c.expect("rooms").await["total"] == 0 {
            break;
        }
        assert!(started.elapsed() < WAIT, "the room is still listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(c.history_texts("quiet").await.is_empty());
    assert_eq!(c.say_acked("quiet", "again").await, 2, "offsets go on");
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test]
async fn redis_out_of_memory_gets_a_clear_error_and_reads_go_on() {
    require();
    let redis = RedisServer::start().await;
    let url = redis.url();
    let server = TestServer::with(move |c| {
        c.redis = Some(url);
        c.rate_per_sec = 100_000;
        c.rate_burst = 100_000;
    })
    .await;
    let mut c = server.member("alice", "lobby").await;
    c.say_acked("lobby", "before").await;
    // What `noeviction` with a full Redis does: refuse every write.
    let used: String = redis.cmd(&["INFO", "memory"]).await;
    let used: u64 = used
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let cap = (used + 256 * 1024).to_string();
    let _: () = redis
        .cmd(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        .await;
    let _: () = redis.cmd(&["CONFIG", "SET", "maxmemory", &cap]).await;
    let text = "x".repeat(3000);
    let started = Instant::now();
    let (refused, took) = loop {
        let id = c.fresh_id();
        let asked = Instant::now();
        c.send(json!({"type": "send", "room": "lobby", "text": text, "id": id}))
            .await;
        let v = loop {
            let v = c.recv().await;
            if v["type"] == "ack" || v["type"] == "error" {
                break v;
            }
        };
        if v["type"] == "error" {
            break (v, asked.elapsed());
        }
        assert!(started.elapsed() < WAIT, "Redis never filled up");
    };
    assert_eq!(refused["code"], "unavailable", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("full"),
        "{refused}"
    );
    // Promptly, not after a stall or a timeout.
    assert!(took < Duration::from_secs(1), "{took:?}");
    // Reading goes on: the oldest message is still there.
    c.send(json!({"type": "history", "room": "lobby", "before": 2, "limit": 1}))
        .await;
    assert_eq!(c.next_of("history").await["messages"][0]["text"], "before");
    // Once memory is freed, sends are stored again.
    let _: () = redis.cmd(&["CONFIG", "SET", "maxmemory", "0"]).await;
    c.say_acked("lobby", "after").await;
}
