//! The SSE transport's own rules (docs/protocol.md, "Server-Sent Events"): event ids
//! and resuming with `Last-Event-ID`, the refusals of `POST /sse/send`, the heartbeat,
//! limits and close reasons as the final event. The protocol itself over SSE is
//! `protocol::over_sse`; across instances, `redis_cluster`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::sse::{self, Event, Stream};
use crate::support::{Client, TestServer, Transport};

/// The texts of the `message` frames until the one with offset `last`.
async fn texts_until(c: &mut Client, last: u64) -> Vec<(u64, String)> {
    let mut got = Vec::new();
    while got.last().is_none_or(|(o, _): &(u64, String)| *o < last) {
        let v = c.recv().await;
        if v["type"] == "message" {
            got.push((
                v["offset"].as_u64().unwrap(),
                v["text"].as_str().unwrap().to_owned(),
            ));
        }
    }
    got
}

#[tokio::test]
async fn a_dropped_stream_resumes_its_session_from_the_last_event_id_once() {
    let server = TestServer::start().await;
    let mut bob = server.member("bob", "lobby").await;
    let mut alice = Client::connect_sse(server.addr, None).await;
    alice.hello("alice").await;
    alice.join("lobby").await;
    bob.next_of("presence").await;
    bob.say_acked("lobby", "one").await;
    assert_eq!(
        texts_until(&mut alice, 1).await,
        vec![(1, "one".to_owned())]
    );
    let stream = alice.sse();
    let (old, last) = (stream.id.clone(), stream.last_id.clone().unwrap());
    assert_eq!(
        last,
        format!("{old},lobby:1"),
        "the id names each room's offset"
    );
    alice.close().await;
    // While alice is away.
    bob.say_acked("lobby", "two").await;
    bob.say_acked("lobby", "three").await;
    let mut back = Client::connect_sse(server.addr, Some(&last)).await;
    assert!(back.sse().resumed);
    assert_ne!(back.sse().id, old, "a resumed session gets a new stream");
    assert_eq!(back.expect("welcome").await["nick"], "alice");
    let joined = back.expect("joined").await;
    assert_eq!(
        (joined["room"].as_str(), joined["recovered"].as_bool()),
        (Some("lobby"), Some(true))
    );
    // Exactly what was missed, then live traffic; nothing twice.
    assert_eq!(
        texts_until(&mut back, 3).await,
        vec![(2, "two".to_owned()), (3, "three".to_owned())]
    );
    bob.say_acked("lobby", "four").await;
    assert_eq!(
        texts_until(&mut back, 4).await,
        vec![(4, "four".to_owned())]
    );
    // The resumed stream takes frames as its own.
    back.say_acked("lobby", "from the resumed stream").await;
    // A stream resumes once: the same id again starts afresh.
    let again = Stream::open(server.addr, Some(&last)).await;
    assert!(!again.resumed);
}

#[tokio::test]
async fn a_resume_closes_the_stream_it_continues_if_still_open() {
    let server = TestServer::start().await.over(Transport::Sse);
    let mut first = server.member("alice", "lobby").await;
    let last = first.sse().last_id.clone().unwrap();
    let mut second = Client::connect_sse(server.addr, Some(&last)).await;
    assert!(second.sse().resumed);
    second.expect("welcome").await;
    assert_eq!(
        first.expect_close_frame().await,
        Some((1001, "resumed by a newer stream".to_owned()))
    );
    assert_eq!(second.expect("joined").await["recovered"], true);
}

#[tokio::test]
async fn a_stream_closed_for_a_reason_says_so_last_and_does_not_resume() {
    let server = TestServer::with(|c| {
        c.hello_timeout = Duration::from_millis(300);
        c.max_connections_per_user = 1;
    })
    .await
    .over(Transport::Sse);
    let mut idle = server.client().await;
    assert_eq!(
        idle.expect_close_frame().await,
        Some((1008, "hello timeout".to_owned()))
    );
    // 4001 for the older of one user's two streams, which must not come back.
    let mut old = server.client().await;
    let session = old.hello("alice").await["session"].clone();
    let last = old.sse().last_id.clone().unwrap();
    let mut new = server.client().await;
    new.send(json!({"type": "hello", "nick": "alice", "session": session}))
        .await;
    new.expect("welcome").await;
    assert_eq!(
        old.expect_close_frame().await.map(|(code, _)| code),
        Some(4001)
    );
    let again = Stream::open(server.addr, Some(&last)).await;
    assert!(!again.resumed, "a stream closed on purpose is not resumed");
}

#[tokio::test]
async fn posts_are_refused_with_an_error_frame_for_what_they_get_wrong() {
    let server = TestServer::start().await;
    let stream = Stream::open(server.addr, None).await;
    let http = sse::http();
    let error = |v: &Value, code: &str| {
        assert_eq!(
            (v["type"].as_str(), v["code"].as_str()),
            (Some("error"), Some(code)),
            "{v}"
        );
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    };
    let (status, v) = sse::post(&http, server.addr, None, "[]".into(), &[]).await;
    assert_eq!(status, 400);
    error(&v, "bad_json");
    let (status, v) = sse::post(&http, server.addr, Some(&"x".repeat(32)), "[]".into(), &[]).await;
    assert_eq!(status, 404);
    error(&v, "no_stream");
    let (status, v) = stream.post(r#"{"type":"hello","nick":"a"}"#.into()).await;
    assert_eq!(status, 400, "not an array");
    error(&v, "bad_json");
    let many = format!("[{}]", vec![r#"{"type":"list_rooms"}"#; 65].join(","));
    let (status, v) = stream.post(many).await;
    assert_eq!(status, 413);
    error(&v, "too_large");
    let huge = format!(r#"[{{"type":"send","text":"{}"}}]"#, "x".repeat(300_000));
    let (status, v) = stream.post(huge).await;
    assert_eq!(status, 413);
    error(&v, "too_large");
    let (status, _) = stream.post("[]".into()).await;
    assert_eq!(status, 202, "an empty array is fine");
    // Another site's page may neither post nor open a stream.
    let evil = [("origin", "https://evil.example")];
    let (status, _) = sse::post(&http, server.addr, Some(&stream.id), "[]".into(), &evil).await;
    assert_eq!(status, 403);
    let (status, _) = Stream::try_open(server.addr, None, &evil).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_frame_over_the_size_limit_closes_the_stream_with_1009() {
    let server = TestServer::with(|c| c.max_frame_bytes = 1000)
        .await
        .over(Transport::Sse);
    let mut c = server.login("alice").await;
    c.send(json!({"type": "join", "room": "lobby", "pad": "x".repeat(1200)}))
        .await;
    assert_eq!(
        c.expect_close_frame().await.map(|(code, _)| code),
        Some(1009)
    );
}

#[tokio::test]
async fn the_heartbeat_keeps_a_silent_client_and_a_full_server_says_1008() {
    let server = TestServer::with(|c| {
        c.ping_interval = Duration::from_millis(100);
        c.idle_timeout = Duration::from_millis(300);
        // An idle keep-alive connection's limit: a stream mid-response is not idle.
        c.header_timeout = Duration::from_millis(200);
        c.max_connections = 1;
    })
    .await
    .over(Transport::Sse);
    let mut c = server.login("alice").await;
    // Three idle timeouts of silence from the client: heartbeats, and still open.
    let mut beats = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(900);
    while tokio::time::Instant::now() < until {
        match c.sse().next_event().await {
            Some(Event::Comment(c)) if c == "hb" => beats += 1,
            other => panic!("expected heartbeats, got {other:?}"),
        }
    }
    assert!(beats >= 5, "{beats} heartbeats");
    c.expect_nothing_queued().await;
    // No `stream` event: the stream can only end.
    let mut over = Client::from_sse(Stream::try_open(server.addr, None, &[]).await.1);
    assert_eq!(
        over.expect_close_frame().await,
        Some((1008, "too many connections".to_owned()))
    );
}
