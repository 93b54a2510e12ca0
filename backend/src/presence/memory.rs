//! Presence for one node: the hub's member lists are the whole truth.

use async_trait::async_trait;

use super::Presence;
use crate::session::outbox::ConnId;

/// Nothing to record beyond the hub; only for a single node.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MemoryPresence;

#[async_trait]
impl Presence for MemoryPresence {
    async fn joined(&self, _room: &str, _conn: ConnId, _nick: &str) {}

    async fn left(&self, _room: &str, _conn: ConnId) {}

    async fn members(&self, _room: &str, mut local: Vec<String>) -> Vec<String> {
        local.sort();
        local.dedup();
        local
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_are_sorted_and_deduplicated() {
        let presence = MemoryPresence;
        presence.joined("r", 1, "bob").await;
        let local = vec!["bob".to_owned(), "alice".to_owned(), "bob".to_owned()];
        assert_eq!(presence.members("r", local).await, ["alice", "bob"]);
    }
}
