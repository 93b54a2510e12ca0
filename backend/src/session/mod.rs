//! One connection's life: the `select!` loop over {peer frames, outbox, pending acks,
//! pings, close requests, shutdown}, and the cleanup when it ends.
//!
//! Frames for the peer come from two places: answers to its own requests (written
//! directly) and room traffic (queued in its bounded [`outbox`] by the hub). Writes are
//! raced against close requests, so a peer that stops reading cannot wedge its session.

mod handlers;
pub mod outbox;
mod rate;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use common::{CloseCode, ErrorCode, NotificationKind, ServerMsg};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::broker::Envelope;
use crate::codec;
use crate::state::AppState;
use crate::writer::AppendResult;
use outbox::{ConnId, Control, Outbox, Outgoing};
use rate::TokenBucket;

/// How long to wait for the peer's half of the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The server closes with this code.
    Close(CloseCode),
    /// The peer sent a close frame.
    PeerClosed,
    /// The transport failed or ended without a close frame.
    PeerGone,
}

/// This connection's view of one joined room.
struct RoomSub {
    /// Highest offset sent to the peer; queued messages at or below it are duplicates
    /// of what `joined.head` or a replay already covered.
    last_offset: u64,
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
    socket: WebSocket,
    outbox: Outbox,
    control: Arc<Control>,
    /// Set by a successful `hello`.
    nick: Option<Arc<str>>,
    nick_key: String,
    rooms: HashMap<Arc<str>, RoomSub>,
    rate: TokenBucket,
    /// Appends waiting for the writer; bounded by the rate limit.
    pending: FuturesUnordered<BoxFuture<'static, (PendingSend, AppendResult)>>,
    last_seen: Instant,
}

/// Serves one upgraded WebSocket until it closes.
pub async fn run(socket: WebSocket, state: AppState, peer: SocketAddr) {
    let conn = state.next_conn_id();
    let (outbox, rx, control) = Outbox::new(state.config.outbox);
    let rate = TokenBucket::new(state.config.rate_per_sec, state.config.rate_burst);
    tracing::info!(conn, %peer, "connection opened");
    let mut session = Session {
        state,
        conn,
        socket,
        outbox,
        control,
        nick: None,
        nick_key: String::new(),
        rooms: HashMap::new(),
        rate,
        pending: FuturesUnordered::new(),
        last_seen: Instant::now(),
    };
    let end = session.serve(rx).await;
    session.leave_all().await;
    let nick = session.nick.clone();
    session.finish(end).await;
    let reason = match end {
        End::Close(code) => format!("server closed: {} {}", code.code(), code.reason()),
        End::PeerClosed => "peer closed".to_owned(),
        End::PeerGone => "peer gone".to_owned(),
    };
    tracing::info!(conn, %peer, nick = nick.as_deref().unwrap_or("-"), reason, "connection closed");
}

/// Closes a socket that may not become a session, telling the peer why.
pub async fn refuse(mut socket: WebSocket, code: CloseCode, peer: SocketAddr) {
    tracing::info!(%peer, code = code.code(), reason = code.reason(), "connection refused");
    let frame = CloseFrame {
        code: code.code(),
        reason: code.reason().into(),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, socket.send(Message::Close(Some(frame)))).await;
    let _ = tokio::time::timeout(CLOSE_GRACE, socket.recv()).await;
}

impl Session {
    async fn serve(&mut self, mut rx: mpsc::Receiver<Outgoing>) -> End {
        let control = Arc::clone(&self.control);
        let shutdown = self.state.shutdown.clone();
        let mut ping = tokio::time::interval(self.state.config.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ping.tick().await;
        let result: Result<(), End> = async {
            loop {
                tokio::select! {
                    biased;
                    code = control.closed() => return Err(End::Close(code)),
                    () = shutdown.cancelled() => return Err(End::Close(CloseCode::GoingAway)),
                    Some((ctx, result)) = self.pending.next(), if !self.pending.is_empty() => {
                        self.on_appended(ctx, result).await?;
                    }
                    Some(item) = rx.recv() => self.forward(item).await?,
                    incoming = self.socket.recv() => self.on_incoming(incoming).await?,
                    _ = ping.tick() => {
                        if self.last_seen.elapsed() >= self.state.config.idle_timeout {
                            return Err(End::Close(CloseCode::GoingAway));
                        }
                        self.write(Message::Ping(Default::default())).await?;
                    }
                }
            }
        }
        .await;
        result.err().unwrap_or(End::PeerGone)
    }

    async fn on_incoming(
        &mut self,
        incoming: Option<Result<Message, axum::Error>>,
    ) -> Result<(), End> {
        let msg = match incoming {
            None => return Err(End::PeerGone),
            Some(Ok(msg)) => msg,
            Some(Err(e)) => return Err(classify_read_error(&e)),
        };
        self.last_seen = Instant::now();
        match msg {
            Message::Text(text) => self.on_text(text.as_str()).await,
            Message::Binary(_) => Err(End::Close(CloseCode::Unsupported)),
            // tungstenite answers pings itself; both only prove the peer is alive.
            Message::Ping(_) | Message::Pong(_) => Ok(()),
            Message::Close(_) => Err(End::PeerClosed),
        }
    }

    /// Writes a room frame from the outbox unless it is stale or already sent.
    async fn forward(&mut self, item: Outgoing) -> Result<(), End> {
        if let Some(room) = &item.room {
            let Some(sub) = self.rooms.get_mut(room) else {
                // Queued before this connection left the room.
                return Ok(());
            };
            if item.offset > 0 {
                if item.offset <= sub.last_offset {
                    return Ok(());
                }
                sub.last_offset = item.offset;
            }
        }
        self.write(Message::Text(item.frame)).await
    }

    async fn on_appended(&mut self, ctx: PendingSend, result: AppendResult) -> Result<(), End> {
        use crate::store::AppendOutcome;
        let reply = match result {
            Ok(AppendOutcome::Stored(m)) => ServerMsg::Ack {
                id: ctx.id,
                room: ctx.room,
                offset: m.offset,
            },
            Ok(AppendOutcome::Duplicate { offset }) => ServerMsg::Ack {
                id: ctx.id,
                room: ctx.room,
                offset,
            },
            Err(e) => {
                tracing::warn!(conn = self.conn, error = %e, "send not stored");
                ServerMsg::error(
                    ErrorCode::Internal,
                    "the message could not be stored and was not delivered; retry with the same id",
                    Some(ctx.id),
                )
            }
        };
        self.reply(&reply).await
    }

    /// Sends a frame meant for this connection only.
    async fn reply(&mut self, msg: &ServerMsg) -> Result<(), End> {
        self.write(Message::Text(codec::encode(msg))).await
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

    /// Writes one frame, giving up if the connection is asked to close meanwhile.
    async fn write(&mut self, msg: Message) -> Result<(), End> {
        let control = Arc::clone(&self.control);
        tokio::select! {
            result = self.socket.send(msg) => result.map_err(|_| End::PeerGone),
            code = control.closed() => Err(End::Close(code)),
            () = self.state.shutdown.cancelled() => Err(End::Close(CloseCode::GoingAway)),
        }
    }

    /// Publishes an event to the other members of `room`.
    async fn publish_event(&mut self, room: &Arc<str>, msg: &ServerMsg) {
        let env = Envelope {
            room: Arc::clone(room),
            offset: 0,
            except: Some(self.conn),
            frame: codec::encode(msg),
        };
        if let Err(e) = self.state.broker.publish(env).await {
            tracing::warn!(conn = self.conn, room = %room, error = %e, "event not published");
        }
    }

    /// Tells a room that this connection joined or left, and who is there now.
    async fn announce(&mut self, room: &Arc<str>, kind: NotificationKind, nicks: Vec<String>) {
        let Some(nick) = self.nick.as_deref() else {
            return;
        };
        let text = match kind {
            NotificationKind::Joined => format!("{nick} joined"),
            NotificationKind::Left => format!("{nick} left"),
            NotificationKind::Info => return,
        };
        let note = ServerMsg::Notification {
            room: room.to_string(),
            kind,
            text,
            nick: Some(nick.to_owned()),
            ts: now_ms(),
        };
        self.publish_event(room, &note).await;
        let presence = ServerMsg::Presence {
            room: room.to_string(),
            nicks,
        };
        self.publish_event(room, &presence).await;
    }

    /// Leaves every room (telling the others, unless the whole server is stopping) and
    /// gives the nick back.
    async fn leave_all(&mut self) {
        let stopping = self.state.shutdown.is_cancelled();
        for (room, _) in std::mem::take(&mut self.rooms) {
            let Some(change) = self.state.hub.leave(&room, self.conn) else {
                continue;
            };
            if !stopping {
                self.announce(&room, NotificationKind::Left, change.nicks)
                    .await;
            }
            if change.edge {
                if let Err(e) = self.state.broker.unsubscribe(&room).await {
                    tracing::warn!(room = %room, error = %e, "unsubscribe failed");
                }
            }
        }
        if self.nick.is_some() {
            self.state.nicks.release(&self.nick_key, self.conn);
        }
    }

    /// Ends the WebSocket properly: our close frame, or our half of the peer's.
    async fn finish(mut self, end: End) {
        match end {
            End::Close(code) => {
                let frame = CloseFrame {
                    code: code.code(),
                    reason: code.reason().into(),
                };
                let send = self.socket.send(Message::Close(Some(frame)));
                if tokio::time::timeout(CLOSE_GRACE, send)
                    .await
                    .is_ok_and(|r| r.is_ok())
                {
                    // Wait for the peer's close so our close frame is not lost to a reset
                    // caused by closing with unread data in the socket.
                    let _ = tokio::time::timeout(CLOSE_GRACE, async {
                        while let Some(Ok(msg)) = self.socket.recv().await {
                            if matches!(msg, Message::Close(_)) {
                                break;
                            }
                        }
                    })
                    .await;
                }
            }
            End::PeerClosed => {
                // tungstenite queued the reply to the peer's close; flush it.
                let _ = tokio::time::timeout(CLOSE_GRACE, self.socket.close()).await;
            }
            End::PeerGone => {}
        }
    }
}

/// A read error is either an oversized frame (1009) or a dead transport.
fn classify_read_error(err: &axum::Error) -> End {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return End::Close(CloseCode::TooBig);
        }
        source = e.source();
    }
    End::PeerGone
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
