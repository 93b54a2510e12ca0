//! The Redis key schema: every key and channel name Huddle uses, under one prefix
//! (`--redis-prefix`, default `huddle`), so two deployments can share one Redis.
//!
//! Room names are `[a-z0-9_-]` (`common::validate::room`) and instance ids hex, so
//! neither can reach into another key. Nick keys and message ids can contain `:`, so the
//! dedupe key carries the nick key's length to keep (`a:b`, `c`) and (`a`, `b:c`) apart.
//! User ids and token hashes can contain anything, so each ends its key, after a part
//! (`user:`, `memberships:`, `token:`, `inbox:`, `push_subs:`, …) that no other key
//! starts with. Alert ids come from the notifications API (anything, when a caller asks
//! for an unknown one), so they end theirs after `alert:`; an idempotency key holds a
//! user and a caller's key, both anything, so it carries the user's length, as the
//! dedupe key does the nick key's.
//!
//! A few Lua scripts name keys they only learn about while running (which instances
//! exist, which rooms a user is in); [`LUA_KEYS`] defines those names for them, beside
//! the Rust ones.

use std::sync::Arc;

/// Why a prefix cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Redis key prefix must be 1 to 64 of A-Z a-z 0-9 _ . : - (got {0:?})")]
pub struct BadPrefix(pub String);

/// Every key name, under one prefix. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: Arc<str>,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            prefix: Arc::from(DEFAULT_PREFIX),
        }
    }
}

/// The prefix when `--redis-prefix` is not given.
pub(crate) const DEFAULT_PREFIX: &str = "huddle";

/// Lua functions naming the keys a script builds itself, with the same layout as the
/// Rust methods below. Prepended to the scripts that use them; `P` is the prefix,
/// passed as an argument.
pub(crate) const LUA_KEYS: &str = r"
local function heartbeat_key(P, id) return P .. ':instance:' .. id end
local function members_key(P, room, id) return P .. ':room:' .. room .. ':members:' .. id end
local function user_key(P, user) return P .. ':user:' .. user end
local function memberships_key(P, user) return P .. ':memberships:' .. user end
local function notify_key(P, user) return P .. ':notify:' .. user end
local function room_members_key(P, room) return P .. ':room:' .. room .. ':roster' end
local function room_users_key(P, room, id) return P .. ':room:' .. room .. ':users:' .. id end
local function alert_key(P, id) return P .. ':alert:' .. id end
local function push_subs_key(P, user) return P .. ':push_subs:' .. user end
";

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Result<Self, BadPrefix> {
        let ok = (1..=64).contains(&prefix.len())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
        if !ok {
            return Err(BadPrefix(prefix.to_owned()));
        }
        Ok(Keys {
            prefix: Arc::from(prefix),
        })
    }

    /// The prefix, for scripts that build key names with [`LUA_KEYS`].
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    // History (the store).

    /// Names the data set; `SET NX` when missing, so data loss changes it.
    pub fn epoch(&self) -> String {
        format!("{}:epoch", self.prefix)
    }

    /// Sorted set of the public rooms with messages, score = last offset: what
    /// `list_rooms` pages through.
    pub fn rooms(&self) -> String {
        format!("{}:rooms", self.prefix)
    }

    /// Sorted set of the private rooms with messages, score = last offset: never listed,
    /// but counted against `--max-rooms` and pruned like [`Keys::rooms`].
    pub fn private_rooms(&self) -> String {
        format!("{}:private_rooms", self.prefix)
    }

    /// Written by the readiness probe.
    pub fn ready_probe(&self) -> String {
        format!("{}:ready_probe", self.prefix)
    }

    /// A room's last offset.
    pub fn seq(&self, room: &str) -> String {
        format!("{}:room:{room}:seq", self.prefix)
    }

    /// A room's log: a stream, one entry per message, edit, deletion or reaction, id
    /// `<offset>-1`.
    pub fn log(&self, room: &str) -> String {
        format!("{}:room:{room}:log", self.prefix)
    }

    /// Hash of what changed the room's messages since they were appended: `e:<offset>`
    /// the current text of an edited one, `d:<offset>` what is left of a deleted one,
    /// `r:<offset>` its reactions.
    pub fn room_state(&self, room: &str) -> String {
        format!("{}:room:{room}:state", self.prefix)
    }

    /// Sorted set of the offsets a deletion erased from the log (the message and its
    /// edits), score = offset: accounted for, not lost.
    pub fn erased(&self, room: &str) -> String {
        format!("{}:room:{room}:erased", self.prefix)
    }

    /// The room of a [`Keys::log`] key.
    pub fn room_of_log<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&*self.prefix)?
            .strip_prefix(":room:")?
            .strip_suffix(":log")
    }

    /// The offset a message id was stored at, for retries.
    pub fn dedupe(&self, room: &str, nick_key: &str, id: &str) -> String {
        format!(
            "{}:room:{room}:dedupe:{}:{nick_key}:{id}",
            self.prefix,
            nick_key.len()
        )
    }

    /// String, JSON: who an SSE stream's session signed in as, so another instance can
    /// resume it (`streams::Resume`), with a TTL.
    pub fn stream(&self, id: &str) -> String {
        format!("{}:stream:{id}", self.prefix)
    }

    // People (the directory).

    /// Hash of a user seen: `nick`, `key` (nick key), `kind` (guest, account, host),
    /// `password` (accounts only), `seen` (ms).
    pub fn user(&self, user: &str) -> String {
        format!("{}:user:{user}", self.prefix)
    }

    /// Hash, nick key → account: whose name a key is (accounts only).
    pub fn account_keys(&self) -> String {
        format!("{}:account_keys", self.prefix)
    }

    /// Sorted set of guests, score = when last seen (ms), for forgetting idle ones.
    pub fn guests_seen(&self) -> String {
        format!("{}:guests_seen", self.prefix)
    }

    /// Hash of an account token, by the token's hash: `user`, `created` (ms).
    pub fn token(&self, hash: &str) -> String {
        format!("{}:token:{hash}", self.prefix)
    }

    /// Hash of a room's settings: `private` (0 or 1), `owner`, `dm` (`a\nb`); a room
    /// without one is public and ownerless.
    pub fn room_settings(&self, room: &str) -> String {
        format!("{}:room:{room}:settings", self.prefix)
    }

    /// Hash, room → read offset, of a user's memberships.
    pub fn memberships(&self, user: &str) -> String {
        format!("{}:memberships:{user}", self.prefix)
    }

    /// Hash, room → alert level (`all` or `nothing`), of a user's memberships whose
    /// level is not the default.
    pub fn notify(&self, user: &str) -> String {
        format!("{}:notify:{user}", self.prefix)
    }

    /// Set of the users who are members of a room (the directory's memberships, not
    /// who is connected: that is [`Keys::members`]).
    pub fn room_members(&self, room: &str) -> String {
        format!("{}:room:{room}:roster", self.prefix)
    }

    // Alerts (the inbox).

    /// Hash of one alert, by its id (so a receipt is one read): `user`, `seq`, `kind`,
    /// `title`, `body`, `ts`, and when they apply `room`, `offset`, `url`, `delivered`,
    /// `read`, `pushed` (ms).
    pub fn alert(&self, id: &str) -> String {
        format!("{}:alert:{id}", self.prefix)
    }

    /// Sorted set of a user's stored alerts: alert id, score = seq (at most
    /// `inbox::KEEP_PER_USER`).
    pub fn inbox(&self, user: &str) -> String {
        format!("{}:inbox:{user}", self.prefix)
    }

    /// Sorted set of a user's unread alerts, the subset of [`Keys::inbox`] whose
    /// alerts have no `read`: its size is the unread count.
    pub fn inbox_unread(&self, user: &str) -> String {
        format!("{}:inbox_unread:{user}", self.prefix)
    }

    /// Hash of a user's counters: `head`, the last seq handed out (never reused, so it
    /// outlives the alerts), and `delivered`, up to which seq the alerts are marked
    /// delivered.
    pub fn inbox_head(&self, user: &str) -> String {
        format!("{}:inbox_head:{user}", self.prefix)
    }

    /// `"{alert id} {created ms}"` of the first alert a user stored with an
    /// `Idempotency-Key`; expires after `inbox::IDEMPOTENCY_MS`.
    pub fn idempotency(&self, user: &str, key: &str) -> String {
        format!("{}:idempotency:{}:{user}:{key}", self.prefix, user.len())
    }

    /// Sorted set of the alerts with a push scheduled, alert id → when it is due (ms),
    /// or when the lease of the instance that claimed it ends.
    pub fn push_due(&self) -> String {
        format!("{}:push_due", self.prefix)
    }

    /// Hash, endpoint → `"{created ms} {p256dh length} {p256dh}{auth}"`, of a user's
    /// push subscriptions (at most `inbox::MAX_SUBSCRIPTIONS`).
    pub fn push_subs(&self, user: &str) -> String {
        format!("{}:push_subs:{user}", self.prefix)
    }

    /// Hash, endpoint → user: whose a browser's subscription is (one user's only).
    pub fn push_endpoints(&self) -> String {
        format!("{}:push_endpoints", self.prefix)
    }

    /// The VAPID private key every instance signs pushes with; `SET NX` by the first.
    pub fn vapid(&self) -> String {
        format!("{}:vapid", self.prefix)
    }

    // Fan-out (the broker).

    /// Pub/sub channel for a room's events (notifications, presence, typing).
    pub fn events(&self, room: &str) -> String {
        format!("{}:room:{room}:events", self.prefix)
    }

    /// The room of an [`Keys::events`] channel.
    pub fn room_of_events<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(&*self.prefix)?
            .strip_prefix(":room:")?
            .strip_suffix(":events")
    }

    // Instances, presence and nicks.

    /// Set of registered instance ids.
    pub fn instances(&self) -> String {
        format!("{}:instances", self.prefix)
    }

    /// An instance's heartbeat; an instance without one is dead.
    pub fn heartbeat(&self, id: &str) -> String {
        format!("{}:instance:{id}", self.prefix)
    }

    /// Set of rooms where an instance has members.
    pub fn instance_rooms(&self, id: &str) -> String {
        format!("{}:instance:{id}:rooms", self.prefix)
    }

    /// Hash, user → how many of their connections are in a room, on one instance.
    pub fn room_users(&self, room: &str, id: &str) -> String {
        format!("{}:room:{room}:users:{id}", self.prefix)
    }

    /// Hash, connection id → nick, of an instance's members of a room.
    pub fn members(&self, room: &str, id: &str) -> String {
        format!("{}:room:{room}:members:{id}", self.prefix)
    }

    /// Who holds a nick: `"{instance} {conn} {session}"`.
    pub fn nick(&self, nick_key: &str) -> String {
        format!("{}:nick:{nick_key}", self.prefix)
    }

    /// Sorted set of a user's connections (`"{instance} {conn}"`) by when they opened.
    pub fn user_conns(&self, user: &str) -> String {
        format!("{}:userconns:{user}", self.prefix)
    }

    /// Set of the connections (`"{instance} {conn}"`) of the user who holds a nick.
    pub fn nick_conns(&self, nick_key: &str) -> String {
        format!("{}:nickconns:{nick_key}", self.prefix)
    }

    /// Set of the nick keys an instance holds, deleted by whoever sweeps it.
    pub fn instance_nicks(&self, id: &str) -> String {
        format!("{}:instance:{id}:nicks", self.prefix)
    }

    /// Pub/sub channel with requests for one instance ("close your connection N").
    pub fn control(&self, id: &str) -> String {
        format!("{}:instance:{id}:control", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_under_any_prefix() {
        for keys in [Keys::default(), Keys::new("staging:chat").unwrap()] {
            assert_eq!(keys.room_of_log(&keys.log("a-b_1")), Some("a-b_1"));
            assert_eq!(keys.room_of_events(&keys.events("lobby")), Some("lobby"));
            assert_eq!(keys.room_of_events(&keys.log("x")), None);
        }
        let other = Keys::new("other").unwrap();
        assert_eq!(other.room_of_log(&Keys::default().log("x")), None);
    }

    #[test]
    fn default_layout_is_the_documented_one() {
        let k = Keys::default();
        assert_eq!(k.epoch(), "huddle:epoch");
        assert_eq!(k.seq("r"), "huddle:room:r:seq");
        assert_eq!(k.members("r", "i"), "huddle:room:r:members:i");
        assert_eq!(k.heartbeat("ab"), "huddle:instance:ab");
        assert_eq!(k.nick("alice"), "huddle:nick:alice");
        assert_eq!(k.instance_nicks("ab"), "huddle:instance:ab:nicks");
        assert_eq!(k.control("ab"), "huddle:instance:ab:control");
        assert_eq!(k.rooms(), "huddle:rooms");
        assert_eq!(k.private_rooms(), "huddle:private_rooms");
        assert_eq!(k.user("guest:ab"), "huddle:user:guest:ab");
        assert_eq!(k.memberships("guest:ab"), "huddle:memberships:guest:ab");
        assert_eq!(k.room_members("r"), "huddle:room:r:roster");
        assert_eq!(k.room_settings("r"), "huddle:room:r:settings");
        assert_eq!(k.token("th"), "huddle:token:th");
        assert_eq!(k.alert("al_x"), "huddle:alert:al_x");
        assert_eq!(k.inbox("guest:ab"), "huddle:inbox:guest:ab");
        assert_eq!(k.inbox_unread("ann"), "huddle:inbox_unread:ann");
        assert_eq!(k.inbox_head("ann"), "huddle:inbox_head:ann");
        assert_eq!(k.idempotency("ann", "k1"), "huddle:idempotency:3:ann:k1");
        assert_eq!(k.push_due(), "huddle:push_due");
        assert_eq!(k.push_subs("ann"), "huddle:push_subs:ann");
        assert_eq!(k.push_endpoints(), "huddle:push_endpoints");
        assert_eq!(k.vapid(), "huddle:vapid");
        // The Lua names follow the same layout.
        assert!(LUA_KEYS.contains("P .. ':instance:' .. id"));
        assert!(LUA_KEYS.contains("P .. ':room:' .. room .. ':members:' .. id"));
        assert!(LUA_KEYS.contains("P .. ':user:' .. user"));
        assert!(LUA_KEYS.contains("P .. ':memberships:' .. user"));
        assert!(LUA_KEYS.contains("P .. ':notify:' .. user"));
        assert!(LUA_KEYS.contains("P .. ':room:' .. room .. ':roster'"));
        assert!(LUA_KEYS.contains("P .. ':alert:' .. id"));
        assert!(LUA_KEYS.contains("P .. ':push_subs:' .. user"));
    }

    #[test]
    fn user_ids_cannot_reach_into_other_keys() {
        // Whatever a user id holds, its keys keep their own part before it.
        let k = Keys::default();
        for user in ["x", "x:y", "a:memberships:b", ""] {
            assert!(k.user(user).starts_with("huddle:user:"));
            assert!(k.memberships(user).starts_with("huddle:memberships:"));
            assert_ne!(k.user(user), k.memberships(user));
            let per_user = [
                k.user(user),
                k.memberships(user),
                k.inbox(user),
                k.inbox_unread(user),
                k.inbox_head(user),
                k.push_subs(user),
            ];
            for (i, a) in per_user.iter().enumerate() {
                for b in &per_user[i + 1..] {
                    assert!(!a.starts_with(&**b) && !b.starts_with(&**a), "{a} {b}");
                }
            }
        }
        assert_ne!(k.user("memberships:x"), k.memberships("x"));
        assert_ne!(k.inbox("unread:x"), k.inbox_unread("x"));
        // Whatever an alert id holds, its key is an alert's.
        assert!(k.alert("x:inbox:ann").starts_with("huddle:alert:"));
        assert!(!k.inbox("x").starts_with("huddle:alert:"));
    }

    #[test]
    fn idempotency_keys_keep_users_apart() {
        let k = Keys::default();
        assert_ne!(k.idempotency("a:b", "c"), k.idempotency("a", "b:c"));
    }

    #[test]
    fn dedupe_keys_keep_colons_apart() {
        let k = Keys::default();
        assert_ne!(k.dedupe("r", "a:b", "c"), k.dedupe("r", "a", "b:c"));
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(Keys::new("").is_err());
        assert!(Keys::new("a b").is_err());
        assert!(Keys::new("{x}").is_err());
        assert!(Keys::new(&"x".repeat(65)).is_err());
        assert_eq!(Keys::new("team-a").unwrap().epoch(), "team-a:epoch");
    }
}
