//! One client connection, as one task: connect from its own source address, `hello`,
//! `join`, then read every frame (checking offsets and latency) and, if it is a sender,
//! send on schedule, until the run says stop. No second task and no channel per
//! connection, and a 4 KiB read buffer, so a quarter of a million of them stay cheap.
//!
//! A client is a WebSocket, or with `--transport sse` an SSE stream ([`sse`]); what it
//! does with the frames (the checks, the pacing) is the same [`Conn`] either way.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ClientMsg, ServerMsg};
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::{Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::measure::{OffsetTracker, Shared};
use crate::scenario::{parse_stamp, send_frame, Load, Scenario, Transport};

mod sse;

type Ws = WebSocketStream<TcpStream>;

/// Longest one set-up step (connect, handshake, hello, join) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Most messages one sender sends in one tick: a sender that fell far behind catches up
/// over several ticks instead of stalling its reads.
const MAX_BURST: u64 = 1_000;

/// Where the run is; every connection task watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Connecting and joining; waiting for the window.
    Setup,
    /// The measurement window, opened at `start`: senders send.
    Run { start: Instant },
    /// Senders stop; receivers keep reading what is still on its way.
    Drain,
    /// Every task ends.
    Stop,
}

/// One acknowledged send, kept when the run records acks (`durable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckRecord {
    pub room: String,
    pub offset: u64,
    pub id: String,
    pub nick: String,
}

/// What every connection task shares.
pub(crate) struct Ctx {
    pub(crate) scenario: Scenario,
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) shared: Shared,
    pub(crate) phase: watch::Receiver<Phase>,
    /// `Some` when acks are recorded (for verifying them after a crash).
    pub(crate) acks: Option<Mutex<Vec<AckRecord>>>,
    /// Whether members that stayed connected must have every acked message at the end
    /// (not when the run kills the server: they may see `Stop` before the reset).
    pub(crate) check_tail: bool,
    pub(crate) ws_config: WebSocketConfig,
}

impl Ctx {
    pub(crate) fn ws_config() -> WebSocketConfig {
        WebSocketConfig::default()
            // Allocated up front for every connection: chat frames are small.
            .read_buffer_size(4 * 1024)
            .write_buffer_size(8 * 1024)
            .max_message_size(Some(16 << 20))
    }
}

/// How a connection's life ended.
enum End {
    /// The run told it to stop.
    Stopped,
    /// It ended on its own; the reason is counted.
    Lost(String),
}

/// Runs client `index` from connect to the end of the run. `permit` is its place among
/// the connections being set up at once, given back once it has joined.
pub(crate) async fn client(ctx: Arc<Ctx>, index: usize, permit: OwnedSemaphorePermit) {
    let room = ctx.scenario.room_of(index);
    let joined = match ctx.scenario.transport_of(index) {
        Transport::WebSocket => set_up(&ctx, index, room)
            .await
            .map(|(ws, head)| (Link::Ws(ws), head)),
        Transport::Sse => Box::pin(sse::set_up(&ctx, index, room))
            .await
            .map(|(stream, head)| (Link::Sse(Box::new(stream)), head)),
    };
    drop(permit);
    let (link, head) = match joined {
        Ok(ok) => ok,
        Err(why) => {
            ctx.shared.setup_failed.fetch_add(1, Relaxed);
            ctx.shared.reason(format!("setup: {why}"));
            return;
        }
    };
    ctx.shared.ready.fetch_add(1, Relaxed);
    ctx.shared.member_joined(room);

    let mut conn = Conn {
        ctx: &ctx,
        index,
        room,
        room_name: ctx.scenario.room_name(room),
        tracker: OffsetTracker::after(head),
        outstanding: 0,
        seq: 0,
        sending: false,
        acks: Vec::new(),
    };
    let end = match link {
        Link::Ws(mut ws) => conn.run(&mut ws).await,
        Link::Sse(mut stream) => Box::pin(conn.run_sse(&mut stream)).await,
    };
    if let Some(all) = &ctx.acks {
        all.lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(&mut conn.acks);
    }
    match end {
        End::Stopped if ctx.check_tail => ctx.shared.tail(room, &conn.tracker),
        End::Stopped => {}
        End::Lost(why) => {
            ctx.shared.member_gone(room);
            ctx.shared.disconnected.fetch_add(1, Relaxed);
            ctx.shared.reason(format!("disconnect: {why}"));
        }
    }
}

/// A joined client's connection. It lives on its task's stack: boxing the WebSocket
/// would cost every connection an allocation for nothing.
#[allow(clippy::large_enum_variant)]
enum Link {
    Ws(Ws),
    /// Boxed: its buffers and parser are bigger than a WebSocket.
    Sse(Box<sse::Sse>),
}

/// A TCP connection to `addr` from the source address `from`, without Nagle's delay.
async fn connect_from(addr: SocketAddr, from: std::net::Ipv4Addr) -> Result<TcpStream, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.kind().to_string())?;
    socket
        .bind(SocketAddr::new(from.into(), 0))
        .map_err(|e| format!("bind: {}", e.kind()))?;
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| e.kind().to_string())?;
    stream.set_nodelay(true).map_err(|e| e.kind().to_string())?;
    Ok(stream)
}

/// Connects, says hello and joins; returns the socket and the room's head.
async fn set_up(ctx: &Ctx, index: usize, room: usize) -> Result<(Ws, u64), String> {
    let s = &ctx.scenario;
    let server = s.server_of(index);
    let addr = ctx.addrs[server];
    let stream = step("connect", connect_from(addr, s.source_ip(index))).await?;
    let (mut ws, _response) = step("handshake", async {
        tokio_tungstenite::client_async_with_config(
            s.urls[server].as_str(),
            stream,
            Some(ctx.ws_config),
        )
        .await
        .map_err(|e| short_ws_error(&e))
    })
    .await?;
    ctx.shared.connected.fetch_add(1, Relaxed);

    let hello = ClientMsg::Hello {
        nick: Some(s.nick(index)),
        session: None,
        token: None,
    };
    step("hello", async {
        send(&mut ws, &hello).await?;
        loop {
            match next_frame(&mut ws).await? {
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
        send(&mut ws, &join).await?;
        loop {
            match next_frame(&mut ws).await? {
                ServerMsg::Joined { room, head, .. } if room == room_name => return Ok(head),
                ServerMsg::Error { code, .. } => return Err(format!("join refused: {code}")),
                _ => {}
            }
        }
    })
    .await?;
    Ok((ws, head))
}

/// Runs one set-up step with a timeout, naming the step in errors.
async fn step<T>(
    name: &str,
    fut: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{name}: {e}")),
        Err(_) => Err(format!(
            "{name}: timed out after {}s",
            STEP_TIMEOUT.as_secs()
        )),
    }
}

async fn send(ws: &mut Ws, msg: &ClientMsg) -> Result<(), String> {
    let text = serde_json::to_string(msg).map_err(|e| e.to_string())?;
    ws.send(Message::text(text))
        .await
        .map_err(|e| short_ws_error(&e))
}

/// The next protocol frame during set-up (pings are answered by tungstenite).
async fn next_frame(ws: &mut Ws) -> Result<ServerMsg, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str()).map_err(|e| format!("bad frame: {e}"))
            }
            Some(Ok(Message::Close(frame))) => return Err(close_reason(frame.as_ref())),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(short_ws_error(&e)),
            None => return Err("connection ended".to_owned()),
        }
    }
}

fn close_reason(frame: Option<&tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> String {
    match frame {
        Some(f) => format!("closed {} ({})", u16::from(f.code), f.reason.as_str()),
        None => "closed without a code".to_owned(),
    }
}

/// A WebSocket error without addresses or ports, so equal causes count together.
fn short_ws_error(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Io(io) => io.kind().to_string(),
        E::Http(resp) => format!("HTTP {}", resp.status()),
        E::ConnectionClosed | E::AlreadyClosed => "connection closed".to_owned(),
        E::Protocol(p) => format!("protocol: {p}"),
        other => other.to_string(),
    }
}

/// A connected, joined client.
struct Conn<'a> {
    ctx: &'a Ctx,
    index: usize,
    room: usize,
    room_name: String,
    tracker: OffsetTracker,
    /// Sends not yet acked or refused.
    outstanding: usize,
    /// Messages sent so far; also the next message's id.
    seq: u64,
    /// True while the window is open and this client is a sender.
    sending: bool,
    acks: Vec<AckRecord>,
}

impl Conn<'_> {
    async fn run(&mut self, ws: &mut Ws) -> End {
        let ctx = self.ctx;
        let mut phase_rx = ctx.phase.clone();
        let mut pacer: Option<Pacer> = None;
        // Tasks that start late (a slow set-up) may find the window already open.
        let mut phase = *phase_rx.borrow_and_update();
        loop {
            match self.turn(phase, &mut pacer) {
                Turn::Stop => return End::Stopped,
                Turn::Send(n) => {
                    if let Err(e) = self.send_more(ws, n).await {
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
                    if let Err(e) = self.send_due(ws, due).await {
                        return End::Lost(e);
                    }
                }
                frame = ws.next() => {
                    // Then every frame already read, without going back through the
                    // select (its futures cost more than a small frame's handling).
                    let mut frame = Some(frame);
                    let mut taken = 0;
                    while let Some(f) = frame {
                        if let Some(end) = self.on_frame(ws, f).await {
                            return end;
                        }
                        taken += 1;
                        frame = if taken < DRAIN_BATCH { ws.next().now_or_never() } else { None };
                    }
                }
            }
        }
    }

    /// What the run's `phase` asks of this connection now: senders start their pacer
    /// (or, closed loop, their first sends) when the window opens and stop at the drain.
    fn turn(&mut self, phase: Phase, pacer: &mut Option<Pacer>) -> Turn {
        let ctx = self.ctx;
        match phase {
            Phase::Stop => return Turn::Stop,
            Phase::Run { start } if !self.sending && ctx.scenario.is_sender(self.index) => {
                self.sending = true;
                match ctx.scenario.load {
                    Load::Rate(_) => *pacer = Some(Pacer::new(&ctx.scenario, self.index, start)),
                    Load::InFlight(n) => return Turn::Send(n),
                    Load::Idle => {}
                }
            }
            Phase::Drain if self.sending => {
                self.sending = false;
                *pacer = None;
            }
            _ => {}
        }
        Turn::Go
    }

    /// Handles one frame from the socket; `Some` ends the connection.
    async fn on_frame(
        &mut self,
        ws: &mut Ws,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Option<End> {
        let replies = match frame {
            Some(Ok(Message::Text(t))) => self.on_text(t.as_str()),
            Some(Ok(Message::Close(f))) => return Some(End::Lost(close_reason(f.as_ref()))),
            Some(Ok(_)) => 0,
            Some(Err(e)) => return Some(End::Lost(short_ws_error(&e))),
            None => return Some(End::Lost("connection ended".to_owned())),
        };
        if replies > 0 {
            if let Err(e) = self.send_more(ws, replies).await {
                return Some(End::Lost(e));
            }
        }
        None
    }

    /// Handles one text frame; returns how many new sends it makes room for (closed
    /// loop: one per answered send).
    fn on_text(&mut self, text: &str) -> usize {
        let shared = &self.ctx.shared;
        // Presence lists and notifications are most of the traffic while a big room
        // fills up, and the run only counts them. The server writes `type` first, so they
        // are recognised without decoding; any other layout is simply decoded below.
        if EVENT_PREFIXES.iter().any(|p| text.starts_with(p)) {
            shared.events.fetch_add(1, Relaxed);
            return 0;
        }
        // Messages are nearly all of the traffic: only the three fields the checks use
        // are decoded (borrowed, no enum buffering), with the same checks as below.
        if text.starts_with(MESSAGE_PREFIX) {
            if let Ok(m) = serde_json::from_str::<MessageView<'_>>(text) {
                if m.room == self.room_name {
                    shared.delivered(&mut self.tracker, m.offset, parse_stamp(&m.text));
                } else {
                    shared.events.fetch_add(1, Relaxed);
                }
                return 0;
            }
        }
        let msg: ServerMsg = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(_) => {
                shared.reason("undecodable frame from server");
                return 0;
            }
        };
        match msg {
            ServerMsg::Message(m) if m.room == self.room_name => {
                shared.delivered(&mut self.tracker, m.offset, parse_stamp(&m.text));
                0
            }
            ServerMsg::Ack { id, room, offset } => {
                shared.acked(self.room, offset);
                if self.ctx.acks.is_some() {
                    self.acks.push(AckRecord {
                        room,
                        offset,
                        id,
                        nick: self.ctx.scenario.nick(self.index),
                    });
                }
                self.answered()
            }
            ServerMsg::Error {
                code, reference, ..
            } => {
                shared.reason(format!("error: {code}"));
                // An error about a send names its id (our ids are numbers).
                if reference.is_some_and(|r| r.parse::<u64>().is_ok()) {
                    shared.refused.fetch_add(1, Relaxed);
                    return self.answered();
                }
                0
            }
            _ => {
                shared.events.fetch_add(1, Relaxed);
                0
            }
        }
    }

    /// One of our sends was answered: in a closed loop that frees a slot.
    fn answered(&mut self) -> usize {
        self.outstanding = self.outstanding.saturating_sub(1);
        match self.ctx.scenario.load {
            Load::InFlight(_) if self.sending => 1,
            _ => 0,
        }
    }

    /// Sends `n` messages stamped now (closed loop).
    async fn send_more(&mut self, ws: &mut Ws, n: usize) -> Result<(), String> {
        let frames = self.more_frames(n);
        send_all(ws, frames).await
    }

    /// Sends the messages the pacer says are due.
    async fn send_due(&mut self, ws: &mut Ws, due: Due) -> Result<(), String> {
        let frames = self.due_frames(due);
        send_all(ws, frames).await
    }

    /// `n` more `send` frames stamped now (closed loop).
    fn more_frames(&mut self, n: usize) -> Vec<String> {
        let stamp = self.ctx.shared.clock.now_us();
        self.frames(n as u64, |_| stamp)
    }

    /// The `send` frames the pacer says are due, each stamped with the time it was due
    /// (not when it goes out), so a late sender shows as latency: no coordinated omission.
    fn due_frames(&mut self, due: Due) -> Vec<String> {
        let clock = self.ctx.shared.clock;
        let first = self.seq;
        let n = due.until.saturating_sub(first).min(MAX_BURST);
        self.frames(n, |k| clock.us_at(due.pacer_at(first + k)))
    }

    /// The next `n` `send` frames, counted as sent.
    fn frames(&mut self, n: u64, stamp: impl Fn(u64) -> u64) -> Vec<String> {
        // The window may have closed since this tick or ack was ready: a send now would
        // race the drain's "everything answered" check.
        if n == 0 || !self.ctx.shared.in_window.load(Relaxed) {
            return Vec::new();
        }
        let bytes = self.ctx.scenario.msg_bytes;
        let frames = (0..n)
            .map(|k| send_frame(&self.room_name, self.index, self.seq + k, stamp(k), bytes))
            .collect();
        self.seq += n;
        self.outstanding += n as usize;
        self.ctx.shared.sent.fetch_add(n, Relaxed);
        frames
    }
}

/// What the phase asks of a connection (see [`Conn::turn`]).
enum Turn {
    Stop,
    /// Send this many now (a closed loop starting).
    Send(usize),
    Go,
}

/// Feeds `frames` and flushes once: one write carries them all.
async fn send_all(ws: &mut Ws, frames: Vec<String>) -> Result<(), String> {
    if frames.is_empty() {
        return Ok(());
    }
    for frame in frames {
        ws.feed(Message::text(frame))
            .await
            .map_err(|e| short_ws_error(&e))?;
    }
    ws.flush().await.map_err(|e| short_ws_error(&e))
}

/// Most frames handled in one turn of a connection's loop before it looks at the
/// phase and the pacer again.
const DRAIN_BATCH: usize = 64;

/// How the server starts a `message` frame (it writes `type` first).
const MESSAGE_PREFIX: &str = r#"{"type":"message","#;

/// The fields of a `message` the run checks; the others are skipped, not decoded.
#[derive(serde::Deserialize)]
struct MessageView<'a> {
    #[serde(borrow)]
    room: std::borrow::Cow<'a, str>,
    offset: u64,
    #[serde(borrow, default)]
    text: std::borrow::Cow<'a, str>,
}

/// Frames the run counts but does not decode (see `Conn::on_text`).
const EVENT_PREFIXES: [&str; 3] = [
    r#"{"type":"presence""#,
    r#"{"type":"notification""#,
    r#"{"type":"typing""#,
];

/// One open-loop sender's schedule: message `k` is due at `start + (k + phase) / rate`.
/// Each sender gets its own phase in [0, 1), so senders at 1 msg/s do not all fire in
/// the same millisecond.
struct Pacer {
    start: Instant,
    period: Duration,
    phase: f64,
    interval: Interval,
}

/// Messages `..until` are due.
#[derive(Clone, Copy)]
struct Due {
    until: u64,
    start: Instant,
    period: Duration,
    phase: f64,
}

impl Due {
    fn pacer_at(&self, k: u64) -> Instant {
        self.start + self.period.mul_f64(k as f64 + self.phase)
    }
}

impl Pacer {
    fn new(s: &Scenario, index: usize, start: Instant) -> Self {
        let rate = s.rate_per_sender();
        let period = Duration::from_secs_f64(1.0 / rate);
        // The golden ratio spreads any number of senders evenly over a period.
        let phase = (index as f64 * 0.618_033_988_749_895).fract();
        // tokio's timer has millisecond resolution: faster senders send what is due
        // every millisecond.
        let tick = period.max(Duration::from_millis(1));
        let first = start + period.mul_f64(phase);
        let mut interval = tokio::time::interval_at(first.into(), tick);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Pacer {
            start,
            period,
            phase,
            interval,
        }
    }

    fn due_now(&self) -> Due {
        let elapsed = Instant::now().saturating_duration_since(self.start);
        let slots = elapsed.as_secs_f64() / self.period.as_secs_f64() - self.phase;
        Due {
            until: if slots < 0.0 { 0 } else { slots as u64 + 1 },
            start: self.start,
            period: self.period,
            phase: self.phase,
        }
    }
}

/// Waits for the pacer's next tick; never completes without a pacer.
async fn tick(pacer: &mut Option<Pacer>) -> Due {
    match pacer {
        Some(p) => {
            p.interval.tick().await;
            p.due_now()
        }
        None => std::future::pending().await,
    }
}
