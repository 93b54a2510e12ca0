//! Notifications that reach people (protocol v2): each row of the contract's inbox
//! table, alert levels and quiet hours, the notifications API for users with its
//! receipts and idempotency, stored room notices, and Web Push end to end through a
//! real local push service that decrypts what it gets (`support::push_service`).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use crate::api::{request, Reply};
use crate::support::push_service::{PushService, Subscriber};
use crate::support::{free_port, labelled, Client, Huddle, Scrape, TestServer};

const KEY: &str = "app-key-0123456789abcdef0123456789abcdef";

/// A guest with `nick`, its welcome, and its session token.
async fn guest(server: &TestServer, nick: &str) -> (Client, Value) {
    let mut c = server.client().await;
    c.send(json!({"type": "hello", "nick": nick})).await;
    let welcome = c.expect("welcome").await;
    (c, welcome)
}

/// Another connection of the same guest.
async fn again(url: &str, nick: &str, welcome: &Value) -> (Client, Value) {
    let mut c = Client::connect(url).await;
    c.send(json!({"type": "hello", "nick": nick, "session": welcome["session"]}))
        .await;
    let welcome = c.expect("welcome").await;
    (c, welcome)
}

fn user_of(welcome: &Value) -> String {
    welcome["user"].as_str().unwrap().to_owned()
}

async fn api(addr: SocketAddr, method: &str, path: &str, extra: &[&str], body: &Value) -> Reply {
    let auth = format!("Authorization: Bearer {KEY}");
    let mut headers = vec!["Content-Type: application/json", auth.as_str()];
    headers.extend_from_slice(extra);
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    request(addr, method, path, &headers, &body).await
}

async fn notify_user(addr: SocketAddr, user: &str, body: Value, extra: &[&str]) -> Reply {
    api(
        addr,
        "POST",
        &format!("/api/users/{user}/notifications"),
        extra,
        &body,
    )
    .await
}

async fn receipt(addr: SocketAddr, id: &str) -> Value {
    let reply = api(
        addr,
        "GET",
        &format!("/api/notifications/{id}"),
        &[],
        &Value::Null,
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body
}

/// A receipt's `field` once it has a time (it is recorded just after the event), or
/// `None` if it has none after a second.
async fn receipt_time(addr: SocketAddr, id: &str, field: &str) -> Option<u64> {
    for _ in 0..50 {
        if let Some(t) = receipt(addr, id).await[field].as_u64() {
            return Some(t);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn server_with_key(tweak: impl FnOnce(&mut backend::Config)) -> TestServer {
    TestServer::with(|c| {
        c.api_token = Some(KEY.parse().unwrap());
        tweak(c);
    })
    .await
}

/// Subscribes `client` (a signed-in connection) to Web Push with `sub`'s keys.
async fn subscribe(client: &mut Client, sub: &Subscriber) {
    let mut frame = sub.subscription_json();
    frame["type"] = json!("push_subscribe");
    client.send(frame).await;
    let ok = client.next_of("push_subscribed").await;
    assert_eq!(ok["endpoint"], sub.subscription_json()["endpoint"]);
}

fn payload(push: &crate::support::push_service::ReceivedPush) -> Value {
    serde_json::from_slice(&push.payload).expect("a push payload is JSON")
}

#[tokio::test]
async fn a_mention_alerts_every_connection_of_the_named_user_and_not_the_sender() {
    let server = TestServer::start().await;
    let (mut ann, w) = guest(&server, "ann").await;
    assert_eq!(w["inbox"], json!({"head": 0, "unread": 0}), "{w}");
    ann.join("lobby").await;
    let (mut ann2, _) = again(&server.ws_url(), "ann", &w).await;
    let mut bob = server.member("bob", "lobby").await;
    ann.next_of("presence").await;
    let offset = bob.say_acked("lobby", "hey @Ann, look").await;
    for tab in [&mut ann, &mut ann2] {
        let alert = tab.next_of("alert").await;
        assert_eq!(alert["seq"], 1);
        assert_eq!(alert["kind"], "mention");
        assert_eq!(alert["room"], "lobby");
        assert_eq!(alert["offset"], offset);
        assert_eq!(alert["read"], false);
        assert_eq!(alert["title"], "bob in #lobby");
        assert_eq!(alert["body"], "hey @Ann, look");
    }
    // Not for the sender, not for a word that only looks like the nick.
    bob.say_acked("lobby", "@bob talking to myself; annie and ann are here")
        .await;
    // Alerts are made just after the commit; give them the moment they take.
    tokio::time::sleep(Duration::from_millis(300)).await;
    bob.send(json!({"type": "inbox"})).await;
    let inbox = bob.next_of("inbox").await;
    assert_eq!(
        inbox,
        json!({"type": "inbox", "alerts": [], "head": 0, "unread": 0})
    );
    ann.send(json!({"type": "inbox"})).await;
    let inbox = ann.next_of("inbox").await;
    assert_eq!(
        (inbox["head"].clone(), inbox["unread"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(inbox["alerts"].as_array().unwrap().len(), 1);
    // A new connection learns where the inbox stands from its welcome.
    let (_ann3, w3) = again(&server.ws_url(), "ann", &w).await;
    assert_eq!(w3["inbox"], json!({"head": 1, "unread": 1}));
}

#[tokio::test]
async fn alert_read_marks_up_to_seq_and_reaches_the_users_other_connections() {
    let server = server_with_key(|_| {}).await;
    let (mut ann, w) = guest(&server, "ann").await;
    let (mut ann2, _) = again(&server.ws_url(), "ann", &w).await;
    let user = user_of(&w);
    for n in 1..=3 {
        let r = notify_user(server.addr, &user, json!({"title": format!("t{n}")}), &[]).await;
        assert_eq!(r.status, 202, "{r:?}");
        assert_eq!(ann.next_of("alert").await["seq"], n);
        assert_eq!(ann2.next_of("alert").await["kind"], "app");
    }
    ann.send(json!({"type": "alert_read", "seq": 2})).await;
    assert_eq!(
        ann2.next_of("alert_read").await,
        json!({"type": "alert_read", "seq": 2})
    );
    // No answer to the reader itself.
    ann.expect_nothing_queued().await;
    ann.send(json!({"type": "inbox", "since": 1})).await;
    let inbox = ann.next_of("inbox").await;
    let seqs: Vec<_> = inbox["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["seq"].clone(), a["read"].clone()))
        .collect();
    assert_eq!(seqs, [(json!(2), json!(true)), (json!(3), json!(false))]);
    assert_eq!(inbox["unread"], 1);
    // Read only moves forward: reading up to 1 again tells nobody anything.
    ann.send(json!({"type": "alert_read", "seq": 1})).await;
    ann2.expect_nothing_queued().await;
}

#[tokio::test]
async fn alert_levels_mute_a_room_or_alert_every_message_and_dms_alert_only_when_away() {
    let server = TestServer::start().await;
    let (mut ann, w) = guest(&server, "ann").await;
    ann.join("loud").await;
    ann.join("quiet").await;
    let mut bob = server.member("bob", "loud").await;
    bob.join("quiet").await;
    ann.send(json!({"type": "room_notify", "room": "loud", "level": "all"}))
        .await;
    assert_eq!(
        ann.next_of("room_notify").await,
        json!({"type": "room_notify", "room": "loud", "level": "all"})
    );
    ann.send(json!({"type": "room_notify", "room": "quiet", "level": "nothing"}))
        .await;
    ann.next_of("room_notify").await;
    bob.say_acked("quiet", "@ann in a muted room").await;
    let off = bob.say_acked("loud", "no mention at all").await;
    let alert = ann.next_of("alert").await;
    assert_eq!(
        (
            alert["kind"].clone(),
            alert["room"].clone(),
            alert["offset"].clone()
        ),
        (json!("message"), json!("loud"), json!(off))
    );
    // Not a member: the level cannot be set.
    ann.send(json!({"type": "room_notify", "room": "elsewhere", "level": "all"}))
        .await;
    ann.expect_error("not_joined").await;
    // The level is the membership's: welcome says it.
    let (_c, w2) = again(&server.ws_url(), "ann", &w).await;
    let levels: Vec<_> = w2["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["room"].clone(), r["notify"].clone()))
        .collect();
    assert!(levels.contains(&(json!("loud"), json!("all"))), "{w2}");
    assert!(levels.contains(&(json!("quiet"), json!("nothing"))), "{w2}");

    // A DM alerts while the other user has no connection in the DM room.
    let ann_user = user_of(&w);
    bob.send(json!({"type": "open_dm", "user": ann_user})).await;
    let dm = bob.next_of("dm").await;
    let room = dm["room"].as_str().unwrap().to_owned();
    bob.join(&room).await;
    bob.say_acked(&room, "psst").await;
    let alert = ann.next_of("alert").await;
    assert_eq!(
        (
            alert["kind"].clone(),
            alert["title"].clone(),
            alert["body"].clone()
        ),
        (json!("dm"), json!("bob"), json!("psst"))
    );
    ann.join(&room).await;
    bob.say_acked(&room, "you are here now").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ann.send(json!({"type": "inbox"})).await;
    let inbox = ann.next_of("inbox").await;
    assert_eq!(
        inbox["head"], 2,
        "no alert while ann is in the DM room: {inbox}"
    );
}

#[tokio::test]
async fn reading_a_room_past_a_mention_reads_its_alert() {
    let server = TestServer::start().await;
    let (mut ann, _) = guest(&server, "ann").await;
    ann.join("lobby").await;
    let mut bob = server.member("bob", "lobby").await;
    let offset = bob.say_acked("lobby", "@ann ping").await;
    ann.next_of("alert").await;
    ann.send(json!({"type": "read", "room": "lobby", "offset": offset}))
        .await;
    ann.send(json!({"type": "inbox"})).await;
    let inbox = ann.next_of("inbox").await;
    assert_eq!(inbox["unread"], 0, "{inbox}");
    assert_eq!(inbox["alerts"][0]["read"], true);
}

#[tokio::test]
async fn an_invitation_alerts_the_invitee() {
    let server = TestServer::start().await;
    let (mut owner, _) = guest(&server, "olga").await;
    let (mut pat, wp) = guest(&server, "pat").await;
    owner
        .send(json!({"type": "create_room", "room": "ops", "private": true}))
        .await;
    owner.next_of("room_created").await;
    owner
        .send(json!({"type": "invite", "room": "ops", "user": user_of(&wp)}))
        .await;
    owner.next_of("invited").await;
    let alert = pat.next_of("alert").await;
    assert_eq!(alert["kind"], "invite");
    assert_eq!(alert["room"], "ops");
    assert_eq!(alert["title"], "olga invited you to #ops");
}

#[tokio::test]
async fn settings_are_checked_and_quiet_hours_reach_the_other_connections() {
    let server = TestServer::start().await;
    let (mut ann, w) = guest(&server, "ann").await;
    let (mut ann2, _) = again(&server.ws_url(), "ann", &w).await;
    ann.send(json!({"type": "quiet_hours", "quiet": {"from": 1440, "to": 0}}))
        .await;
    ann.expect_error("invalid_setting").await;
    let quiet = json!({"from": 1320, "to": 420, "tz": 60});
    ann.send(json!({"type": "quiet_hours", "quiet": quiet}))
        .await;
    assert_eq!(ann.next_of("quiet_hours").await["quiet"], quiet);
    assert_eq!(ann2.next_of("quiet_hours").await["quiet"], quiet);
    let (_c, w3) = again(&server.ws_url(), "ann", &w).await;
    assert_eq!(w3["quiet"], quiet);
    ann.send(json!({"type": "quiet_hours"})).await;
    assert_eq!(
        ann.next_of("quiet_hours").await,
        json!({"type": "quiet_hours"})
    );
    // Push subscriptions: https, or http on loopback; real keys.
    for bad in [
        json!({"type": "push_subscribe", "endpoint": "http://push.example/x", "keys": {"p256dh": "BAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}),
        json!({"type": "push_subscribe", "endpoint": "https://push.example/x", "keys": {"p256dh": "nope", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}),
        json!({"type": "push_subscribe", "keys": {"p256dh": "x", "auth": "y"}}),
    ] {
        ann.send(bad).await;
        ann.expect_error("invalid_subscription").await;
    }
    // A well-formed subscription at a host that is not a listed push service: refused,
    // or anyone could point the server's requests at an internal host.
    let service = PushService::start().await;
    let mut elsewhere = service.subscriber().subscription_json();
    elsewhere["type"] = json!("push_subscribe");
    elsewhere["endpoint"] = json!(elsewhere["endpoint"]
        .as_str()
        .unwrap()
        .replace("127.0.0.1", "localhost"));
    for bad in [elsewhere] {
        ann.send(bad).await;
        ann.expect_error("invalid_subscription").await;
    }
}

#[tokio::test]
async fn the_api_stores_an_alert_once_per_idempotency_key_and_reports_its_receipt() {
    let server = server_with_key(|_| {}).await;
    let (mut ann, w) = guest(&server, "ann").await;
    let user = user_of(&w);
    let body =
        json!({"title": "Build 42 failed", "body": "see the log", "url": "https://ci.example/42"});
    let first = notify_user(
        server.addr,
        &user,
        body.clone(),
        &["Idempotency-Key: build-42"],
    )
    .await;
    assert_eq!(first.status, 202, "{first:?}");
    let id = first.body["id"].as_str().unwrap().to_owned();
    let alert = ann.next_of("alert").await;
    assert_eq!(alert["kind"], "app");
    assert_eq!(alert["url"], "https://ci.example/42");
    let again = notify_user(server.addr, &user, body, &["Idempotency-Key: build-42"]).await;
    assert_eq!(
        (again.status, again.body["id"].as_str()),
        (202, Some(id.as_str()))
    );
    ann.expect_nothing_queued().await;

    // Delivered when the connection got it; read when the user read it.
    let r = receipt(server.addr, &id).await;
    assert_eq!(r["user"], json!(user));
    assert!(r["created"].as_u64().unwrap() > 0);
    assert!(r["delivered"].as_u64().is_some(), "{r}");
    assert_eq!(
        (r["read"].clone(), r["pushed"].clone()),
        (Value::Null, Value::Null)
    );
    ann.send(json!({"type": "alert_read", "seq": 1})).await;
    assert!(receipt_time(server.addr, &id, "read").await.is_some());

    // An alert for a user with no connection: not delivered until one asks.
    let (_bob, wb) = guest(&server, "bob").await;
    drop(_bob);
    let r = notify_user(server.addr, &user_of(&wb), json!({"title": "x"}), &[]).await;
    let bob_id = r.body["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        receipt(server.addr, &bob_id).await["delivered"],
        Value::Null
    );

    // Refusals.
    let r = notify_user(server.addr, "nobody-ever", json!({"title": "x"}), &[]).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (404, Some("unknown_user"))
    );
    let r = notify_user(server.addr, &user, json!({"body": "no title"}), &[]).await;
    assert_eq!(r.status, 422, "{r:?}");
    let r = notify_user(
        server.addr,
        &user,
        json!({"title": "x", "url": "javascript:alert(1)"}),
        &[],
    )
    .await;
    assert_eq!(r.status, 422, "{r:?}");
    let r = api(
        server.addr,
        "GET",
        "/api/notifications/al_nope",
        &[],
        &Value::Null,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = request(
        server.addr,
        "GET",
        &format!("/api/notifications/{id}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn api_keys_carry_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    let rooms_only = "rooms-only-0123456789abcdef0123456789ab";
    std::fs::write(
        &file,
        format!("# deploy bot\n{rooms_only} rooms:notify\n{KEY} users:notify read\n"),
    )
    .unwrap();
    let server = TestServer::with(|c| c.api_keys = Some(file.clone())).await;
    let (_ann, w) = guest(&server, "ann").await;
    let user = user_of(&w);
    let ok = notify_user(server.addr, &user, json!({"title": "x"}), &[]).await;
    assert_eq!(ok.status, 202, "{ok:?}");
    let auth = format!("Authorization: Bearer {rooms_only}");
    let r = request(
        server.addr,
        "POST",
        &format!("/api/users/{user}/notifications"),
        &["Content-Type: application/json", &auth],
        br#"{"title":"x"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let r = request(
        server.addr,
        "POST",
        "/api/rooms/lobby/notifications",
        &["Content-Type: application/json", &auth],
        br#"{"text":"deployed"}"#,
    )
    .await;
    assert_eq!(r.status, 202, "{r:?}");
    // The other key may not post to rooms.
    let r = api(
        server.addr,
        "POST",
        "/api/rooms/lobby/notifications",
        &[],
        &json!({"text": "x"}),
    )
    .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn a_persisted_room_notice_is_stored_in_the_log_and_replayed_on_resume() {
    let server = server_with_key(|_| {}).await;
    let mut ann = server.member("ann", "lobby").await;
    let mut away = server.member("zed", "lobby").await;
    let before = ann.say_acked("lobby", "before").await;
    away.next_of("message").await;
    away.send(json!({"type": "leave", "room": "lobby"})).await;
    away.next_of("left").await;
    let r = api(
        server.addr,
        "POST",
        "/api/rooms/lobby/notifications",
        &[],
        &json!({"text": "deploy at 5", "persist": true}),
    )
    .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.body["offset"], before + 1);
    let note = next_info(&mut ann).await;
    assert_eq!(note["kind"], "info");
    assert_eq!(note["text"], "deploy at 5");
    assert_eq!(note["offset"], before + 1);
    // Whoever was away gets it on resume, in order with the messages.
    let after = ann.say_acked("lobby", "after").await;
    away.send(json!({"type": "join", "room": "lobby", "since": before}))
        .await;
    let joined = away.next_of("joined").await;
    assert_eq!(joined["recovered"], true, "{joined}");
    let replayed = next_info(&mut away).await;
    assert_eq!(
        (replayed["text"].clone(), replayed["offset"].clone()),
        (json!("deploy at 5"), json!(before + 1))
    );
    assert_eq!(away.next_of("message").await["offset"], after);
    // In history it is an item without a nick.
    let history = away.whole_history("lobby").await;
    assert!(
        history
            .iter()
            .any(|(o, nick, _, text)| *o == before + 1 && nick.is_empty() && text == "deploy at 5"),
        "{history:?}"
    );
    // Without persist nothing is stored, as in v1.
    let r = api(
        server.addr,
        "POST",
        "/api/rooms/lobby/notifications",
        &[],
        &json!({"text": "fleeting"}),
    )
    .await;
    assert_eq!(r.body.get("offset"), None, "{r:?}");
}

/// The next `info` notification (skipping `joined` and `left` notices).
async fn next_info(client: &mut Client) -> Value {
    loop {
        let note = client.next_of("notification").await;
        if note["kind"] == "info" {
            return note;
        }
    }
}

/// Waits until `service` has received `n` pushes in all, or the time is up.
async fn pushes_after(service: &PushService, n: usize, wait: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + wait;
    while service.count() < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    service.count()
}

#[tokio::test]
async fn an_alert_for_a_user_with_no_connection_is_pushed_encrypted_and_signed() {
    let service = PushService::start().await;
    let server = server_with_key(|_| {}).await;
    let (mut ann, w) = guest(&server, "ann").await;
    let user = user_of(&w);
    let sub = service.subscriber();
    subscribe(&mut ann, &sub).await;
    drop(ann);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = notify_user(
        server.addr,
        &user,
        json!({"title": "Your order shipped", "body": "#4411", "url": "/orders/4411"}),
        &[],
    )
    .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let push = service
        .next_push(Duration::from_secs(10))
        .await
        .expect("a push");
    assert!(service.failures().is_empty(), "{:?}", service.failures());
    assert_eq!(push.subscriber_id, sub.id());
    let key = request(server.addr, "GET", "/api/push/key", &[], b"").await;
    assert_eq!(key.status, 200);
    assert_eq!(
        push.vapid_public_key,
        key.body["key"].as_str().unwrap(),
        "signed with the server's key"
    );
    let p = payload(&push);
    assert_eq!(p["kind"], "alert");
    assert_eq!(p["title"], "Your order shipped");
    assert_eq!(p["body"], "#4411");
    assert_eq!(p["url"], "/orders/4411");
    assert_eq!(p["tag"], "huddle-alert-1");
    assert!(push.ttl > 0);
    assert!(receipt_time(server.addr, &id, "pushed").await.is_some());
    // Once, however long we wait.
    assert_eq!(
        pushes_after(&service, 2, Duration::from_millis(1500)).await,
        1
    );
    let scrape = Scrape::of(&server).await;
    let pushes = backend::metric_names::PUSHES;
    assert_eq!(scrape.value(&labelled(pushes, "outcome", "sent")), 1.0);
    let alerts = backend::metric_names::ALERTS;
    assert_eq!(scrape.value(&labelled(alerts, "kind", "app")), 1.0);
}

#[tokio::test]
async fn an_alert_read_within_the_push_delay_is_not_pushed_and_one_left_unread_is() {
    let service = PushService::start().await;
    let server = server_with_key(|c| c.push_delay = Duration::from_millis(1500)).await;
    let (mut ann, w) = guest(&server, "ann").await;
    let (mut ann2, _) = again(&server.ws_url(), "ann", &w).await;
    let user = user_of(&w);
    let sub = service.subscriber();
    subscribe(&mut ann, &sub).await;
    notify_user(server.addr, &user, json!({"title": "read me"}), &[]).await;
    ann.next_of("alert").await;
    ann.send(json!({"type": "alert_read", "seq": 1})).await;
    ann2.next_of("alert_read").await;
    assert_eq!(
        pushes_after(&service, 1, Duration::from_millis(3000)).await,
        0,
        "read in time: no push"
    );
    notify_user(server.addr, &user, json!({"title": "ignored"}), &[]).await;
    ann.next_of("alert").await;
    let push = service
        .next_push(Duration::from_secs(10))
        .await
        .expect("pushed after the delay");
    assert_eq!(payload(&push)["title"], "ignored");
    // Reading it now closes it on the devices.
    ann.send(json!({"type": "alert_read", "seq": 2})).await;
    let closing = service
        .next_push(Duration::from_secs(10))
        .await
        .expect("a read push");
    assert_eq!(payload(&closing), json!({"kind": "read", "seq": 2}));
}

#[tokio::test]
async fn a_subscription_the_push_service_calls_gone_is_removed() {
    let service = PushService::start().await;
    let server = server_with_key(|_| {}).await;
    let (mut ann, w) = guest(&server, "ann").await;
    let user = user_of(&w);
    let gone = service.subscriber();
    let kept = service.subscriber();
    subscribe(&mut ann, &gone).await;
    subscribe(&mut ann, &kept).await;
    gone.answer_gone();
    drop(ann);
    tokio::time::sleep(Duration::from_millis(200)).await;
    notify_user(server.addr, &user, json!({"title": "one"}), &[]).await;
    service
        .next_push(Duration::from_secs(10))
        .await
        .expect("the kept one");
    // The subscriptions are tried one after the other; the gone one may come second.
    for _ in 0..100 {
        if gone.requests() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gone.requests(), 1);
    notify_user(server.addr, &user, json!({"title": "two"}), &[]).await;
    let second = service
        .next_push(Duration::from_secs(10))
        .await
        .expect("the kept one again");
    assert_eq!(second.subscriber_id, kept.id());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gone.requests(), 1, "a gone subscription is not tried again");
}

#[tokio::test]
async fn quiet_hours_hold_pushes_back() {
    let service = PushService::start().await;
    let server = server_with_key(|_| {}).await;
    let (mut ann, w) = guest(&server, "ann").await;
    let user = user_of(&w);
    let sub = service.subscriber();
    subscribe(&mut ann, &sub).await;
    // Quiet all day but the minute before midnight UTC... and the current minute is
    // covered whenever this runs (from = to + 1 wraps almost the whole day).
    let now_min = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
        % 1440) as u16;
    let to = (now_min + 30) % 1440;
    let from = (now_min + 1440 - 30) % 1440;
    ann.send(json!({"type": "quiet_hours", "quiet": {"from": from, "to": to, "tz": 0}}))
        .await;
    ann.next_of("quiet_hours").await;
    drop(ann);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = notify_user(server.addr, &user, json!({"title": "at night"}), &[]).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        pushes_after(&service, 1, Duration::from_millis(2500)).await,
        0
    );
    assert_eq!(receipt(server.addr, &id).await["pushed"], Value::Null);
}

#[tokio::test]
#[ignore = "starts the huddle binary and kills it with SIGKILL; run with --include-ignored (cargo xtask test does)"]
async fn a_push_scheduled_before_a_kill_9_is_sent_once_after_the_restart() {
    let service = PushService::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("huddle.db");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let flags = ["--api-token", KEY, "--push-delay", "2s"];
    let mut huddle = Huddle::start(&db, addr, &flags).await;
    let mut ann = Client::connect(&huddle.ws_url()).await;
    ann.send(json!({"type": "hello", "nick": "ann"})).await;
    let w = ann.expect("welcome").await;
    let sub = service.subscriber();
    subscribe(&mut ann, &sub).await;
    let r = notify_user(addr, &user_of(&w), json!({"title": "survives"}), &[]).await;
    assert_eq!(r.status, 202, "{r:?}");
    ann.next_of("alert").await;
    // Killed while the alert waits for its push delay.
    huddle.kill9().await;
    drop(ann);
    assert_eq!(service.count(), 0);
    let _huddle = Huddle::start(&db, addr, &flags).await;
    let push = service
        .next_push(Duration::from_secs(10))
        .await
        .expect("pushed after the restart");
    assert_eq!(payload(&push)["title"], "survives");
    assert_eq!(
        pushes_after(&service, 2, Duration::from_secs(3)).await,
        1,
        "exactly once"
    );
    assert!(service.failures().is_empty());
}
