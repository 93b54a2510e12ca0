//! Conversation (protocol v2): `edit`, `delete`, `react` and `send {reply_to}` against a
//! real server: each acked, de-duplicated by id and refused with the right code, each
//! an entry of the room's log delivered live and replayed by `since` in order, and
//! `history` showing the messages' current state.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{Client, TestServer};

/// Sends `frame` and returns the ack's offset, skipping the live frames that arrive
/// meanwhile (the sender gets its own entries too).
async fn acked(c: &mut Client, frame: Value) -> u64 {
    let id = frame["id"].as_str().unwrap().to_owned();
    c.send(frame).await;
    loop {
        let v = c.recv().await;
        if v["type"] == "ack" && v["id"] == id.as_str() {
            return v["offset"].as_u64().unwrap();
        }
        assert!(v["type"] != "error", "{v}");
    }
}

/// Sends `frame` and expects the error `code` about it (its `ref` is the frame's id),
/// skipping the live frames that arrive meanwhile.
async fn refused(c: &mut Client, frame: Value, code: &str) {
    let id = frame["id"].clone();
    c.send(frame).await;
    let e = c.next_of("error").await;
    assert_eq!((&e["code"], &e["ref"]), (&json!(code), &id), "{e}");
}

/// The next frame of one of the log's entry kinds.
async fn next_entry(c: &mut Client) -> Value {
    loop {
        let v = c.recv().await;
        if ["message", "edited", "deleted", "reacted"].contains(&v["type"].as_str().unwrap_or("")) {
            return v;
        }
    }
}

async fn history(c: &mut Client, room: &str) -> Value {
    c.send(json!({"type": "history", "room": room})).await;
    c.next_of("history").await
}

#[tokio::test]
async fn edits_deletions_reactions_and_replies_reach_everyone_and_history_shows_the_result() {
    let server = TestServer::start().await;
    let mut ann = server.member("ann", "lobby").await;
    let mut bob = server.member("bob", "lobby").await;
    ann.next_of("presence").await;
    let first = ann.say_acked("lobby", "helo").await;
    assert_eq!(next_entry(&mut bob).await["offset"], json!(first));

    // An edit: acked with its own offset, delivered to everyone as `edited`.
    let e = acked(
        &mut ann,
        json!({"type": "edit", "room": "lobby", "offset": first, "text": " hello ", "id": "e1"}),
    )
    .await;
    assert_eq!(e, first + 1);
    let edited = next_entry(&mut bob).await;
    assert_eq!(edited["type"], "edited");
    assert_eq!(
        (&edited["offset"], &edited["target"], &edited["text"]),
        (&json!(e), &json!(first), &json!("hello")),
        "{edited}"
    );
    assert!(
        edited["user"].as_str().unwrap().starts_with("guest:"),
        "{edited}"
    );

    // A reaction, a reply.
    let r = acked(
        &mut bob,
        json!({"type": "react", "room": "lobby", "offset": first, "emoji": "🎉", "on": true, "id": "r1"}),
    )
    .await;
    let reacted = ann.next_of("reacted").await;
    assert_eq!(
        (
            &reacted["type"],
            &reacted["offset"],
            &reacted["emoji"],
            &reacted["on"],
            &reacted["nick"]
        ),
        (
            &json!("reacted"),
            &json!(r),
            &json!("🎉"),
            &json!(true),
            &json!("bob")
        ),
        "{reacted}"
    );
    let reply = acked(
        &mut bob,
        json!({"type": "send", "room": "lobby", "text": "hi ann", "id": "m9", "reply_to": first}),
    )
    .await;
    let m = next_entry(&mut ann).await;
    assert_eq!(
        (&m["type"], &m["reply_to"]),
        (&json!("message"), &json!(first)),
        "{m}"
    );

    // History: messages only, in their current state, with who reacted.
    let h = history(&mut bob, "lobby").await;
    let msgs = h["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{h}");
    assert_eq!(msgs[0]["text"], "hello");
    assert!(msgs[0]["edited_ts"].as_u64().is_some(), "{h}");
    let bob_id = reacted["user"].as_str().unwrap();
    assert_eq!(msgs[0]["reactions"], json!({"🎉": [bob_id]}));
    assert_eq!(h["nicks"][bob_id], "bob");
    assert_eq!(
        (&msgs[1]["offset"], &msgs[1]["reply_to"]),
        (&json!(reply), &json!(first))
    );

    // Deleting: the author may; the message is then gone from history but for its place.
    let d = acked(
        &mut ann,
        json!({"type": "delete", "room": "lobby", "offset": first, "id": "d1"}),
    )
    .await;
    let deleted = bob.next_of("deleted").await;
    assert_eq!(
        (&deleted["offset"], &deleted["target"]),
        (&json!(d), &json!(first))
    );
    let h = history(&mut bob, "lobby").await;
    let gone = &h["messages"][0];
    assert_eq!(gone["deleted"], true, "{h}");
    assert!(gone.get("text").is_none(), "no text: {gone}");
    assert!(gone.get("reactions").is_none(), "{gone}");
    assert!(
        !h.to_string().contains("hello") && !h.to_string().contains("helo"),
        "{h}"
    );
}

#[tokio::test]
async fn each_refusal_has_its_code_and_nothing_is_stored() {
    let server = TestServer::with(|c| c.edit_window = Some(Duration::from_millis(300))).await;
    let mut ann = server.member("ann", "lobby").await;
    let mut bob = server.member("bob", "lobby").await;
    let mine = ann.say_acked("lobby", "ann's").await;
    // Someone else's message: neither edited nor deleted (a plain room has no owner).
    refused(
        &mut bob,
        json!({"type": "edit", "room": "lobby", "offset": mine, "text": "x", "id": "b1"}),
        "forbidden",
    )
    .await;
    refused(
        &mut bob,
        json!({"type": "delete", "room": "lobby", "offset": mine, "id": "b2"}),
        "forbidden",
    )
    .await;
    // Nothing there, or not a message.
    for (offset, id) in [(99, "b3"), (0, "b4")] {
        refused(
            &mut bob,
            json!({"type": "react", "room": "lobby", "offset": offset, "emoji": "👍", "on": true, "id": id}),
            "unknown_message",
        )
        .await;
    }
    refused(
        &mut bob,
        json!({"type": "send", "room": "lobby", "text": "re", "id": "b5", "reply_to": 42}),
        "unknown_message",
    )
    .await;
    // Not one of the offered reactions; a bad text; a room not joined.
    refused(
        &mut bob,
        json!({"type": "react", "room": "lobby", "offset": mine, "emoji": "💩", "on": true, "id": "b6"}),
        "invalid_emoji",
    )
    .await;
    refused(
        &mut ann,
        json!({"type": "edit", "room": "lobby", "offset": mine, "text": "   ", "id": "a1"}),
        "invalid_text",
    )
    .await;
    refused(
        &mut ann,
        json!({"type": "edit", "room": "elsewhere", "offset": mine, "text": "x", "id": "a2"}),
        "not_joined",
    )
    .await;
    // Past the edit window an edit is refused; deleting still works.
    tokio::time::sleep(Duration::from_millis(400)).await;
    refused(
        &mut ann,
        json!({"type": "edit", "room": "lobby", "offset": mine, "text": "late", "id": "a3"}),
        "edit_expired",
    )
    .await;
    ann.expect_nothing_queued().await;
    bob.expect_nothing_queued().await;
    // None of that took an offset: the next entry follows the message.
    let d = acked(
        &mut ann,
        json!({"type": "delete", "room": "lobby", "offset": mine, "id": "a4"}),
    )
    .await;
    assert_eq!(d, mine + 1);
    refused(
        &mut ann,
        json!({"type": "delete", "room": "lobby", "offset": mine, "id": "a5"}),
        "unknown_message",
    )
    .await;
}

#[tokio::test]
async fn the_owner_of_a_room_deletes_anyones_message_and_outsiders_are_forbidden() {
    let server = TestServer::start().await;
    let mut owner = server.login("olga").await;
    owner
        .send(json!({"type": "create_room", "room": "club"}))
        .await;
    owner.expect("room_created").await;
    owner.join("club").await;
    let mut bob = server.member("bob", "club").await;
    let said = bob.say_acked("club", "spam").await;
    let d = acked(
        &mut owner,
        json!({"type": "delete", "room": "club", "offset": said, "id": "o1"}),
    )
    .await;
    let deleted = next_entry(&mut bob).await;
    assert_eq!(
        (&deleted["offset"], &deleted["target"]),
        (&json!(d), &json!(said))
    );

    // A private room: an outsider meets `forbidden` whatever they try.
    owner
        .send(json!({"type": "create_room", "room": "den", "private": true}))
        .await;
    owner.next_of("room_created").await;
    owner.join("den").await;
    let secret = owner.say_acked("den", "secret").await;
    let mut out = server.login("oscar").await;
    for frame in [
        json!({"type": "edit", "room": "den", "offset": secret, "text": "x", "id": "x1"}),
        json!({"type": "delete", "room": "den", "offset": secret, "id": "x2"}),
        json!({"type": "react", "room": "den", "offset": secret, "emoji": "👍", "on": true, "id": "x3"}),
    ] {
        refused(&mut out, frame, "forbidden").await;
    }
}

#[tokio::test]
async fn a_retried_edit_delete_or_reaction_is_acked_once_with_the_same_offset() {
    let server = TestServer::start().await;
    let mut ann = server.member("ann", "lobby").await;
    let mut bob = server.member("bob", "lobby").await;
    ann.next_of("presence").await;
    let m = ann.say_acked("lobby", "one").await;
    next_entry(&mut bob).await;
    for frame in [
        json!({"type": "edit", "room": "lobby", "offset": m, "text": "uno", "id": "e1"}),
        json!({"type": "react", "room": "lobby", "offset": m, "emoji": "👍", "on": true, "id": "r1"}),
        json!({"type": "delete", "room": "lobby", "offset": m, "id": "d1"}),
    ] {
        let first = acked(&mut ann, frame.clone()).await;
        let again = acked(&mut ann, frame).await;
        assert_eq!(first, again);
        assert_eq!(next_entry(&mut bob).await["offset"], json!(first));
    }
    bob.expect_nothing_queued().await;
}

#[tokio::test]
async fn since_replays_edits_deletions_and_reactions_in_order() {
    let server = TestServer::start().await;
    let mut ann = server.member("ann", "lobby").await;
    let first = ann.say_acked("lobby", "first").await;
    let mut bob = server.login("bob").await;
    let joined = bob.join("lobby").await;
    let epoch = joined["epoch"].clone();
    let seen = first;
    drop(bob);
    // While bob is away: an edit, a reaction, a reply, a message edited then deleted.
    let e = acked(
        &mut ann,
        json!({"type": "edit", "room": "lobby", "offset": first, "text": "first!", "id": "e1"}),
    )
    .await;
    let r = acked(&mut ann, json!({"type": "react", "room": "lobby", "offset": first, "emoji": "🔥", "on": true, "id": "r1"})).await;
    let reply = acked(
        &mut ann,
        json!({"type": "send", "room": "lobby", "text": "re", "id": "re1", "reply_to": first}),
    )
    .await;
    let doomed = ann.say_acked("lobby", "oops, wrong room").await;
    acked(
        &mut ann,
        json!({"type": "edit", "room": "lobby", "offset": doomed, "text": "oops!", "id": "e2"}),
    )
    .await;
    let d = acked(
        &mut ann,
        json!({"type": "delete", "room": "lobby", "offset": doomed, "id": "d1"}),
    )
    .await;

    let mut bob = server.login("bob2").await;
    bob.send(json!({"type": "join", "room": "lobby", "since": seen, "epoch": epoch}))
        .await;
    let joined = bob.expect("joined").await;
    assert_eq!(joined["recovered"], true, "{joined}");
    let mut got = Vec::new();
    while got.len() < 4 {
        let v = next_entry(&mut bob).await;
        got.push(format!("{} {}", v["type"].as_str().unwrap(), v["offset"]));
    }
    assert_eq!(
        got,
        [
            format!("edited {e}"),
            format!("reacted {r}"),
            format!("message {reply}"),
            // The deleted message and its edit were erased: only the deletion remains.
            format!("deleted {d}"),
        ]
    );
    bob.expect_nothing_queued().await;
}

#[tokio::test]
async fn a_reply_alerts_the_author_of_the_original() {
    let server = TestServer::start().await;
    let mut ann = server.member("ann", "lobby").await;
    let mut bob = server.member("bob", "lobby").await;
    let original = ann.say_acked("lobby", "who is in for lunch?").await;
    // A plain message alerts nobody (the default level is mentions).
    bob.say_acked("lobby", "not me").await;
    // A reply to ann's message alerts ann, as a reply.
    acked(
        &mut bob,
        json!({"type": "send", "room": "lobby", "text": "me!", "id": "re1", "reply_to": original}),
    )
    .await;
    let alert = ann.next_of("alert").await;
    assert_eq!(
        (&alert["kind"], &alert["offset"], &alert["body"]),
        (&json!("reply"), &json!(original + 2), &json!("me!")),
        "{alert}"
    );
    // Replying to oneself alerts nobody.
    ann.send(json!({"type": "send", "room": "lobby", "text": "anyone?", "id": "re2", "reply_to": original}))
        .await;
    let (mut acked_, mut echoed) = (false, false);
    while !(acked_ && echoed) {
        let v = ann.recv().await;
        assert!(v["type"] != "alert", "{v}");
        acked_ |= v["type"] == "ack" && v["id"] == "re2";
        echoed |= v["type"] == "message" && v["id"] == "re2";
    }
    ann.expect_silence(Duration::from_millis(300)).await;
    while bob.next_of("message").await["id"] != "re2" {}
    bob.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn edits_and_reactions_draw_on_the_send_rate() {
    let server = TestServer::with(|c| {
        c.rate_per_sec = 1;
        c.rate_burst = 3;
    })
    .await;
    let mut ann = server.member("ann", "lobby").await;
    let m = ann.say_acked("lobby", "one").await;
    // The message took one of the three; two more pass, the rest are refused by id.
    for i in 0..5 {
        ann.send(json!({"type": "react", "room": "lobby", "offset": m, "emoji": "👍", "on": i % 2 == 0, "id": format!("r{i}")}))
            .await;
    }
    ann.send(json!({"type": "edit", "room": "lobby", "offset": m, "text": "uno", "id": "e1"}))
        .await;
    let (mut acks, mut limited) = (Vec::new(), Vec::new());
    while acks.len() + limited.len() < 6 {
        let v = ann.recv().await;
        match v["type"].as_str() {
            Some("ack") => acks.push(v["id"].as_str().unwrap().to_owned()),
            Some("error") => {
                assert_eq!(v["code"], "rate_limited", "{v}");
                limited.push(v["ref"].as_str().unwrap().to_owned());
            }
            _ => {}
        }
    }
    assert_eq!(acks, ["r0", "r1"]);
    assert_eq!(limited, ["r2", "r3", "r4", "e1"]);
}

#[tokio::test]
async fn welcome_names_each_rooms_owner_and_the_edit_window() {
    let server = TestServer::with(|c| c.edit_window = Some(Duration::from_secs(600))).await;
    let mut olga = server.client().await;
    let welcome = olga.hello("olga").await;
    assert_eq!(welcome["limits"]["edit_window_ms"], 600_000, "{welcome}");
    let session = welcome["session"].as_str().unwrap().to_owned();
    let me = welcome["user"].clone();
    olga.send(json!({"type": "create_room", "room": "club"}))
        .await;
    olga.expect("room_created").await;
    olga.join("lobby").await;
    drop(olga);
    let mut again = server.client().await;
    again
        .send(json!({"type": "hello", "nick": "olga", "session": session}))
        .await;
    let welcome = again.expect("welcome").await;
    let rooms = welcome["rooms"].as_array().unwrap();
    let owner_of = |name: &str| {
        rooms
            .iter()
            .find(|r| r["room"] == name)
            .map(|r| r["owner"].clone())
            .unwrap_or_else(|| panic!("{name} not in {welcome}"))
    };
    assert_eq!(owner_of("club"), me);
    assert_eq!(
        owner_of("lobby"),
        Value::Null,
        "a room joined by name has no owner"
    );
    // Without the flag, no window is advertised.
    let plain = TestServer::start().await;
    let mut c = plain.client().await;
    let w = c.hello("cy").await;
    assert!(w["limits"].get("edit_window_ms").is_none(), "{w}");
}
