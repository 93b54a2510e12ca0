//! A client over the SSE fallback (`--transport sse`, docs/protocol.md "Server-Sent
//! Events"): `GET /sse` is its stream of server frames, `POST /sse/send` (header
//! `Huddle-Stream`, a JSON array of frames) carries its own, one POST in flight at a
//! time, as the contract asks for order. Frames that come due while a POST is in
//! flight wait for its answer and go out together in the next (at most 64).
//!
//! The stream is read like the WebSocket: into a 4 KiB buffer, decoded in place (the
//! chunked coding, then the event format, [`crate::event_stream`]) and each `message`
//! event's data handed to the same [`Conn::on_text`] a WebSocket text frame goes to.
//! Event ids are kept by the parser but nothing resumes: a stream that ends counts as
//! a disconnect, as a WebSocket's close does. A sender keeps a second connection for its
//! POSTs; the others close theirs once joined (a browser's would idle in its pool).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};

use common::{ClientMsg, ServerMsg, MAX_POSTED_FRAMES, SSE_PATH, SSE_SEND_PATH, STREAM_HEADER};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::{connect_from, step, tick, Conn, Ctx, End, Pacer, Phase, Turn};
use crate::event_stream::{parse_head, Chunked, EventParser, Head};

/// The stream's read buffer, as the WebSocket clients' (`Ctx::ws_config`).
const READ_BUFFER: usize = 4 * 1024;

/// A joined client's SSE stream and its POST connection.
pub(super) struct Sse {
    events: TcpStream,
    buf: Box<[u8]>,
    body: Body,
    /// Events read during the set-up that it did not consume: (type, data).
    ready: VecDeque<(Vec<u8>, Vec<u8>)>,
    post: Poster,
}

/// The stream's body after the response head.
struct Body {
    /// The chunked coding's decoder (`None`: the body is the bytes as they come).
    chunked: Option<Chunked>,
    parser: EventParser,
}

impl Body {
    /// Decodes `bytes`, calling `on_event(type, data)` for each event completed; an
    /// error when the body is malformed or ended (a stream has no natural end).
    fn feed(
        &mut self,
        bytes: &[u8],
        on_event: &mut impl FnMut(&[u8], &[u8]),
    ) -> Result<(), String> {
        let parser = &mut self.parser;
        match &mut self.chunked {
            Some(chunked) => {
                if chunked.feed(bytes, &mut |data| parser.feed(data, on_event))? {
                    return Err("the stream's response ended".to_owned());
                }
            }
            None => parser.feed(bytes, on_event),
        }
        Ok(())
    }
}

/// Opens the stream, says hello and joins (each frame in its own POST); returns the
/// stream and the room's head.
pub(super) async fn set_up(ctx: &Ctx, index: usize, room: usize) -> Result<(Sse, u64), String> {
    let s = &ctx.scenario;
    let addr = ctx.addrs[s.server_of(index)];
    let from = s.source_ip(index);
    let events = step("connect", connect_from(addr, from)).await?;
    let mut sse = step("open", Sse::open(events, addr, from)).await?;
    ctx.shared
        .connected
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    let hello = ClientMsg::Hello {
        nick: Some(s.nick(index)),
        session: None,
        token: None,
    };
    step("hello", async {
        sse.post_and_wait(&hello).await?;
        loop {
            match sse.next_msg().await? {
                ServerMsg::Welcome { .. } => return Ok(()),
                ServerMsg::Error { code, .. } => return Err(format!("hello refused: {code}")),
                _ => {}
            }
        }
    })
    .await?;

    let room_name = s.room_name(room);
    let join = ClientMsg::Join {
        room: room_name.clone(),
        since: None,
        epoch: None,
    };
    let head = step("join", async {
        sse.post_and_wait(&join).await?;
        loop {
            match sse.next_msg().await? {
                ServerMsg::Joined { room, head, .. } if room == room_name => return Ok(head),
                ServerMsg::Error { code, .. } => return Err(format!("join refused: {code}")),
                _ => {}
            }
        }
    })
    .await?;
    if !s.is_sender(index) {
        sse.post.conn = None;
    }
    Ok((sse, head))
}

impl Sse {
    /// `GET /sse` on `events`, up to the `stream` event that names the stream.
    async fn open(mut events: TcpStream, addr: SocketAddr, from: Ipv4Addr) -> Result<Sse, String> {
        let request = format!(
            "GET {SSE_PATH} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        );
        events
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.kind().to_string())?;
        let mut bytes = Vec::with_capacity(1024);
        let (head, used) = read_head(&mut events, &mut bytes).await?;
        if head.status != 200 {
            let body = String::from_utf8_lossy(&bytes[used..]);
            return Err(format!("HTTP {}: {}", head.status, body.trim()));
        }
        let mut sse = Sse {
            events,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            body: Body {
                chunked: head.chunked.then(Chunked::default),
                parser: EventParser::new(),
            },
            ready: VecDeque::new(),
            post: Poster {
                addr,
                from,
                stream: String::new(),
                conn: None,
                buf: Vec::new(),
                queue: VecDeque::new(),
                in_flight: 0,
                request: Vec::new(),
            },
        };
        let ready = &mut sse.ready;
        sse.body.feed(&bytes[used..], &mut |kind, data| {
            ready.push_back((kind.to_vec(), data.to_vec()));
        })?;
        loop {
            let (kind, data) = sse.next_event().await?;
            if kind == b"stream" {
                let opened: Opened =
                    serde_json::from_slice(&data).map_err(|e| format!("bad stream event: {e}"))?;
                sse.post.stream = opened.stream;
                return Ok(sse);
            }
        }
    }

    /// The next event (type, data) during the set-up; an error for a `close` event.
    async fn next_event(&mut self) -> Result<(Vec<u8>, Vec<u8>), String> {
        loop {
            if let Some((kind, data)) = self.ready.pop_front() {
                if kind == b"close" {
                    return Err(close_reason(&data));
                }
                return Ok((kind, data));
            }
            let n = self
                .events
                .read(&mut self.buf)
                .await
                .map_err(|e| e.kind().to_string())?;
            if n == 0 {
                return Err("connection ended".to_owned());
            }
            let ready = &mut self.ready;
            self.body.feed(&self.buf[..n], &mut |kind, data| {
                ready.push_back((kind.to_vec(), data.to_vec()));
            })?;
        }
    }

    /// The next protocol frame during the set-up.
    async fn next_msg(&mut self) -> Result<ServerMsg, String> {
        loop {
            let (kind, data) = self.next_event().await?;
            if kind == b"message" {
                return serde_json::from_slice(&data).map_err(|e| format!("bad frame: {e}"));
            }
        }
    }

    /// POSTs one frame and waits for the POST's answer (the frame's own answer comes
    /// on the stream).
    async fn post_and_wait(&mut self, msg: &ClientMsg) -> Result<(), String> {
        let frame = serde_json::to_string(msg).map_err(|e| e.to_string())?;
        self.post.send(vec![frame]).await?;
        while self.post.in_flight > 0 {
            let n = self.post.read().await.map_err(|e| e.kind().to_string())?;
            self.post.answer(n)?;
        }
        Ok(())
    }
}

/// The data of the `stream` event.
#[derive(serde::Deserialize)]
struct Opened {
    stream: String,
}

/// Reads a response head into `bytes`; the head and its length (what follows is body).
async fn read_head(conn: &mut TcpStream, bytes: &mut Vec<u8>) -> Result<(Head, usize), String> {
    loop {
        if let Some(head) = parse_head(bytes)? {
            return Ok(head);
        }
        let n = conn
            .read_buf(bytes)
            .await
            .map_err(|e| e.kind().to_string())?;
        if n == 0 {
            return Err("connection ended in the response head".to_owned());
        }
    }
}

/// What a `close` event's data says, as a WebSocket close frame is reported.
fn close_reason(data: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Close {
        code: u16,
        #[serde(default)]
        reason: String,
    }
    match serde_json::from_slice::<Close>(data) {
        Ok(c) => format!("closed {} ({})", c.code, c.reason),
        Err(_) => "closed without a code".to_owned(),
    }
}

/// The client's side of `POST /sse/send`: a keep-alive connection (opened again when
/// the server closed it while idle), at most one POST in flight, the frames waiting.
struct Poster {
    addr: SocketAddr,
    from: Ipv4Addr,
    /// The stream id, for the `Huddle-Stream` header.
    stream: String,
    conn: Option<TcpStream>,
    /// The answer read so far.
    buf: Vec<u8>,
    /// Frames not yet posted.
    queue: VecDeque<String>,
    /// Frames in the POST in flight (0: none).
    in_flight: usize,
    /// The request being built (reused).
    request: Vec<u8>,
}

impl Poster {
    /// Queues `frames` and posts what waits unless a POST is in flight.
    async fn send(&mut self, frames: Vec<String>) -> Result<(), String> {
        self.queue.extend(frames);
        self.post_next().await
    }

    /// Posts up to 64 waiting frames, if no POST is in flight.
    async fn post_next(&mut self) -> Result<(), String> {
        if self.in_flight > 0 || self.queue.is_empty() {
            return Ok(());
        }
        let n = self.queue.len().min(MAX_POSTED_FRAMES);
        let body_len = 1 + self
            .queue
            .iter()
            .take(n)
            .map(|f| f.len() + 1)
            .sum::<usize>();
        let mut head = String::new();
        let _ = write!(
            head,
            "POST {SSE_SEND_PATH} HTTP/1.1\r\nHost: {}\r\n{STREAM_HEADER}: {}\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n",
            self.addr, self.stream
        );
        self.request.clear();
        self.request.extend_from_slice(head.as_bytes());
        self.request.push(b'[');
        for (i, frame) in self.queue.drain(..n).enumerate() {
            if i > 0 {
                self.request.push(b',');
            }
            self.request.extend_from_slice(frame.as_bytes());
        }
        self.request.push(b']');
        if self.conn.is_none() {
            self.conn = Some(connect_from(self.addr, self.from).await?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        conn.write_all(&self.request)
            .await
            .map_err(|e| format!("POST: {}", e.kind()))?;
        self.in_flight = n;
        Ok(())
    }

    /// Reads from the POST connection (cancel-safe); never ready without one.
    async fn read(&mut self) -> std::io::Result<usize> {
        match &mut self.conn {
            Some(conn) => conn.read_buf(&mut self.buf).await,
            None => std::future::pending().await,
        }
    }

    /// Takes a read of `n` bytes: true once the POST in flight was answered (202).
    fn answer(&mut self, n: usize) -> Result<bool, String> {
        if n == 0 {
            if self.in_flight == 0 {
                // The server closed an idle keep-alive connection: the next POST opens
                // another.
                self.conn = None;
                self.buf.clear();
                return Ok(false);
            }
            return Err("POST: connection ended before the answer".to_owned());
        }
        if self.in_flight == 0 {
            return Err("POST: an answer to no request".to_owned());
        }
        let Some((head, used)) = parse_head(&self.buf)? else {
            return Ok(false);
        };
        let end = used + head.content_length.unwrap_or(0);
        if self.buf.len() < end {
            return Ok(false);
        }
        if head.status != 202 {
            let body = String::from_utf8_lossy(&self.buf[used..end]);
            return Err(format!("POST: HTTP {} {}", head.status, body.trim()));
        }
        self.buf.drain(..end);
        if head.close {
            self.conn = None;
            self.buf.clear();
        }
        self.in_flight = 0;
        Ok(true)
    }
}

impl Conn<'_> {
    /// [`Conn::run`] over an SSE stream.
    pub(super) async fn run_sse(&mut self, sse: &mut Sse) -> End {
        let ctx = self.ctx;
        let mut phase_rx = ctx.phase.clone();
        let mut pacer: Option<Pacer> = None;
        let mut phase = *phase_rx.borrow_and_update();
        // What came with the set-up's last read.
        let mut replies = 0;
        while let Some((kind, data)) = sse.ready.pop_front() {
            if let Some(end) = self.on_event(&kind, &data, &mut replies) {
                return end;
            }
        }
        if let Err(e) = self.post_more(sse, replies).await {
            return End::Lost(e);
        }
        loop {
            match self.turn(phase, &mut pacer) {
                Turn::Stop => return End::Stopped,
                Turn::Send(n) => {
                    if let Err(e) = self.post_more(sse, n).await {
                        return End::Lost(e);
                    }
                }
                Turn::Go => {}
            }
            tokio::select! {
                changed = phase_rx.changed() => {
                    phase = match changed {
                        Ok(()) => *phase_rx.borrow_and_update(),
                        Err(_) => Phase::Stop,
                    };
                }
                due = tick(&mut pacer) => {
                    let frames = self.due_frames(due);
                    if let Err(e) = sse.post.send(frames).await {
                        return End::Lost(e);
                    }
                }
                read = sse.events.read(&mut sse.buf) => {
                    let n = match read {
                        Ok(0) => return End::Lost("connection ended".to_owned()),
                        Ok(n) => n,
                        Err(e) => return End::Lost(e.kind().to_string()),
                    };
                    let mut replies = 0;
                    let mut end = None;
                    let fed = sse.body.feed(&sse.buf[..n], &mut |kind, data| {
                        if end.is_none() {
                            end = self.on_event(kind, data, &mut replies);
                        }
                    });
                    if let Some(end) = end {
                        return end;
                    }
                    if let Err(e) = fed {
                        return End::Lost(e);
                    }
                    if let Err(e) = self.post_more(sse, replies).await {
                        return End::Lost(e);
                    }
                }
                read = sse.post.read() => {
                    let answered = read
                        .map_err(|e| format!("POST: {}", e.kind()))
                        .and_then(|n| sse.post.answer(n));
                    match answered {
                        Ok(true) => {
                            if let Err(e) = sse.post.post_next().await {
                                return End::Lost(e);
                            }
                        }
                        Ok(false) => {}
                        Err(e) => return End::Lost(e),
                    }
                }
            }
        }
    }

    /// Handles one event; `Some` ends the connection. `replies` counts the sends it
    /// makes room for (closed loop).
    fn on_event(&mut self, kind: &[u8], data: &[u8], replies: &mut usize) -> Option<End> {
        match kind {
            b"message" => match std::str::from_utf8(data) {
                Ok(text) => *replies += self.on_text(text),
                Err(_) => self.ctx.shared.reason("undecodable frame from server"),
            },
            b"close" => return Some(End::Lost(close_reason(data))),
            _ => {
                self.ctx
                    .shared
                    .events
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        None
    }

    /// Posts `n` more sends stamped now (closed loop).
    async fn post_more(&mut self, sse: &mut Sse, n: usize) -> Result<(), String> {
        if n == 0 {
            return Ok(());
        }
        let frames = self.more_frames(n);
        sse.post.send(frames).await
    }
}
