//! Who is connected as whom: the [`NickRegistry`] seam. It tracks each user's open
//! connections and the nick they show, so that
//! - a guest cannot take a nick another user is connected with (case- and
//!   lookalike-insensitively), nor one whose user disconnected moments ago
//!   (`--presence-grace`, so nobody can post under it between a reload and the
//!   reconnect);
//! - one user may hold several connections (tabs, devices), and beyond
//!   `--max-connections-per-user` the oldest is closed with 4001.
//!
//! Signed-in users are who their token says: their nick is never refused here, but is
//! held against guests while they are connected. [`MemoryNicks`] decides for one node,
//! [`RedisNicks`] across a cluster.

mod memory;
mod redis;

pub(crate) use self::redis::RedisNicks;
pub(crate) use memory::MemoryNicks;

use std::sync::Arc;

use async_trait::async_trait;

use crate::identity::Identity;
use crate::session::outbox::{ConnId, Control};

/// Why a connection cannot be admitted under its nick.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClaimError {
    #[error("nick is held by another user")]
    Taken,
    /// Its user disconnected moments ago: only that user may take it until the grace
    /// period (`--presence-grace`) ends.
    #[error("nick is kept for its owner's reconnect")]
    Reserved,
    /// The guest is connected elsewhere under another nick; one user shows one nick.
    #[error("user is connected as {0:?}")]
    OtherNick(String),
    #[error("nick registry unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Users' connections and nicks; see the module docs.
#[async_trait]
pub(crate) trait NickRegistry: Send + Sync + 'static {
    /// Admits connection `conn` of `who`, whose `control` closes it when it is
    /// displaced by the user's newer connections later.
    async fn claim(
        &self,
        who: &Identity,
        conn: ConnId,
        control: Arc<Control>,
    ) -> Result<(), ClaimError>;

    /// Forgets connection `conn` of `who`; with the user's last connection their nick
    /// is kept for them for the grace period.
    async fn release(&self, who: &Identity, conn: ConnId);

    /// Whether `user` has an open connection anywhere (an alert for them can wait for
    /// it to be read before it is pushed). A registry that cannot tell says no: a
    /// push too many is better than an alert that reaches nobody.
    async fn online(&self, user: &str) -> bool;
}
