//! Fan-out across nodes: the [`Broker`] seam, and [`BrokerEvents`], what a broker hands
//! up to this node.
//!
//! Everything a room's members receive goes through a broker: chat messages (handed
//! over by the history writer after each commit, in offset order) and events
//! (notifications, presence, typing). A broker moves data between nodes and knows
//! nothing of WebSockets or protocol frames it did not get: what arrives, it reports
//! upward ([`BrokerEvents`], implemented by the [`Hub`](crate::hub::Hub)), including a
//! room whose delivery broke.
//!
//! [`MemoryBroker`] for one node; [`RedisBroker`] for a cluster (`--redis`), which
//! delivers stored messages by reading the history's own streams
//! ([`redis_streams`](self::redis_streams)) and events through pub/sub.

mod memory;
mod redis;
mod redis_streams;

pub(crate) use self::redis::RedisBroker;
pub(crate) use memory::MemoryBroker;

use std::sync::Arc;

use async_trait::async_trait;
use common::Entry;

use crate::codec::Frame;
use crate::disconnect::Disconnect;
use crate::session::outbox::ConnId;

/// An event for one room's members (or one user's connections, on their
/// [user channel](user_channel)): not history, so it reaches only who is there now.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) room: Arc<str>,
    /// A connection of this node that must not receive it (the connection that acted,
    /// where the user's other connections must hear of it); `None` for everyone.
    pub(crate) except: Option<ConnId>,
    /// A user none of whose connections receive it (the actor of "to the other
    /// members" events).
    pub(crate) except_user: Option<Arc<str>>,
    /// The frame to send; empty for a bare directive.
    pub(crate) frame: Frame,
    pub(crate) directive: Option<Directive>,
}

impl Event {
    /// An event for everyone in `room` but the connections of `except_user`.
    pub(crate) fn to_room(room: &Arc<str>, except_user: Option<&Arc<str>>, frame: Frame) -> Self {
        Event {
            room: Arc::clone(room),
            except: None,
            except_user: except_user.cloned(),
            frame,
            directive: None,
        }
    }
}

/// What a connection does, besides sending the frame, when it takes an event off its
/// queue: in queue order, so a room's frames queued before a [`Directive::Drop`] still
/// go out and none after it do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Directive {
    /// Stop receiving `room`: the user left it on another connection, or was removed.
    Drop { room: String },
    /// Close with 4003 if signed in with the token whose hash this is.
    SignOut { token: String },
    /// The frame is the user's alert `seq`: once written, it was delivered.
    Alerted { seq: u64 },
    /// Client frames posted for an SSE stream (`POST /sse/send`), to handle in order as
    /// if they had come over a WebSocket.
    Frames { frames: Vec<String> },
    /// Another stream resumed this SSE stream's session: close with 1001.
    Resumed,
}

/// The hub room and broker channel that reach every connection of `user`. Not a valid
/// room name (rooms have no `@`), so no client can join it.
pub(crate) fn user_channel(user: &str) -> Arc<str> {
    Arc::from(format!("@{user}"))
}

/// The hub room and broker channel that reach the session of SSE stream `id`, on
/// whichever node holds it (`~` is no more valid in a room name than `@`).
pub(crate) fn stream_channel(id: &str) -> Arc<str> {
    Arc::from(format!("~{id}"))
}

/// Whether a hub room is a channel ([`user_channel`], [`stream_channel`]) rather than a
/// chat room: no history, no offsets, no presence.
pub(crate) fn is_channel(room: &str) -> bool {
    room.starts_with('@') || room.starts_with('~')
}

/// A failure to publish or subscribe (a remote broker being unreachable).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BrokerError {
    #[error("broker unavailable")]
    Unavailable(#[from] ::redis::RedisError),
}

/// Publish/subscribe of a room's messages and events across nodes.
///
/// Contract:
/// - Stored messages of a room reach every subscribed node in offset order, each once;
///   events published from one task reach them in publish order.
/// - [`Broker::subscribe`] is called for every local join, before the joiner reads the
///   room's head, and must not return before every message stored after that point is
///   certain to be delivered here; so it is idempotent and cheap when already
///   subscribed. [`Broker::unsubscribe`] is called when the room's last local member
///   left (the broker checks [`BrokerEvents::has_members`] again, for a join since).
#[async_trait]
pub(crate) trait Broker: Send + Sync + 'static {
    /// Delivers an event to the room's members on every node.
    async fn publish(&self, event: Event) -> Result<(), BrokerError>;
    /// [`Broker::publish`] to a channel with one listener somewhere (a stream's), and
    /// whether any node has it subscribed: `false` means nobody got it.
    async fn publish_heard(&self, event: Event) -> Result<bool, BrokerError>;
    /// Delivers the entries the history writer has just committed (one commit's, in
    /// offset order per room), together: a member then gets all of a room's entries of
    /// the commit in one socket write.
    async fn publish_stored(&self, entries: &[Entry]) -> Result<(), BrokerError>;
    /// Starts delivering the room here; see the contract.
    async fn subscribe(&self, room: &str) -> Result<(), BrokerError>;
    /// Stops delivering the room here.
    async fn unsubscribe(&self, room: &str);
}

/// What a broker reports to this node. Called from the broker's tasks: every method is
/// synchronous and must not block.
pub(crate) trait BrokerEvents: Send + Sync + 'static {
    /// Stored entries for their rooms' local members, in offset order per room.
    fn messages(&self, entries: &[Entry]);
    /// An event for the room's local members.
    fn event(&self, event: Event);
    /// Delivery of the room broke (`why` says how): its local members must reconnect
    /// and resume from what they have.
    fn lost(&self, room: &str, why: Disconnect);
    /// Whether the room still has local members.
    fn has_members(&self, room: &str) -> bool;
}
