//! Who is in a room on every node: the [`Presence`] seam, behind `joined.nicks` and
//! `presence` lists. [`MemoryPresence`] for one node (the hub already knows everyone),
//! [`RedisPresence`] for a cluster.

mod memory;
mod redis;

pub(crate) use self::redis::RedisPresence;
pub(crate) use memory::MemoryPresence;

use async_trait::async_trait;

use crate::session::outbox::ConnId;

/// The members of a dead instance in one room, found by the instance sweep
/// (`redis::instance`), for membership to announce as left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Departed {
    pub(crate) room: String,
    pub(crate) nicks: Vec<String>,
}

/// Member lists that span nodes.
///
/// Best-effort by contract: a registry that cannot reach the other nodes logs it and
/// answers with this node's members; lists are corrected by the next change.
#[async_trait]
pub(crate) trait Presence: Send + Sync + 'static {
    /// Records that local connection `conn` of `user` (as `nick`) is in `room`.
    async fn joined(&self, room: &str, conn: ConnId, user: &str, nick: &str);
    /// Undoes [`Presence::joined`].
    async fn left(&self, room: &str, conn: ConnId, user: &str);
    /// Whether `user` has a connection in `room` on another live node: then their
    /// first connection here is no arrival, and their last one here no departure.
    async fn elsewhere(&self, room: &str, user: &str) -> bool;
    /// The room's nicks on every live node, given this node's (`local`, current even
    /// when the others lag): across nodes sorted and deduplicated, on one node in
    /// connection order.
    async fn members(&self, room: &str, local: Vec<String>) -> Vec<String>;
}
