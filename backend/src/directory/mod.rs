//! Who the people are and which rooms are theirs: the [`Directory`] seam. It owns the
//! durable facts about people that outlive a connection: accounts and their tokens,
//! every user seen (so others can invite them or open a DM), room settings (private,
//! owner, the two users of a DM), each user's memberships, and their read offsets.
//!
//! [`SqliteDirectory`] keeps them in the history's SQLite file (one instance);
//! [`RedisDirectory`] in the cluster's Redis. Both pass the same behaviour tests
//! (`conformance`).

#[cfg(test)]
pub(crate) mod conformance;
mod redis;
mod sqlite;

pub(crate) use self::redis::RedisDirectory;
pub(crate) use sqlite::SqliteDirectory;

use async_trait::async_trait;
use common::{NotifyLevel, Quiet};

use crate::store::StoreError;

/// How a user signs in; stored with each user seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserKind {
    /// A session token from `welcome` (no password).
    Guest,
    /// A built-in account (password, tokens from `/api/auth/login`).
    Account,
    /// Signed in by the host application's JWT.
    Host,
}

impl UserKind {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            UserKind::Guest => "guest",
            UserKind::Account => "account",
            UserKind::Host => "host",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [UserKind::Guest, UserKind::Account, UserKind::Host]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A user as others may look them up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserRecord {
    pub(crate) user: String,
    /// The display name they last used.
    pub(crate) nick: String,
    pub(crate) kind: UserKind,
}

/// A room's settings; a room without any is public and ownerless (as every v1 room).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoomSettings {
    pub(crate) private: bool,
    /// Who may invite and remove (none for a DM).
    pub(crate) owner: Option<String>,
    /// The two users of a direct-message room, in sorted order.
    pub(crate) dm: Option<(String, String)>,
}

impl RoomSettings {
    /// For a DM between `a` and `b`, the other one.
    pub(crate) fn dm_peer(&self, me: &str) -> Option<&str> {
        let (a, b) = self.dm.as_ref()?;
        Some(if a == me { b } else { a })
    }
}

/// The durable facts about people; see the module docs.
///
/// Contract: every method is one atomic step (a transaction, or one script), so two
/// instances or sessions racing on the same facts leave them consistent; read offsets
/// only ever move forward.
#[async_trait]
pub(crate) trait Directory: Send + Sync + 'static {
    /// Creates account `user` with nick key `key` and this password hash; false when
    /// the name is taken (an account's, or its key is another account's).
    async fn create_account(
        &self,
        user: &str,
        key: &str,
        password_hash: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError>;
    /// The password hash of account `user`, if it exists.
    async fn password_hash(&self, user: &str) -> Result<Option<String>, StoreError>;
    /// The account whose nick key is `key`, if any: a guest may not use its name.
    async fn account_with_key(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Records that `record` signed in now (its nick may have changed). Accounts are
    /// recorded by [`Directory::create_account`] and only touched here.
    async fn seen(&self, record: &UserRecord, key: &str, now_ms: u64) -> Result<(), StoreError>;
    /// A user seen before.
    async fn user(&self, user: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Stores an account token's hash for `user`.
    async fn add_token(&self, hash: &str, user: &str, now_ms: u64) -> Result<(), StoreError>;
    /// The account a token hash signs in as.
    async fn token_user(&self, hash: &str) -> Result<Option<String>, StoreError>;
    /// Forgets a token hash; the account it signed in, if it existed.
    async fn revoke_token(&self, hash: &str) -> Result<Option<String>, StoreError>;

    /// A room's settings, if it has any.
    async fn settings(&self, room: &str) -> Result<Option<RoomSettings>, StoreError>;
    /// Gives `room` its settings; false (and nothing changed) when it has some already.
    async fn create_room(&self, room: &str, settings: &RoomSettings) -> Result<bool, StoreError>;
    async fn is_member(&self, room: &str, user: &str) -> Result<bool, StoreError>;
    /// Makes `user` a member of `room`, read up to `read`; false when they were one
    /// already (their read offset is kept).
    async fn add_member(&self, room: &str, user: &str, read: u64) -> Result<bool, StoreError>;
    /// Ends `user`'s membership of `room`; false when they were not a member.
    async fn remove_member(&self, room: &str, user: &str) -> Result<bool, StoreError>;
    /// `user`'s rooms with their read offsets, at most `limit`.
    async fn memberships(&self, user: &str, limit: usize)
        -> Result<Vec<(String, u64)>, StoreError>;
    /// Moves `user`'s read offset in `room` forward to `offset`: the new offset if it
    /// moved, `None` if it was at or past it already or `user` is not a member.
    async fn set_read(
        &self,
        user: &str,
        room: &str,
        offset: u64,
    ) -> Result<Option<u64>, StoreError>;
    /// Forgets guests not seen since `before_ms`, with their memberships; how many.
    async fn forget_guests(&self, before_ms: u64) -> Result<u64, StoreError>;

    /// Sets which messages of `room` alert `user`; false when they are not a member.
    async fn set_notify(
        &self,
        user: &str,
        room: &str,
        level: NotifyLevel,
    ) -> Result<bool, StoreError>;
    /// The rooms where `user` chose a level other than the default.
    async fn notify_levels(&self, user: &str) -> Result<Vec<(String, NotifyLevel)>, StoreError>;
    /// `room`'s members with their nicks and alert levels, at most `limit`: whom a
    /// message there may alert.
    async fn alert_targets(&self, room: &str, limit: usize)
        -> Result<Vec<AlertTarget>, StoreError>;
    /// Sets (or with `None` clears) `user`'s quiet hours.
    async fn set_quiet(&self, user: &str, quiet: Option<Quiet>) -> Result<(), StoreError>;
    async fn quiet(&self, user: &str) -> Result<Option<Quiet>, StoreError>;
}

/// A room member as alerts see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AlertTarget {
    pub(crate) user: String,
    /// The nick they last used (what `@nick` names).
    pub(crate) nick: String,
    pub(crate) level: NotifyLevel,
}

/// Quiet hours as stored: `from,to,tz`.
pub(crate) fn quiet_to_string(q: &Quiet) -> String {
    format!("{},{},{}", q.from, q.to, q.tz)
}

/// The inverse of [`quiet_to_string`]; `None` for anything else.
pub(crate) fn quiet_from_str(s: &str) -> Option<Quiet> {
    let mut parts = s.split(',');
    let q = Quiet {
        from: parts.next()?.parse().ok()?,
        to: parts.next()?.parse().ok()?,
        tz: parts.next()?.parse().ok()?,
    };
    (parts.next().is_none() && q.is_valid()).then_some(q)
}
