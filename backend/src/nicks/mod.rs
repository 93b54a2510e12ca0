//! Who holds which nick: the [`NickRegistry`] seam. A nick is unique among connected
//! sessions (case-insensitively); `welcome` hands out a session token, and a later
//! `hello` with it takes the nick over from an older connection that still holds it,
//! closing that one with 4001. [`MemoryNicks`] decides for one node, [`RedisNicks`]
//! across a cluster.

mod memory;
mod redis;

pub(crate) use self::redis::RedisNicks;
pub(crate) use memory::MemoryNicks;

use std::sync::Arc;

use async_trait::async_trait;

use crate::identity::Identity;
use crate::session::outbox::{ConnId, Control};

/// Why a nick cannot be claimed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClaimError {
    #[error("nick is held by another connected session")]
    Taken,
    /// Its holder disconnected moments ago: only that session may take it until the
    /// grace period (`--presence-grace`) ends, so nobody can post under it between a
    /// reload and the reconnect.
    #[error("nick is kept for its owner's reconnect")]
    Reserved,
    #[error("nick registry unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Nick ownership.
#[async_trait]
pub(crate) trait NickRegistry: Send + Sync + 'static {
    /// Claims `nick` for connection `conn`, whose `control` closes it if its session is
    /// reclaimed later. A `session` matching the holder's takes the nick over (the
    /// holder is closed with 4001); a well-formed `session` for a free nick is kept, so
    /// a client keeps one token across server restarts.
    async fn claim(
        &self,
        nick: &str,
        session: Option<&str>,
        conn: ConnId,
        control: Arc<Control>,
    ) -> Result<Identity, ClaimError>;

    /// Frees `who`'s nick if connection `conn` still holds it (a takeover may have
    /// moved it on); for the grace period only `who`'s session may claim it.
    async fn release(&self, who: &Identity, conn: ConnId);
}
