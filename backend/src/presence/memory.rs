//! Presence for one node: the hub's member lists are the whole truth.

use async_trait::async_trait;

use super::Presence;
use crate::session::outbox::ConnId;

/// Nothing to record beyond the hub; only for a single node.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MemoryPresence;

#[async_trait]
impl Presence for MemoryPresence {
    async fn joined(&self, _room: &str, _conn: ConnId, _user: &str, _nick: &str) {}

    async fn left(&self, _room: &str, _conn: ConnId, _user: &str) {}

    /// There is no other node.
    async fn elsewhere(&self, _room: &str, _user: &str) -> bool {
        false
    }

    /// The hub's list as it is: in connection order, which the protocol documents for
    /// one instance.
    async fn members(&self, _room: &str, local: Vec<String>) -> Vec<String> {
        local
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_list_is_the_hubs_in_connection_order() {
        let presence = MemoryPresence;
        presence.joined("r", 1, "u-bob", "bob").await;
        assert!(!presence.elsewhere("r", "u-bob").await);
        let local = vec!["bob".to_owned(), "alice".to_owned()];
        assert_eq!(presence.members("r", local).await, ["bob", "alice"]);
    }
}
