//! Room membership as a service: joining, departing, publishing a room event, and
//! announcing comings and goings. Sessions, the notifications API and the cluster sweep
//! all go through it, so each rule is written once: the hub, the broker subscription and
//! the cluster's member lists change together; who hears about a change; the text of a
//! `joined`/`left` notice; and when a room is a crowd that is not told.

use std::sync::Arc;

use common::{NotificationKind, ServerMsg};
use tokio::sync::mpsc;

use crate::broker::{Broker, BrokerError, Event};
use crate::clock::now_ms;
use crate::codec;
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
    /// `left` notice and a new member list.
    Announce,
    /// Nothing: the server is stopping (everyone is leaving), or the join is undone
    /// before it was announced.
    Quiet,
}

/// Joins, departures and room events; see the module docs. Cheap to share (`Arc`).
pub(crate) struct Membership {
    hub: Hub,
    broker: Arc<dyn Broker>,
    presence: Arc<dyn Presence>,
    /// `--announce-limit`: above it a room is a crowd.
    announce_limit: u64,
    metrics: Metrics,
}

impl Membership {
    pub(crate) fn new(
        hub: Hub,
        broker: Arc<dyn Broker>,
        presence: Arc<dyn Presence>,
        announce_limit: u64,
        metrics: Metrics,
    ) -> Self {
        Membership {
            hub,
            broker,
            presence,
            announce_limit,
            metrics,
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
        let Some(change) = self
            .hub
            .join(room, conn, Arc::clone(&who.nick), outbox.clone())
        else {
            return Ok(None);
        };
        if let Err(e) = self.broker.subscribe(room).await {
            self.depart(room, conn, who, Farewell::Quiet).await;
            return Err(e);
        }
        self.presence.joined(room, conn, &who.nick).await;
        Ok(Some(change))
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
        self.presence.left(room, conn).await;
        if farewell == Farewell::Announce {
            self.announce(room, conn, who, Passage::Left, change.clone())
                .await;
        }
        if change.edge {
            self.broker.unsubscribe(room).await;
        }
        true
    }

    /// The room's nicks on every node: `local` (the hub's list at a change), or the
    /// hub's list now.
    pub(crate) async fn members(&self, room: &str, local: Option<Vec<String>>) -> Vec<String> {
        let local = local.unwrap_or_else(|| self.hub.nicks(room));
        self.presence.members(room, local).await
    }

    /// Members here now (what an API caller is told its notification reached).
    pub(crate) fn local_count(&self, room: &str) -> u64 {
        self.hub.member_count(room)
    }

    /// How many members `room` has on this instance.
    pub(crate) fn local_members(&self, room: &str) -> u64 {
        self.hub.room_size(room)
    }

    /// Tells a room's other members that connection `conn` (`who`) joined or left, and
    /// who is there now: the list as of the change's version, then newer lists until the
    /// room stops changing (see [`Hub::presence`]), so concurrent joins and leaves
    /// cannot leave the members with a stale list. Each extra round follows someone
    /// else's change, so this ends when the churn does.
    pub(crate) async fn announce(
        &self,
        room: &Arc<str>,
        conn: ConnId,
        who: &Identity,
        passage: Passage,
        change: Change,
    ) {
        // A crowd: see `Config::announce_limit`. This node's count is free; across a
        // cluster the room may be a crowd only with the other nodes' members.
        if self.hub.member_count(room) > self.announce_limit {
            return;
        }
        let mut all = self.members(room, Some(change.nicks)).await;
        if all.len() as u64 > self.announce_limit {
            return;
        }
        self.publish_quietly(room, Some(conn), &notice(room, passage, &who.nick))
            .await;
        let mut version = change.version;
        loop {
            let list = ServerMsg::Presence {
                room: room.to_string(),
                nicks: all,
            };
            self.publish_quietly(room, Some(conn), &list).await;
            match self.hub.presence(room, version) {
                Some((newer, nicks)) => {
                    version = newer;
                    all = self.members(room, Some(nicks)).await;
                }
                None => break,
            }
        }
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

    /// Publishes an event to the room's members on every node, except connection
    /// `except` of this one.
    pub(crate) async fn publish(
        &self,
        room: &Arc<str>,
        except: Option<ConnId>,
        msg: &ServerMsg,
    ) -> Result<(), BrokerError> {
        let event = Event {
            room: Arc::clone(room),
            except,
            frame: codec::encode(msg),
        };
        self.broker.publish(event).await?;
        self.metrics.broadcast(Broadcast::Event);
        Ok(())
    }

    /// [`Membership::publish`] for events that are best-effort: a failure is logged.
    pub(crate) async fn publish_quietly(
        &self,
        room: &Arc<str>,
        except: Option<ConnId>,
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
    struct Person {
        conn: ConnId,
        who: Identity,
        outbox: Outbox,
        inbox: Inbox,
    }

    fn person(conn: ConnId, nick: &str, metrics: &Metrics) -> Person {
        let (outbox, inbox, _) = Outbox::new(64, metrics);
        Person {
            conn,
            who: Identity {
                user: Arc::from(nick),
                nick: Arc::from(nick),
                key: Arc::from(nick),
                session: Arc::from("s"),
            },
            outbox,
            inbox,
        }
    }

    fn membership(limit: u64) -> (Membership, Hub, Metrics) {
        let hub = Hub::default();
        let metrics = Metrics::default();
        let broker = Arc::new(MemoryBroker::new(Arc::new(hub.clone())));
        let m = Membership::new(
            hub.clone(),
            broker,
            Arc::new(MemoryPresence),
            limit,
            metrics.clone(),
        );
        (m, hub, metrics)
    }

    /// Every frame queued for `p`, decoded.
    fn received(p: &Person) -> Vec<ServerMsg> {
        let mut out = Vec::new();
        while let Some(item) = p.inbox.try_recv() {
            out.push(serde_json::from_str(item.frame.as_str()).unwrap());
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
        m.announce(&room, b.conn, &b.who, Passage::Joined, change.unwrap())
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
        m.announce(&room, b.conn, &b.who, Passage::Joined, change.unwrap())
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
    async fn events_skip_their_actor() {
        let (m, _hub, metrics) = membership(100);
        let room: Arc<str> = Arc::from("r");
        let (a, b) = (person(1, "ann", &metrics), person(2, "bob", &metrics));
        m.join(&room, a.conn, &a.who, &a.outbox).await.unwrap();
        m.join(&room, b.conn, &b.who, &b.outbox).await.unwrap();
        let typing = ServerMsg::Typing {
            room: "r".to_owned(),
            nick: "bob".to_owned(),
        };
        m.publish(&room, Some(b.conn), &typing).await.unwrap();
        assert_eq!(received(&a).len(), 1);
        assert!(received(&b).is_empty());
        assert_eq!(m.local_count("r"), 2);
    }
}
