//! Requests whose answers could be far larger than the request: each is bounded however
//! big the server's data gets.

use crate::support::{TestServer, WAIT};
use backend::{Change, HistoryStore, NewEntry, SqliteStore};
use serde_json::json;

/// A database holding `rooms` rooms of one message each.
async fn many_rooms(db: &std::path::Path, rooms: usize) {
    let store = SqliteStore::open(db).unwrap();
    let names: Vec<String> = (0..rooms).map(|i| format!("room-{i:05}")).collect();
    for chunk in names.chunks(5_000) {
        let batch = chunk
            .iter()
            .map(|room| NewEntry {
                room: room.clone(),
                nick: "filler".into(),
                user: "filler".into(),
                id: "m1".into(),
                change: Change::Message {
                    text: "x".into(),
                    reply_to: None,
                },
            })
            .collect();
        store.append_batch(batch).await.unwrap();
    }
}

#[tokio::test]
async fn list_rooms_of_fifty_thousand_rooms_answers_one_page() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("huddle.db");
    many_rooms(&db, 50_000).await;
    let server = TestServer::on_db(db, |_| {}).await;
    let mut c = server.login("alice").await;

    c.send(json!({"type": "list_rooms"})).await;
    let page = c.expect("rooms").await;
    assert_eq!(page["total"], 50_000);
    assert_eq!(page["rooms"].as_array().unwrap().len(), 100);
    assert!(
        page.to_string().len() < 16 * 1024,
        "{} bytes",
        page.to_string().len()
    );
    assert_eq!(page["next"], "100");

    // Asking for more than a page still gets a page; the last page has no `next`.
    c.send(json!({"type": "list_rooms", "limit": 100_000, "cursor": "49990"}))
        .await;
    let last = c.expect("rooms").await;
    assert_eq!(last["rooms"].as_array().unwrap().len(), 10);
    assert!(last.get("next").is_none(), "{last}");

    // And the answer is quick, page after page (no full scan or sort per request).
    let started = std::time::Instant::now();
    let mut cursor = json!("25000");
    for _ in 0..20 {
        c.send(json!({"type": "list_rooms", "cursor": cursor}))
            .await;
        cursor = c.expect("rooms").await["next"].clone();
    }
    assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
}

/// A room of `n` messages with long texts, written straight to the store.
async fn long_messages(db: &std::path::Path, room: &str, n: usize) {
    let store = SqliteStore::open(db).unwrap();
    let batch = (0..n)
        .map(|i| NewEntry {
            room: room.into(),
            nick: "filler".into(),
            user: "filler".into(),
            id: format!("m{i}"),
            // 4,000 characters of three bytes each: the longest text allowed.
            change: Change::Message {
                text: "€".repeat(4000),
                reply_to: None,
            },
        })
        .collect();
    store.append_batch(batch).await.unwrap();
}

#[tokio::test]
async fn history_answers_fit_the_frame_limit_and_reading_is_metered() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("huddle.db");
    long_messages(&db, "big", 300).await;
    let server = TestServer::on_db(db, |_| {}).await;
    // Never joined: history is public, but not free.
    let mut c = server.login("reader").await;

    c.send(json!({"type": "history", "room": "big", "limit": 100}))
        .await;
    let page = c.expect("history").await;
    let size = page.to_string().len();
    assert!(size <= 64 * 1024, "a {size}-byte answer");
    let messages = page["messages"].as_array().unwrap();
    assert!(!messages.is_empty() && messages.len() < 100);
    assert_eq!(
        messages.last().unwrap()["offset"],
        300,
        "the newest come first"
    );
    assert_eq!(page["has_more"], true);

    // Reading on at full speed runs into the budget (256 KB/s, bursts of 5 s).
    let mut read = size;
    let mut before = messages[0]["offset"].as_u64().unwrap();
    let refused = loop {
        c.send(json!({"type": "history", "room": "big", "before": before, "limit": 100}))
            .await;
        let v = c.recv().await;
        if v["type"] == "error" {
            break v;
        }
        read += v.to_string().len();
        before = v["messages"][0]["offset"].as_u64().unwrap_or(1);
        assert!(read < 4 * 1024 * 1024, "read {read} bytes unmetered");
    };
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    assert_eq!(refused["ref"], "history");
    assert!(read >= 1024 * 1024, "refused after only {read} bytes");
}

#[tokio::test]
async fn replays_are_capped_by_messages_and_paced_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("huddle.db");
    long_messages(&db, "big", 300).await;
    // 20 messages a second (bursts of 100), 100 KB a second (bursts of 500 KB).
    let server = TestServer::on_db(db, |c| {
        c.read_rate = 20;
        c.read_bytes = 100_000;
    })
    .await;
    let mut c = server.login("reader").await;
    c.send(json!({"type": "join", "room": "big"})).await;
    let epoch = c.expect("joined").await["epoch"].clone();

    // `since: 0` asks for 300 messages: more than a connection may read at once, so
    // the room starts over from its newest page instead of replaying everything.
    let mut late = server.login("late").await;
    late.send(json!({"type": "join", "room": "big", "since": 0, "epoch": epoch}))
        .await;
    let joined = late.expect("joined").await;
    assert_eq!(joined["recovered"], false, "{joined}");
    late.expect_nothing_queued().await;

    // 60 messages of 12 KB (720 KB) are within the count but over the bytes' burst:
    // replayed in full and in order, at the budget's pace.
    let mut resumed = server.login("resumed").await;
    let started = std::time::Instant::now();
    resumed
        .send(json!({"type": "join", "room": "big", "since": 240, "epoch": epoch}))
        .await;
    assert_eq!(resumed.expect("joined").await["recovered"], true);
    for offset in 241..=300 {
        assert_eq!(resumed.expect("message").await["offset"], offset);
    }
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_millis(1500), "{took:?}");
}

#[tokio::test]
async fn every_frame_type_counts_against_one_limiter() {
    let server = TestServer::start().await;
    let mut c = server.member("alice", "lobby").await;
    // 200 cheap frames at once: beyond the burst of 100, each gets `rate_limited`.
    for _ in 0..200 {
        c.send(json!({"type": "typing", "room": "lobby"})).await;
    }
    // Once the bucket has refilled, a question marks the end of the answers.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    c.send(json!({"type": "list_rooms"})).await;
    let mut limited = 0;
    loop {
        let v = c.recv().await;
        if v["type"] == "rooms" {
            break;
        }
        assert_eq!(v["code"], "rate_limited", "{v}");
        assert_eq!(v["ref"], "typing");
        limited += 1;
    }
    // The hello and the join took two places of the burst.
    assert!((95..=105).contains(&limited), "{limited} refused");
}

#[tokio::test]
async fn a_member_list_too_large_for_a_frame_is_cut_and_counted() {
    // A small frame limit stands in for a room of thousands.
    let server = TestServer::with(|c| c.max_frame_bytes = 4096).await;
    let mut members = Vec::new();
    for i in 0..200 {
        let nick = format!("member-with-a-long-name-{i:03}");
        members.push(server.member(&nick, "crowd").await);
    }
    let mut c = server.login("late").await;
    c.send(json!({"type": "join", "room": "crowd"})).await;
    let joined = c.expect("joined").await;
    assert!(
        joined.to_string().len() <= 4096,
        "{} bytes",
        joined.to_string().len()
    );
    assert_eq!(joined["members"], 201);
    let listed = joined["nicks"].as_array().unwrap().len();
    assert!((50..201).contains(&listed), "{listed} listed");
    // A small room's list is whole, and says no count.
    let mut d = server.member("dora", "small").await;
    d.send(json!({"type": "join", "room": "small"})).await;
    assert!(d.expect("joined").await.get("members").is_none());
}

#[tokio::test]
async fn a_paced_replay_does_not_hold_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("huddle.db");
    long_messages(&db, "big", 100).await;
    // 10 KB a second (bursts of 50 KB): 100 messages of 12 KB take two minutes.
    let mut server = TestServer::on_db(db, |c| c.read_bytes = 10_000).await;
    let mut c = server.login("reader").await;
    c.send(json!({"type": "join", "room": "big"})).await;
    let epoch = c.expect("joined").await["epoch"].clone();
    let mut slow = server.login("slow").await;
    slow.send(json!({"type": "join", "room": "big", "since": 0, "epoch": epoch}))
        .await;
    assert_eq!(slow.expect("joined").await["recovered"], true);
    slow.expect("message").await;
    let started = std::time::Instant::now();
    server.stop().await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "shutdown waited {:?} for a paced replay",
        started.elapsed()
    );
    assert_eq!(slow.expect_close().await, Some(1001));
}
