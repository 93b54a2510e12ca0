//! The single-node broker: publishing is delivering to the local hub.

use async_trait::async_trait;

use super::{Broker, BrokerError, Envelope};
use crate::hub::Hub;

/// Delivers straight to the local [`Hub`]. Only for a single node: other processes never
/// see these frames (the Redis broker is what scales out).
#[derive(Clone)]
pub struct MemoryBroker {
    hub: Hub,
}

impl MemoryBroker {
    pub fn new(hub: Hub) -> Self {
        MemoryBroker { hub }
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, env: Envelope) -> Result<(), BrokerError> {
        self.hub.deliver(&env);
        Ok(())
    }

    async fn subscribe(&self, _room: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn unsubscribe(&self, _room: &str) -> Result<(), BrokerError> {
        Ok(())
    }
}

// The in-memory broker must stay usable wherever a `dyn Broker` is.
const _: fn() = || {
    fn assert_broker<T: Broker>() {}
    assert_broker::<MemoryBroker>();
};
