//! The single-node broker: publishing is reporting straight back to this node.

use std::sync::Arc;

use async_trait::async_trait;
use common::ChatMessage;

use super::{Broker, BrokerError, BrokerEvents, Event};

/// Delivers to this node only: other processes never see these messages and events
/// (the Redis broker is what scales out).
#[derive(Clone)]
pub(crate) struct MemoryBroker {
    node: Arc<dyn BrokerEvents>,
}

impl MemoryBroker {
    pub(crate) fn new(node: Arc<dyn BrokerEvents>) -> Self {
        MemoryBroker { node }
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, event: Event) -> Result<(), BrokerError> {
        self.node.event(event);
        Ok(())
    }

    async fn publish_stored(&self, msg: &ChatMessage) -> Result<(), BrokerError> {
        self.node.message(msg.clone());
        Ok(())
    }

    /// Nothing to wait for: the writer hands each message over in the same process
    /// after its commit, so whoever is in the hub then receives it.
    async fn subscribe(&self, _room: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn unsubscribe(&self, _room: &str) {}
}
