//! Limits and close codes: rate limiting, binary and oversized frames, slow consumers,
//! pings and idle peers, session takeover.

use std::time::Duration;

use crate::support::{Client, TestServer};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

#[tokio::test]
async fn sends_beyond_the_rate_limit_are_refused_one_by_one_and_not_delivered() {
    let server = TestServer::start().await;
    let mut a = server.member("alice", "lobby").await;
    let mut ids = Vec::new();
    for _ in 0..60 {
        ids.push(a.say("lobby", "flood").await);
    }
    let (mut acked, mut limited, mut delivered) = (Vec::new(), Vec::new(), 0);
    while acked.len() + limited.len() < 60 || delivered < acked.len() {
        let v = a.recv().await;
        match v["type"].as_str().unwrap() {
            "ack" => acked.push(v["id"].as_str().unwrap().to_owned()),
            "message" => delivered += 1,
            "error" => {
                assert_eq!(v["code"], "rate_limited", "{v}");
                limited.push(v["ref"].as_str().unwrap().to_owned());
            }
            other => panic!("unexpected {other}"),
        }
    }
    // The burst is 40; a token or two may refill while the flood is being read.
    assert!((40..=43).contains(&acked.len()), "acked {}", acked.len());
    assert_eq!(delivered, acked.len());
    assert!(limited
        .iter()
        .all(|id| ids.contains(id) && !acked.contains(id)));
    a.send(json!({"type": "history", "room": "lobby", "limit": 100}))
        .await;
    let h = a.next_of("history").await;
    assert_eq!(
        h["messages"].as_array().unwrap().len(),
        acked.len(),
        "refused sends are not stored"
    );
}

#[tokio::test]
async fn a_binary_frame_closes_with_1003() {
    let server = TestServer::start().await;
    let mut a = server.login("alice").await;
    a.ws().send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(a.expect_close().await, Some(1003));
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009_and_a_64k_frame_is_fine() {
    let server = TestServer::start().await;
    let mut a = server.login("alice").await;
    // Just under the limit: accepted (and refused as text, which is a normal error).
    let text = "x".repeat(60_000);
    a.send(json!({"type": "send", "room": "lobby", "text": text, "id": "big"}))
        .await;
    a.expect_error("not_joined").await;
    let mut b = server.login("bob").await;
    b.send_raw(&format!(
        "{{\"type\":\"send\",\"room\":\"lobby\",\"id\":\"x\",\"text\":\"{}\"}}",
        "y".repeat(70_000)
    ))
    .await;
    assert_eq!(b.expect_close().await, Some(1009));
}

#[tokio::test]
async fn a_slow_reader_is_closed_with_4008_while_others_carry_on() {
    // 8 MB in all: more than the kernel buffers between server and slow reader can hold.
    const N: usize = 2000;
    const CHUNK: usize = 16;
    let server = TestServer::with(|c| {
        c.outbox = 64;
        c.rate_per_sec = 100_000;
        c.rate_burst = 100_000;
    })
    .await;
    let mut fast = server.member("fast", "lobby").await;
    // A reader with a tiny receive buffer that stops reading after joining.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(server.ws_url(), MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    let mut slow = Client::from_stream(ws);
    slow.hello("slow").await;
    slow.join("lobby").await;
    fast.next_of("presence").await;
    let mut sender = server.member("sender", "lobby").await;
    fast.next_of("presence").await;
    // Chunks of messages, each acked before the next, so no single commit batch floods
    // the readers' small outboxes; only the reader that does not read falls behind.
    let text = "z".repeat(4000);
    let sending = tokio::spawn(async move {
        for _ in 0..N / CHUNK {
            let mut ids = Vec::new();
            for _ in 0..CHUNK {
                ids.push(sender.say("lobby", &text).await);
            }
            let mut acked = 0;
            while acked < CHUNK {
                let v = sender.recv().await;
                if v["type"] == "ack" {
                    assert!(ids.contains(&v["id"].as_str().unwrap().to_owned()));
                    acked += 1;
                }
            }
        }
    });
    let (left_tx, left_rx) = tokio::sync::oneshot::channel();
    let reading = tokio::spawn(async move {
        let mut left_tx = Some(left_tx);
        let mut offsets = Vec::new();
        while offsets.len() < N {
            let v = fast.recv().await;
            match v["type"].as_str().unwrap() {
                "message" => offsets.push(v["offset"].as_u64().unwrap()),
                "notification" if v["kind"] == "left" && v["nick"] == "slow" => {
                    if let Some(tx) = left_tx.take() {
                        let _ = tx.send(());
                    }
                }
                _ => {}
            }
        }
        offsets
    });
    // Once the server has dropped the slow reader from the room, it reads: what was
    // queued, then the close frame.
    tokio::time::timeout(Duration::from_secs(60), left_rx)
        .await
        .expect("slow reader was never dropped")
        .unwrap();
    assert_eq!(slow.expect_close().await, Some(4008));
    // The fast reader got every message, in order, unaffected.
    assert_eq!(reading.await.unwrap(), (1..=N as u64).collect::<Vec<_>>());
    sending.await.unwrap();
}

#[tokio::test]
async fn pings_keep_a_reading_peer_alive_and_an_idle_peer_is_closed() {
    let server = TestServer::with(|c| {
        c.ping_interval = Duration::from_millis(100);
        c.idle_timeout = Duration::from_millis(600);
    })
    .await;
    let mut alive = server.login("alive").await;
    let mut idle = server.login("idle").await;
    // Reading lets the client library answer pings with pongs.
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1200);
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(Ok(Message::Ping(_)))) =
            tokio::time::timeout(Duration::from_millis(50), alive.ws().next()).await
        {
            pings += 1;
        }
    }
    assert!(pings >= 5, "got {pings} pings");
    alive.send(json!({"type": "list_rooms"})).await;
    alive.expect("rooms").await;
    // The idle client never read, so it never ponged; the reason says so, unlike a
    // shutdown's.
    let (code, reason) = idle.expect_close_frame().await.expect("a close frame");
    assert_eq!(code, 1001);
    assert!(reason.starts_with("idle"), "{reason:?}");
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_with_1008() {
    let server = TestServer::with(|c| c.max_connections = 2).await;
    let mut a = server.login("a").await;
    let _b = server.login("b").await;
    let mut c = server.client().await;
    assert_eq!(c.expect_close().await, Some(1008));
    // A freed slot is usable again.
    a.ws().close(None).await.unwrap();
    a.expect_close().await;
    let mut admitted = false;
    for _ in 0..50 {
        let mut d = server.client().await;
        d.send(json!({"type": "hello", "nick": "d"})).await;
        if let Some(Ok(Message::Text(t))) = d.ws().next().await {
            admitted = t.as_str().contains("welcome");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "a freed connection slot was not reused");
}

#[tokio::test]
async fn a_storage_failure_answers_internal_acks_nothing_and_recovers() {
    let server = TestServer::start().await;
    let mut a = server.member("alice", "lobby").await;
    let mut b = server.member("bob", "lobby").await;
    a.next_of("presence").await;
    assert_eq!(a.say_acked("lobby", "before").await, 1);
    b.next_of("message").await;
    // Make every insert fail, as a broken disk would.
    let db = rusqlite::Connection::open(&server.db).unwrap();
    db.execute_batch("CREATE TRIGGER broken BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;")
        .unwrap();
    a.send(json!({"type": "send", "room": "lobby", "text": "lost?", "id": "f1"}))
        .await;
    let e = a.expect_error("internal").await;
    assert_eq!(e["ref"], "f1");
    assert!(
        !e["message"].as_str().unwrap().contains("disk on fire"),
        "internals leak: {e}"
    );
    b.expect_nothing_queued().await;
    // Once storage works again, the retry with the same id is stored at the next offset:
    // the failed batch left no gap behind.
    db.execute_batch("DROP TRIGGER broken;").unwrap();
    a.send(json!({"type": "send", "room": "lobby", "text": "retried", "id": "f1"}))
        .await;
    assert_eq!(a.next_of("ack").await["offset"], 2);
    let m = b.next_of("message").await;
    assert_eq!(
        (m["offset"].as_u64(), m["text"].as_str()),
        (Some(2), Some("retried"))
    );
}

#[tokio::test]
async fn rooms_above_the_announce_limit_are_not_told_of_every_arrival() {
    let server = TestServer::with(|c| c.announce_limit = 2).await;
    let mut alice = server.member("alice", "hall").await;
    let _bob = server.member("bob", "hall").await;
    // Two members: still announced.
    assert_eq!(alice.next_of("notification").await["nick"], "bob");
    assert_eq!(
        alice.next_of("presence").await["nicks"],
        json!(["alice", "bob"])
    );

    // A third makes a crowd: the joiner gets the first page of the list (the announce
    // limit's worth, in nick order) with the total, the others get nothing.
    let mut carol = server.login("carol").await;
    let joined = carol.join("hall").await;
    assert_eq!(joined["nicks"], json!(["alice", "bob"]), "{joined}");
    assert_eq!(joined["members"], 3, "{joined}");
    assert_eq!(joined["next"], "bob", "{joined}");
    // Carol's join is done (announcement included) once she is answered again.
    carol.expect_nothing_queued().await;
    alice.expect_nothing_queued().await;

    // Back under the limit, changes are announced again, with the current list.
    carol.send(json!({"type": "leave", "room": "hall"})).await;
    let note = alice.next_of("notification").await;
    assert_eq!(
        (note["kind"].as_str(), note["nick"].as_str()),
        (Some("left"), Some("carol"))
    );
    assert_eq!(
        alice.next_of("presence").await["nicks"],
        json!(["alice", "bob"])
    );
}
