//! The single-node broker: publishing is reporting straight back to this node.

use std::sync::Arc;

use async_trait::async_trait;
use common::Entry;

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

    async fn publish_heard(&self, event: Event) -> Result<bool, BrokerError> {
        let heard = self.node.has_members(&event.room);
        self.node.event(event);
        Ok(heard)
    }

    async fn publish_stored(&self, entries: &[Entry]) -> Result<(), BrokerError> {
        self.node.messages(entries);
        Ok(())
    }

    /// Nothing to wait for: the writer hands each message over in the same process
    /// after its commit, so whoever is in the hub then receives it.
    async fn subscribe(&self, _room: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn unsubscribe(&self, _room: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Frame;
    use crate::hub::Hub;
    use crate::metrics::Metrics;
    use crate::session::outbox::Outbox;
    use common::ChatMessage;

    #[tokio::test]
    async fn stored_messages_and_events_come_straight_back_to_this_node() {
        let hub = Hub::default();
        let broker = MemoryBroker::new(Arc::new(hub.clone()));
        let metrics = Metrics::default();
        let room: Arc<str> = Arc::from("r");
        let (outbox, inbox, _) = Outbox::new(8, &metrics, None);
        hub.join(&room, 1, &Arc::from("a"), "a".into(), outbox);
        broker.subscribe("r").await.unwrap();
        let msg = ChatMessage {
            room: "r".to_owned(),
            offset: 1,
            id: "m1".to_owned(),
            nick: "b".to_owned(),
            text: "hi".to_owned(),
            ts: 0,
            ..ChatMessage::default()
        };
        broker.publish_stored(&[Entry::Message(msg)]).await.unwrap();
        let event = Event {
            room: Arc::clone(&room),
            except: None,
            except_user: None,
            frame: Frame::from("{}"),
            directive: None,
        };
        broker.publish(event.clone()).await.unwrap();
        broker
            .publish(Event {
                except: Some(1),
                ..event
            })
            .await
            .unwrap();
        assert_eq!(inbox.try_recv().map(|i| i.offset), Some(1));
        assert_eq!(inbox.try_recv().map(|i| i.offset), Some(0));
        assert!(inbox.try_recv().is_none(), "the actor is skipped");
        broker.unsubscribe("r").await;
    }
}
