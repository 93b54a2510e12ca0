//! Who a connection is once its `hello` succeeded, and the rules that name a guest.

use std::sync::Arc;

use rand::distr::{Alphanumeric, SampleString};

pub(crate) use crate::directory::UserKind;

/// A connection's identity after `hello`: handlers that need one take it, so none can
/// run before it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The user this connection belongs to.
    pub(crate) user: Arc<str>,
    /// The nick as the person typed it (shown to others).
    pub(crate) nick: Arc<str>,
    /// The nick's case-folded key (`common::validate::nick_key`): what uniqueness,
    /// de-duplication and the registries go by.
    pub(crate) key: Arc<str>,
    /// A guest's session token: `hello` with it again is the same user. Empty for
    /// signed-in users, whose token is their proof.
    pub(crate) session: Arc<str>,
    pub(crate) kind: UserKind,
}

impl Identity {
    pub(crate) fn is_guest(&self) -> bool {
        self.kind == UserKind::Guest
    }
}

/// Whether `s` has the shape of a session token this server hands out.
pub(crate) fn is_session_token(s: &str) -> bool {
    s.len() == 26 && s.starts_with("s_") && s[2..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A fresh guest session token (about 143 random bits).
pub(crate) fn new_session_token() -> String {
    format!("s_{}", Alphanumeric.sample_string(&mut rand::rng(), 24))
}

/// The user id of the guest whose session token is `session`: derived, so every
/// instance names the same guest alike without asking anyone, and one-way, so the id
/// (which others see on every message) does not give away the token that signs in as
/// that guest. The `guest:` prefix cannot start an account name, so no account can
/// pose as a guest or the other way round.
pub(crate) fn guest_user(session: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(session.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("guest:{hex}")
}

#[cfg(test)]
mod tests {
    use super::guest_user;

    #[test]
    fn a_guest_id_is_stable_and_hides_the_token() {
        let id = guest_user("s_abc");
        assert_eq!(id, guest_user("s_abc"));
        assert_ne!(id, guest_user("s_abd"));
        assert!(id.starts_with("guest:") && id.len() == 22 && !id.contains("abc"));
    }
}
