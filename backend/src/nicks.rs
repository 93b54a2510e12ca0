//! Who holds which nick, and session reclaim.
//!
//! A nick is unique among connected sessions (case-insensitively). The `welcome` hands
//! out a session token; a later `hello` with that token takes the nick over from an older
//! connection that still holds it (typically a half-dead one after a network change),
//! closing the old one with 4001.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::CloseCode;
use rand::distr::{Alphanumeric, SampleString};

use crate::session::outbox::{ConnId, Control};

/// The nick registry. Cheap to clone.
#[derive(Clone, Default)]
pub struct Nicks {
    /// Keyed by `validate::nick_key`. A std mutex: locked only in these sync methods.
    held: Arc<Mutex<HashMap<String, Holder>>>,
}

struct Holder {
    conn: ConnId,
    session: String,
    control: Arc<Control>,
}

/// The nick is held by another session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nick is taken by another connected session")]
pub struct NickTaken;

fn is_session_token(s: &str) -> bool {
    s.len() == 26 && s.starts_with("s_") && s[2..].bytes().all(|b| b.is_ascii_alphanumeric())
}

fn new_session_token() -> String {
    format!("s_{}", Alphanumeric.sample_string(&mut rand::rng(), 24))
}

impl Nicks {
    /// Claims `key` for connection `conn`, returning the session token to hand out.
    ///
    /// A `session` matching the current holder's takes the nick over and closes the holder
    /// with 4001. A well-formed `session` for a free nick is kept, so a client keeps one
    /// token across server restarts.
    pub fn claim(
        &self,
        key: &str,
        session: Option<&str>,
        conn: ConnId,
        control: Arc<Control>,
    ) -> Result<String, NickTaken> {
        let mut held = self.lock();
        let token = match (held.get(key), session) {
            (Some(holder), Some(s)) if holder.session == s => {
                holder.control.close(CloseCode::SessionTaken);
                s.to_owned()
            }
            (Some(_), _) => return Err(NickTaken),
            (None, Some(s)) if is_session_token(s) => s.to_owned(),
            (None, _) => new_session_token(),
        };
        held.insert(
            key.to_owned(),
            Holder {
                conn,
                session: token.clone(),
                control,
            },
        );
        Ok(token)
    }

    /// Frees `key` if connection `conn` still holds it (a takeover may have moved it on).
    pub fn release(&self, key: &str, conn: ConnId) {
        let mut held = self.lock();
        if held.get(key).is_some_and(|h| h.conn == conn) {
            held.remove(key);
        }
    }

    /// Closes connection `conn` with 4001 if it still holds `key`: its session was
    /// reclaimed on another instance. The session's own release frees the nick here.
    pub fn evict(&self, key: &str, conn: ConnId) -> bool {
        let held = self.lock();
        match held.get(key) {
            Some(holder) if holder.conn == conn => {
                holder.control.close(CloseCode::SessionTaken);
                true
            }
            _ => false,
        }
    }

    /// True while connection `conn` holds `key`.
    pub fn holds(&self, key: &str, conn: ConnId) -> bool {
        self.lock().get(key).is_some_and(|h| h.conn == conn)
    }

    /// Every held nick as (key, connection, session), to record them again in a
    /// cluster registry that lost them.
    pub fn holders(&self) -> Vec<(String, ConnId, String)> {
        self.lock()
            .iter()
            .map(|(key, h)| (key.clone(), h.conn, h.session.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Holder>> {
        // The map stays consistent whatever panicked while it was held.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn claim_takeover_release() {
        let nicks = Nicks::default();
        let c1 = Arc::new(Control::default());
        let token = nicks.claim("alice", None, 1, Arc::clone(&c1)).unwrap();
        assert!(is_session_token(&token));
        assert_eq!(
            nicks.claim("alice", None, 2, Arc::default()),
            Err(NickTaken)
        );
        assert_eq!(
            nicks.claim("alice", Some("s_wrong"), 2, Arc::default()),
            Err(NickTaken)
        );
        let again = nicks
            .claim("alice", Some(&token), 3, Arc::default())
            .unwrap();
        assert_eq!(again, token);
        assert_eq!(c1.closed().await, CloseCode::SessionTaken);
        // The replaced connection's release must not free the new holder's nick.
        nicks.release("alice", 1);
        assert_eq!(
            nicks.claim("alice", None, 4, Arc::default()),
            Err(NickTaken)
        );
        nicks.release("alice", 3);
        assert!(nicks.claim("alice", None, 4, Arc::default()).is_ok());
    }

    #[tokio::test]
    async fn evict_closes_only_the_named_holder() {
        let nicks = Nicks::default();
        let c1 = Arc::new(Control::default());
        let token = nicks.claim("bob", None, 1, Arc::clone(&c1)).unwrap();
        assert!(
            !nicks.evict("bob", 2),
            "another connection id is not the holder"
        );
        assert!(nicks.holds("bob", 1));
        assert_eq!(nicks.holders(), vec![("bob".to_owned(), 1, token)]);
        assert!(nicks.evict("bob", 1));
        assert_eq!(c1.closed().await, CloseCode::SessionTaken);
    }
}
