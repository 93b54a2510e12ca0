//! Fan-out across nodes: the [`Broker`] trait and its in-memory implementation.
//!
//! Everything a room's members receive goes through a broker: chat messages (published by
//! the history writer in commit order) and events (notifications, presence, typing). The
//! broker hands what it receives to the local [`Hub`](crate::hub::Hub). It knows nothing
//! about WebSockets or JSON: it moves encoded frames.

mod claims;
mod memory;
mod presence;
mod redis;

pub use self::redis::{RedisBroker, RedisBrokerTasks};
pub use memory::MemoryBroker;

use std::sync::Arc;

use async_trait::async_trait;

use crate::codec::Frame;
use crate::session::outbox::ConnId;

/// One frame for one room's members.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub room: Arc<str>,
    /// The chat message's offset, or 0 for an event.
    pub offset: u64,
    /// A connection that must not receive it (the actor of "to the other members" events).
    pub except: Option<ConnId>,
    pub frame: Frame,
}

/// A failure to publish (a remote broker being unreachable, for example).
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// Why a nick cannot be claimed across nodes.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("nick is held by another session on another node")]
    Taken,
    #[error("nick registry unavailable: {0}")]
    Unavailable(String),
}

/// Publish/subscribe of encoded frames by room.
///
/// Contract:
/// - Frames published for one room from one task are delivered to every subscriber of
///   that room in publish order. The history writer is the only publisher of chat
///   messages, so members see offsets in order.
/// - `subscribe` is called when a room gains its first member on this node (every
///   member, when [`Broker::delivers_stored_messages`]) and `unsubscribe` when it loses
///   its last; a single-node broker may ignore both.
/// - A broker delivers each frame to a node at most once (a node never receives its own
///   publish twice).
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Delivers `env` to the room's members on every node.
    async fn publish(&self, env: Envelope) -> Result<(), BrokerError>;
    /// Starts receiving frames for `room` on this node.
    async fn subscribe(&self, room: &str) -> Result<(), BrokerError>;
    /// Stops receiving frames for `room` on this node.
    async fn unsubscribe(&self, room: &str) -> Result<(), BrokerError>;

    /// True when the broker delivers chat messages by reading them from the history
    /// store itself (the Redis broker reads the room streams): the writer then does not
    /// publish them, and `subscribe` must be called for every join, not only the first.
    fn delivers_stored_messages(&self) -> bool {
        false
    }

    /// Records that local connection `conn` (as `nick`) is in `room`, for member lists
    /// that span nodes. A single-node broker has nothing to record.
    async fn member_joined(&self, _room: &str, _conn: ConnId, _nick: &str) {}
    /// Undoes [`Broker::member_joined`].
    async fn member_left(&self, _room: &str, _conn: ConnId) {}
    /// The room's nicks on every live node, given this node's (`local`). Best-effort: a
    /// broker that cannot reach the other nodes answers with `local`.
    async fn members(&self, _room: &str, local: Vec<String>) -> Vec<String> {
        local
    }

    /// Claims nick `key` on every node for local connection `conn`, which already holds
    /// it on this node (see [`crate::nicks::Nicks`]) with `session`. A holder with the
    /// same session on another node is closed with 4001 there. A single-node broker has
    /// nothing to check.
    async fn claim_nick(
        &self,
        _key: &str,
        _session: &str,
        _conn: ConnId,
    ) -> Result<(), ClaimError> {
        Ok(())
    }
    /// Undoes [`Broker::claim_nick`] if `conn` still holds `key`.
    async fn release_nick(&self, _key: &str, _conn: ConnId) {}
}
