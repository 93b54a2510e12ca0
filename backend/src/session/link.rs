//! What a session talks through: a WebSocket, or an SSE stream whose client frames
//! arrive as [`Directive::Frames`](crate::broker::Directive) from `POST /sse/send`.
//! The session writes the WebSocket wire to either; the SSE stream re-frames it.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpStream;
use tungstenite::Message;

use super::events::{self, EventStream};
use super::socket::Socket;

// The WebSocket is the common case and lives inline; boxing it would cost every
// connection an allocation to save the few SSE streams 280 bytes each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Link {
    WebSocket(Socket),
    Events(EventStream),
}

impl Link {
    /// The TCP socket the outbox may write to directly (a plain-TCP WebSocket only).
    pub(crate) fn direct(&self) -> Option<Arc<TcpStream>> {
        match self {
            Link::WebSocket(socket) => socket.direct(),
            Link::Events(_) => None,
        }
    }

    /// The SSE stream, if this is one.
    pub(crate) fn stream(&self) -> Option<&EventStream> {
        match self {
            Link::WebSocket(_) => None,
            Link::Events(stream) => Some(stream),
        }
    }

    /// The peer's next WebSocket message; `None` once the connection is closed. An
    /// SSE stream's frames come through the outbox, so it only ever ends.
    pub(crate) async fn recv(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        match self {
            Link::WebSocket(socket) => socket.recv().await,
            Link::Events(stream) => {
                stream.gone().await;
                None
            }
        }
    }

    /// A ping frame, to send (on SSE, a heartbeat comment).
    pub(crate) fn ping(&mut self) -> Bytes {
        match self {
            Link::WebSocket(socket) => socket.ping(),
            Link::Events(_) => Bytes::from_static(&events::PING_FRAME),
        }
    }

    /// Our close frame (on SSE, the `close` event), to send.
    pub(crate) fn close_frame(&mut self, code: u16, reason: &'static str) -> Bytes {
        match self {
            Link::WebSocket(socket) => socket.close_frame(code, reason),
            Link::Events(_) => events::close_frame(code, reason),
        }
    }

    /// What the WebSocket protocol owes the peer (a pong, the reply to its close).
    pub(crate) fn replies(&mut self) -> Bytes {
        match self {
            Link::WebSocket(socket) => socket.replies(),
            Link::Events(_) => Bytes::new(),
        }
    }

    /// Writes `bufs` (the WebSocket wire) in order. Cancel-safe.
    pub(crate) async fn write_all(&mut self, bufs: Vec<Bytes>) -> io::Result<()> {
        match self {
            Link::WebSocket(socket) => socket.write_all(bufs).await,
            Link::Events(stream) => stream.write_all(bufs).await,
        }
    }

    /// The session joins `room` (replaying after `since`): an SSE stream's position.
    pub(crate) fn joining(&mut self, room: &str, since: Option<u64>) {
        if let Link::Events(stream) = self {
            stream.joining(room, since);
        }
    }

    /// The session no longer receives `room`.
    pub(crate) fn forget(&mut self, room: &str) {
        if let Link::Events(stream) = self {
            stream.forget(room);
        }
    }
}
