//! One connection's life: the `select!` loop over {peer frames, outbox, pending acks,
//! pings, close requests, shutdown}, and the cleanup when it ends.
//!
//! Frames for the peer come from two places: answers to its own requests (written
//! directly) and room traffic (queued in its bounded [`outbox`] by the hub). Writes are
//! raced against close requests, so a peer that stops reading cannot wedge its session.

mod conversation;
pub(crate) mod events;
mod handlers;
mod inbox;
pub(crate) mod link;
mod members;
pub(crate) mod outbox;
mod people;
pub(crate) mod socket;
mod stream;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{ErrorCode, ServerMsg};
use futures_util::future::{BoxFuture, FutureExt as _};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument as _;
use tungstenite::Message;

use crate::broker::Directive;
use crate::codec::{self, Wire};
use crate::disconnect::Disconnect;
use crate::identity::Identity;
use crate::logsafe::{Chain, Escaped};
use crate::membership::Farewell;
use crate::metrics::PeerClose;
use crate::rate::{ReadBudget, TokenBucket};
use crate::state::AppState;
use crate::writer::AppendResult;
use link::Link;
use outbox::{ConnId, Control, Inbox, Outbox};
pub(crate) use stream::Resumption;

/// How long to wait for the peer's half of the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Most outbox frames written with one flush. Coalescing turns a burst into a few large
/// socket writes instead of one syscall per frame; the bound keeps one batch from
/// starving the connection's other work (acks, pings, the peer's frames).
const MAX_COALESCE: usize = 64;

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The server closes, for this reason.
    Close(Disconnect),
    /// The peer sent a close frame.
    PeerClosed,
    /// The transport failed or ended without a close frame.
    PeerGone,
}

/// This connection's view of one joined room (what it was sent of the room is the
/// outbox's: [`Inbox::last_offset`]).
struct RoomSub {
    /// When a `typing` from this connection was last forwarded to the room.
    last_typing: Option<Instant>,
}

/// What an ack is about, carried beside the writer's answer.
struct PendingSend {
    id: String,
    room: String,
}

/// One connection's state.
struct Session {
    state: AppState,
    conn: ConnId,
    /// The client's address (behind a trusted proxy, the one it forwarded).
    peer: SocketAddr,
    link: Link,
    /// The hub's way to this connection (handed to every room joined).
    outbox: Outbox,
    /// The session's side of it: what waits, which rooms it receives.
    inbox: Inbox,
    control: Arc<Control>,
    /// Set by a successful `hello`.
    identity: Option<Identity>,
    /// The hash of the account token this connection signed in with (a sign-out of
    /// that token closes it).
    token_hash: Option<String>,
    /// When the host token this connection signed in with expires (seconds since the
    /// epoch), unless a fresh one comes first.
    expires: Option<u64>,
    /// Rooms this connection was told to stop receiving (the user left them elsewhere,
    /// or was removed), to depart once the frames before are written.
    dropped: Vec<Arc<str>>,
    /// Set when a sign-out of this connection's token arrived.
    signed_out: bool,
    /// Set when another SSE stream resumed this one's session.
    superseded: bool,
    /// Client frames posted for this SSE stream, to handle in order once the batch
    /// that brought them is written.
    posted: VecDeque<String>,
    /// The newest alert written in the batch being sent (0: none), to record as
    /// delivered once it is on the wire.
    alerted: u64,
    rooms: HashMap<Arc<str>, RoomSub>,
    rate: TokenBucket,
    /// Every frame, of any type (`--frame-rate`).
    frames: TokenBucket,
    /// History this connection may still read (`--read-rate`, `--read-bytes`).
    reads: ReadBudget,
    /// Appends waiting for the writer; bounded by the rate limit.
    pending: FuturesUnordered<BoxFuture<'static, (PendingSend, AppendResult)>>,
    last_seen: Instant,
}

/// Serves one upgraded WebSocket or SSE stream (resuming a session if `resume` says
/// so) until it closes, inside a `conn{id, peer}` span so every log line of the
/// connection, from any handler, names it.
pub(crate) async fn run(link: Link, state: AppState, peer: SocketAddr, resume: Option<Resumption>) {
    let conn = state.next_conn_id();
    let span = tracing::info_span!("conn", id = conn, %peer);
    connection(link, state, peer, conn, resume)
        .instrument(span)
        .await;
}

async fn connection(
    link: Link,
    state: AppState,
    peer: SocketAddr,
    conn: ConnId,
    resume: Option<Resumption>,
) {
    let metrics = state.metrics.clone();
    let _live = metrics.session_started();
    let (outbox, inbox, control) = Outbox::new(state.config.outbox, &metrics, link.direct());
    let rate = TokenBucket::new(
        f64::from(state.config.rate_per_sec),
        f64::from(state.config.rate_burst),
    );
    let (frame_rate, frame_burst) = state.config.frame_bucket();
    let frames = TokenBucket::new(frame_rate, frame_burst);
    let reads = ReadBudget::new(state.config.read_rate, state.config.read_bytes);
    tracing::info!("connection opened");
    let mut session = Session {
        state,
        conn,
        peer,
        link,
        outbox,
        inbox,
        control,
        identity: None,
        token_hash: None,
        expires: None,
        dropped: Vec::new(),
        signed_out: false,
        superseded: false,
        posted: VecDeque::new(),
        alerted: 0,
        rooms: HashMap::new(),
        rate,
        frames,
        reads,
        pending: FuturesUnordered::new(),
        last_seen: Instant::now(),
    };
    // The work before and after the loop is boxed, like every handler inside it (see
    // `on_incoming`): an idle connection's task then holds only the loop's own state.
    let end = match Box::pin(session.open_stream(resume)).await {
        Ok(()) => session.serve().await,
        Err(end) => end,
    };
    Box::pin(session.leave_all()).await;
    Box::pin(session.close_stream(end)).await;
    let nick = session.identity.as_ref().map(|who| Arc::clone(&who.nick));
    // Counted before the close handshake, which may wait on the peer for a while.
    let close_code = match end {
        End::Close(why) => {
            metrics.closed(why.code());
            Some(why.code().code())
        }
        End::PeerClosed => {
            metrics.peer_closed(PeerClose::Close);
            None
        }
        End::PeerGone => {
            metrics.peer_closed(PeerClose::Gone);
            None
        }
    };
    Box::pin(session.finish(end)).await;
    let reason = match end {
        End::Close(why) => format!("server closed: {} {}", why.code().code(), why.reason()),
        End::PeerClosed => "peer closed".to_owned(),
        End::PeerGone => "peer gone".to_owned(),
    };
    let nick = nick.as_deref().unwrap_or("-");
    tracing::info!(nick = %Escaped(nick), close_code, reason, "connection closed");
}

/// Closes a connection that may not become a session, telling the peer why.
pub(crate) async fn refuse(mut link: Link, why: Disconnect, peer: SocketAddr) {
    let (code, reason) = (why.code().code(), why.reason());
    tracing::info!(%peer, code, reason, "connection refused");
    let frame = link.close_frame(code, reason);
    let _ = tokio::time::timeout(CLOSE_GRACE, link.write_all(vec![frame])).await;
    // A WebSocket waits for the peer's close; a stream ends when dropped.
    if let Link::WebSocket(_) = link {
        let _ = tokio::time::timeout(CLOSE_GRACE, link.recv()).await;
    }
}

impl Session {
    async fn serve(&mut self) -> End {
        let control = Arc::clone(&self.control);
        let shutdown = self.state.shutdown.clone();
        let mut ping = tokio::time::interval(self.state.config.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ping.tick().await;
        // One timer for the two deadlines a connection can have: until its `hello`
        // succeeds (it is of no use to anyone, yet holds a socket, a task and a place
        // under the connection limits), then its host token's expiry, if it has one.
        // Boxed: a timer in the loop's own state would be reserved in every idle
        // connection's task for good.
        let mut deadline = Box::pin(tokio::time::sleep(self.state.config.hello_timeout));
        // The expiry the timer is set for once signed in (`None`: not yet set).
        let mut armed: Option<Option<u64>> = None;
        // Made once: recreated on every turn of the loop, each would register with its
        // token again (a lock, and for `shutdown` one shared by every connection).
        let closed = control.closed();
        let stopping = shutdown.cancelled();
        tokio::pin!(closed, stopping);
        let result: Result<(), End> = async {
            loop {
                let signed_in = self.identity.is_some();
                if signed_in && armed != Some(self.expires) {
                    // Signed in, or a fresh host token came in band.
                    armed = Some(self.expires);
                    if let Some(at) = self.expires {
                        deadline.as_mut().reset(expires_at(at));
                    }
                }
                tokio::select! {
                    biased;
                    why = &mut closed => return Err(End::Close(why)),
                    () = &mut stopping => return Err(End::Close(Disconnect::Shutdown)),
                    () = &mut deadline, if !signed_in || self.expires.is_some() => {
                        return Err(End::Close(if signed_in {
                            Disconnect::TokenExpired
                        } else {
                            Disconnect::HelloTimeout
                        }));
                    }
                    Some((ctx, result)) = self.pending.next(), if !self.pending.is_empty() => {
                        Box::pin(self.on_appended(ctx, result)).await?;
                    }
                    () = self.inbox.ready() => Box::pin(self.forward()).await?,
                    incoming = self.link.recv() => self.on_incoming(incoming).await?,
                    _ = ping.tick() => {
                        // An SSE client has no pings to answer: only a stalled write
                        // tells it is gone.
                        let answers = self.link.stream().is_none();
                        if answers && self.last_seen.elapsed() >= self.state.config.idle_timeout {
                            return Err(End::Close(Disconnect::Idle));
                        }
                        let ping = self.link.ping();
                        Box::pin(self.write_all(vec![ping], 0)).await?;
                    }
                }
            }
        }
        .await;
        result.err().unwrap_or(End::PeerGone)
    }

    async fn on_incoming(
        &mut self,
        incoming: Option<Result<Message, tungstenite::Error>>,
    ) -> Result<(), End> {
        let msg = match incoming {
            None => return Err(End::PeerGone),
            Some(Ok(msg)) => msg,
            Some(Err(e)) => return Err(classify_read_error(&e)),
        };
        self.last_seen = Instant::now();
        match msg {
            // Boxed: the handlers' futures are the largest part of a session's state, and
            // inline they would be reserved in every idle connection's task for good.
            Message::Text(text) => Box::pin(self.on_text(text.as_str())).await,
            Message::Binary(_) => Err(End::Close(Disconnect::Binary)),
            // tungstenite makes the pong; it goes out in its turn.
            Message::Ping(_) => {
                let pong = self.link.replies();
                Box::pin(self.write_all(vec![pong], 0)).await
            }
            Message::Pong(_) | Message::Frame(_) => Ok(()),
            Message::Close(_) => Err(End::PeerClosed),
        }
    }

    /// Writes what waits in the outbox (the rest of a direct write, then up to
    /// [`MAX_COALESCE`] queued frames that are still due) with as few socket writes as
    /// it takes, then does what the batch's directives asked.
    async fn forward(&mut self) -> Result<(), End> {
        let batch = self.inbox.take(MAX_COALESCE);
        for directive in &batch.directives {
            self.obey(directive);
        }
        self.write_taken(batch.bytes, batch.frames).await?;
        if self.signed_out {
            return Err(End::Close(Disconnect::SignedOut));
        }
        if self.superseded {
            return Err(End::Close(Disconnect::Resumed));
        }
        let alerted = std::mem::take(&mut self.alerted);
        if alerted > 0 {
            if let Some(who) = self.identity.clone() {
                Box::pin(self.alerts_delivered(&who, alerted)).await;
            }
        }
        for room in std::mem::take(&mut self.dropped) {
            if let Some(who) = self.identity.clone() {
                let membership = Arc::clone(&self.state.membership);
                membership
                    .depart(&room, self.conn, &who, Farewell::Announce)
                    .await;
            }
        }
        while let Some(frame) = self.posted.pop_front() {
            if frame.len() > self.state.config.max_frame_bytes as usize {
                return Err(End::Close(Disconnect::TooBig));
            }
            self.last_seen = Instant::now();
            Box::pin(self.on_text(&frame)).await?;
        }
        Ok(())
    }

    /// Acts on a directive from the user's channel, in queue order: a room dropped here
    /// receives nothing queued after it.
    fn obey(&mut self, directive: &Directive) {
        match directive {
            Directive::Drop { room } => {
                self.link.forget(room);
                if let Some((room, _)) = self.rooms.remove_entry(room.as_str()) {
                    self.dropped.push(room);
                }
            }
            // Only a stream's own channel carries these (`POST /sse/send`, a resume).
            Directive::Frames { frames } => self.posted.extend(frames.iter().cloned()),
            Directive::Resumed => self.superseded = true,
            Directive::SignOut { token } => {
                let mine = self.token_hash.as_deref();
                if mine.is_some_and(|mine| crate::auth::tokens::same(mine, token)) {
                    self.signed_out = true;
                }
            }
            Directive::Alerted { seq } => self.alerted = self.alerted.max(*seq),
        }
    }

    /// Answers an append, and every other one already answered by the writer, with
    /// one socket write: a commit answers many of a busy sender's messages at once.
    async fn on_appended(&mut self, ctx: PendingSend, result: AppendResult) -> Result<(), End> {
        let mut frames = vec![self.answer(ctx, result)];
        while let Some(Some((ctx, result))) = self.pending.next().now_or_never() {
            frames.push(self.answer(ctx, result));
        }
        let n = frames.len() as u64;
        let bytes = frames.iter().map(|f| f.bytes().clone()).collect();
        self.write_all(bytes, n).await
    }

    /// The frame answering an append.
    fn answer(&self, ctx: PendingSend, result: AppendResult) -> Wire {
        use crate::store::AppendOutcome;
        let reply = match result {
            Ok(AppendOutcome::Stored(m)) => ServerMsg::Ack {
                id: ctx.id,
                room: ctx.room,
                offset: m.offset(),
            },
            Ok(AppendOutcome::Refused(why)) => {
                let (code, message) = conversation::refusal_error(why);
                ServerMsg::error(code, message, Some(ctx.id))
            }
            Ok(AppendOutcome::Duplicate { offset }) => ServerMsg::Ack {
                id: ctx.id,
                room: ctx.room,
                offset,
            },
            Ok(AppendOutcome::RoomLimit) => ServerMsg::error(
                ErrorCode::RoomLimit,
                format!(
                    "this server holds as many rooms as it may ({}); post in an existing room. Not stored",
                    self.state.config.max_rooms
                ),
                Some(ctx.id),
            ),
            Err(e) if e.is_full() => {
                // The writer logs when the store starts and stops refusing; one line
                // per refused send would let any sender flood the log.
                tracing::debug!(error = %Chain(&e), "send not stored: storage refuses writes");
                ServerMsg::error(
                    ErrorCode::Unavailable,
                    "the server cannot store messages right now (its storage is full or read-only); not stored, try again later with the same id",
                    Some(ctx.id),
                )
            }
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "send not stored");
                ServerMsg::error(
                    ErrorCode::Internal,
                    "the message could not be stored and was not delivered; retry with the same id",
                    Some(ctx.id),
                )
            }
        };
        if let ServerMsg::Error { code, .. } = &reply {
            self.state.metrics.error_sent(*code);
        }
        codec::wire(&reply)
    }

    /// Sends a frame meant for this connection only.
    async fn reply(&mut self, msg: &ServerMsg) -> Result<(), End> {
        if let ServerMsg::Error { code, .. } = msg {
            self.state.metrics.error_sent(*code);
        }
        self.send_frame(codec::wire(msg)).await
    }

    async fn reply_error(
        &mut self,
        code: ErrorCode,
        message: impl Into<String>,
        reference: Option<String>,
    ) -> Result<(), End> {
        self.reply(&ServerMsg::error(code, message, reference))
            .await
    }

    /// Writes one text frame, giving up if the connection is asked to close meanwhile,
    /// or if the peer takes nothing for the idle timeout. The heartbeat only runs
    /// between writes, so without that bound a peer that vanished (or stopped reading)
    /// with the socket full would hold its session, nick and presence until the kernel
    /// gives up on the connection, which for a peer that still ACKs is never.
    async fn send_frame(&mut self, frame: Wire) -> Result<(), End> {
        self.write_all(vec![frame.bytes().clone()], 1).await
    }

    /// Writes `bufs` (`frames` of them text frames), after whatever a direct write of
    /// the outbox left unsent, under the same bounds as [`Session::send_frame`].
    async fn write_all(&mut self, bufs: Vec<Bytes>, frames: u64) -> Result<(), End> {
        let mut bytes = self.inbox.begin_write();
        bytes.extend(bufs.into_iter().filter(|b| !b.is_empty()));
        self.write_taken(bytes, frames).await
    }

    /// Writes what the session took while marked as writing, then clears the mark.
    async fn write_taken(&mut self, bytes: Vec<Bytes>, frames: u64) -> Result<(), End> {
        if bytes.is_empty() {
            self.inbox.written(0);
            return Ok(());
        }
        let control = Arc::clone(&self.control);
        let stalled = tokio::time::sleep(self.state.config.idle_timeout);
        let send = self.link.write_all(bytes);
        let result = tokio::select! {
            // The send first: when the socket takes the frames at once (nearly always),
            // the timer is never polled, so it is never registered with the runtime.
            biased;
            result = send => result.map_err(|_| End::PeerGone),
            why = control.closed() => Err(End::Close(why)),
            () = self.state.shutdown.cancelled() => Err(End::Close(Disconnect::Shutdown)),
            () = stalled => Err(End::Close(Disconnect::StalledWriter)),
        };
        // A write cut short ends the connection: the mark stays, so the fan-out cannot
        // write between its rest (kept by the socket) and the close frame.
        if result.is_ok() {
            self.inbox.written(frames);
        }
        result
    }

    /// Departs every room (telling the others, unless the whole server is stopping)
    /// and gives the nick back.
    async fn leave_all(&mut self) {
        let Some(who) = self.identity.clone() else {
            return;
        };
        // A connection that ends may be a reload: the others hear that its user left
        // only if they are not back within the grace period.
        let farewell = if self.state.shutdown.is_cancelled() {
            Farewell::Quiet
        } else {
            Farewell::Later
        };
        let membership = Arc::clone(&self.state.membership);
        for (room, _) in std::mem::take(&mut self.rooms) {
            membership.depart(&room, self.conn, &who, farewell).await;
        }
        for room in std::mem::take(&mut self.dropped) {
            membership
                .depart(&room, self.conn, &who, Farewell::Announce)
                .await;
        }
        membership.leave_user(self.conn, &who).await;
        self.state.nicks.release(&who, self.conn).await;
    }

    /// Ends the WebSocket properly: our close frame, or our half of the peer's, after
    /// whatever a direct write left unsent (the outbox is closed first, so nothing can
    /// be written after it).
    async fn finish(mut self, end: End) {
        let mut bytes = self.inbox.close();
        match end {
            End::Close(why) => {
                bytes.push(self.link.close_frame(why.code().code(), why.reason()));
                let written = tokio::time::timeout(CLOSE_GRACE, self.link.write_all(bytes))
                    .await
                    .is_ok_and(|r| r.is_ok());
                // A stream ends with its close event; a WebSocket waits for the peer.
                if written && self.link.stream().is_none() {
                    // Wait for the peer's close so our close frame is not lost to a reset
                    // caused by closing with unread data in the socket.
                    let _ = tokio::time::timeout(CLOSE_GRACE, async {
                        while let Some(Ok(msg)) = self.link.recv().await {
                            if matches!(msg, Message::Close(_)) {
                                break;
                            }
                        }
                    })
                    .await;
                }
            }
            End::PeerClosed => {
                // tungstenite made the reply to the peer's close.
                bytes.push(self.link.replies());
                let _ = tokio::time::timeout(CLOSE_GRACE, self.link.write_all(bytes)).await;
            }
            End::PeerGone => {}
        }
    }
}

/// When a host token that expires at `at` (seconds since the epoch) has expired; one
/// too far ahead to express is as good as never.
fn expires_at(at: u64) -> Instant {
    let now = crate::clock::now_ms() / 1000;
    let left = Duration::from_secs(at.saturating_sub(now));
    let never = Duration::from_secs(100 * 365 * 86_400);
    Instant::now()
        .checked_add(left.min(never))
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400))
}

/// A read error is either an oversized frame (1009) or a dead transport.
fn classify_read_error(err: &tungstenite::Error) -> End {
    match err {
        tungstenite::Error::Capacity(_) => End::Close(Disconnect::TooBig),
        _ => End::PeerGone,
    }
}
