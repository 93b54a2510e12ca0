//! Nick ownership on one node: the whole registry for a single instance, and the local
//! half that [`super::RedisNicks`] consults first in a cluster.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::validate;
use rand::distr::{Alphanumeric, SampleString};

use super::{ClaimError, NickRegistry};
use crate::disconnect::Disconnect;
use crate::identity::Identity;
use crate::locks;
use crate::session::outbox::{ConnId, Control};

/// The local nick registry. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct MemoryNicks {
    /// Keyed by `validate::nick_key`.
    held: Arc<Mutex<HashMap<String, Holder>>>,
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
    /// Closes connection `conn` with 4001 if it still holds `key`: its session was
    /// reclaimed on another instance. The session's own release frees the nick here.
    pub(crate) fn evict(&self, key: &str, conn: ConnId) -> bool {
        let held = locks::lock(&self.held);
        match held.get(key) {
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
            .get(key)
            .is_some_and(|h| h.conn == conn)
    }

    /// Every held nick as (key, connection, session), to record them again in a
    /// cluster registry that lost them.
    pub(crate) fn holders(&self) -> Vec<(String, ConnId, Arc<str>)> {
        locks::lock(&self.held)
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
        let mut held = locks::lock(&self.held);
        let token: Arc<str> = match (held.get(&key), session) {
            (Some(holder), Some(s)) if &*holder.session == s => {
                holder.control.close(Disconnect::SessionTaken);
                Arc::clone(&holder.session)
            }
            (Some(_), _) => return Err(ClaimError::Taken),
            (None, Some(s)) if is_session_token(s) => Arc::from(s),
            (None, _) => Arc::from(new_session_token()),
        };
        let who = Identity {
            nick: Arc::from(nick),
            key: Arc::from(key.as_str()),
            session: Arc::clone(&token),
        };
        held.insert(
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
        let mut held = locks::lock(&self.held);
        if held.get(&*who.key).is_some_and(|h| h.conn == conn) {
            held.remove(&*who.key);
        }
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
        let nicks = MemoryNicks::default();
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

    #[tokio::test]
    async fn evict_closes_only_the_named_holder() {
        let nicks = MemoryNicks::default();
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
        let nicks = MemoryNicks::default();
        let token = new_session_token();
        let who = claim(&nicks, "carol", Some(&token), 1).await.unwrap();
        assert_eq!(&*who.session, token);
        let other = claim(&nicks, "dave", Some("not-a-token"), 2).await.unwrap();
        assert!(is_session_token(&other.session));
    }
}
