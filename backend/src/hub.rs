//! The local rooms: which connections on this node are in which room, and delivery to
//! their outboxes of what the broker reports ([`BrokerEvents`]).
//!
//! This is the one place a stored message fans out to members ([`Hub::messages`]):
//! encoded and framed once, its bytes written by every outbox (straight into the
//! member's socket when nothing waits for it, see [`crate::session::outbox`]).
//!
//! All methods are synchronous and hold the lock only for map updates and for taking a
//! room's outboxes, never while writing to them and never across an `.await`; a slow
//! connection can never slow a broadcast down. Joining
//! and leaving go through [`crate::membership`], which keeps the broker and presence in
//! step with the hub.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::Entry;

use crate::broker::{BrokerEvents, Directive, Event};
use crate::codec::{self, Wire};
use crate::disconnect::Disconnect;
use crate::locks;
use crate::session::outbox::{ConnId, Outbox, Outgoing};

/// One frame for one room's local members.
#[derive(Debug, Clone)]
struct Envelope {
    room: Arc<str>,
    /// The chat message's offset, or 0 for an event.
    offset: u64,
    /// A connection that must not receive it.
    except: Option<ConnId>,
    /// A user none of whose connections receive it.
    except_user: Option<Arc<str>>,
    frame: Wire,
    directive: Option<Directive>,
}

/// Local room membership. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Hub {
    /// A std mutex: critical sections are short and contain no `.await`.
    rooms: Arc<Mutex<HashMap<Arc<str>, Room>>>,
    /// The last membership version handed out, hub-wide so that a room emptied and
    /// created again never repeats one. Only bumped while `rooms` is locked.
    versions: Arc<AtomicU64>,
}

#[derive(Default)]
struct Room {
    /// Ordered by connection id so member lists come out in a stable order.
    members: Members,
    /// Changes with every join and leave: a presence list published with the version it
    /// was taken at can be checked for still being current (see [`Hub::presence`]).
    version: u64,
}

/// A room's members by connection id, in id order: a sorted `Vec`, not a `BTreeMap`,
/// whose smallest node (room for 11) is allocated for each user's own channel, which
/// has one member: 700 bytes per connection for nothing. Connection ids grow, so a
/// join appends.
#[derive(Default)]
struct Members(Vec<(ConnId, Member)>);

impl Members {
    fn position(&self, conn: ConnId) -> Result<usize, usize> {
        self.0.binary_search_by_key(&conn, |(id, _)| *id)
    }

    fn contains_key(&self, conn: &ConnId) -> bool {
        self.position(*conn).is_ok()
    }

    fn insert(&mut self, conn: ConnId, member: Member) {
        match self.position(conn) {
            Ok(at) => self.0[at].1 = member,
            Err(at) => self.0.insert(at, (conn, member)),
        }
    }

    fn remove(&mut self, conn: &ConnId) -> Option<Member> {
        let at = self.position(*conn).ok()?;
        let (_, gone) = self.0.remove(at);
        if self.0.capacity() > 2 * self.0.len() + 8 {
            self.0.shrink_to_fit();
        }
        Some(gone)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn iter(&self) -> impl Iterator<Item = (&ConnId, &Member)> {
        self.0.iter().map(|(id, m)| (id, m))
    }

    fn values(&self) -> impl Iterator<Item = &Member> {
        self.0.iter().map(|(_, m)| m)
    }
}

struct Member {
    user: Arc<str>,
    nick: Arc<str>,
    outbox: Outbox,
}

/// One connection in one room (not the users' own channels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Membership {
    pub(crate) room: Arc<str>,
    pub(crate) conn: ConnId,
    pub(crate) user: Arc<str>,
    pub(crate) nick: Arc<str>,
}

/// What a membership change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// The room's nicks after the change, each user's once.
    pub(crate) nicks: Vec<String>,
    /// True when the change was the user's first connection in the room here (join)
    /// or their last (leave): only then do the others hear of it.
    pub(crate) user_edge: bool,
    /// True when the change created the room here (join) or emptied it (leave), so the
    /// broker subscription must follow.
    pub(crate) edge: bool,
    /// The room's membership version after the change.
    pub(crate) version: u64,
}

impl Hub {
    /// Adds a connection to a room; `None` if it was already a member.
    pub(crate) fn join(
        &self,
        room: &Arc<str>,
        conn: ConnId,
        user: &Arc<str>,
        nick: Arc<str>,
        outbox: Outbox,
    ) -> Option<Change> {
        let mut rooms = self.lock();
        let entry = rooms.entry(Arc::clone(room)).or_default();
        let edge = entry.members.is_empty();
        if entry.members.contains_key(&conn) {
            return None;
        }
        let user_edge = !entry.members.values().any(|m| m.user == *user);
        let user = Arc::clone(user);
        entry.members.insert(conn, Member { user, nick, outbox });
        entry.version = self.versions.fetch_add(1, Ordering::Relaxed) + 1;
        Some(Change {
            nicks: nicks_of(entry),
            user_edge,
            edge,
            version: entry.version,
        })
    }

    /// Removes a connection from a room; `None` if it was not a member.
    pub(crate) fn leave(&self, room: &str, conn: ConnId) -> Option<Change> {
        let mut rooms = self.lock();
        let entry = rooms.get_mut(room)?;
        let gone = entry.members.remove(&conn)?;
        entry.version = self.versions.fetch_add(1, Ordering::Relaxed) + 1;
        let change = Change {
            nicks: nicks_of(entry),
            user_edge: !entry.members.values().any(|m| m.user == gone.user),
            edge: entry.members.is_empty(),
            version: entry.version,
        };
        if change.edge {
            rooms.remove(room);
        }
        Some(change)
    }

    /// Whether `user` has a connection in `room` here.
    pub(crate) fn has_user(&self, room: &str, user: &str) -> bool {
        self.lock()
            .get(room)
            .is_some_and(|r| r.members.values().any(|m| &*m.user == user))
    }

    /// How many users are in a room here.
    pub(crate) fn user_count(&self, room: &str) -> u64 {
        self.lock()
            .get(room)
            .map_or(0, |r| users_of(r).count() as u64)
    }

    /// The nicks in a room now.
    pub(crate) fn nicks(&self, room: &str) -> Vec<String> {
        self.lock().get(room).map(nicks_of).unwrap_or_default()
    }

    /// The room's nicks and membership version now, unless the version is still `seen`
    /// (or the room has no members here). Presence lists are taken under the lock but
    /// published after it, so two changes can publish out of order; whoever published
    /// the list of version `seen` asks this afterwards and publishes again until nothing
    /// changed in between, so the last list a member receives is the current one.
    pub(crate) fn presence(&self, room: &str, seen: u64) -> Option<(u64, Vec<String>)> {
        let rooms = self.lock();
        let entry = rooms.get(room)?;
        (entry.version != seen).then(|| (entry.version, nicks_of(entry)))
    }

    /// How many connections on this node are in a room now.
    pub(crate) fn member_count(&self, room: &str) -> u64 {
        self.lock().get(room).map_or(0, |r| r.members.len() as u64)
    }

    /// Rooms with members here.
    #[cfg(test)]
    pub(crate) fn room_count(&self) -> usize {
        self.lock().len()
    }

    /// Every connection in every room here: what the cluster's member lists record
    /// again after Redis forgot this node (see `presence::RedisPresence`).
    pub(crate) fn memberships(&self) -> Vec<Membership> {
        self.lock()
            .iter()
            .filter(|(room, _)| !crate::broker::is_channel(room))
            .flat_map(|(room, r)| {
                r.members.iter().map(|(conn, m)| Membership {
                    room: Arc::clone(room),
                    conn: *conn,
                    user: Arc::clone(&m.user),
                    nick: Arc::clone(&m.nick),
                })
            })
            .collect()
    }

    /// Queues a frame for every member of its room except `env.except` and the
    /// connections of `env.except_user`.
    fn deliver(&self, env: &Envelope) {
        let outboxes: Vec<Outbox> = {
            let rooms = self.lock();
            let Some(room) = rooms.get(&*env.room) else {
                return;
            };
            room.members
                .iter()
                .filter(|(conn, member)| {
                    Some(**conn) != env.except && env.except_user.as_ref() != Some(&member.user)
                })
                .map(|(_, member)| member.outbox.clone())
                .collect()
        };
        for outbox in outboxes {
            outbox.push(Outgoing {
                room: Some(Arc::clone(&env.room)),
                offset: env.offset,
                frame: env.frame.clone(),
                directive: env.directive.clone(),
            });
        }
    }

    /// Writes a room's stored entries (in offset order) to every member, each member's
    /// share in one go.
    fn deliver_stored(&self, room: &str, frames: &[(u64, Wire)]) {
        let Some((name, outboxes)) = self.outboxes(room) else {
            return;
        };
        for outbox in outboxes {
            outbox.push_stored(&name, frames);
        }
    }

    /// The room's name and its members' outboxes now. Taken under the lock, written to
    /// after it: a fan-out's sends take milliseconds in a big room, and joins, leaves
    /// and other rooms' deliveries must not wait for them. A member who joins after
    /// this was taken reads the room's head after it too, so nothing is missed; one who
    /// left has forgotten the room in its outbox, which skips the frames.
    fn outboxes(&self, room: &str) -> Option<(Arc<str>, Vec<Outbox>)> {
        let rooms = self.lock();
        let (name, room) = rooms.get_key_value(room)?;
        let outboxes = room.members.values().map(|m| m.outbox.clone()).collect();
        Some((Arc::clone(name), outboxes))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Room>> {
        locks::lock(&self.rooms)
    }
}

impl BrokerEvents for Hub {
    fn messages(&self, entries: &[Entry]) {
        // One commit's entries, usually of one room (or few): each room's run is framed
        // once and handed to its members together.
        let mut frames: Vec<(u64, Wire)> = Vec::with_capacity(entries.len());
        let mut room = String::new();
        for entry in entries {
            if entry.room() != room && !frames.is_empty() {
                self.deliver_stored(&room, &frames);
                frames.clear();
            }
            if entry.room() != room {
                entry.room().clone_into(&mut room);
            }
            frames.push((entry.offset(), codec::wire_stored(entry)));
        }
        if !frames.is_empty() {
            self.deliver_stored(&room, &frames);
        }
    }

    fn event(&self, event: Event) {
        self.deliver(&Envelope {
            room: event.room,
            offset: 0,
            except: event.except,
            except_user: event.except_user,
            frame: codec::wire_of(event.frame.as_str()),
            directive: event.directive,
        });
    }

    /// Asks every member of the room here to close (they resume with `since`).
    fn lost(&self, room: &str, why: Disconnect) {
        if let Some(room) = self.lock().get(room) {
            for member in room.members.values() {
                member.outbox.control().close(why);
            }
        }
    }

    fn has_members(&self, room: &str) -> bool {
        self.member_count(room) > 0
    }
}

/// Each user's first connection in the room, in connection order.
fn users_of(room: &Room) -> impl Iterator<Item = &Member> {
    let mut seen = std::collections::HashSet::new();
    room.members
        .values()
        .filter(move |m| seen.insert(Arc::clone(&m.user)))
}

/// Presence counts users, not connections: each user's nick once.
fn nicks_of(room: &Room) -> Vec<String> {
    users_of(room).map(|m| m.nick.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn join_leave_deliver() {
        let hub = Hub::default();
        let metrics = Metrics::default();
        let room: Arc<str> = Arc::from("lobby");
        let (a, rx_a, _) = Outbox::new(4, &metrics, None);
        let (b, rx_b, _) = Outbox::new(4, &metrics, None);
        assert!(
            hub.join(&room, 1, &Arc::from("a"), "a".into(), a.clone())
                .unwrap()
                .edge
        );
        let change = hub.join(&room, 2, &Arc::from("b"), "b".into(), b).unwrap();
        assert_eq!(change.nicks, vec!["a", "b"]);
        assert!(!change.edge);
        assert_eq!(hub.join(&room, 1, &Arc::from("a"), "a".into(), a), None);
        hub.deliver(&Envelope {
            room: Arc::clone(&room),
            offset: 7,
            except: Some(1),
            except_user: None,
            frame: codec::wire_of("x"),
            directive: None,
        });
        assert!(rx_a.try_recv().is_none());
        assert_eq!(rx_b.try_recv().unwrap().offset, 7);
        assert!(!hub.leave("lobby", 2).unwrap().edge);
        assert_eq!(hub.leave("lobby", 2), None);
        assert!(hub.leave("lobby", 1).unwrap().edge);
        assert_eq!(hub.room_count(), 0);
    }

    #[tokio::test]
    async fn a_full_outbox_closes_its_connection_as_slow() {
        let hub = Hub::default();
        let metrics = Metrics::default();
        let room: Arc<str> = Arc::from("r");
        let (a, _rx, control) = Outbox::new(1, &metrics, None);
        hub.join(&room, 1, &Arc::from("a"), "a".into(), a);
        for offset in 1..=2 {
            hub.deliver(&Envelope {
                room: Arc::clone(&room),
                offset,
                except: None,
                except_user: None,
                frame: codec::wire_of("x"),
                directive: None,
            });
        }
        assert_eq!(control.closed().await, Disconnect::SlowConsumer);
        assert_eq!(metrics.outbox_drops.get(), 1);
    }

    #[test]
    fn presence_tells_whether_a_published_list_is_still_current() {
        let hub = Hub::default();
        let metrics = Metrics::default();
        let room: Arc<str> = Arc::from("r");
        let (a, _rx_a, _) = Outbox::new(4, &metrics, None);
        let (b, _rx_b, _) = Outbox::new(4, &metrics, None);
        let first = hub
            .join(&room, 1, &Arc::from("a"), "a".into(), a.clone())
            .unwrap();
        assert_eq!(
            hub.presence("r", first.version),
            None,
            "nothing changed since"
        );
        // b joins after a's list was taken: a's list is stale, and the current one says so.
        let second = hub.join(&room, 2, &Arc::from("b"), "b".into(), b).unwrap();
        assert_eq!(
            hub.presence("r", first.version),
            Some((second.version, vec!["a".to_owned(), "b".to_owned()]))
        );
        assert_eq!(hub.presence("r", second.version), None);
        // A room emptied and created again never repeats a version.
        hub.leave("r", 2).unwrap();
        hub.leave("r", 1).unwrap();
        assert_eq!(hub.presence("r", 0), None, "no members, nobody to tell");
        let again = hub.join(&room, 1, &Arc::from("a"), "a".into(), a).unwrap();
        assert!(again.version > second.version);
    }

    #[tokio::test]
    async fn stored_messages_and_lost_rooms_reach_every_member() {
        let hub = Hub::default();
        let metrics = Metrics::default();
        let room: Arc<str> = Arc::from("r");
        let (a, rx_a, control) = Outbox::new(4, &metrics, None);
        hub.join(&room, 1, &Arc::from("a"), "a".into(), a);
        hub.messages(&[Entry::Message(common::ChatMessage {
            room: "r".to_owned(),
            offset: 3,
            id: "m".to_owned(),
            nick: "b".to_owned(),
            text: "hi".to_owned(),
            ts: 1,
            ..Default::default()
        })]);
        let item = rx_a.try_recv().unwrap();
        assert_eq!((item.offset, item.room.as_deref()), (3, Some("r")));
        assert!(item.frame.text().contains(r#""type":"message""#));
        assert!(hub.has_members("r") && !hub.has_members("other"));
        hub.lost("r", Disconnect::FellBehind);
        assert_eq!(control.closed().await, Disconnect::FellBehind);
    }
}
