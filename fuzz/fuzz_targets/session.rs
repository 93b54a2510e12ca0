//! Fuzz target: whole sessions against a real server, the way an attacker meets it.
//!
//! One Huddle server runs in this process (SQLite in a temporary directory) for the
//! whole fuzzing run. Each input is a session: a fresh WebSocket says `hello` with a
//! nick of its own, sends the input's lines as text frames (at most 20), then joins a
//! room of its own as a barrier and reads everything until that `joined` arrives (the
//! server answers in order). The barrier is a `join` rather than a `list_rooms`: the
//! input may list rooms itself, and only a room named for this session has exactly one
//! answer that cannot come from anything else. The invariants:
//! - the server never drops the connection without a close frame (a panic in a session
//!   would), and never stops answering (each session has a time limit);
//! - no frame it sends is larger than its frame limit (`Config::max_frame_bytes`,
//!   64 KiB by default);
//! - membership is respected: a `message` arrives only for a room this connection is in
//!   (between its `joined` and its `left`).

#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;

/// Frames of the input sent per session, after the `hello`.
const MAX_FRAMES: usize = 20;
/// A session takes milliseconds; one this long means the server stopped answering.
const SESSION_LIMIT: Duration = Duration::from_secs(5);

struct Server {
    rt: Runtime,
    addr: SocketAddr,
    /// The server's frame limit, which its answers must respect too.
    max_frame: usize,
    _dir: tempfile::TempDir,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static NEXT: AtomicU64 = AtomicU64::new(0);

fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = backend::Config::with_db(dir.path().join("fuzz.db"));
        // Every session comes from 127.0.0.1: per-address limits would end the run.
        config.max_connections_per_ip = 0;
        config.ip_join_rate = 0;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let max_frame = config.max_frame_bytes as usize;
        rt.spawn(async move {
            if let Err(e) = backend::run(listener, config, std::future::pending()).await {
                panic!("the server stopped: {e}");
            }
        });
        Server {
            rt,
            addr,
            max_frame,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let frames: Vec<&str> = text.split('\n').take(MAX_FRAMES).collect();
    let s = server();
    s.rt.block_on(async {
        tokio::time::timeout(SESSION_LIMIT, session(s, &frames))
            .await
            .expect("the server stopped answering within the session's time limit");
    });
});

async fn session(server: &Server, frames: &[&str]) {
    let addr = server.addr;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("connect");
    let hello = json!({"type": "hello", "nick": format!("fuzz{n}")});
    ws.send(Message::text(hello.to_string()))
        .await
        .expect("send hello");
    for frame in frames {
        if ws.send(Message::text(*frame)).await.is_err() {
            break; // closed by the server; the reading below checks how
        }
    }
    let barrier = format!("barrier-{n}");
    let _ = ws
        .send(Message::text(
            json!({"type": "join", "room": barrier}).to_string(),
        ))
        .await;

    let mut joined: HashSet<String> = HashSet::new();
    loop {
        let frame = match ws.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => panic!("the connection failed without a close frame: {e}"),
            None => panic!("the connection ended without a close frame"),
        };
        let text = match frame {
            Message::Text(t) => t,
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("the server sent {other:?}"),
        };
        assert!(
            text.len() <= server.max_frame,
            "a {}-byte frame, over the limit of {}",
            text.len(),
            server.max_frame
        );
        let v: Value = serde_json::from_str(text.as_str()).expect("the server sent bad JSON");
        let room = v["room"].as_str().unwrap_or_default().to_owned();
        match v["type"].as_str() {
            Some("joined") if room == barrier => return,
            Some("joined") => {
                joined.insert(room);
            }
            Some("left") => {
                joined.remove(&room);
            }
            Some("message") => {
                assert!(
                    joined.contains(&room),
                    "a message from {room:?}, not joined: {v}"
                );
            }
            _ => {}
        }
    }
}
