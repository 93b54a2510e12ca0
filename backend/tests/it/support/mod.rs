//! Shared test scaffolding: a real server on 127.0.0.1:0 and a WebSocket client that
//! speaks protocol v1 as JSON values.

#![allow(dead_code, unreachable_pub)]

pub mod nginx;
pub mod push_service;
pub mod redis;
pub mod sse;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use backend::{Config, RunError};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// A server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub db: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), RunError>>>,
    _dir: Option<tempfile::TempDir>,
    /// What [`TestServer::client`] connects with.
    transport: Transport,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    /// Starts a server with a fresh database and the defaults changed by `tweak`.
    pub async fn with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("huddle.db");
        let mut server = Self::on_db(db, tweak).await;
        server._dir = Some(dir);
        server
    }

    /// Starts a server on an existing database path.
    pub async fn on_db(db: PathBuf, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::with_db(&db);
        config.addr = "127.0.0.1:0".parse().unwrap();
        // Every test client comes from 127.0.0.1, which the per-address limits would
        // treat as one client; they are off unless a test sets them.
        config.max_connections_per_ip = 0;
        config.ip_join_rate = 0;
        // Departures are announced at once (tests of the grace period set one), so a
        // test that waits for a `left` notice does not wait five seconds for it.
        config.presence_grace = std::time::Duration::ZERO;
        // The tests' push service listens here (`support::push_service`).
        config.push_hosts = vec!["127.0.0.1".to_owned()];
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(backend::run(listener, config, async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            db,
            stop: Some(stop),
            handle: Some(handle),
            _dir: None,
            transport: Transport::WebSocket,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(&mut self) -> Result<(), RunError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.handle.take() {
            Some(h) => tokio::time::timeout(WAIT, h)
                .await
                .expect("shutdown timed out")
                .unwrap(),
            None => Ok(()),
        }
    }

    pub async fn client(&self) -> Client {
        match self.transport {
            Transport::WebSocket => Client::connect(&self.ws_url()).await,
            Transport::Sse => Client::connect_sse(self.addr, None).await,
        }
    }

    /// The same server, its clients speaking `transport`.
    pub fn over(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// A client that said hello as `nick`.
    pub async fn login(&self, nick: &str) -> Client {
        let mut c = self.client().await;
        let welcome = c.hello(nick).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        c
    }

    /// A client that said hello as `nick` and joined `room`.
    pub async fn member(&self, nick: &str, room: &str) -> Client {
        let mut c = self.login(nick).await;
        let joined = c.join(room).await;
        assert_eq!(joined["type"], "joined", "{joined}");
        c
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Which transport a [`Client`] speaks the protocol over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    /// `GET /sse` for the server's frames, `POST /sse/send` for ours.
    Sse,
}

/// A protocol client over a real WebSocket or a real SSE stream: the same calls, so one
/// test can run over both.
pub struct Client {
    link: Link,
    next_id: u64,
}

enum Link {
    WebSocket(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
    Sse {
        stream: Box<sse::Stream>,
        /// Error frames a refused POST answered with, delivered before the stream's next.
        answers: std::collections::VecDeque<Value>,
    },
}

impl Client {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .expect("connect");
        Client::from_stream(ws)
    }

    /// A client over an SSE stream of the server at `addr` (resuming `last_id`'s).
    pub async fn connect_sse(addr: SocketAddr, last_id: Option<&str>) -> Self {
        Client::from_sse(sse::Stream::open(addr, last_id).await)
    }

    pub fn from_sse(stream: sse::Stream) -> Self {
        Client {
            link: Link::Sse {
                stream: Box::new(stream),
                answers: Default::default(),
            },
            next_id: 0,
        }
    }

    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Client {
            link: Link::WebSocket(Box::new(ws)),
            next_id: 0,
        }
    }

    /// The WebSocket, for tests of the WebSocket itself. Panics on SSE.
    pub fn ws(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        match &mut self.link {
            Link::WebSocket(ws) => ws,
            Link::Sse { .. } => panic!("this client speaks SSE"),
        }
    }

    /// The WebSocket, owned. Panics on SSE.
    pub fn into_ws(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        match self.link {
            Link::WebSocket(ws) => *ws,
            Link::Sse { .. } => panic!("this client speaks SSE"),
        }
    }

    /// The SSE stream. Panics on a WebSocket.
    pub fn sse(&mut self) -> &mut sse::Stream {
        match &mut self.link {
            Link::Sse { stream, .. } => stream,
            Link::WebSocket(_) => panic!("this client speaks WebSocket"),
        }
    }

    /// Goes away: a WebSocket closes (its close frame sent), an SSE stream is dropped.
    pub async fn close(self) {
        match self.link {
            Link::WebSocket(mut ws) => WebSocketStream::close(&mut ws, None).await.unwrap(),
            Link::Sse { stream, .. } => drop(stream),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_raw(&frame.to_string()).await;
    }

    /// Sends `text` as one frame: a WebSocket text message, or the one element of a
    /// POST's array (text that is not JSON makes the whole POST refused with
    /// `bad_json`, which then counts as the frame's answer).
    pub async fn send_raw(&mut self, text: &str) {
        match &mut self.link {
            Link::WebSocket(ws) => ws.send(Message::text(text.to_owned())).await.expect("send"),
            Link::Sse { stream, answers } => {
                let (status, body) = stream.post(format!("[{text}]")).await;
                if status != 202 {
                    assert_eq!(body["type"], "error", "POST answered {status}: {body}");
                    answers.push_back(body);
                }
            }
        }
    }

    /// The next JSON frame, skipping pings, pongs and heartbeats; panics on close or
    /// timeout.
    pub async fn recv(&mut self) -> Value {
        match &mut self.link {
            Link::WebSocket(ws) => loop {
                let msg = tokio::time::timeout(WAIT, ws.next())
                    .await
                    .expect("timed out waiting for a frame")
                    .expect("connection ended")
                    .expect("read error");
                match msg {
                    Message::Text(t) => {
                        return serde_json::from_str(t.as_str()).expect("server sent invalid JSON")
                    }
                    Message::Ping(_) | Message::Pong(_) => continue,
                    other => panic!("expected a text frame, got {other:?}"),
                }
            },
            Link::Sse { stream, answers } => {
                if let Some(answer) = answers.pop_front() {
                    return answer;
                }
                loop {
                    match stream.next_event().await.expect("connection ended") {
                        sse::Event::Comment(_) => continue,
                        sse::Event::Data {
                            event: None, data, ..
                        } => return serde_json::from_str(&data).expect("server sent invalid JSON"),
                        other => panic!("expected a frame, got {other:?}"),
                    }
                }
            }
        }
    }

    /// The next frame, asserting its type.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let v = self.recv().await;
        assert_eq!(v["type"], kind, "expected a {kind} frame, got {v}");
        v
    }

    /// The next frame of type `kind`, skipping others (for frames whose interleaving with
    /// room traffic is not fixed).
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Asserts an `error` frame with `code`, returning it.
    pub async fn expect_error(&mut self, code: &str) -> Value {
        let v = self.expect("error").await;
        assert_eq!(v["code"], code, "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        v
    }

    /// Asserts that no frame arrives within `wait`.
    /// Asserts that nothing is waiting to reach this client: it asks the server a
    /// question, and the answer must be the next frame. A session writes what is queued
    /// for it before it reads the next request, and handles one request at a time, so
    /// anything the server had decided to send this client by then (a broadcast, the
    /// rest of a replay, an announcement) would come first. A positive check, unlike a
    /// timeout: it cannot pass because a frame was slow.
    pub async fn expect_nothing_queued(&mut self) {
        self.send(json!({"type": "list_rooms"})).await;
        let v = self.recv().await;
        assert_eq!(
            v["type"], "rooms",
            "expected nothing before the answer, got {v}"
        );
    }

    /// Asserts that nothing arrives for `wait`: only for checks about time itself (a
    /// timer that must not fire); otherwise use [`Client::expect_nothing_queued`].
    pub async fn expect_silence(&mut self, wait: Duration) {
        match &mut self.link {
            Link::WebSocket(ws) => loop {
                match tokio::time::timeout(wait, ws.next()).await {
                    Err(_) => return,
                    Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                    Ok(other) => panic!("expected silence, got {other:?}"),
                }
            },
            Link::Sse { stream, answers } => {
                assert!(answers.is_empty(), "expected silence, got {answers:?}");
                loop {
                    match stream.event_within(wait).await {
                        Err(()) => return,
                        Ok(Some(sse::Event::Comment(_))) => continue,
                        Ok(other) => panic!("expected silence, got {other:?}"),
                    }
                }
            }
        }
    }

    /// Reads until the server closes; returns the close code (None if the connection
    /// ended without a close frame).
    pub async fn expect_close(&mut self) -> Option<u16> {
        self.expect_close_frame().await.map(|(code, _)| code)
    }

    /// The close frame's code and reason, skipping other frames; `None` when the
    /// connection ended without one.
    pub async fn expect_close_frame(&mut self) -> Option<(u16, String)> {
        match &mut self.link {
            Link::WebSocket(ws) => loop {
                match tokio::time::timeout(WAIT, ws.next())
                    .await
                    .expect("timed out waiting for close")
                {
                    Some(Ok(Message::Close(frame))) => {
                        return frame.map(|f| (f.code.into(), f.reason.to_string()))
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return None,
                }
            },
            Link::Sse { stream, .. } => loop {
                match stream.next_event().await? {
                    sse::Event::Data {
                        event: Some(event),
                        data,
                        ..
                    } if event == "close" => {
                        let v: Value = serde_json::from_str(&data).unwrap();
                        let code = v["code"].as_u64().unwrap() as u16;
                        // The stream ends after its close event.
                        assert_eq!(stream.event_within(WAIT).await, Ok(None));
                        return Some((code, v["reason"].as_str().unwrap().to_owned()));
                    }
                    _ => continue,
                }
            },
        }
    }

    pub async fn hello(&mut self, nick: &str) -> Value {
        self.send(json!({"type": "hello", "nick": nick})).await;
        self.recv().await
    }

    pub async fn join(&mut self, room: &str) -> Value {
        self.send(json!({"type": "join", "room": room})).await;
        self.recv().await
    }

    /// The texts of a room's latest history page, oldest first.
    pub async fn history_texts(&mut self, room: &str) -> Vec<String> {
        self.send(json!({"type": "history", "room": room})).await;
        let h = self.next_of("history").await;
        h["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect()
    }

    /// A room's whole history, oldest first, read page by page.
    pub async fn whole_history(&mut self, room: &str) -> Vec<Stored> {
        let mut all = Vec::new();
        let mut before: Option<u64> = None;
        loop {
            self.send(json!({"type": "history", "room": room, "before": before, "limit": 100}))
                .await;
            let h = loop {
                let v = self.recv().await;
                if v["type"] == "history" {
                    break v;
                }
                if v["type"] == "error" && v["ref"] == "history" {
                    // Over the read budget: what a client does, wait and ask again.
                    assert_eq!(v["code"], "rate_limited", "{v}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    self.send(
                        json!({"type": "history", "room": room, "before": before, "limit": 100}),
                    )
                    .await;
                }
            };
            let page = h["messages"].as_array().unwrap();
            for m in page.iter().rev() {
                all.push((
                    m["offset"].as_u64().unwrap(),
                    m["nick"].as_str().unwrap().to_owned(),
                    m["id"].as_str().unwrap().to_owned(),
                    m["text"].as_str().unwrap().to_owned(),
                ));
            }
            if h["has_more"] != true {
                break;
            }
            before = page.first().and_then(|m| m["offset"].as_u64());
        }
        all.reverse();
        all
    }

    pub fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        format!("m{}", self.next_id)
    }

    /// Sends a message and returns its id.
    pub async fn say(&mut self, room: &str, text: &str) -> String {
        let id = self.fresh_id();
        self.send(json!({"type": "send", "room": room, "text": text, "id": id}))
            .await;
        id
    }

    /// Sends a message and waits for its ack and own echo (in either order); returns the offset.
    pub async fn say_acked(&mut self, room: &str, text: &str) -> u64 {
        let id = self.say(room, text).await;
        let (mut acked, mut echoed) = (None, false);
        while acked.is_none() || !echoed {
            let v = self.recv().await;
            match v["type"].as_str() {
                Some("ack") if v["id"] == id.as_str() => acked = v["offset"].as_u64(),
                Some("message") if v["id"] == id.as_str() => echoed = true,
                _ => {}
            }
        }
        acked.unwrap()
    }
}

/// A free TCP port on 127.0.0.1 (free when this returns; tests bind it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real `huddle` binary, running as its own process on a fixed address, so a test
/// can kill it with SIGKILL and start it again on the same address and database.
pub struct Huddle {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
}

impl Huddle {
    /// Starts `huddle --addr <addr> --db <db> <extra…>` and waits until it accepts
    /// connections. Retries for a while when the address is still taken (a killed
    /// process's port can take a moment to be free again).
    pub async fn start(db: &std::path::Path, addr: SocketAddr, extra: &[&str]) -> Huddle {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_huddle"))
                .arg("--addr")
                .arg(addr.to_string())
                .arg("--db")
                .arg(db)
                .args(extra)
                .env("HUDDLE_LOG", "warn")
                // As in `TestServer`: all clients share 127.0.0.1 (flags in `extra` win).
                .env("HUDDLE_MAX_CONNECTIONS_PER_IP", "0")
                .env("HUDDLE_IP_JOIN_RATE", "0")
                .env("HUDDLE_PRESENCE_GRACE", "0s")
                .env("HUDDLE_PUSH_HOSTS", "127.0.0.1")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .expect("start huddle");
            while tokio::time::Instant::now() < deadline {
                if TcpStream::connect(addr).await.is_ok() {
                    return Huddle { child, addr };
                }
                if child.try_wait().unwrap().is_some() {
                    // It could not listen (yet): try again.
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "huddle did not start listening on {addr}"
            );
            let _ = child.kill().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Stops the process with SIGTERM (a graceful shutdown: every connection is told
    /// 1001) and reaps it.
    pub async fn terminate(&mut self) {
        let pid = self.child.id().expect("huddle is running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        self.child.wait().await.expect("reap huddle");
    }

    /// Kills the process with SIGKILL (no shutdown, no close frames) and reaps it.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("kill huddle");
        self.child.wait().await.expect("reap huddle");
    }
}

/// One stored message: (offset, nick, id, text).
pub type Stored = (u64, String, String, String);

/// Where `cmd` is on `PATH`, if it is.
pub fn which(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| p.is_file())
    })
}

/// Sends `GET path` and returns (status code, body).
pub async fn get(addr: impl std::fmt::Display, path: &str) -> (u16, String) {
    let host = addr.to_string();
    get_as(addr, path, &host).await
}

/// Sends `GET path` naming `host` in the `Host` header; (status code, body).
pub async fn get_as(addr: impl std::fmt::Display, path: &str, host: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr.to_string())
        .await
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("response timed out")
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// One scrape of `/metrics`.
pub struct Scrape(String);

impl Scrape {
    pub async fn of(server: &TestServer) -> Scrape {
        let (status, body) = get(server.addr, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        Scrape(body)
    }

    /// The value of `series` (name plus `{labels}` if any); panics if it is missing.
    pub fn value(&self, series: &str) -> f64 {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{series} not in the scrape:\n{}", self.0))
    }
}

pub fn labelled(name: &str, label: &str, value: &str) -> String {
    format!("{name}{{{label}=\"{value}\"}}")
}

/// Scrapes until `series` equals `want` (the count of live tasks settles just after the
/// sockets close), or fails after a while with the last value.
pub async fn settle(server: &TestServer, series: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = Scrape::of(server).await.value(series);
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} stayed at {got}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asks `/readyz` until it answers `want` (its answer is reused for up to a second, so a
/// change shows within about that); returns the body. Fails after [`WAIT`].
pub async fn readyz_becomes(addr: SocketAddr, want: u16) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = get(addr, "/readyz").await;
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed {status}, expected {want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
