//! Room membership as a service: joining, departing, publishing a room event, and
//! announcing comings and goings. Sessions, the notifications API and the cluster sweep
//! all go through it, so each rule is written once: the hub, the broker subscription and
//! the cluster's member lists change together; who hears about a change (a user's first
//! connection in a room, and their last, after the grace period when they only
//! disconnected); the text of a `joined`/`left` notice; and when a room is a crowd that
//! is not told. It also reaches users rather than rooms: every connection of a user is
//! subscribed to the user's own channel ([`user_channel`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use common::{NotificationKind, ServerMsg};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::broker::{stream_channel, user_channel, Broker, BrokerError, Directive, Event};
use crate::clock::now_ms;
use crate::codec::{self, Frame};
use crate::hub::{Change, Hub};
use crate::identity::Identity;
use crate::logsafe::{Chain, Escaped};
use crate::metrics::{Broadcast, Metrics};
use crate::presence::{Departed, Presence};
use crate::session::outbox::{ConnId, Outbox};

/// A member coming or going, as the others are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Passage {
    Joined,
    Left,
}

/// Whether the other members hear of a departure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Farewell {
    /// `left` notice and a new member list, now (the user left on purpose).
    Announce,
    /// The same after the grace period, unless the user is back by then (they only
    /// disconnected: a reload shows nothing).
    Later,
    /// Nothing: the server is stopping (everyone is leaving), or the join is undone
    /// before it was announced.
    Quiet,
}

/// Departures waiting for their grace period to end, at most this many; beyond it they
/// are announced at once.
const FAREWELL_QUEUE: usize = 4096;

/// (room, user).
type Departure = (Arc<str>, Arc<str>);

/// A departure announced when the grace period ends, unless the user is back.
struct Pending {
    nick: Arc<str>,
    due: Instant,
}

/// Joins, departures and room events; see the module docs. Cheap to share (`Arc`).
pub(crate) struct Membership {
    hub: Hub,
    broker: Arc<dyn Broker>,
    presence: Arc<dyn Presence>,
    /// `--announce-limit`: above it a room is a crowd.
    announce_limit: u64,
    /// `--presence-grace`.
    grace: Duration,
    /// The departures to announce when their grace ends.
    pending: Mutex<HashMap<Departure, Pending>>,
    farewells: mpsc::Sender<(Arc<str>, Arc<str>, Instant)>,
    metrics: Metrics,
}

/// The departures [`Membership`] queued for after their grace, for [`send_farewells`].
pub(crate) struct Farewells(mpsc::Receiver<(Arc<str>, Arc<str>, Instant)>);

impl Membership {
    pub(crate) fn new(
        hub: Hub,
        broker: Arc<dyn Broker>,
        presence: Arc<dyn Presence>,
        announce_limit: u64,
        grace: Duration,
        metrics: Metrics,
    ) -> (Self, Farewells) {
        let (farewells, queued) = mpsc::channel(FAREWELL_QUEUE);
        let membership = Membership {
            hub,
            broker,
            presence,
            announce_limit,
            grace,
            pending: Mutex::default(),
            farewells,
            metrics,
        };
        (membership, Farewells(queued))
    }

    /// Subscribes connection `conn` of `who` to the user's own channel, which reaches
    /// every connection of theirs on every node ([`Membership::tell_user`]).
    pub(crate) async fn join_user(
        &self,
        conn: ConnId,
        who: &Identity,
        outbox: &Outbox,
    ) -> Result<(), BrokerError> {
        let channel = user_channel(&who.user);
        self.join_channel(&channel, conn, &who.user, &who.nick, outbox)
            .await
    }

    /// Undoes [`Membership::join_user`].
    pub(crate) async fn leave_user(&self, conn: ConnId, who: &Identity) {
        self.leave_channel(&user_channel(&who.user), conn).await;
    }

    /// Subscribes connection `conn`, SSE stream `id`, to the stream's own channel, where
    /// its POSTs arrive from any node ([`Membership::post_to_stream`]).
    pub(crate) async fn join_stream(
        &self,
        conn: ConnId,
        id: &str,
        outbox: &Outbox,
    ) -> Result<(), BrokerError> {
        let nobody: Arc<str> = Arc::from("");
        self.join_channel(&stream_channel(id), conn, &nobody, &nobody, outbox)
            .await
    }

    /// Undoes [`Membership::join_stream`].
    pub(crate) async fn leave_stream(&self, conn: ConnId, id: &str) {
        self.leave_channel(&stream_channel(id), conn).await;
    }

    /// Adds `conn` to a channel's hub room, subscribing this node to it if it is the
    /// first there; undone if the subscription fails.
    async fn join_channel(
        &self,
        channel: &Arc<str>,
        conn: ConnId,
        user: &Arc<str>,
        nick: &Arc<str>,
        outbox: &Outbox,
    ) -> Result<(), BrokerError> {
        let change = self
            .hub
            .join(channel, conn, user, Arc::clone(nick), outbox.clone());
        if change.is_some() {
            if let Err(e) = self.broker.subscribe(channel).await {
                self.leave_channel(channel, conn).await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Removes `conn` from a channel's hub room, unsubscribing this node if it was the
    /// last there.
    async fn leave_channel(&self, channel: &Arc<str>, conn: ConnId) {
        if let Some(change) = self.hub.leave(channel, conn) {
            if change.edge {
                self.broker.unsubscribe(channel).await;
            }
        }
    }

    /// Hands `directive` to the session of SSE stream `id`, on whichever node holds
    /// it; `false` when no node does (the stream ended, or never was).
    pub(crate) async fn post_to_stream(
        &self,
        id: &str,
        directive: Directive,
    ) -> Result<bool, BrokerError> {
        let event = Event {
            room: stream_channel(id),
            except: None,
            except_user: None,
            frame: Frame::default(),
            directive: Some(directive),
        };
        self.broker.publish_heard(event).await
    }

    /// Sends `msg` (and `directive`) to every connection of `user` but `except`.
    pub(crate) async fn tell_user(
        &self,
        user: &str,
        except: Option<ConnId>,
        msg: Option<&ServerMsg>,
        directive: Option<Directive>,
    ) {
        let channel = user_channel(user);
        let event = Event {
            room: Arc::clone(&channel),
            except,
            except_user: None,
            frame: msg.map(codec::encode).unwrap_or_default(),
            directive,
        };
        if let Err(e) = self.broker.publish(event).await {
            tracing::warn!(error = %Chain(&e), "event for a user not published");
        }
    }

    /// Adds connection `conn` (`who`, receiving through `outbox`) to `room` here and in
    /// the cluster's lists. `None` when it was a member already. When this returns, every
    /// message stored from now on reaches the outbox, so the caller reads the room's head
    /// afterwards. The join is announced separately ([`Membership::announce`]), after
    /// the joiner has its answer.
    pub(crate) async fn join(
        &self,
        room: &Arc<str>,
        conn: ConnId,
        who: &Identity,
        outbox: &Outbox,
    ) -> Result<Option<Change>, BrokerError> {
        let Some(mut change) =
            self.hub
                .join(room, conn, &who.user, Arc::clone(&who.nick), outbox.clone())
        else {
            return Ok(None);
        };
        if let Err(e) = self.broker.subscribe(room).await {
            self.depart(room, conn, who, Farewell::Quiet).await;
            return Err(e);
        }
        self.presence.joined(room, conn, &who.user, &who.nick).await;
        // Back within the grace, the others never heard they left, so they need not
        // hear they came; nor when they are in the room on another instance already.
        if change.user_edge
            && (self.back_in_time(room, &who.user)
                || self.presence.elsewhere(room, &who.user).await)
        {
            change.user_edge = false;
        }
        Ok(Some(change))
    }

    /// Takes back a departure of `user` from `room` still in its grace; true if there
    /// was one.
    fn back_in_time(&self, room: &Arc<str>, user: &Arc<str>) -> bool {
        crate::locks::lock(&self.pending)
            .remove(&(Arc::clone(room), Arc::clone(user)))
            .is_some()
    }

    /// Removes connection `conn` from `room`: the one place a member departs, whether it
    /// left, disconnected, or its join is undone. False when it was not a member.
    pub(crate) async fn depart(
        &self,
        room: &Arc<str>,
        conn: ConnId,
        who: &Identity,
        farewell: Farewell,
    ) -> bool {
        let Some(change) = self.hub.leave(room, conn) else {
            return false;
        };
        self.presence.left(room, conn, &who.user).await;
        let edge = change.edge;
        if change.user_edge && !self.presence.elsewhere(room, &who.user).await {
            match farewell {
                Farewell::Later if !self.grace.is_zero() => self.later(room, who),
                Farewell::Announce | Farewell::Later => {
                    self.announce(room, who, Passage::Left, change).await;
                }
                Farewell::Quiet => {}
            }
        }
        if edge {
            self.broker.unsubscribe(room).await;
        }
        true
    }

    /// Queues `who`'s departure from `room` for when the grace period ends.
    fn later(&self, room: &Arc<str>, who: &Identity) {
        let due = Instant::now() + self.grace;
        let key = (Arc::clone(room), Arc::clone(&who.user));
        let nick = Arc::clone(&who.nick);
        crate::locks::lock(&self.pending).insert(key, Pending { nick, due });
        if self
            .farewells
            .try_send((Arc::clone(room), Arc::clone(&who.user), due))
            .is_err()
        {
            // A flood of departures: the map still has it, and the next one queued for
            // this room and user finds it; without one it stays until the user is back.
            // Bounded by the users there were, so it cannot grow without end.
            tracing::warn!("departure queue full; a left notice may be late");
        }
    }

    /// Announces a departure whose grace ended, unless the user came back meanwhile.
    async fn farewell_due(&self, room: Arc<str>, user: Arc<str>, due: Instant) {
        let key = (Arc::clone(&room), Arc::clone(&user));
        let nick = {
            let mut pending = crate::locks::lock(&self.pending);
            match pending.get(&key) {
                Some(p) if p.due <= due => pending.remove(&key).map(|p| p.nick),
                _ => None,
            }
        };
        let Some(nick) = nick else {
            return;
        };
        if self.hub.has_user(&room, &user) || self.presence.elsewhere(&room, &user).await {
            return;
        }
        self.announce_gone(&room, &user, &nick).await;
    }

    /// The room's nicks on every node: `local` (the hub's list at a change), or the
    /// hub's list now.
    pub(crate) async fn members(&self, room: &str, local: Option<Vec<String>>) -> Vec<String> {
        let local = local.unwrap_or_else(|| self.hub.nicks(room));
        self.presence.members(room, local).await
    }

    /// Whether a connection of `user`, on any node, is subscribed to `room`.
    pub(crate) async fn user_in(&self, room: &str, user: &str) -> bool {
        self.hub.has_user(room, user) || self.presence.elsewhere(room, user).await
    }

    /// Members here now (what an API caller is told its notification reached).
    pub(crate) fn local_count(&self, room: &str) -> u64 {
        self.hub.member_count(room)
    }

    /// How many users are in `room` on this instance (each however many connections
    /// they have there).
    pub(crate) fn local_users(&self, room: &str) -> u64 {
        self.hub.user_count(room)
    }

    /// Tells a room's other members that `who` joined or left, and who is there now:
    /// the list as of the change's version, then newer lists until the room stops
    /// changing (see [`Hub::presence`]), so concurrent joins and leaves cannot leave the
    /// members with a stale list. Each extra round follows someone else's change, so
    /// this ends when the churn does. Only a user's first connection in, or last out,
    /// is news.
    pub(crate) async fn announce(
        &self,
        room: &Arc<str>,
        who: &Identity,
        passage: Passage,
        change: Change,
    ) {
        if !change.user_edge {
            return;
        }
        // A crowd: see `Config::announce_limit`. This node's count is cheap (its
        // connections bound its users, so the users are counted only past the limit);
        // across a cluster the room may be a crowd only with the other nodes' members.
        if self.hub.member_count(room) > self.announce_limit
            && self.hub.user_count(room) > self.announce_limit
        {
            return;
        }
        let mut all = self.members(room, Some(change.nicks)).await;
        if all.len() as u64 > self.announce_limit {
            return;
        }
        let actor = Some(&who.user);
        self.publish_quietly(room, actor, &notice(room, passage, &who.nick))
            .await;
        let mut version = change.version;
        loop {
            let list = ServerMsg::Presence {
                room: room.to_string(),
                nicks: all,
            };
            self.publish_quietly(room, actor, &list).await;
            match self.hub.presence(room, version) {
                Some((newer, nicks)) => {
                    version = newer;
                    all = self.members(room, Some(nicks)).await;
                }
                None => break,
            }
        }
    }

    /// Announces that `user` (`nick`) left `room` after their grace ended.
    async fn announce_gone(&self, room: &Arc<str>, user: &Arc<str>, nick: &str) {
        let all = self.members(room, None).await;
        if all.len() as u64 > self.announce_limit {
            return;
        }
        let actor = Some(user);
        self.publish_quietly(room, actor, &notice(room, Passage::Left, nick))
            .await;
        let list = ServerMsg::Presence {
            room: room.to_string(),
            nicks: all,
        };
        self.publish_quietly(room, actor, &list).await;
    }

    /// Announces the members of a dead instance as left, with the room's list after.
    async fn announce_departed(&self, departed: Departed) {
        let room: Arc<str> = Arc::from(departed.room);
        let all = self.members(&room, None).await;
        if (all.len() + departed.nicks.len()) as u64 > self.announce_limit {
            return;
        }
        for nick in departed.nicks {
            let note = notice(&room, Passage::Left, &nick);
            self.publish_quietly(&room, None, &note).await;
        }
        let list = ServerMsg::Presence {
            room: room.to_string(),
            nicks: all,
        };
        self.publish_quietly(&room, None, &list).await;
    }

    /// Publishes an event to the room's members on every node, except the
    /// connections of user `except` (the actor).
    pub(crate) async fn publish(
        &self,
        room: &Arc<str>,
        except: Option<&Arc<str>>,
        msg: &ServerMsg,
    ) -> Result<(), BrokerError> {
        let event = Event::to_room(room, except, codec::encode(msg));
        self.broker.publish(event).await?;
        self.metrics.broadcast(Broadcast::Event);
        Ok(())
    }

    /// [`Membership::publish`] for events that are best-effort: a failure is logged.
    pub(crate) async fn publish_quietly(
        &self,
        room: &Arc<str>,
        except: Option<&Arc<str>>,
        msg: &ServerMsg,
    ) {
        if let Err(e) = self.publish(room, except, msg).await {
            tracing::warn!(room = %Escaped(room), error = %Chain(&e), "event not published");
        }
    }
}

/// The notice that `nick` joined or left `room`.
fn notice(room: &str, passage: Passage, nick: &str) -> ServerMsg {
    let (kind, text) = match passage {
        Passage::Joined => (NotificationKind::Joined, format!("{nick} joined")),
        Passage::Left => (NotificationKind::Left, format!("{nick} left")),
    };
    ServerMsg::Notification {
        room: room.to_owned(),
        kind,
        text,
        nick: Some(nick.to_owned()),
        ts: now_ms(),
        offset: None,
    }
}

/// Announces departures whose grace ended, until the membership is gone (the server
/// stopped: its departures need no announcing).
pub(crate) async fn send_farewells(membership: Weak<Membership>, queued: Farewells) {
    let Farewells(mut queued) = queued;
    // Every departure waits the same grace, so they fall due in queue order.
    while let Some((room, user, due)) = queued.recv().await {
        tokio::time::sleep_until(due).await;
        let Some(membership) = membership.upgrade() else {
            return;
        };
        membership.farewell_due(room, user, due).await;
    }
}

/// Announces the departures the instance sweep reports, until its sender is dropped
/// (the keeper stopped).
pub(crate) async fn announce_departures(
    membership: Arc<Membership>,
    mut departed: mpsc::Receiver<Departed>,
) {
    while let Some(d) = departed.recv().await {
        membership.announce_departed(d).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::MemoryBroker;
    use crate::presence::MemoryPresence;
    use crate::session::outbox::Inbox;
    use std::time::Duration;
    struct Person {
        conn: ConnId,
        who: Identity,
        outbox: Outbox,
        inbox: Inbox,
    }

    fn person(conn: ConnId, nick: &str, metrics: &Metrics) -> Person {
        let (outbox, inbox, _) = Outbox::new(64, metrics, None);
        Person {
            conn,
            who: Identity {
                user: Arc::from(nick),
                nick: Arc::from(nick),
                key: Arc::from(nick),
                session: Arc::from("s"),
                kind: crate::identity::UserKind::Guest,
            },
            outbox,
            inbox,
        }
    }

    fn membership(limit: u64) -> (Membership, Hub, Metrics) {
        let (m, _, hub, metrics) = with_grace(limit, Duration::ZERO);
        (m, hub, metrics)
    }

    fn with_grace(limit: u64, grace: Duration) -> (Membership, Farewells, Hub, Metrics) {
        let hub = Hub::default();
        let metrics = Metrics::default();
        let broker = Arc::new(MemoryBroker::new(Arc::new(hub.clone())));
        let (m, farewells) = Membership::new(
            hub.clone(),
            broker,
            Arc::new(MemoryPresence),
            limit,
            grace,
            metrics.clone(),
        );
        (m, farewells, hub, metrics)
    }

    /// A second connection of `p`'s user.
    fn tab(p: &Person, conn: ConnId, metrics: &Metrics) -> Person {
        let (outbox, inbox, _) = Outbox::new(64, metrics, None);
        Person {
            conn,
            who: p.who.clone(),
            outbox,
            inbox,
        }
    }

    #[tokio::test]
    async fn a_user_is_announced_once_however_many_connections_they_open() {
        let (m, _hub, metrics) = membership(100);
        let room: Arc<str> = Arc::from("r");
        let ann = person(1, "ann", &metrics);
        let (bob, bob2) = (person(2, "bob", &metrics), person(3, "bob", &metrics));
        let bob2 = Person {
            who: bob.who.clone(),
            ..bob2
        };
        m.join(&room, ann.conn, &ann.who, &ann.outbox)
            .await
            .unwrap();
        let first = m
            .join(&room, bob.conn, &bob.who, &bob.outbox)
            .await
            .unwrap()
            .unwrap();
        assert!(first.user_edge);
        m.announce(&room, &bob.who, Passage::Joined, first).await;
        let second = m
            .join(&room, bob2.conn, &bob2.who, &bob2.outbox)
            .await
            .unwrap()
            .unwrap();
        assert!(!second.user_edge);
        assert_eq!(second.nicks, vec!["ann", "bob"], "each user once");
        m.announce(&room, &bob2.who, Passage::Joined, second).await;
        let got = received(&ann);
        assert_eq!(got.len(), 2, "one notice and one list: {got:?}");
        assert!(
            received(&bob).is_empty() && received(&bob2).is_empty(),
            "not to themselves"
        );
        // Leaving with one of two connections is no news either.
        assert!(
            m.depart(&room, bob.conn, &bob.who, Farewell::Announce)
                .await
        );
        assert!(received(&ann).is_empty());
        assert!(
            m.depart(&room, bob2.conn, &bob2.who, Farewell::Announce)
                .await
        );
        assert!(
            matches!(&received(&ann)[0], ServerMsg::Notification { text, .. } if text == "bob left")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_within_the_grace_shows_neither_left_nor_joined() {
        let (m, farewells, _hub, metrics) = with_grace(100, Duration::from_secs(5));
        let m = Arc::new(m);
        let task = tokio::spawn(send_farewells(Arc::downgrade(&m), farewells));
        let room: Arc<str> = Arc::from("r");
        let ann = person(1, "ann", &metrics);
        let bob = person(2, "bob", &metrics);
        m.join(&room, ann.conn, &ann.who, &ann.outbox)
            .await
            .unwrap();
        m.join(&room, bob.conn, &bob.who, &bob.outbox)
            .await
            .unwrap();
        // Bob reloads: his connection goes, a new one comes within the grace.
        assert!(m.depart(&room, bob.conn, &bob.who, Farewell::Later).await);
        tokio::time::advance(Duration::from_secs(2)).await;
        let again = tab(&bob, 3, &metrics);
        let change = m
            .join(&room, again.conn, &again.who, &again.outbox)
            .await
            .unwrap()
            .unwrap();
        assert!(!change.user_edge, "back in time: no joined notice");
        m.announce(&room, &again.who, Passage::Joined, change).await;
        tokio::time::advance(Duration::from_secs(10)).await;
        tokio::task::yield_now().await;
        assert!(received(&ann).is_empty(), "ann saw nothing of the reload");
        // Now he really goes: ann hears it once the grace is over, not before.
        assert!(
            m.depart(&room, again.conn, &again.who, Farewell::Later)
                .await
        );
        tokio::time::advance(Duration::from_secs(4)).await;
        tokio::task::yield_now().await;
        assert!(received(&ann).is_empty());
        tokio::time::advance(Duration::from_secs(2)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let got = received(&ann);
        assert!(
            matches!(&got[0], ServerMsg::Notification { text, .. } if text == "bob left"),
            "{got:?}"
        );
        assert!(matches!(&got[1], ServerMsg::Presence { nicks, .. } if nicks == &["ann"]));
        drop(m);
        task.await.unwrap();
    }

    /// Every frame queued for `p`, decoded.
    fn received(p: &Person) -> Vec<ServerMsg> {
        let mut out = Vec::new();
        while let Some(item) = p.inbox.try_recv() {
            out.push(serde_json::from_str(item.frame.text()).unwrap());
        }
        out
    }

    #[tokio::test]
    async fn joins_are_announced_to_the_others_with_the_list() {
        let (m, _hub, metrics) = membership(100);
        let room: Arc<str> = Arc::from("r");
        let (a, b) = (person(1, "zoe", &metrics), person(2, "bob", &metrics));
        let first = m.join(&room, a.conn, &a.who, &a.outbox).await.unwrap();
        assert!(first.unwrap().edge);
        let change = m.join(&room, b.conn, &b.who, &b.outbox).await.unwrap();
        assert!(
            m.join(&room, b.conn, &b.who, &b.outbox)
                .await
                .unwrap()
                .is_none(),
            "a second join of the same connection changes nothing"
        );
        m.announce(&room, &b.who, Passage::Joined, change.unwrap())
            .await;
        let got = received(&a);
        assert!(
            matches!(&got[0], ServerMsg::Notification { text, kind: NotificationKind::Joined, .. } if text == "bob joined")
        );
        assert!(
            matches!(&got[1], ServerMsg::Presence { nicks, .. } if nicks == &["zoe", "bob"]),
            "connection order"
        );
        assert_eq!(got.len(), 2);
        assert!(received(&b).is_empty(), "the actor is not told");
    }

    #[tokio::test]
    async fn a_departure_is_announced_unless_quiet_and_empties_the_room() {
        let (m, hub, metrics) = membership(100);
        let room: Arc<str> = Arc::from("r");
        let (a, b) = (person(1, "ann", &metrics), person(2, "bob", &metrics));
        m.join(&room, a.conn, &a.who, &a.outbox).await.unwrap();
        m.join(&room, b.conn, &b.who, &b.outbox).await.unwrap();
        assert!(m.depart(&room, b.conn, &b.who, Farewell::Announce).await);
        assert!(!m.depart(&room, b.conn, &b.who, Farewell::Announce).await);
        let got = received(&a);
        assert!(matches!(&got[0], ServerMsg::Notification { text, .. } if text == "bob left"));
        assert!(matches!(&got[1], ServerMsg::Presence { nicks, .. } if nicks == &["ann"]));
        assert!(m.depart(&room, a.conn, &a.who, Farewell::Quiet).await);
        assert_eq!(hub.room_count(), 0);
    }

    #[tokio::test]
    async fn crowds_are_not_announced() {
        let (m, _hub, metrics) = membership(1);
        let room: Arc<str> = Arc::from("r");
        let (a, b) = (person(1, "ann", &metrics), person(2, "bob", &metrics));
        m.join(&room, a.conn, &a.who, &a.outbox).await.unwrap();
        let change = m.join(&room, b.conn, &b.who, &b.outbox).await.unwrap();
        m.announce(&room, &b.who, Passage::Joined, change.unwrap())
            .await;
        assert!(received(&a).is_empty());
    }

    #[tokio::test]
    async fn members_of_a_dead_instance_are_announced_as_left() {
        let (m, _hub, metrics) = membership(100);
        let room: Arc<str> = Arc::from("r");
        let a = person(1, "ann", &metrics);
        m.join(&room, a.conn, &a.who, &a.outbox).await.unwrap();
        let m = Arc::new(m);
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(announce_departures(Arc::clone(&m), rx));
        tx.send(Departed {
            room: "r".to_owned(),
            nicks: vec!["zed".to_owned()],
        })
        .await
        .unwrap();
        drop(tx);
        task.await.unwrap();
        let got = received(&a);
        assert!(
            matches!(&got[0], ServerMsg::Notification { text, nick: Some(n), .. } if text == "zed left" && n == "zed")
        );
        assert!(matches!(&got[1], ServerMsg::Presence { nicks, .. } if nicks == &["ann"]));
    }

    #[tokio::test]
    async fn events_skip_their_actors_connections() {
        let (m, _hub, metrics) = membership(100);
        let room: Arc<str> = Arc::from("r");
        let (a, b) = (person(1, "ann", &metrics), person(2, "bob", &metrics));
        m.join(&room, a.conn, &a.who, &a.outbox).await.unwrap();
        m.join(&room, b.conn, &b.who, &b.outbox).await.unwrap();
        let typing = ServerMsg::Typing {
            room: "r".to_owned(),
            nick: "bob".to_owned(),
        };
        m.publish(&room, Some(&b.who.user), &typing).await.unwrap();
        assert_eq!(received(&a).len(), 1);
        assert!(received(&b).is_empty());
        assert_eq!(m.local_count("r"), 2);
    }
}
