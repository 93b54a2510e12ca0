//! The cluster broker: fan-out across instances through Redis (`--redis`).
//!
//! It owns two background tasks and the per-room delivery positions of this instance:
//! - the **stream reader** delivers chat messages. Messages are never published: the
//!   [`RedisStore`](crate::store::RedisStore) appends each one to its room's stream
//!   (`huddle:room:{room}:log`, entry id `<offset>-1`), and this task reads the streams
//!   of every room with local members (one `XREAD BLOCK` over all of them) from the last
//!   offset it delivered per room. Stream order is offset order, so every member on every
//!   instance sees one order; the stream is the only path, so nothing arrives twice (the
//!   instance's own messages come back through it too); and after a Redis reconnect the
//!   reader resumes from its positions, so nothing is skipped while the data survives.
//! - the **event subscriber** delivers notifications, presence and typing (offset 0),
//!   which are not history: they go through Redis pub/sub on `huddle:room:{room}:events`
//!   as `{origin, except, frame}`, `except` applying only on the instance that sent them.
//!   It keeps one SUBSCRIBE per room with local members and resubscribes after a
//!   reconnect.
//!
//! - the **presence keeper** refreshes this instance's heartbeat and sweeps instances
//!   whose heartbeat expired, announcing their members as left (see [`super::presence`]
//!   for the keys); member lists (`joined.nicks`, `presence`) are the union over the live
//!   instances.
//!
//! Nicks are unique across the cluster: a claim in Redis (see [`super::claims`]) follows
//! the local one, and a session reclaimed on another instance is closed here with 4001
//! when that instance's control message arrives (the event subscriber also listens on
//! this instance's control channel).
//!
//! The tasks stop when [`RedisBrokerTasks::shutdown`] is called.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::{CloseCode, NotificationKind, ServerMsg};
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig, Client};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::claims::{control_channel, Claimed, Claims, Evict};
use super::presence::{Presence, HEARTBEAT};
use super::{Broker, BrokerError, ClaimError, Envelope};
use crate::codec::{self, Frame};
use crate::hub::Hub;
use crate::logsafe::Escaped;
use crate::nicks::Nicks;
use crate::session::outbox::ConnId;
use crate::store::redis::{entry_to_message, fresh_epoch, log_key, seq_key, EPOCH_KEY};

/// How long one `XREAD` waits for new entries. Also the longest a newly subscribed room
/// waits before the reader includes it, so it is short.
const READ_BLOCK: Duration = Duration::from_millis(200);
/// Most entries taken from one room's stream per read: bounds one reply's size while a
/// busy room catches up.
const READ_COUNT: usize = 512;
/// How long `subscribe` waits for the event subscriber to confirm the room's SUBSCRIBE.
/// Past it the join goes on: the subscriber keeps trying and events are best-effort.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);
/// How often the event subscriber pings Redis to notice a connection that died silently.
const PUBSUB_PING: Duration = Duration::from_secs(2);
/// Reconnect backoff bounds for both tasks.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Connecting and answering limits for commands other than the blocking read.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

fn events_channel(room: &str) -> String {
    format!("huddle:room:{room}:events")
}

/// The room of an events channel name.
fn room_of_channel(channel: &str) -> Option<&str> {
    channel
        .strip_prefix("huddle:room:")?
        .strip_suffix(":events")
}

/// The room of a stream key.
fn room_of_log(key: &str) -> Option<&str> {
    key.strip_prefix("huddle:room:")?.strip_suffix(":log")
}

/// An event on the wire between instances (`frame` borrowed when sending).
#[derive(Serialize, Deserialize)]
struct EventWire<S> {
    /// The publishing instance.
    origin: S,
    /// The connection (on `origin`) that must not receive it.
    except: Option<ConnId>,
    /// The encoded server frame.
    frame: S,
}

/// Fan-out through Redis; see the module docs.
pub struct RedisBroker {
    inner: Arc<Inner>,
    /// Commands that do not block: reading a room's seq, PUBLISH.
    conn: ConnectionManager,
}

/// Stops the broker's tasks; returned by [`RedisBroker::start`].
pub struct RedisBrokerTasks {
    cancel: CancellationToken,
    handles: Vec<JoinHandle<()>>,
}

struct Inner {
    /// Random per process: tells this instance's events from other instances'.
    id: String,
    hub: Hub,
    client: Client,
    /// Room → last offset delivered here (or the room's seq when it was subscribed).
    /// A std mutex: held only for map updates and `hub.deliver`, never across `.await`.
    rooms: Mutex<HashMap<Arc<str>, u64>>,
    /// Bumped with every change of `rooms`' key set; the event subscriber reports the
    /// generation it has subscribed to through `synced`.
    generation: AtomicU64,
    changed: Notify,
    synced: watch::Sender<u64>,
    presence: Presence,
    /// This instance's nicks, to close the holders of sessions reclaimed elsewhere.
    nicks: Nicks,
    claims: Claims,
}

impl RedisBroker {
    /// Connects to Redis at `url` and starts the reader and subscriber tasks. Fails when
    /// Redis cannot be reached now.
    pub async fn start(
        url: &str,
        hub: Hub,
        nicks: Nicks,
    ) -> Result<(RedisBroker, RedisBrokerTasks), BrokerError> {
        let unavailable = |e: redis::RedisError| BrokerError::Unavailable(e.to_string());
        let client = Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(BACKOFF_MAX);
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(unavailable)?;
        let (synced, _) = watch::channel(0);
        let id = format!("{:016x}", rand::random::<u64>());
        let presence = Presence::new(id.clone());
        // Registered before the first member can join, so its entries count at once.
        presence
            .beat(&mut conn.clone())
            .await
            .map_err(unavailable)?;
        let inner = Arc::new(Inner {
            claims: Claims::new(id.clone()),
            nicks,
            id,
            presence,
            hub,
            client,
            rooms: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            changed: Notify::new(),
            synced,
        });
        let cancel = CancellationToken::new();
        let handles = vec![
            tokio::spawn(read_streams(Arc::clone(&inner), cancel.clone())),
            tokio::spawn(subscribe_events(Arc::clone(&inner), cancel.clone())),
            tokio::spawn(keep_presence(
                Arc::clone(&inner),
                conn.clone(),
                cancel.clone(),
            )),
        ];
        Ok((
            RedisBroker { inner, conn },
            RedisBrokerTasks { cancel, handles },
        ))
    }
}

impl RedisBrokerTasks {
    /// Stops both tasks and waits for them.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        for handle in self.handles {
            if let Err(e) = handle.await {
                tracing::error!(error = %e, "redis broker task failed");
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, u64>> {
        // The map stays consistent whatever panicked while it was held.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a change of the room set and wakes the event subscriber.
    fn bump(&self) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.changed.notify_one();
        generation
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, env: Envelope) -> Result<(), BrokerError> {
        if env.offset > 0 {
            // Chat messages reach every instance through the room's stream; see
            // `delivers_stored_messages`.
            return Ok(());
        }
        publish_event(&self.inner.id, &mut self.conn.clone(), &env).await
    }

    /// Idempotent and cheap once the room is subscribed: call it for every join, so that
    /// every joiner reads the room's head only after the reader has a position at or
    /// below it (messages after the position reach every local member).
    async fn subscribe(&self, room: &str) -> Result<(), BrokerError> {
        if self.inner.lock().contains_key(room) {
            return Ok(());
        }
        // Start from the room's seq as it is now; the joiner reads the head afterwards,
        // so anything it does not get from the store it gets from the stream.
        let mut conn = self.conn.clone();
        let seq: Option<u64> = conn
            .get(seq_key(room))
            .await
            .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
        let generation = {
            let mut rooms = self.inner.lock();
            // A leave may have emptied the room while the seq was read.
            if rooms.contains_key(room) || self.inner.hub.member_count(room) == 0 {
                return Ok(());
            }
            rooms.insert(Arc::from(room), seq.unwrap_or(0));
            self.inner.bump()
        };
        let mut synced = self.inner.synced.subscribe();
        let confirmed = synced.wait_for(|&g| g >= generation);
        if tokio::time::timeout(SUBSCRIBE_WAIT, confirmed)
            .await
            .is_err()
        {
            tracing::warn!(room = %Escaped(room), "events subscription not confirmed yet; continuing");
        }
        Ok(())
    }

    async fn unsubscribe(&self, room: &str) -> Result<(), BrokerError> {
        let mut rooms = self.inner.lock();
        // A join may have refilled the room since its last member left.
        if self.inner.hub.member_count(room) == 0 && rooms.remove(room).is_some() {
            self.inner.bump();
        }
        Ok(())
    }

    fn delivers_stored_messages(&self) -> bool {
        true
    }

    async fn member_joined(&self, room: &str, conn: ConnId, nick: &str) {
        let mut redis = self.conn.clone();
        if let Err(e) = self
            .inner
            .presence
            .register(&mut redis, room, conn, nick)
            .await
        {
            // Best-effort: the next re-registration (after the heartbeat finds this
            // instance unknown) or the member's next join records it.
            tracing::warn!(room = %Escaped(room), error = %e, "member not recorded in redis");
        }
    }

    async fn member_left(&self, room: &str, conn: ConnId) {
        let mut redis = self.conn.clone();
        if let Err(e) = self.inner.presence.unregister(&mut redis, room, conn).await {
            tracing::warn!(room = %Escaped(room), error = %e, "member not removed from redis");
        }
    }

    async fn claim_nick(&self, key: &str, session: &str, conn: ConnId) -> Result<(), ClaimError> {
        let mut redis = self.conn.clone();
        let claims = &self.inner.claims;
        let unavailable = |e: redis::RedisError| ClaimError::Unavailable(e.to_string());
        let mut claimed = claims
            .claim(&mut redis, key, session, conn, false)
            .await
            .map_err(unavailable)?;
        if let Claimed::Taken {
            instance,
            conn: holder,
        } = &claimed
        {
            // Held by a connection of this instance that is gone: its release never
            // reached Redis (an outage), so the entry is stale.
            if *instance == self.inner.id && !self.inner.nicks.holds(key, *holder) {
                claimed = claims
                    .claim(&mut redis, key, session, conn, true)
                    .await
                    .map_err(unavailable)?;
            }
        }
        match claimed {
            Claimed::Free => Ok(()),
            Claimed::Taken { .. } => Err(ClaimError::Taken),
            Claimed::Replaced {
                instance,
                conn: old,
            } => {
                if instance == self.inner.id {
                    // The local claim closed it already, unless it was gone.
                    self.inner.nicks.evict(key, old);
                } else if let Err(e) = claims.evict(&mut redis, &instance, old, key).await {
                    // The old connection stays open until it drops by itself; it has the
                    // same session, so it is the same person.
                    tracing::warn!(nick = %Escaped(key), error = %e, "reclaimed session's old connection not told to close");
                }
                Ok(())
            }
        }
    }

    async fn release_nick(&self, key: &str, conn: ConnId) {
        let mut redis = self.conn.clone();
        if let Err(e) = self.inner.claims.release(&mut redis, key, conn).await {
            // The next claim of this nick sees the entry names a connection this
            // instance no longer has, and overrides it.
            tracing::warn!(nick = %Escaped(key), error = %e, "nick not released in redis");
        }
    }

    async fn members(&self, room: &str, local: Vec<String>) -> Vec<String> {
        let mut redis = self.conn.clone();
        match self.inner.presence.members(&mut redis, room).await {
            Ok(mut all) => {
                // The local ones too: they are current even when Redis lags behind.
                all.extend(local);
                all.sort();
                all.dedup();
                all
            }
            Err(e) => {
                tracing::warn!(room = %Escaped(room), error = %e, "cluster member list unavailable; sending this instance's");
                local
            }
        }
    }
}

/// Publishes an event on its room's channel, as coming from instance `origin`.
async fn publish_event(
    origin: &str,
    conn: &mut ConnectionManager,
    env: &Envelope,
) -> Result<(), BrokerError> {
    let payload = serde_json::to_string(&EventWire {
        origin,
        except: env.except,
        frame: env.frame.as_str(),
    })
    .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
    conn.publish::<_, _, ()>(events_channel(&env.room), payload)
        .await
        .map_err(|e| BrokerError::Unavailable(e.to_string()))
}

/// The presence keeper task; see the module docs and [`super::presence`].
async fn keep_presence(inner: Arc<Inner>, mut conn: ConnectionManager, cancel: CancellationToken) {
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = beat.tick() => {}
        }
        let result = tokio::select! {
            () = cancel.cancelled() => break,
            result = presence_round(&inner, &mut conn) => result,
        };
        match result {
            Ok(()) if failing => {
                tracing::info!("presence keeper reaches redis again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                tracing::warn!(error = %e, "presence keeper cannot reach redis; retrying");
                failing = true;
            }
            Err(_) => {}
        }
    }
    // Others sweep at once instead of waiting for the heartbeat to expire.
    let stop = inner.presence.stop(&mut conn);
    if !matches!(
        tokio::time::timeout(RESPONSE_TIMEOUT, stop).await,
        Ok(Ok(()))
    ) {
        tracing::warn!("heartbeat not removed at shutdown; it expires on its own");
    }
}

/// One heartbeat: refresh, re-register if Redis forgot this instance, sweep the dead.
async fn presence_round(inner: &Inner, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
    if inner.presence.beat(conn).await? {
        for (room, member, nick) in inner.hub.memberships() {
            inner.presence.register(conn, &room, member, &nick).await?;
        }
        for (key, member, session) in inner.nicks.holders() {
            let claimed = inner
                .claims
                .claim(conn, &key, &session, member, false)
                .await?;
            if let Claimed::Taken { .. } = claimed {
                // Someone else took the nick while Redis had forgotten this holder: one
                // of the two must go, and the other got it first.
                tracing::warn!(nick = %Escaped(&key), "nick taken elsewhere while redis was lost; closing the local holder");
                inner.nicks.evict(&key, member);
            }
        }
    }
    for (room, nicks) in inner.presence.sweep(conn).await? {
        let room: Arc<str> = Arc::from(room);
        for nick in nicks {
            let note = ServerMsg::Notification {
                room: room.to_string(),
                kind: NotificationKind::Left,
                text: format!("{nick} left"),
                nick: Some(nick),
                ts: now_ms(),
            };
            send_event(inner, conn, &room, &note).await;
        }
        let mut nicks = inner.presence.members(conn, &room).await?;
        nicks.sort();
        nicks.dedup();
        let list = ServerMsg::Presence {
            room: room.to_string(),
            nicks,
        };
        send_event(inner, conn, &room, &list).await;
    }
    Ok(())
}

/// Publishes an event of this instance to a room on every instance; failures are logged
/// (events are best-effort).
async fn send_event(inner: &Inner, conn: &mut ConnectionManager, room: &Arc<str>, msg: &ServerMsg) {
    let env = Envelope {
        room: Arc::clone(room),
        offset: 0,
        except: None,
        frame: codec::encode(msg),
    };
    if let Err(e) = publish_event(&inner.id, conn, &env).await {
        tracing::warn!(room = %Escaped(room), error = %e, "event not published");
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Reconnect bookkeeping for a task: the wait doubles while connections fail (or fail
/// again right after connecting) and starts over once one lasted; one warning per
/// outage, so a long one does not flood the log.
struct Retry {
    what: &'static str,
    backoff: Duration,
    since: Option<Instant>,
    failing: bool,
}

impl Retry {
    fn new(what: &'static str) -> Self {
        Retry {
            what,
            backoff: BACKOFF_MIN,
            since: None,
            failing: false,
        }
    }

    fn connected(&mut self) {
        if self.failing {
            tracing::info!(task = self.what, "reconnected to redis");
        }
        self.since = Some(Instant::now());
    }

    /// Records a failure and returns how long to wait before the next attempt.
    fn failed(&mut self, error: &str) -> Duration {
        if self
            .since
            .take()
            .is_some_and(|t| t.elapsed() >= BACKOFF_MAX)
        {
            self.backoff = BACKOFF_MIN;
            self.failing = false;
        }
        if !self.failing {
            tracing::warn!(
                task = self.what,
                error,
                "lost the redis connection; retrying"
            );
            self.failing = true;
        }
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        wait
    }
}

/// Sleeps unless cancelled; false when cancelled.
async fn pause(cancel: &CancellationToken, wait: Duration) -> bool {
    tokio::select! {
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}

/// The stream reader task; see the module docs.
async fn read_streams(inner: Arc<Inner>, cancel: CancellationToken) {
    let mut retry = Retry::new("redis stream reader");
    let mut epoch: Option<String> = None;
    while !cancel.is_cancelled() {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(READ_BLOCK + RESPONSE_TIMEOUT));
        let conn = inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await;
        let result = match conn {
            Ok(mut conn) => {
                retry.connected();
                read_loop(&inner, &mut conn, &mut epoch, &cancel).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            if !pause(&cancel, retry.failed(&e.to_string())).await {
                break;
            }
        }
    }
}

/// Reads and delivers until cancelled (`Ok`) or a Redis error (`Err`).
async fn read_loop(
    inner: &Inner,
    conn: &mut MultiplexedConnection,
    epoch: &mut Option<String>,
    cancel: &CancellationToken,
) -> redis::RedisResult<()> {
    let options = StreamReadOptions::default()
        .block(READ_BLOCK.as_millis() as usize)
        .count(READ_COUNT);
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        // A different epoch means Redis lost its data: offsets start over, so positions
        // from the old history would skip the new one's first messages, and so would the
        // sessions, which drop offsets they think they have. Created here when missing,
        // exactly as the store does, so a loss is seen once.
        let (now,): (String,) = redis::pipe()
            .atomic()
            .set_nx(EPOCH_KEY, fresh_epoch())
            .ignore()
            .get(EPOCH_KEY)
            .query_async(conn)
            .await?;
        if epoch.as_ref().is_some_and(|e| *e != now) {
            tracing::warn!("redis history epoch changed; closing members so they reload");
            let mut rooms = inner.lock();
            for (room, position) in rooms.iter_mut() {
                *position = 0;
                // 1001: reconnect; the rejoin's old epoch gets `recovered: false`.
                inner.hub.close_room(room, CloseCode::GoingAway);
            }
        }
        *epoch = Some(now);
        let (keys, ids): (Vec<String>, Vec<String>) = inner
            .lock()
            .iter()
            .map(|(room, last)| (log_key(room), format!("{last}-1")))
            .unzip();
        if keys.is_empty() {
            if !pause(cancel, READ_BLOCK).await {
                return Ok(());
            }
            continue;
        }
        let reply: Option<StreamReadReply> = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            reply = conn.xread_options(&keys, &ids, &options) => reply?,
        };
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(room) = room_of_log(&stream.key) else {
                continue;
            };
            deliver_entries(inner, room, &stream.ids);
        }
    }
}

/// Hands a room's new stream entries to the hub, each encoded once, in order.
fn deliver_entries(inner: &Inner, room: &str, entries: &[StreamId]) {
    let room: Arc<str> = Arc::from(room);
    let mut rooms = inner.lock();
    // Unsubscribed while the read was in flight: nobody here to deliver to.
    let Some(position) = rooms.get_mut(&room) else {
        return;
    };
    for entry in entries {
        let msg = match entry_to_message(&room, entry) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::error!(room = %Escaped(&room), error = %e, "unreadable stream entry skipped");
                continue;
            }
        };
        // Resubscribed (or reset) while the read was in flight: already delivered.
        if msg.offset <= *position {
            continue;
        }
        if *position > 0 && msg.offset > *position + 1 {
            // The stream was trimmed (`--history-max`) past what this instance had read:
            // its members would silently miss messages. Like an overflowing outbox,
            // 4008 makes them resume with `since`, which tells them what is gone.
            tracing::warn!(room = %Escaped(&room), from = *position + 1, to = msg.offset - 1, "fell behind the trimmed stream; closing members with 4008");
            inner.hub.close_room(&room, CloseCode::SlowConsumer);
        }
        *position = msg.offset;
        inner.hub.deliver(&Envelope {
            room: Arc::clone(&room),
            offset: msg.offset,
            except: None,
            frame: codec::encode(&ServerMsg::Message(msg)),
        });
    }
}

/// The event subscriber task; see the module docs.
async fn subscribe_events(inner: Arc<Inner>, cancel: CancellationToken) {
    let mut retry = Retry::new("redis event subscriber");
    while !cancel.is_cancelled() {
        let connected =
            tokio::time::timeout(CONNECT_TIMEOUT, inner.client.get_async_pubsub()).await;
        let result = match connected {
            Ok(Ok(pubsub)) => {
                retry.connected();
                event_loop(&inner, pubsub, &cancel).await
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
    inner: &Inner,
    pubsub: redis::aio::PubSub,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let (mut sink, mut stream) = pubsub.split();
    let control = control_channel(&inner.id);
    sink.subscribe(&control).await.map_err(|e| e.to_string())?;
    // A fresh connection has no subscriptions: the first sync subscribes every room.
    let mut subscribed: HashSet<Arc<str>> = HashSet::new();
    let mut ping = tokio::time::interval(PUBSUB_PING);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = true;
    loop {
        if dirty {
            dirty = false;
            let (generation, wanted): (u64, HashSet<Arc<str>>) = {
                let rooms = inner.lock();
                // Read under the lock that guards every bump, so the set matches it.
                (
                    inner.generation.load(Ordering::Relaxed),
                    rooms.keys().cloned().collect(),
                )
            };
            let add: Vec<String> = wanted
                .difference(&subscribed)
                .map(|r| events_channel(r))
                .collect();
            let drop: Vec<String> = subscribed
                .difference(&wanted)
                .map(|r| events_channel(r))
                .collect();
            if !add.is_empty() {
                sink.subscribe(&add).await.map_err(|e| e.to_string())?;
            }
            if !drop.is_empty() {
                sink.unsubscribe(&drop).await.map_err(|e| e.to_string())?;
            }
            subscribed = wanted;
            inner.synced.send_replace(generation);
        }
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            () = inner.changed.notified() => dirty = true,
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
                if msg.get_channel_name() == control {
                    obey_control(inner, msg.get_payload_bytes());
                } else {
                    deliver_event(inner, msg.get_channel_name(), msg.get_payload_bytes());
                }
            }
        }
    }
}

/// Acts on a control message addressed to this instance.
fn obey_control(inner: &Inner, payload: &[u8]) {
    match serde_json::from_slice::<Evict>(payload) {
        Ok(Evict { evict, nick }) => {
            if inner.nicks.evict(&nick, evict) {
                tracing::info!(nick = %Escaped(&nick), conn = evict, "session reclaimed on another instance; closing with 4001");
            }
        }
        Err(_) => tracing::warn!("unreadable control message skipped"),
    }
}

/// Hands one event from another (or this) instance to the local members.
fn deliver_event(inner: &Inner, channel: &str, payload: &[u8]) {
    let Some(room) = room_of_channel(channel) else {
        return;
    };
    // Owned strings: the frame is JSON inside JSON, so it arrives escaped.
    let Ok(wire) = serde_json::from_slice::<EventWire<String>>(payload) else {
        tracing::warn!(room = %Escaped(room), "unreadable event skipped");
        return;
    };
    // Connection ids are per instance: `except` means nothing elsewhere.
    let except = wire.except.filter(|_| wire.origin == inner.id);
    inner.hub.deliver(&Envelope {
        room: Arc::from(room),
        offset: 0,
        except,
        frame: Frame::from(wire.frame),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_round_trip() {
        assert_eq!(room_of_log(&log_key("a-b_1")), Some("a-b_1"));
        assert_eq!(room_of_channel(&events_channel("lobby")), Some("lobby"));
        assert_eq!(room_of_channel("huddle:room:x:log"), None);
    }

    #[test]
    fn backoff_grows_while_connections_die_at_once() {
        let mut retry = Retry::new("test");
        assert_eq!(retry.failed("down"), BACKOFF_MIN);
        for _ in 0..20 {
            retry.connected();
            retry.failed("died again");
        }
        assert_eq!(retry.failed("down"), BACKOFF_MAX);
    }
}
