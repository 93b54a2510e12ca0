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
    // Filled to the brim, the refusal above may have come from the 3 KB frame's own
    // buffers; with memory clearly over the cap every write is refused, including the
    // readiness probe, so a load balancer stops sending new clients here.
    let _: () = redis
        .cmd(&["CONFIG", "SET", "maxmemory", &(used / 2).to_string()])
        .await;
    crate::support::readyz_becomes(server.addr, 503).await;
    c.send(json!({"type": "send", "room": "lobby", "text": "small", "id": "s1"}))
        .await;
    assert_eq!(c.next_of("error").await["code"], "unavailable");
    // Reading goes on: the oldest message is still there.
    c.send(json!({"type": "history", "room": "lobby", "before": 2, "limit": 1}))
        .await;
    assert_eq!(c.next_of("history").await["messages"][0]["text"], "before");
    // So does joining, which reads the room's head.
    assert_eq!(c.join("other").await["head"], 0);
    // Once memory is freed, sends are stored again.
    let _: () = redis.cmd(&["CONFIG", "SET", "maxmemory", "0"]).await;
    crate::support::readyz_becomes(server.addr, 200).await;
    c.say_acked("lobby", "after").await;
}

/// The schema before retention (no `ts` index, no `forgotten` table), as a server of
/// that time left its file.
const OLD_SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE rooms (room TEXT PRIMARY KEY, head INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE messages (
    room TEXT NOT NULL, offset INTEGER NOT NULL, id TEXT NOT NULL, nick TEXT NOT NULL,
    nick_key TEXT NOT NULL, text TEXT NOT NULL, ts INTEGER NOT NULL,
    PRIMARY KEY (room, offset)
) WITHOUT ROWID;
CREATE UNIQUE INDEX messages_dedupe ON messages (room, nick_key, id);
CREATE INDEX rooms_by_head ON rooms (head DESC, room DESC);
INSERT INTO meta VALUES ('epoch', 'oldepoch00');
INSERT INTO rooms VALUES ('lobby', 3), ('attic', 1);
INSERT INTO messages VALUES
    ('lobby', 1, 'a', 'ann', 'ann', 'one', 1000),
    ('lobby', 2, 'b', 'ann', 'ann', 'two', 2000),
    ('lobby', 3, 'c', 'ann', 'ann', 'three', 9000000000000),
    ('attic', 1, 'a', 'bob', 'bob', 'dusty', 1000);
";

#[tokio::test]
async fn a_database_from_before_retention_opens_keeps_its_history_and_prunes() {
    use backend::{Change, HistoryStore, NewEntry, Pruned, Retention, SqliteStore};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(OLD_SCHEMA)
        .unwrap();

    let store = SqliteStore::open(&path).unwrap();
    // Nothing lost, the epoch kept: clients of the old server still recover.
    let head = store.head("lobby").await.unwrap();
    assert_eq!((head.head, head.epoch.as_str()), (3, "oldepoch00"));
    let texts: Vec<String> = store
        .page("lobby", None, 10)
        .await
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);
    // The migration added the age index, so pruning by age does not scan the table.
    let plan: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "EXPLAIN QUERY PLAN SELECT room, offset FROM messages WHERE ts < 5 LIMIT 10",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("messages_ts"), "{plan}");

    // An age of a minute, "now" = 1 day after the epoch: the three old rows go, `attic`
    // is forgotten, `lobby` keeps its head and its newest message.
    let a_minute = Retention {
        max_age: Some(Duration::from_secs(60)),
        max_messages: None,
    };
    let pruned = store.prune(&a_minute, 86_400_000).await.unwrap();
    assert_eq!(
        pruned,
        Pruned {
            messages: 3,
            rooms: 1
        }
    );
    let page = store.page("lobby", None, 10).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    assert!(!page.has_more, "older messages are gone, not merely unread");
    assert_eq!(store.count_between("lobby", 0, 3).await.unwrap(), 1);
    assert_eq!(store.rooms(0, 10).await.unwrap().total, 1);
    // The forgotten room continues its offsets.
    let out = store
        .append_batch(vec![NewEntry {
            room: "attic".into(),
            nick: "bob".into(),
            user: "bob".into(),
            id: "b".into(),
            change: Change::Message {
                text: "back".into(),
                reply_to: None,
            },
        }])
        .await
        .unwrap();
    assert!(
        matches!(&out[0], backend::AppendOutcome::Stored(m) if m.offset() == 2),
        "{out:?}"
    );
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test]
async fn redis_logs_and_message_ids_expire_with_the_age_and_the_count_caps_streams() {
    use backend::{Change, HistoryStore, NewEntry, RedisKeys, RedisStore};

    require();
    let redis = RedisServer::start().await;
    let keys = RedisKeys::new("huddle").unwrap();
    let msg = |room: &str, id: String| NewEntry {
        room: room.into(),
        nick: "ann".into(),
        user: "ann".into(),
        id,
        change: Change::Message {
            text: "hi".into(),
            reply_to: None,
        },
    };

    // An age of an hour: the log expires an hour after the room's last message, each
    // id is remembered no longer than that.
    let store = RedisStore::connect(&redis.url(), keys.clone(), 10_000)
        .await
        .unwrap()
        .limit(0, &"1h".parse().unwrap());
    store
        .append_batch(vec![msg("aged", "m1".into())])
        .await
        .unwrap();
    let log_ttl: i64 = redis.cmd(&["PTTL", &keys.log("aged")]).await;
    assert!((3_500_000..=3_600_000).contains(&log_ttl), "{log_ttl}");
    let id_ttl: i64 = redis.cmd(&["TTL", &keys.dedupe("aged", "ann", "m1")]).await;
    assert!((3_500..=3_600).contains(&id_ttl), "{id_ttl}");

    // An age longer than a day: ids are still remembered for a day, no longer.
    let store = RedisStore::connect(&redis.url(), keys.clone(), 10_000)
        .await
        .unwrap()
        .limit(0, &"30d".parse().unwrap());
    store
        .append_batch(vec![msg("month", "m1".into())])
        .await
        .unwrap();
    let id_ttl: i64 = redis
        .cmd(&["TTL", &keys.dedupe("month", "ann", "m1")])
        .await;
    assert!((86_000..=86_400).contains(&id_ttl), "{id_ttl}");

    // A count of 5 under --history-max 10000: the smaller wins, appends trim to about it
    // (`MAXLEN ~` trims whole stream nodes), a prune makes it exact.
    let store = RedisStore::connect(&redis.url(), keys.clone(), 10_000)
        .await
        .unwrap()
        .limit(0, &"5".parse().unwrap());
    for chunk in 0..6 {
        let batch = (0..100)
            .map(|i| msg("busy", format!("c{chunk}-{i}")))
            .collect();
        store.append_batch(batch).await.unwrap();
    }
    let len: u64 = redis.cmd(&["XLEN", &keys.log("busy")]).await;
    assert!(len < 300, "appends did not trim: {len}");
    let ttl: i64 = redis.cmd(&["PTTL", &keys.log("busy")]).await;
    assert_eq!(ttl, -1, "no age, no expiry");
    store.prune(&"5".parse().unwrap(), 0).await.unwrap();
    let len: u64 = redis.cmd(&["XLEN", &keys.log("busy")]).await;
    assert_eq!(len, 5);
    assert_eq!(store.head("busy").await.unwrap().head, 600);
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test]
async fn a_read_only_redis_gets_a_clear_error_and_reads_go_on() {
    require();
    let redis = RedisServer::start().await;
    let url = redis.url();
    let server = TestServer::with(move |c| c.redis = Some(url)).await;
    let mut c = server.member("alice", "lobby").await;
    c.say_acked("lobby", "before").await;
    // A replica refuses writes (READONLY), whether or not its primary answers: what a
    // failover that pointed Huddle at the old primary looks like.
    let dead = crate::support::free_port();
    let _: () = redis
        .cmd(&["REPLICAOF", "127.0.0.1", &dead.to_string()])
        .await;
    let asked = Instant::now();
    c.send(json!({"type": "send", "room": "lobby", "text": "during", "id": "ro1"}))
        .await;
    let e = c.expect_error("unavailable").await;
    assert_eq!(e["ref"], "ro1");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    crate::support::readyz_becomes(server.addr, 503).await;
    // Reads go on.
    assert_eq!(c.history_texts("lobby").await, ["before"]);
    // Joining goes on too (it reads the room's head), and so does recovery.
    assert_eq!(c.join("other").await["head"], 0);
    let epoch = c.join("lobby").await["epoch"].clone();
    c.send(json!({"type": "join", "room": "lobby", "since": 0, "epoch": epoch}))
        .await;
    assert_eq!(c.next_of("joined").await["recovered"], true);
    // Writable again: the same id is stored once.
    let _: () = redis.cmd(&["REPLICAOF", "NO", "ONE"]).await;
    crate::support::readyz_becomes(server.addr, 200).await;
    c.send(json!({"type": "send", "room": "lobby", "text": "during", "id": "ro1"}))
        .await;
    assert_eq!(c.next_of("ack").await["offset"], 2);
    assert_eq!(c.history_texts("lobby").await, ["before", "during"]);
}

#[tokio::test]
async fn appends_go_on_while_a_large_backlog_is_pruned() {
    use backend::{Change, HistoryStore, NewEntry, Retention, SqliteStore};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("h.db")).unwrap());
    let msg = |room: String, id: String| NewEntry {
        room,
        nick: "ann".into(),
        user: "ann".into(),
        id,
        change: Change::Message {
            text: "x".repeat(100),
            reply_to: None,
        },
    };
    // 20,000 messages: twenty prune batches.
    for b in 0..20 {
        let batch = (0..1000)
            .map(|i| msg(format!("r{}", i % 10), format!("{b}-{i}")))
            .collect();
        store.append_batch(batch).await.unwrap();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let a_minute = Retention {
        max_age: Some(Duration::from_secs(60)),
        max_messages: None,
    };
    // An hour from now, everything is old: the whole backlog goes, batch by batch.
    let pruning = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.prune(&a_minute, now + 3_600_000).await.unwrap() }
    });
    let (mut appended, mut slowest) = (0, Duration::ZERO);
    while !pruning.is_finished() {
        let started = Instant::now();
        store
            .append_batch(vec![msg("live".into(), format!("live-{appended}"))])
            .await
            .unwrap();
        slowest = slowest.max(started.elapsed());
        appended += 1;
    }
    let pruned = pruning.await.unwrap();
    assert!(pruned.messages >= 20_000, "{pruned:?}");
    // Appends took turns with the batches instead of waiting for the whole pass.
    assert!(appended >= 3, "only {appended} appends during the prune");
    assert!(
        slowest < Duration::from_secs(2),
        "an append waited {slowest:?}"
    );
    eprintln!("{appended} appends during the prune, the slowest took {slowest:?}");
}
