//! Every frame type and error code of protocol v1, each case over a real WebSocket and
//! over a real SSE stream with its POSTs (`over_websocket::*`, `over_sse::*`).

use std::time::Duration;

use crate::support::{TestServer, Transport};
use serde_json::json;

async fn hello_gets_welcome_with_session_server_and_limits(t: Transport) {
    let server = TestServer::start().await.over(t);
    let mut c = server.client().await;
    let w = c.hello("  alice ").await;
    assert_eq!(w["type"], "welcome");
    assert_eq!(w["nick"], "alice", "nick is trimmed");
    assert!(w["session"].as_str().is_some_and(|s| s.starts_with("s_")));
    assert!(w["server"]
        .as_str()
        .is_some_and(|s| s.starts_with("huddle/")));
    let l = &w["limits"];
    assert_eq!(l["nick_max_chars"], 32);
    assert_eq!(l["room_max_chars"], 64);
    assert_eq!(l["text_max_chars"], 4000);
    assert_eq!(l["history_max"], 100);
    assert_eq!(l["rate_per_sec"], 20);
    assert_eq!(l["rate_burst"], 40);
    assert_eq!(l["max_frame_bytes"], 65536);
}

async fn frames_before_hello_get_hello_required_and_hello_can_be_retried(t: Transport) {
    let server = TestServer::start().await.over(t);
    let mut c = server.client().await;
    c.send(json!({"type": "join", "room": "lobby"})).await;
    let e = c.expect_error("hello_required").await;
    assert_eq!(e["ref"], "join");
    c.send(json!({"type": "dance"})).await;
    c.expect_error("hello_required").await;
    c.send_raw("{not json").await;
    c.expect_error("bad_json").await;
    c.send(json!({"type": "list_rooms"})).await;
    c.expect_error("hello_required").await;
    // A failed hello can be retried on the same connection.
    c.send(json!({"type": "hello", "nick": "   "})).await;
    c.expect_error("invalid_nick").await;
    c.send(json!({"type": "hello"})).await;
    c.expect_error("invalid_nick").await;
    c.send(json!({"type": "hello", "nick": "a\u{0007}b"})).await;
    c.expect_error("invalid_nick").await;
    c.send(json!({"type": "hello", "nick": "x".repeat(33)}))
        .await;
    c.expect_error("invalid_nick").await;
    assert_eq!(c.hello("bob").await["type"], "welcome");
    // The nick cannot change on a live connection.
    c.send(json!({"type": "hello", "nick": "carol"})).await;
    c.expect_error("invalid_nick").await;
}

async fn bad_json_and_unknown_type_after_hello(t: Transport) {
    let server = TestServer::start().await.over(t);
    let mut c = server.login("alice").await;
    c.send_raw("[1, 2, 3]").await;
    c.expect_error("bad_json").await;
    c.send_raw("hello").await;
    c.expect_error("bad_json").await;
    c.send(json!({"type": "dance", "room": "lobby"})).await;
    let e = c.expect_error("unknown_type").await;
    assert_eq!(e["ref"], "dance");
    c.send(json!({"type": "join", "room": "lobby", "since": "yesterday"}))
        .await;
    c.expect_error("bad_json").await;
    // Unknown fields are ignored.
    c.send(json!({"type": "join", "room": "lobby", "colour": "red"}))
        .await;
    c.expect("joined").await;
}

async fn no_nick_can_pose_as_one_that_is_online(t: Transport) {
    let server = TestServer::start().await.over(t);
    let _alice = server.login("alice").await;
    let mut b = server.client().await;
    // Invisible characters, direction overrides, and a Cyrillic letter among Latin ones.
    for lookalike in [
        "alice\u{200b}",
        "\u{202e}ecila",
        "al\u{ad}ice",
        "al\u{2060}ice",
        "\u{430}lice",
    ] {
        b.send(json!({"type": "hello", "nick": lookalike})).await;
        let e = b.expect_error("invalid_nick").await;
        assert_eq!(e["ref"], "hello", "{lookalike:?}: {e}");
    }
    // A name in one script that looks like hers, or her name in full-width letters, is
    // a valid name that is taken.
    for lookalike in ["\u{430}\u{4cf}\u{456}\u{441}\u{435}", "\u{ff41}lice"] {
        b.send(json!({"type": "hello", "nick": lookalike})).await;
        b.expect_error("nick_taken").await;
    }
    assert_eq!(b.hello("alicia").await["type"], "welcome");
}

async fn nicks_are_unique_case_insensitively_among_connected_sessions(t: Transport) {
    let server = TestServer::with(|c| c.presence_grace = Duration::ZERO)
        .await
        .over(t);
    let a = server.login("Alice").await;
    let mut b = server.client().await;
    b.send(json!({"type": "hello", "nick": "alice"})).await;
    let e = b.expect_error("nick_taken").await;
    assert_eq!(e["ref"], "hello");
    // A wrong session token does not take the nick either.
    b.send(json!({"type": "hello", "nick": "ALICE", "session": "s_000000000000000000000000"}))
        .await;
    b.expect_error("nick_taken").await;
    a.close().await;
    // Once the holder is gone the nick is free again.
    let mut ok = false;
    for _ in 0..50 {
        let w = b.hello("alice").await;
        if w["type"] == "welcome" {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "nick was not released after its holder disconnected");
}

async fn join_leave_and_membership_errors(t: Transport) {
    let server = TestServer::start().await.over(t);
    let mut c = server.login("alice").await;
    for bad in ["", "Lobby", "lob by", "lobby!", &"a".repeat(65)] {
        c.send(json!({"type": "join", "room": bad})).await;
        c.expect_error("invalid_room").await;
    }
    c.send(json!({"type": "join"})).await;
    c.expect_error("invalid_room").await;
    let j = c.join("lobby").await;
    assert_eq!(
        j,
        json!({"type": "joined", "room": "lobby", "head": 0, "epoch": j["epoch"], "nicks": ["alice"]})
    );
    assert!(j["epoch"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(
        j.get("recovered").is_none(),
        "recovered only when since was given"
    );
    c.send(json!({"type": "leave", "room": "lobby"})).await;
    assert_eq!(c.recv().await, json!({"type": "left", "room": "lobby"}));
    c.send(json!({"type": "leave", "room": "lobby"})).await;
    let e = c.expect_error("not_joined").await;
    assert_eq!(e["ref"], "leave");
    c.send(json!({"type": "typing", "room": "lobby"})).await;
    c.expect_error("not_joined").await;
    c.send(json!({"type": "send", "room": "lobby", "text": "hi", "id": "x1"}))
        .await;
    let e = c.expect_error("not_joined").await;
    assert_eq!(e["ref"], "x1");
    c.send(json!({"type": "leave", "room": "BAD"})).await;
    c.expect_error("invalid_room").await;
}

async fn send_is_acked_and_broadcast_to_every_member_including_the_sender(t: Transport) {
    let server = TestServer::start().await.over(t);
    let mut a = server.member("alice", "lobby").await;
    let mut b = server.member("bob", "lobby").await;
    a.next_of("presence").await;
    a.send(json!({"type": "send", "room": "lobby", "text": "  hi all \n", "id": "m1"}))
        .await;
    let mut got_ack = false;
    let mut got_msg = false;
    for _ in 0..2 {
        let v = a.recv().await;
        match v["type"].as_str().unwrap() {
            "ack" => {
                assert_eq!(
                    v,
                    json!({"type": "ack", "id": "m1", "room": "lobby", "offset": 1})
                );
                got_ack = true;
            }
            "message" => got_msg = true,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(got_ack && got_msg);
    let m = b.expect("message").await;
    assert_eq!(m["room"], "lobby");
    assert_eq!(m["offset"], 1);
    assert_eq!(m["id"], "m1");
    assert_eq!(m["nick"], "alice");
    assert_eq!(m["text"], "hi all", "text is stored trimmed");
    let ts = m["ts"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        ts <= now && now - ts < 60_000,
        "ts is milliseconds since the epoch"
    );
}

async fn invalid_text_and_id_are_refused_with_ref(t: Transport) {
    let server = TestServer::start().await.over(t);
    let mut a = server.member("alice", "lobby").await;
    a.send(json!({"type": "send", "room": "lobby", "text": " \n ", "id": "t1"}))
        .await;
    assert_eq!(a.expect_error("invalid_text").await["ref"], "t1");
    a.send(json!({"type": "send", "room": "lobby", "text": "x".repeat(4001), "id": "t2"}))
        .await;
    a.expect_error("invalid_text").await;
    a.send(json!({"type": "send", "room": "lobby", "id": "t3"}))
        .await;
    a.expect_error("invalid_text").await;
    a.send(json!({"type": "send", "room": "lobby", "text": "ok", "id": ""}))
        .await;
    a.expect_error("invalid_id").await;
    a.send(json!({"type": "send", "room": "lobby", "text": "ok", "id": "i".repeat(65)}))
        .await;
    a.expect_error("invalid_id").await;
    a.send(json!({"type": "send", "room": "lobby", "text": "ok"}))
        .await;
    a.expect_error("invalid_id").await;
    a.send(json!({"type": "send", "room": "Nope", "text": "ok", "id": "t4"}))
        .await;
    a.expect_error("invalid_room").await;
    // The longest valid text is fine, and nothing refused was stored.
    let offset = a.say_acked("lobby", &"y".repeat(4000)).await;
    assert_eq!(offset, 1);
}

async fn others_get_joined_left_notifications_and_presence(t: Transport) {
    let server = TestServer::start().await.over(t);
    let mut a = server.member("alice", "lobby").await;
    let mut b = server.client().await;
    b.hello("bob").await;
    let j = b.join("lobby").await;
    assert_eq!(j["nicks"], json!(["alice", "bob"]));
    let n = a.expect("notification").await;
    assert_eq!(n["room"], "lobby");
    assert_eq!(n["kind"], "joined");
    assert_eq!(n["nick"], "bob");
    assert!(n["text"].as_str().unwrap().contains("bob"));
    assert!(n["ts"].as_u64().is_some());
    assert_eq!(
        a.expect("presence").await,
        json!({"type": "presence", "room": "lobby", "nicks": ["alice", "bob"]})
    );
    // The joiner gets no notification about itself.
    b.expect_nothing_queued().await;

    b.send(json!({"type": "leave", "room": "lobby"})).await;
    b.expect("left").await;
    let n = a.expect("notification").await;
    assert_eq!(
        (n["kind"].as_str(), n["nick"].as_str()),
        (Some("left"), Some("bob"))
    );
    assert_eq!(a.expect("presence").await["nicks"], json!(["alice"]));

    // Closing the connection leaves every room too.
    let c = server.member("carol", "lobby").await;
    a.next_of("presence").await;
    c.close().await;
    let n = a.expect("notification").await;
    assert_eq!(
        (n["kind"].as_str(), n["nick"].as_str()),
        (Some("left"), Some("carol"))
    );
    assert_eq!(a.expect("presence").await["nicks"], json!(["alice"]));
}

async fn typing_is_forwarded_to_others_at_most_once_per_interval(t: Transport) {
    let server = TestServer::start().await.over(t);
    let mut a = server.member("alice", "lobby").await;
    let mut b = server.member("bob", "lobby").await;
    a.next_of("presence").await;
    for _ in 0..5 {
        b.send(json!({"type": "typing", "room": "lobby"})).await;
    }
    assert_eq!(
        a.recv().await,
        json!({"type": "typing", "room": "lobby", "nick": "bob"})
    );
    // Bob's five frames are handled once he is answered again; then alice has
    // nothing more.
    b.expect_nothing_queued().await;
    a.expect_nothing_queued().await;
}

async fn history_pages_backwards(t: Transport) {
    let server = TestServer::with(|c| c.rate_burst = 1000).await.over(t);
    let mut a = server.member("alice", "lobby").await;
    for i in 1..=120 {
        a.say("lobby", &format!("msg {i}")).await;
    }
    for _ in 0..240 {
        a.recv().await;
    }
    a.send(json!({"type": "history", "room": "lobby"})).await;
    let h = a.expect("history").await;
    let offsets: Vec<u64> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(
        offsets,
        (71..=120).collect::<Vec<_>>(),
        "default page is the newest 50, ascending"
    );
    assert_eq!(h["has_more"], true);
    let m = &h["messages"][0];
    assert_eq!(m["text"], "msg 71");
    assert!(m.get("type").is_none(), "history messages carry no type");
    for key in ["room", "offset", "id", "nick", "text", "ts"] {
        assert!(m.get(key).is_some(), "history message lacks {key}");
    }
    a.send(json!({"type": "history", "room": "lobby", "before": 71, "limit": 500}))
        .await;
    let h = a.expect("history").await;
    assert_eq!(
        h["messages"].as_array().unwrap().len(),
        70,
        "limit above 100 is 100; only 70 remain"
    );
    assert_eq!(h["messages"][0]["offset"], 1);
    assert_eq!(h["has_more"], false);
    a.send(json!({"type": "history", "room": "lobby", "before": 200, "limit": 100}))
        .await;
    let h = a.expect("history").await;
    assert_eq!(h["messages"].as_array().unwrap().len(), 100);
    assert_eq!(h["messages"][99]["offset"], 120);
    a.send(json!({"type": "history", "room": "lobby", "before": 3, "limit": 0}))
        .await;
    let h = a.expect("history").await;
    assert_eq!(
        h["messages"].as_array().unwrap().len(),
        1,
        "limit 0 is treated as 1"
    );
    assert_eq!(h["has_more"], true);
    a.send(json!({"type": "history", "room": "empty-room"}))
        .await;
    assert_eq!(
        a.recv().await,
        json!({"type": "history", "room": "empty-room", "messages": [], "has_more": false})
    );
    a.send(json!({"type": "history", "room": "NO"})).await;
    a.expect_error("invalid_room").await;
}

async fn list_rooms_shows_members_and_heads(t: Transport) {
    let server = TestServer::start().await.over(t);
    let mut a = server.member("alice", "lobby").await;
    a.say_acked("lobby", "one").await;
    a.say_acked("lobby", "two").await;
    let mut b = server.member("bob", "random").await;
    b.say_acked("random", "hi").await;
    b.send(json!({"type": "list_rooms"})).await;
    let r = b.expect("rooms").await;
    // Most messages first; rooms with no message yet are not listed.
    assert_eq!(
        r,
        json!({"type": "rooms", "rooms": [
            {"room": "lobby", "members": 1, "head": 2},
            {"room": "random", "members": 1, "head": 1},
        ], "total": 2})
    );
    // A room with history but no members still exists.
    a.send(json!({"type": "leave", "room": "lobby"})).await;
    a.next_of("left").await;
    b.send(json!({"type": "list_rooms"})).await;
    assert_eq!(
        b.expect("rooms").await["rooms"][0],
        json!({"room": "lobby", "members": 0, "head": 2})
    );
    // A page of one, then the next; a cursor not from the server is refused.
    b.send(json!({"type": "list_rooms", "limit": 1})).await;
    let first = b.expect("rooms").await;
    assert_eq!(first["rooms"].as_array().unwrap().len(), 1);
    assert_eq!(first["next"], "1");
    b.send(json!({"type": "list_rooms", "limit": 1, "cursor": "1"}))
        .await;
    let second = b.expect("rooms").await;
    assert_eq!(second["rooms"][0]["room"], "random");
    assert!(second.get("next").is_none(), "{second}");
    b.send(json!({"type": "list_rooms", "cursor": "lobby"}))
        .await;
    let e = b.expect_error("bad_json").await;
    assert_eq!(e["ref"], "list_rooms");
}

#[tokio::test]
async fn the_subprotocol_is_echoed() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::start().await;
    let mut req = server.ws_url().into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "huddle.v1".parse().unwrap());
    let (_ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "huddle.v1");
}

async fn a_dropped_nick_is_kept_for_its_session_through_the_grace(t: Transport) {
    let server = TestServer::with(|c| c.presence_grace = Duration::from_millis(1500))
        .await
        .over(t);
    let mut alice = server.client().await;
    let session = alice.hello("alice").await["session"].clone();
    alice.close().await;
    let mut squatter = server.client().await;
    // Until the server has seen the close, the nick is simply in use; then it is kept.
    let refused = loop {
        squatter
            .send(json!({"type": "hello", "nick": "alice"}))
            .await;
        let e = squatter.expect_error("nick_taken").await;
        if e["message"].as_str().unwrap().contains("just disconnected") {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused["ref"], "hello");
    // A lookalike is the same nick.
    squatter
        .send(json!({"type": "hello", "nick": "ALICE"}))
        .await;
    squatter.expect_error("nick_taken").await;
    // The owner's reload gets it back with its session.
    let mut back = server.client().await;
    back.send(json!({"type": "hello", "nick": "alice", "session": session}))
        .await;
    assert_eq!(back.expect("welcome").await["session"], session);
    back.close().await;
    // After the grace it is anyone's.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    loop {
        squatter
            .send(json!({"type": "hello", "nick": "alice"}))
            .await;
        let v = squatter.recv().await;
        if v["type"] == "welcome" {
            break;
        }
        assert_eq!(v["code"], "nick_taken", "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs each case over both transports.
macro_rules! over_both {
    ($($case:ident),* $(,)?) => {
        mod over_websocket {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::Transport::WebSocket).await;
            })*
        }
        mod over_sse {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::Transport::Sse).await;
            })*
        }
    };
}

over_both!(
    hello_gets_welcome_with_session_server_and_limits,
    frames_before_hello_get_hello_required_and_hello_can_be_retried,
    bad_json_and_unknown_type_after_hello,
    no_nick_can_pose_as_one_that_is_online,
    nicks_are_unique_case_insensitively_among_connected_sessions,
    join_leave_and_membership_errors,
    send_is_acked_and_broadcast_to_every_member_including_the_sender,
    invalid_text_and_id_are_refused_with_ref,
    others_get_joined_left_notifications_and_presence,
    typing_is_forwarded_to_others_at_most_once_per_interval,
    history_pages_backwards,
    list_rooms_shows_members_and_heads,
    a_dropped_nick_is_kept_for_its_session_through_the_grace,
);
