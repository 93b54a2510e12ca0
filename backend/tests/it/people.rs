//! People, not connections (protocol v2): many connections per user, stored
//! membership and read state, private rooms, invitations, removal and direct messages,
//! each row of the contract's tables against a real server.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{Client, TestServer};

/// A guest connection with `nick` and `session` (a fresh one when `None`); its welcome.
async fn guest(server: &TestServer, nick: &str, session: Option<&str>) -> (Client, Value) {
    let mut c = server.client().await;
    let mut hello = json!({"type": "hello", "nick": nick});
    if let Some(s) = session {
        hello["session"] = json!(s);
    }
    c.send(hello).await;
    let welcome = c.expect("welcome").await;
    (c, welcome)
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn two_tabs_of_one_guest_both_stay_live_and_see_each_others_messages() {
    let server = TestServer::start().await;
    let (mut tab1, w1) = guest(&server, "alice", None).await;
    let session = text(&w1, "session");
    assert!(text(&w1, "user").starts_with("guest:"), "{w1}");
    let mut bob = server.member("bob", "lobby").await;
    tab1.join("lobby").await;
    bob.next_of("presence").await;
    let (mut tab2, w2) = guest(&server, "alice", Some(&session)).await;
    assert_eq!(w2["user"], w1["user"], "the same session is the same user");
    let joined = tab2.join("lobby").await;
    assert_eq!(joined["nicks"], json!(["alice", "bob"]), "each user once");
    // Bob hears of alice once, not of her second tab.
    bob.expect_nothing_queued().await;
    tab1.send(json!({"type": "send", "room": "lobby", "text": "from tab 1", "id": "t1"}))
        .await;
    let m = tab2.next_of("message").await;
    assert_eq!(
        (text(&m, "text"), m["user"].clone()),
        ("from tab 1".into(), w1["user"].clone())
    );
    // The ack goes to the sending tab only.
    let first = tab1.recv().await;
    let second = tab1.recv().await;
    let kinds = [text(&first, "type"), text(&second, "type")];
    assert!(kinds.contains(&"ack".to_owned()) && kinds.contains(&"message".to_owned()));
    tab2.expect_nothing_queued().await;
    bob.next_of("message").await;
    // The first tab is still open.
    tab1.expect_nothing_queued().await;
}

#[tokio::test]
async fn beyond_the_per_user_limit_the_oldest_connection_is_closed_with_4001() {
    let server = TestServer::with(|c| c.max_connections_per_user = 2).await;
    let (mut first, w) = guest(&server, "carol", None).await;
    let session = text(&w, "session");
    let (mut second, _) = guest(&server, "carol", Some(&session)).await;
    let (mut third, _) = guest(&server, "carol", Some(&session)).await;
    assert_eq!(first.expect_close().await, Some(4001));
    second.expect_nothing_queued().await;
    third.expect_nothing_queued().await;
}

#[tokio::test]
async fn a_nick_belongs_to_one_user_at_a_time() {
    let server = TestServer::start().await;
    let (_alice, w) = guest(&server, "alice", None).await;
    let mut other = server.client().await;
    other.send(json!({"type": "hello", "nick": "ALICE"})).await;
    other.expect_error("nick_taken").await;
    // One user shows one nick: the same session asking for another is refused.
    other
        .send(json!({"type": "hello", "nick": "alicia", "session": text(&w, "session")}))
        .await;
    other.expect_error("invalid_nick").await;
    // A hello with neither nick nor token.
    other.send(json!({"type": "hello"})).await;
    other.expect_error("invalid_nick").await;
}

#[tokio::test]
async fn guests_off_refuses_guests() {
    let server = TestServer::with(|c| c.guests = false).await;
    let mut c = server.client().await;
    c.send(json!({"type": "hello", "nick": "mallory"})).await;
    c.expect_error("guests_disabled").await;
    c.send(json!({"type": "hello", "token": "hk_not_a_real_token"}))
        .await;
    c.expect_error("invalid_token").await;
}

#[tokio::test]
async fn membership_and_read_state_outlive_connections_and_sync_across_tabs() {
    let server = TestServer::start().await;
    let (mut alice, w) = guest(&server, "alice", None).await;
    let session = text(&w, "session");
    assert_eq!(w["rooms"], json!([]));
    alice.join("lobby").await;
    let mut bob = server.member("bob", "lobby").await;
    for i in 1..=3 {
        bob.say_acked("lobby", &format!("note {i}")).await;
    }
    bob.say_acked("lobby", "hey alice, look").await;
    drop(alice);
    // Alice comes back on a second device: her rooms and unread counts are there.
    let (mut phone, w) = guest(&server, "alice", Some(&session)).await;
    let rooms = w["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 1, "{w}");
    let lobby = &rooms[0];
    assert_eq!(
        (
            lobby["room"].clone(),
            lobby["head"].clone(),
            lobby["read"].clone()
        ),
        (json!("lobby"), json!(4), json!(0))
    );
    assert_eq!(
        (lobby["unread"].clone(), lobby["mentions"].clone()),
        (json!(4), json!(1))
    );
    assert_eq!(lobby["private"], json!(false));
    let (mut laptop, _) = guest(&server, "alice", Some(&session)).await;
    // Reading on the phone clears the laptop's badge; the phone gets no answer.
    phone
        .send(json!({"type": "read", "room": "lobby", "offset": 3}))
        .await;
    let read = laptop.expect("read").await;
    assert_eq!(
        (read["room"].clone(), read["offset"].clone()),
        (json!("lobby"), json!(3))
    );
    phone.expect_nothing_queued().await;
    // Only forward, and never past the head.
    phone
        .send(json!({"type": "read", "room": "lobby", "offset": 2}))
        .await;
    phone
        .send(json!({"type": "read", "room": "lobby", "offset": 99}))
        .await;
    let read = laptop.expect("read").await;
    assert_eq!(read["offset"], json!(4));
    laptop.expect_nothing_queued().await;
    let (_again, w) = guest(&server, "alice", Some(&session)).await;
    let lobby = &w["rooms"][0];
    assert_eq!(
        (
            lobby["read"].clone(),
            lobby["unread"].clone(),
            lobby["mentions"].clone()
        ),
        (json!(4), json!(0), json!(0))
    );
    // `read` for a room the user is not a member of.
    phone
        .send(json!({"type": "read", "room": "elsewhere", "offset": 1}))
        .await;
    phone.expect_error("not_joined").await;
}

#[tokio::test]
async fn leave_ends_the_membership_on_every_connection_of_the_user() {
    let server = TestServer::start().await;
    let (mut tab1, w) = guest(&server, "dora", None).await;
    let session = text(&w, "session");
    let (mut tab2, _) = guest(&server, "dora", Some(&session)).await;
    tab1.join("lobby").await;
    tab2.join("lobby").await;
    let mut eve = server.member("eve", "lobby").await;
    tab1.send(json!({"type": "leave", "room": "lobby"})).await;
    tab1.next_of("left").await;
    tab2.next_of("left").await;
    // Eve hears that dora left once her last connection there went.
    let note = eve.next_of("notification").await;
    assert_eq!(note["text"], "dora left");
    eve.say_acked("lobby", "after").await;
    tab2.expect_nothing_queued().await;
    let (_tab3, w) = guest(&server, "dora", Some(&session)).await;
    assert_eq!(w["rooms"], json!([]));
}

#[tokio::test]
async fn a_private_room_exists_only_for_its_members() {
    let server = TestServer::start().await;
    let (mut owner, ow) = guest(&server, "olga", None).await;
    let (mut bob, bw) = guest(&server, "bob", None).await;
    let (mut out, _) = guest(&server, "oscar", None).await;
    let bob_id = text(&bw, "user");
    owner
        .send(json!({"type": "create_room", "room": "ops", "private": true}))
        .await;
    let created = owner.expect("room_created").await;
    assert_eq!(
        created,
        json!({"type": "room_created", "room": "ops", "private": true})
    );
    owner
        .send(json!({"type": "create_room", "room": "ops"}))
        .await;
    owner.expect_error("room_exists").await;
    owner.join("ops").await;
    owner.say_acked("ops", "secret plans").await;
    // An outsider: join, history, send, typing and read all meet the same wall.
    for frame in [
        json!({"type": "join", "room": "ops"}),
        json!({"type": "history", "room": "ops"}),
        json!({"type": "read", "room": "ops", "offset": 1}),
        json!({"type": "send", "room": "ops", "text": "hi", "id": "x1"}),
        json!({"type": "typing", "room": "ops"}),
        json!({"type": "invite", "room": "ops", "user": bob_id}),
    ] {
        out.send(frame.clone()).await;
        let e = out.expect_error("forbidden").await;
        assert!(!e.to_string().contains("secret"), "{e}");
    }
    out.send(json!({"type": "list_rooms"})).await;
    let rooms = out.expect("rooms").await;
    assert_eq!(rooms["rooms"], json!([]), "not listed: {rooms}");
    assert_eq!(rooms["total"], json!(0));
    // A room that never existed answers the same as a private one.
    out.send(json!({"type": "join", "room": "dm--0011"})).await;
    out.expect_error("forbidden").await;
    // Invitations: unknown users, then bob, who hears of it on his connection.
    owner
        .send(json!({"type": "invite", "room": "ops", "user": "guest:nobody"}))
        .await;
    owner.expect_error("unknown_user").await;
    owner
        .send(json!({"type": "invite", "room": "ops", "user": bob_id}))
        .await;
    assert_eq!(
        owner.expect("invited").await,
        json!({"type": "invited", "room": "ops", "user": bob_id})
    );
    let invited = bob.expect("invited").await;
    assert_eq!(invited["by"], ow["user"]);
    // And an alert in his inbox, after it.
    assert_eq!(bob.expect("alert").await["kind"], "invite");
    let joined = bob.join("ops").await;
    assert_eq!(joined["head"], json!(1));
    assert_eq!(bob.history_texts("ops").await, vec!["secret plans"]);
    owner.next_of("presence").await;
    // Only the owner manages the room.
    bob.send(json!({"type": "remove", "room": "ops", "user": ow["user"]}))
        .await;
    bob.expect_error("forbidden").await;
    // Removed: his connection stops receiving the room at once, and he cannot return.
    owner
        .send(json!({"type": "remove", "room": "ops", "user": bob_id}))
        .await;
    assert_eq!(bob.next_of("left").await["room"], "ops");
    owner.say_acked("ops", "after bob").await;
    bob.expect_nothing_queued().await;
    bob.send(json!({"type": "join", "room": "ops"})).await;
    bob.expect_error("forbidden").await;
}

#[tokio::test]
async fn a_dm_is_the_same_private_room_of_exactly_two_users() {
    let server = TestServer::start().await;
    let (mut ann, aw) = guest(&server, "ann", None).await;
    let (mut ben, bw) = guest(&server, "ben", None).await;
    let (mut cat, _) = guest(&server, "cat", None).await;
    let (ann_id, ben_id) = (text(&aw, "user"), text(&bw, "user"));
    ann.send(json!({"type": "open_dm", "user": ben_id})).await;
    let dm = ann.expect("dm").await;
    let room = text(&dm, "room");
    assert_eq!(
        (dm["user"].clone(), dm["nick"].clone()),
        (json!(ben_id), json!("ben"))
    );
    let told = ben.expect("dm").await;
    assert_eq!(
        (told["room"].clone(), told["user"].clone()),
        (json!(room), json!(ann_id))
    );
    // The same room from either side, every time.
    ben.send(json!({"type": "open_dm", "user": ann_id})).await;
    assert_eq!(ben.expect("dm").await["room"], json!(room));
    ann.expect("dm").await;
    ann.join(&room).await;
    ben.join(&room).await;
    ann.say_acked(&room, "just us").await;
    assert_eq!(ben.next_of("message").await["text"], "just us");
    cat.send(json!({"type": "join", "room": room})).await;
    cat.expect_error("forbidden").await;
    cat.send(json!({"type": "open_dm", "user": "guest:0000000000000000"}))
        .await;
    cat.expect_error("unknown_user").await;
    cat.send(json!({"type": "open_dm", "user": text(&bw, "user")}))
        .await;
    assert_ne!(cat.expect("dm").await["room"], json!(room));
    // Nobody can squat a DM name by posting to it first.
    cat.send(json!({"type": "create_room", "room": "dm--feed"}))
        .await;
    cat.expect_error("invalid_room").await;
    // Ben's welcome lists the DM with ann's name.
    let (_ben2, w) = guest(&server, "ben", Some(&text(&bw, "session"))).await;
    let listed: Vec<&Value> = w["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["room"] == json!(room))
        .collect();
    assert_eq!(listed.len(), 1, "{w}");
    assert_eq!(
        (
            listed[0]["dm"].clone(),
            listed[0]["dm_nick"].clone(),
            listed[0]["private"].clone()
        ),
        (json!(ann_id), json!("ann"), json!(true))
    );
}

#[tokio::test]
async fn a_reload_within_the_grace_period_shows_the_others_nothing() {
    let server = TestServer::with(|c| c.presence_grace = Duration::from_millis(1500)).await;
    let (mut gil, w) = guest(&server, "gil", None).await;
    gil.join("lobby").await;
    let mut hal = server.member("hal", "lobby").await;
    gil.next_of("presence").await;
    drop(gil);
    let (mut back, _) = guest(&server, "gil", Some(&text(&w, "session"))).await;
    back.join("lobby").await;
    hal.expect_silence(Duration::from_millis(2000)).await;
    // A real departure is announced once the grace is over.
    back.ws().close(None).await.unwrap();
    let started = std::time::Instant::now();
    let note = hal.next_of("notification").await;
    assert_eq!(note["text"], "gil left");
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_v1_database_opens_with_its_history_and_gains_people() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    // As a v1 server left its file: no user column, no people tables, user_version 0.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
             CREATE TABLE rooms (room TEXT PRIMARY KEY, head INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE messages (
                 room TEXT NOT NULL, offset INTEGER NOT NULL, id TEXT NOT NULL,
                 nick TEXT NOT NULL, nick_key TEXT NOT NULL, text TEXT NOT NULL,
                 ts INTEGER NOT NULL, PRIMARY KEY (room, offset)) WITHOUT ROWID;
             CREATE UNIQUE INDEX messages_dedupe ON messages (room, nick_key, id);
             INSERT INTO meta VALUES ('epoch', 'v1epoch000');
             INSERT INTO rooms VALUES ('lobby', 2);
             INSERT INTO messages VALUES
                 ('lobby', 1, 'a', 'ann', 'ann', 'one', 1000),
                 ('lobby', 2, 'b', 'bob', 'bob', 'two', 2000);",
        )
        .unwrap();
    let server = TestServer::on_db(path.clone(), |_| {}).await;
    let (mut c, _) = guest(&server, "cy", None).await;
    let joined = c.join("lobby").await;
    assert_eq!(
        (joined["head"].clone(), joined["epoch"].clone()),
        (json!(2), json!("v1epoch000"))
    );
    c.send(json!({"type": "history", "room": "lobby"})).await;
    let page = c.expect("history").await;
    let items = page["messages"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|m| m.get("user").is_none()), "{page}");
    assert_eq!(c.say_acked("lobby", "three").await, 3);
    // The old messages are entries of the log like new ones: reacted to and replied to;
    // they have no author to edit them.
    c.send(json!({"type": "react", "room": "lobby", "offset": 1, "emoji": "👍", "on": true, "id": "r1"}))
        .await;
    assert_eq!(c.next_of("ack").await["offset"], 4);
    c.send(json!({"type": "edit", "room": "lobby", "offset": 2, "text": "2", "id": "e1"}))
        .await;
    assert_eq!(c.next_of("error").await["code"], "forbidden");
    c.send(json!({"type": "history", "room": "lobby"})).await;
    let page = c.next_of("history").await;
    assert_eq!(
        page["messages"][0]["reactions"]["👍"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        version, 3,
        "every migration ran (people, notifications, conversation)"
    );
}
