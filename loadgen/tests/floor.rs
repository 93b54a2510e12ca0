//! The floor (`loadgen floor`): the part of the protocol the load generator uses, over
//! real WebSockets on 127.0.0.1 — `hello`/`join`/`send` give the sender its `ack` and
//! every member (the sender included) each message once, offsets in order — and the
//! load generator's own run against it.

use std::process::Stdio;
use std::time::Duration;

use common::{ClientMsg, ServerMsg};
use futures_util::{SinkExt as _, StreamExt as _};
use loadgen::floor;
use loadgen::report::RunReport as _;
use loadgen::{Load, Options, Scenario};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Starts a floor on a random port in this process; its WebSocket URL.
async fn start() -> String {
    let listener = floor::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(floor::serve(listener));
    format!("ws://{addr}/ws")
}

async fn send(ws: &mut Ws, msg: &ClientMsg) {
    let text = serde_json::to_string(msg).unwrap();
    ws.send(Message::text(text)).await.unwrap();
}

async fn next(ws: &mut Ws) -> ServerMsg {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("the connection stays open")
            .unwrap();
        if let Message::Text(t) = frame {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// Connects, says hello as `nick` and joins `room`; the socket and the room's head.
async fn member(url: &str, nick: &str, room: &str) -> (Ws, u64) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    send(
        &mut ws,
        &ClientMsg::Hello {
            nick: Some(nick.to_owned()),
            session: None,
            token: None,
        },
    )
    .await;
    assert!(matches!(next(&mut ws).await, ServerMsg::Welcome { nick: n, .. } if n == nick));
    send(
        &mut ws,
        &ClientMsg::Join {
            room: room.to_owned(),
            since: None,
            epoch: None,
        },
    )
    .await;
    match next(&mut ws).await {
        ServerMsg::Joined { room: r, head, .. } if r == room => (ws, head),
        other => panic!("expected joined, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_join_send_reach_every_member_in_order() {
    let url = start().await;
    let mut members = Vec::new();
    for i in 0..3 {
        members.push(member(&url, &format!("m{i}"), "lobby").await);
    }
    // A member of another room sees none of it.
    let (mut other, _) = member(&url, "x", "elsewhere").await;
    assert!(members.iter().all(|(_, head)| *head == 0));

    for k in 0..5 {
        let msg = ClientMsg::Send {
            room: "lobby".to_owned(),
            text: format!("hello {k}"),
            id: format!("id{k}"),
            reply_to: None,
        };
        send(&mut members[0].0, &msg).await;
    }
    let mut acks = Vec::new();
    for (i, (ws, _)) in members.iter_mut().enumerate() {
        let mut offsets = Vec::new();
        while offsets.len() < 5 {
            match next(ws).await {
                ServerMsg::Message(m) => {
                    assert_eq!((m.room.as_str(), m.nick.as_str()), ("lobby", "m0"));
                    assert_eq!(m.text, format!("hello {}", m.offset - 1));
                    assert_eq!(m.id, format!("id{}", m.offset - 1));
                    offsets.push(m.offset);
                }
                ServerMsg::Ack { id, room, offset } if i == 0 => acks.push((id, room, offset)),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        assert_eq!(offsets, vec![1, 2, 3, 4, 5], "member {i}");
    }
    // The sender's acks (some may follow its last message).
    while acks.len() < 5 {
        match next(&mut members[0].0).await {
            ServerMsg::Ack { id, room, offset } => acks.push((id, room, offset)),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    let expected: Vec<_> = (1..=5u64)
        .map(|o| (format!("id{}", o - 1), "lobby".to_owned(), o))
        .collect();
    assert_eq!(acks, expected);

    // A late joiner starts after the head and gets only what follows.
    let (mut late, head) = member(&url, "late", "lobby").await;
    assert_eq!(head, 5);
    let msg = ClientMsg::Send {
        room: "lobby".to_owned(),
        text: "again".to_owned(),
        id: "again".to_owned(),
        reply_to: None,
    };
    send(&mut late, &msg).await;
    loop {
        match next(&mut late).await {
            ServerMsg::Message(m) => {
                assert_eq!((m.offset, m.nick.as_str()), (6, "late"));
                break;
            }
            ServerMsg::Ack { offset, .. } => assert_eq!(offset, 6),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    // Nothing arrived in the other room.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), other.next())
            .await
            .is_err(),
        "a member of another room got a frame"
    );
}

/// The load generator's own clients against the floor: every message to every member
/// exactly once, nothing lost or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loadgen_run_against_the_floor_is_clean() {
    let url = start().await;
    let mut s = Scenario::new(url);
    s.clients = 200;
    s.rooms = 2;
    s.senders = 10;
    s.load = Load::Rate(200.0);
    s.duration = Duration::from_secs(2);
    s.drain = Duration::from_secs(5);
    let outcome = loadgen::run(Options {
        scenario: s,
        label: "floor".to_owned(),
        server_pids: Vec::new(),
        record_acks: false,
        kill_at_end: false,
    })
    .await
    .expect("the run could not start");
    let r = &outcome.report;
    eprintln!("{}", r.human());
    assert!(r.ok, "the run found problems: {}", r.human());
    assert_eq!((r.lost, r.duplicated, r.undelivered), (0, 0, 0));
    assert!(r.acked >= 300, "acked only {}", r.acked);
    // Each acked message reached its room's 100 members.
    assert_eq!(r.delivered, r.acked * 100);
}

/// `loadgen floor --listen 127.0.0.1:0` prints the address it bound, and serves there.
#[tokio::test]
async fn the_command_prints_its_address_and_serves() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["floor", "--listen", "127.0.0.1:0", "--threads", "1"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("an address within 10 s")
    .unwrap();
    let addr: std::net::SocketAddr = line.trim().parse().expect("an address");
    let (_ws, head) = member(&format!("ws://{addr}/ws"), "solo", "r").await;
    assert_eq!(head, 0);
    child.kill().await.unwrap();
}
