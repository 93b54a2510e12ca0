//! Users' connections and nicks on one node: the whole registry for a single instance,
//! and the local half that [`super::RedisNicks`] consults first in a cluster.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{ClaimError, NickRegistry};
use crate::disconnect::Disconnect;
use crate::identity::Identity;
use crate::locks;
use crate::session::outbox::{ConnId, Control};

/// The local registry. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct MemoryNicks {
    inner: Arc<Mutex<Registry>>,
    /// How long a departed user's nick stays theirs (`--presence-grace`).
    grace: Duration,
    /// `--max-connections-per-user` (0: no limit).
    max_per_user: usize,
}

#[derive(Default)]
struct Registry {
    users: HashMap<Arc<str>, Connected>,
    /// Nick key → the users connected with it (several only when signed-in users
    /// share a display name; a guest never joins a key someone else holds).
    by_key: HashMap<Arc<str>, Vec<Arc<str>>>,
    /// Nick key → the user it is kept for after their last connection went.
    reserved: HashMap<Arc<str>, Reserved>,
}

/// One user's open connections here, oldest first.
struct Connected {
    key: Arc<str>,
    nick: Arc<str>,
    conns: Vec<(ConnId, Arc<Control>)>,
}

struct Reserved {
    user: Arc<str>,
    until: Instant,
}

impl MemoryNicks {
    /// A registry that keeps a departed user's nick for `grace` and allows each user
    /// `max_per_user` connections (0: any number).
    pub(crate) fn new(grace: Duration, max_per_user: usize) -> Self {
        MemoryNicks {
            inner: Arc::default(),
            grace,
            max_per_user,
        }
    }

    /// Closes connection `conn` of `user` with `why` if it is here.
    pub(crate) fn close(&self, user: &str, conn: ConnId, why: Disconnect) -> bool {
        let registry = locks::lock(&self.inner);
        let Some(connected) = registry.users.get(user) else {
            return false;
        };
        match connected.conns.iter().find(|(c, _)| *c == conn) {
            Some((_, control)) => {
                control.close(why);
                true
            }
            None => false,
        }
    }

    /// Whether anyone here holds nick key `key`.
    pub(crate) fn holds_key(&self, key: &str) -> bool {
        locks::lock(&self.inner).by_key.contains_key(key)
    }

    /// Every connected user as (nick key, user, connections), to record them again in
    /// a cluster registry that lost them.
    pub(crate) fn holders(&self) -> Vec<(Arc<str>, Arc<str>, Vec<ConnId>)> {
        locks::lock(&self.inner)
            .users
            .iter()
            .map(|(user, c)| {
                let conns = c.conns.iter().map(|(conn, _)| *conn).collect();
                (Arc::clone(&c.key), Arc::clone(user), conns)
            })
            .collect()
    }

    /// How many connections `user` has here.
    #[cfg(test)]
    pub(crate) fn connections(&self, user: &str) -> usize {
        locks::lock(&self.inner)
            .users
            .get(user)
            .map_or(0, |c| c.conns.len())
    }
}

impl Registry {
    /// Whether a guest may show `key`: nobody else holds it or has it kept.
    fn check_guest(&mut self, who: &Identity, now: Instant) -> Result<(), ClaimError> {
        if let Some(reserved) = self.reserved.get(&who.key) {
            if reserved.until <= now {
                self.reserved.remove(&who.key);
            } else if reserved.user != who.user {
                return Err(ClaimError::Reserved);
            }
        }
        let held_by_other = self
            .by_key
            .get(&who.key)
            .is_some_and(|users| users.iter().any(|u| *u != who.user));
        if held_by_other {
            return Err(ClaimError::Taken);
        }
        match self.users.get(&who.user) {
            Some(c) if c.key != who.key => Err(ClaimError::OtherNick(c.nick.to_string())),
            _ => Ok(()),
        }
    }

    fn unindex(&mut self, key: &Arc<str>, user: &Arc<str>) {
        if let Some(users) = self.by_key.get_mut(key) {
            users.retain(|u| u != user);
            if users.is_empty() {
                self.by_key.remove(key);
            }
        }
    }
}

#[async_trait]
impl NickRegistry for MemoryNicks {
    async fn claim(
        &self,
        who: &Identity,
        conn: ConnId,
        control: Arc<Control>,
    ) -> Result<(), ClaimError> {
        let mut registry = locks::lock(&self.inner);
        let now = Instant::now();
        if who.is_guest() {
            registry.check_guest(who, now)?;
        }
        registry.reserved.remove(&who.key);
        let previous_key = registry.users.get(&who.user).map(|c| Arc::clone(&c.key));
        if let Some(old) = previous_key.filter(|k| *k != who.key) {
            // A signed-in user whose name changed (a host token with a new `name`).
            registry.unindex(&old, &who.user);
        }
        let connected = registry
            .users
            .entry(Arc::clone(&who.user))
            .or_insert_with(|| Connected {
                key: Arc::clone(&who.key),
                nick: Arc::clone(&who.nick),
                conns: Vec::new(),
            });
        connected.key = Arc::clone(&who.key);
        connected.nick = Arc::clone(&who.nick);
        connected.conns.push((conn, control));
        if self.max_per_user > 0 && connected.conns.len() > self.max_per_user {
            let excess = connected.conns.len() - self.max_per_user;
            for (_, oldest) in connected.conns.drain(..excess) {
                oldest.close(Disconnect::Displaced);
            }
        }
        let users = registry.by_key.entry(Arc::clone(&who.key)).or_default();
        if !users.contains(&who.user) {
            users.push(Arc::clone(&who.user));
        }
        Ok(())
    }

    async fn release(&self, who: &Identity, conn: ConnId) {
        let mut registry = locks::lock(&self.inner);
        let Some(connected) = registry.users.get_mut(&who.user) else {
            return;
        };
        connected.conns.retain(|(c, _)| *c != conn);
        if !connected.conns.is_empty() {
            return;
        }
        let key = Arc::clone(&connected.key);
        registry.users.remove(&who.user);
        registry.unindex(&key, &who.user);
        if self.grace.is_zero() {
            return;
        }
        let now = Instant::now();
        // Expired reservations go now and then, so the map holds about one grace
        // period's worth of departures; amortised, each release pays O(1).
        if registry.reserved.len() >= 64 && registry.reserved.len().is_power_of_two() {
            registry.reserved.retain(|_, r| r.until > now);
        }
        registry.reserved.insert(
            key,
            Reserved {
                user: Arc::clone(&who.user),
                until: now + self.grace,
            },
        );
    }

    async fn online(&self, user: &str) -> bool {
        locks::lock(&self.inner).users.contains_key(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{guest_user, UserKind};

    fn guest(nick: &str, session: &str) -> Identity {
        Identity {
            user: Arc::from(guest_user(session)),
            nick: Arc::from(nick),
            key: Arc::from(common::validate::nick_key(nick)),
            session: Arc::from(session),
            kind: UserKind::Guest,
        }
    }

    fn member(user: &str, nick: &str) -> Identity {
        Identity {
            user: Arc::from(user),
            nick: Arc::from(nick),
            key: Arc::from(common::validate::nick_key(nick)),
            session: Arc::from(""),
            kind: UserKind::Account,
        }
    }

    async fn claim(nicks: &MemoryNicks, who: &Identity, conn: ConnId) -> Result<(), ClaimError> {
        nicks.claim(who, conn, Arc::default()).await
    }

    #[tokio::test]
    async fn one_user_holds_many_connections_and_others_are_refused() {
        let nicks = MemoryNicks::new(Duration::ZERO, 10);
        let alice = guest("Alice", "s_1");
        claim(&nicks, &alice, 1).await.unwrap();
        claim(&nicks, &alice, 2).await.unwrap();
        assert_eq!(nicks.connections(&alice.user), 2);
        assert!(matches!(
            claim(&nicks, &guest("ALICE", "s_2"), 3).await,
            Err(ClaimError::Taken)
        ));
        assert!(matches!(
            claim(&nicks, &guest("bob", "s_1"), 4).await,
            Err(ClaimError::OtherNick(n)) if n == "Alice"
        ));
        nicks.release(&alice, 1).await;
        assert!(claim(&nicks, &guest("alice", "s_2"), 5).await.is_err());
        nicks.release(&alice, 2).await;
        assert!(claim(&nicks, &guest("alice", "s_2"), 5).await.is_ok());
    }

    #[tokio::test]
    async fn beyond_the_cap_the_oldest_connection_is_displaced() {
        let nicks = MemoryNicks::new(Duration::ZERO, 2);
        let ann = member("ann", "ann");
        let first = Arc::new(Control::default());
        nicks.claim(&ann, 1, Arc::clone(&first)).await.unwrap();
        claim(&nicks, &ann, 2).await.unwrap();
        claim(&nicks, &ann, 3).await.unwrap();
        assert_eq!(first.closed().await, Disconnect::Displaced);
        assert_eq!(nicks.connections("ann"), 2);
    }

    #[tokio::test]
    async fn signed_in_users_are_never_refused_but_hold_their_name_against_guests() {
        let nicks = MemoryNicks::new(Duration::ZERO, 0);
        claim(&nicks, &guest("ann", "s_1"), 1).await.unwrap();
        // The host application vouches for this one: admitted even with a held name.
        claim(&nicks, &member("u-7", "ann"), 2).await.unwrap();
        claim(&nicks, &member("u-8", "carl"), 3).await.unwrap();
        assert!(matches!(
            claim(&nicks, &guest("Carl", "s_3"), 4).await,
            Err(ClaimError::Taken)
        ));
        assert!(nicks.holds_key("carl"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_departed_users_nick_waits_for_them_through_the_grace() {
        let nicks = MemoryNicks::new(Duration::from_secs(5), 0);
        let alice = guest("alice", "s_1");
        claim(&nicks, &alice, 1).await.unwrap();
        nicks.release(&alice, 1).await;
        assert!(matches!(
            claim(&nicks, &guest("Alice", "s_2"), 2).await,
            Err(ClaimError::Reserved)
        ));
        claim(&nicks, &alice, 3).await.unwrap();
        nicks.release(&alice, 3).await;
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(
            claim(&nicks, &guest("alice", "s_2"), 4).await.is_ok(),
            "free after the grace"
        );
    }

    #[tokio::test]
    async fn close_reaches_only_the_named_connection() {
        let nicks = MemoryNicks::new(Duration::ZERO, 0);
        let bob = guest("bob", "s_1");
        let c1 = Arc::new(Control::default());
        nicks.claim(&bob, 1, Arc::clone(&c1)).await.unwrap();
        assert!(!nicks.close(&bob.user, 2, Disconnect::SignedOut));
        assert!(nicks.close(&bob.user, 1, Disconnect::SignedOut));
        assert_eq!(c1.closed().await, Disconnect::SignedOut);
        assert_eq!(nicks.holders().len(), 1);
    }
}
