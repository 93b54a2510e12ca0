//! The cluster broker (`--redis`): fan-out across instances through Redis.
//!
//! - **Stored messages** are never published: the [`RedisStore`](crate::store::RedisStore)
//!   appends each to its room's stream, and the stream reader
//!   ([`super::redis_streams`]) reads the streams of every room with local members from
//!   the last offset it delivered per room. So [`Broker::publish_stored`] has nothing to
//!   do, and [`Broker::subscribe`] gives a room a position before its joiner reads the
//!   head.
//! - **Events** (notifications, presence, typing) are not history: they go through
//!   pub/sub on the room's `events` channel, relayed with their origin instance
//!   (`codec::encode_relayed`; `except` applies only there). The event subscriber keeps
//!   one SUBSCRIBE per room with local members and resubscribes after a reconnect.
//!
//! Both tasks reconnect on their own with backoff and stop with the [`Tasks`] they were
//! spawned into.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use common::Entry;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Client};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::{Broker, BrokerError, BrokerEvents, Event};
use crate::cluster::instance::Instance;
use crate::cluster::keys::Keys;
use crate::cluster::{pause, Retry, Tasks, CONNECT_TIMEOUT, RESPONSE_TIMEOUT};
use crate::codec::{self, Frame};
use crate::locks;
use crate::logsafe::Escaped;

/// How long `subscribe` waits for the event subscriber to confirm the room's SUBSCRIBE.
/// Past it the join goes on: the subscriber keeps trying and events are best-effort.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);
/// How often the event subscriber pings Redis to notice a connection that died silently.
const PUBSUB_PING: Duration = Duration::from_secs(2);

/// Fan-out through Redis; see the module docs.
pub(crate) struct RedisBroker {
    shared: Arc<Shared>,
    /// Commands that do not block: reading a room's seq, PUBLISH.
    conn: ConnectionManager,
}

/// What the broker and its two tasks share.
pub(super) struct Shared {
    /// Tells this instance's events from other instances'.
    pub(super) origin: String,
    pub(super) keys: Keys,
    pub(super) node: Arc<dyn BrokerEvents>,
    pub(super) client: Client,
    /// Room → last offset delivered here (or the room's seq when it was subscribed).
    /// Held only for map updates and synchronous reports upward, never across `.await`.
    rooms: Mutex<HashMap<Arc<str>, u64>>,
    /// Bumped with every change of `rooms`' key set; the event subscriber reports the
    /// generation it has subscribed to through `synced`.
    generation: AtomicU64,
    changed: Notify,
    synced: watch::Sender<u64>,
}

impl Shared {
    pub(super) fn rooms(&self) -> MutexGuard<'_, HashMap<Arc<str>, u64>> {
        locks::lock(&self.rooms)
    }

    /// Records a change of the room set and wakes the event subscriber.
    fn bump(&self) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.changed.notify_one();
        generation
    }
}

impl RedisBroker {
    /// Starts the stream reader and the event subscriber in `tasks`.
    pub(crate) fn start(
        client: Client,
        conn: ConnectionManager,
        instance: &Instance,
        node: Arc<dyn BrokerEvents>,
        tasks: &mut Tasks,
    ) -> RedisBroker {
        let (synced, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            origin: instance.id().to_owned(),
            keys: instance.keys().clone(),
            node,
            client,
            rooms: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            changed: Notify::new(),
            synced,
        });
        tasks.spawn(super::redis_streams::read_streams(
            Arc::clone(&shared),
            tasks.token(),
        ));
        tasks.spawn(subscribe_events(Arc::clone(&shared), tasks.token()));
        RedisBroker { shared, conn }
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, event: Event) -> Result<(), BrokerError> {
        let payload = codec::encode_relayed(&self.shared.origin, &event);
        let () = self
            .conn
            .clone()
            .publish(self.shared.keys.events(&event.room), payload)
            .await?;
        Ok(())
    }

    async fn publish_heard(&self, event: Event) -> Result<bool, BrokerError> {
        let payload = codec::encode_relayed(&self.shared.origin, &event);
        // PUBLISH answers how many subscribers got it: an instance subscribes to a
        // stream's channel for as long as the stream's session lives there.
        let heard: i64 = self
            .conn
            .clone()
            .publish(self.shared.keys.events(&event.room), payload)
            .await?;
        Ok(heard > 0)
    }

    /// The room's stream already has it: the stream reader delivers it.
    async fn publish_stored(&self, _entries: &[Entry]) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn subscribe(&self, room: &str) -> Result<(), BrokerError> {
        if self.shared.rooms().contains_key(room) {
            return Ok(());
        }
        // Start from the room's seq as it is now; the joiner reads the head afterwards,
        // so anything it does not get from the store it gets from the stream.
        let seq: Option<u64> = self.conn.clone().get(self.shared.keys.seq(room)).await?;
        let generation = {
            let mut rooms = self.shared.rooms();
            // A leave may have emptied the room while the seq was read.
            if rooms.contains_key(room) || !self.shared.node.has_members(room) {
                return Ok(());
            }
            rooms.insert(Arc::from(room), seq.unwrap_or(0));
            self.shared.bump()
        };
        let mut synced = self.shared.synced.subscribe();
        let confirmed = synced.wait_for(|&g| g >= generation);
        if tokio::time::timeout(SUBSCRIBE_WAIT, confirmed)
            .await
            .is_err()
        {
            tracing::warn!(room = %Escaped(room), "events subscription not confirmed yet; continuing");
        }
        Ok(())
    }

    async fn unsubscribe(&self, room: &str) {
        let mut rooms = self.shared.rooms();
        // A join may have refilled the room since its last member left.
        if !self.shared.node.has_members(room) && rooms.remove(room).is_some() {
            self.shared.bump();
        }
    }
}

/// The event subscriber task; see the module docs.
async fn subscribe_events(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut retry = Retry::new("redis event subscriber");
    while !cancel.is_cancelled() {
        let connected =
            tokio::time::timeout(CONNECT_TIMEOUT, shared.client.get_async_pubsub()).await;
        let result = match connected {
            Ok(Ok(pubsub)) => {
                retry.connected();
                event_loop(&shared, pubsub, &cancel).await
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connect timed out".to_owned()),
        };
        if let Err(e) = result {
            if !pause(&cancel, retry.failed(&e)).await {
                break;
            }
        }
    }
}

/// Follows the room set and delivers events until cancelled (`Ok`) or the connection
/// fails (`Err`).
async fn event_loop(
    shared: &Shared,
    pubsub: redis::aio::PubSub,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let (mut sink, mut stream) = pubsub.split();
    // A fresh connection has no subscriptions: the first sync subscribes every room.
    let mut subscribed: HashSet<Arc<str>> = HashSet::new();
    let mut ping = tokio::time::interval(PUBSUB_PING);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = true;
    loop {
        if dirty {
            dirty = false;
            let (generation, wanted): (u64, HashSet<Arc<str>>) = {
                let rooms = shared.rooms();
                // Read under the lock that guards every bump, so the set matches it.
                (
                    shared.generation.load(Ordering::Relaxed),
                    rooms.keys().cloned().collect(),
                )
            };
            let channels = |rooms: Vec<&Arc<str>>| -> Vec<String> {
                rooms.into_iter().map(|r| shared.keys.events(r)).collect()
            };
            let add = channels(wanted.difference(&subscribed).collect());
            let drop = channels(subscribed.difference(&wanted).collect());
            if !add.is_empty() {
                sink.subscribe(&add).await.map_err(|e| e.to_string())?;
            }
            if !drop.is_empty() {
                sink.unsubscribe(&drop).await.map_err(|e| e.to_string())?;
            }
            subscribed = wanted;
            shared.synced.send_replace(generation);
        }
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            () = shared.changed.notified() => dirty = true,
            _ = ping.tick() => {
                // Subscribed, Redis answers PING with ["pong", ""], not +PONG: any
                // answer proves the connection alive.
                tokio::time::timeout(RESPONSE_TIMEOUT, sink.ping::<redis::Value>())
                    .await
                    .map_err(|_| "ping timed out".to_owned())?
                    .map_err(|e| e.to_string())?;
            }
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Err("connection closed".to_owned());
                };
                deliver_event(shared, msg.get_channel_name(), msg.get_payload_bytes());
            }
        }
    }
}

/// Hands one event from another (or this) instance up to this node.
fn deliver_event(shared: &Shared, channel: &str, payload: &[u8]) {
    let Some(room) = shared.keys.room_of_events(channel) else {
        return;
    };
    let Ok(wire) = codec::decode_relayed(payload) else {
        tracing::warn!(room = %Escaped(room), "unreadable event skipped");
        return;
    };
    // Connection ids are per instance: `except` means nothing elsewhere.
    let except = wire.except.filter(|_| wire.origin == shared.origin);
    shared.node.event(Event {
        room: Arc::from(room),
        except,
        except_user: wire.except_user.map(Arc::from),
        frame: Frame::from(wire.frame),
        directive: wire.directive,
    });
}
