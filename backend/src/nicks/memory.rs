//! Nick ownership on one node: the whole registry for a single instance, and the local
//! half that [`super::RedisNicks`] consults first in a cluster.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::validate;
use rand::distr::{Alphanumeric, SampleString};
use tokio::time::Instant;

use super::{ClaimError, NickRegistry};
use crate::disconnect::Disconnect;
use crate::identity::Identity;
use crate::locks;
use crate::session::outbox::{ConnId, Control};

/// The local nick registry. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct MemoryNicks {
    /// Keyed by `validate::nick_key`.
    held: Arc<Mutex<Nicks>>,
    /// How long a released nick stays reserved for its session (`--presence-grace`).
    grace: Duration,
}

#[derive(Default)]
struct Nicks {
    held: HashMap<String, Holder>,
    /// Nicks whose holder disconnected: only the same session may take them until then.
    reserved: HashMap<String, Reserved>,
}

struct Reserved {
    session: Arc<str>,
    until: Instant,
}

struct Holder {
    conn: ConnId,
    session: Arc<str>,
    control: Arc<Control>,
}

fn is_session_token(s: &str) -> bool {
    s.len() == 26 && s.starts_with("s_") && s[2..].bytes().all(|b| b.is_ascii_alphanumeric())
}

fn new_session_token() -> String {
    format!("s_{}", Alphanumeric.sample_string(&mut rand::rng(), 24))
}

impl MemoryNicks {
    /// A registry that keeps a released nick for its session for `grace`.
    pub(crate) fn new(grace: Duration) -> Self {
        MemoryNicks {
            held: Arc::default(),
            grace,
        }
    }

    /// Closes connection `conn` with 4001 if it still holds `key`: its session was
    /// reclaimed on another instance. The session's own release frees the nick here.
    pub(crate) fn evict(&self, key: &str, conn: ConnId) -> bool {
        let nicks = locks::lock(&self.held);
        match nicks.held.get(key) {
            Some(holder) if holder.conn == conn => {
                holder.control.close(Disconnect::SessionTaken);
                true
            }
            _ => false,
        }
    }

    /// True while connection `conn` holds `key`.
    pub(crate) fn holds(&self, key: &str, conn: ConnId) -> bool {
        locks::lock(&self.held)
            .held
            .get(key)
            .is_some_and(|h| h.conn == conn)
    }

    /// Every held nick as (key, connection, session), to record them again in a
    /// cluster registry that lost them.
    pub(crate) fn holders(&self) -> Vec<(String, ConnId, Arc<str>)> {
        locks::lock(&self.held)
            .held
            .iter()
            .map(|(key, h)| (key.clone(), h.conn, Arc::clone(&h.session)))
            .collect()
    }
}

#[async_trait]
impl NickRegistry for MemoryNicks {
    async fn claim(
        &self,
        nick: &str,
        session: Option<&str>,
        conn: ConnId,
        control: Arc<Control>,
    ) -> Result<Identity, ClaimError> {
        let key = validate::nick_key(nick);
        let mut nicks = locks::lock(&self.held);
        let now = Instant::now();
        if let Some(reserved) = nicks.reserved.get(&key) {
            if reserved.until <= now {
                nicks.reserved.remove(&key);
            } else if session != Some(&*reserved.session) {
                return Err(ClaimError::Reserved);
            }
        }
        let token: Arc<str> = match (nicks.held.get(&key), session) {
            (Some(holder), Some(s)) if &*holder.session == s => {
                holder.control.close(Disconnect::SessionTaken);
                Arc::clone(&holder.session)
            }
            (Some(_), _) => return Err(ClaimError::Taken),
            (None, Some(s)) if is_session_token(s) => Arc::from(s),
            (None, _) => Arc::from(new_session_token()),
        };
        nicks.reserved.remove(&key);
        let who = Identity {
            user: Arc::from(crate::identity::guest_user(&token)),
            nick: Arc::from(nick),
            key: Arc::from(key.as_str()),
            session: Arc::clone(&token),
        };
        nicks.held.insert(
            key,
            Holder {
                conn,
                session: token,
                control,
            },
        );
        Ok(who)
    }

    async fn release(&self, who: &Identity, conn: ConnId) {
        let mut nicks = locks::lock(&self.held);
        if nicks.held.get(&*who.key).is_none_or(|h| h.conn != conn) {
            return;
        }
        nicks.held.remove(&*who.key);
        if self.grace.is_zero() {
            return;
        }
        let now = Instant::now();
        // Expired reservations go now and then, so the map holds about one grace
        // period's worth of departures; amortised, each release pays O(1).
        if nicks.reserved.len() >= 64 && nicks.reserved.len().is_power_of_two() {
            nicks.reserved.retain(|_, r| r.until > now);
        }
        nicks.reserved.insert(
            who.key.to_string(),
            Reserved {
                session: Arc::clone(&who.session),
                until: now + self.grace,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn claim(
        nicks: &MemoryNicks,
        nick: &str,
        session: Option<&str>,
        conn: ConnId,
    ) -> Result<Identity, ClaimError> {
        nicks.claim(nick, session, conn, Arc::default()).await
    }

    #[tokio::test]
    async fn claim_takeover_release() {
        let nicks = MemoryNicks::new(Duration::ZERO);
        let c1 = Arc::new(Control::default());
        let alice = nicks
            .claim("Alice", None, 1, Arc::clone(&c1))
            .await
            .unwrap();
        assert!(is_session_token(&alice.session));
        assert_eq!((&*alice.nick, &*alice.key), ("Alice", "alice"));
        assert!(matches!(
            claim(&nicks, "alice", None, 2).await,
            Err(ClaimError::Taken)
        ));
        assert!(matches!(
            claim(&nicks, "ALICE", Some("s_wrong"), 2).await,
            Err(ClaimError::Taken)
        ));
        let again = claim(&nicks, "alice", Some(&alice.session), 3)
            .await
            .unwrap();
        assert_eq!(again.session, alice.session);
        assert_eq!(c1.closed().await, Disconnect::SessionTaken);
        // The replaced connection's release must not free the new holder's nick.
        nicks.release(&alice, 1).await;
        assert!(claim(&nicks, "alice", None, 4).await.is_err());
        nicks.release(&again, 3).await;
        assert!(claim(&nicks, "alice", None, 4).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_nick_waits_for_its_session_through_the_grace() {
        let nicks = MemoryNicks::new(Duration::from_secs(5));
        let alice = claim(&nicks, "alice", None, 1).await.unwrap();
        nicks.release(&alice, 1).await;
        // Someone else, even a lookalike, cannot take it between a reload and the
        // reconnect.
        assert!(matches!(
            claim(&nicks, "Alice", None, 2).await,
            Err(ClaimError::Reserved)
        ));
        assert!(matches!(
            claim(&nicks, "alice", Some(&new_session_token()), 2).await,
            Err(ClaimError::Reserved)
        ));
        // Its session can.
        let back = claim(&nicks, "alice", Some(&alice.session), 3)
            .await
            .unwrap();
        assert_eq!(back.session, alice.session);
        nicks.release(&back, 3).await;
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(
            claim(&nicks, "alice", None, 4).await.is_ok(),
            "free after the grace"
        );
    }

    #[tokio::test]
    async fn evict_closes_only_the_named_holder() {
        let nicks = MemoryNicks::new(Duration::ZERO);
        let c1 = Arc::new(Control::default());
        let bob = nicks.claim("bob", None, 1, Arc::clone(&c1)).await.unwrap();
        assert!(
            !nicks.evict("bob", 2),
            "another connection id is not the holder"
        );
        assert!(nicks.holds("bob", 1));
        assert_eq!(nicks.holders(), vec![("bob".to_owned(), 1, bob.session)]);
        assert!(nicks.evict("bob", 1));
        assert_eq!(c1.closed().await, Disconnect::SessionTaken);
    }

    #[tokio::test]
    async fn a_fresh_well_formed_session_is_kept() {
        let nicks = MemoryNicks::new(Duration::ZERO);
        let token = new_session_token();
        let who = claim(&nicks, "carol", Some(&token), 1).await.unwrap();
        assert_eq!(&*who.session, token);
        let other = claim(&nicks, "dave", Some("not-a-token"), 2).await.unwrap();
        assert!(is_session_token(&other.session));
    }
}
