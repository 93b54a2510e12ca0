//! The directory in Redis, shared by every instance of a cluster (keys named in
//! [`crate::cluster::keys::Keys`], under `--redis-prefix`):
//!
//! - `user(id)`: hash `nick`, `key`, `kind`, `password` (accounts), `seen` (ms).
//! - `account_keys`: hash, nick key → account, so a name's lookalikes are taken too.
//! - `guests_seen`: sorted set, guest → when last seen, so idle guests are found without
//!   a scan.
//! - `token(hash)`: hash `user`, `created`, per account token.
//! - `room_settings(room)`: hash `private` (0/1), `owner`, `dm` (`a\nb`); read by the
//!   history's append script too, which files private rooms under `private_rooms`.
//! - `memberships(user)`: hash, room → read offset; `room_members(room)`: set of users,
//!   the same facts by room (kept in step with them: whom a message may alert).
//! - `notify(user)`: hash, room → alert level, for levels other than the default.
//! - quiet hours: the `quiet` field (`from,to,tz`) of `user(id)`.
//!
//! Every method is one atomic step, as the [`Directory`] contract asks: one command, a
//! MULTI/EXEC of commands whose results do not decide what else to write, or a Lua
//! script where they do (Redis runs a script whole, with nothing in between). The one
//! exception is [`Directory::forget_guests`], a script per [`FORGET_BATCH`] guests so
//! that no call holds Redis for long; each batch is consistent on its own.
//!
//! Calls go through the history store's time bound and retry (`store::redis::bounded`),
//! and a Redis that refuses writes (out of memory, read-only replica) is
//! [`StoreError::Full`], as for the history. A write retried after its reply was lost
//! leaves the same data, but answers as if someone else had done it first
//! (`create_account` false, `set_read` `None`, `add_token` an error): unlike SQLite's,
//! its outcome is not always known.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::Script;

use common::{NotifyLevel, Quiet};

use super::{
    quiet_from_str, quiet_to_string, AlertTarget, Directory, RoomSettings, UserKind, UserRecord,
};
use crate::cluster::keys::{Keys, LUA_KEYS};
use crate::store::redis::Calls;
use crate::store::StoreError;

/// Guests forgotten per script call: bounds how long one call keeps Redis busy.
const FORGET_BATCH: u64 = 1000;

/// Creates an account unless its name is a user's or its key an account's. KEYS: user,
/// account keys. ARGV: user, key, password hash, now. Returns 1 if created.
const CREATE_ACCOUNT_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'nick', ARGV[1], 'key', ARGV[2], 'kind', 'account',
  'password', ARGV[3], 'seen', ARGV[4])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 1
";

/// Records a sign-in. KEYS: user, account keys, guests seen. ARGV: user, nick, key,
/// kind, now. A new user gets all four; a known one its `seen`, and its nick and key
/// unless it is an account (whose nick is its name). The kind never changes. A guest's
/// time goes into `guests_seen` too; a user first recorded here as an account (which
/// `create_account` should have done) claims its key if no account has it.
const SEEN_LUA: &str = r"
local kind = redis.call('HGET', KEYS[1], 'kind')
if not kind then
  kind = ARGV[4]
  redis.call('HSET', KEYS[1], 'nick', ARGV[2], 'key', ARGV[3], 'kind', kind, 'seen', ARGV[5])
  if kind == 'account' then
    redis.call('HSETNX', KEYS[2], ARGV[3], ARGV[1])
  end
elseif kind == 'account' then
  redis.call('HSET', KEYS[1], 'seen', ARGV[5])
else
  redis.call('HSET', KEYS[1], 'nick', ARGV[2], 'key', ARGV[3], 'seen', ARGV[5])
end
if kind == 'guest' then
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
end
return 0
";

/// Stores a token unless its hash is stored already. KEYS: token. ARGV: user, now.
/// Returns 1 if stored.
const ADD_TOKEN_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'created', ARGV[2])
return 1
";

/// Gives a room its settings unless it has some; a room made private leaves the listed
/// `rooms` for `private_rooms`, with its head. KEYS: settings, rooms, private rooms.
/// ARGV: room, then field, value, … Returns 1 if created.
const CREATE_ROOM_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if redis.call('HGET', KEYS[1], 'private') == '1' then
  local head = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if head then
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('ZADD', KEYS[3], head, ARGV[1])
  end
end
return 1
";

/// Moves a member's read offset forward. KEYS: memberships. ARGV: room, offset.
/// Returns 1 if it moved (0: not a member, or at or past it already).
const SET_READ_LUA: &str = r"
local read = redis.call('HGET', KEYS[1], ARGV[1])
if read and tonumber(read) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
";

/// Sets a member's alert level, keeping only levels other than the default. KEYS:
/// memberships, notify. ARGV: room, level. Returns 1 if set (0: not a member).
const SET_NOTIFY_LUA: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
if ARGV[2] == 'mentions' then
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return 1
";

/// Forgets up to ARGV[3] guests not seen since ARGV[2] (ms), with their memberships.
/// KEYS: guests seen. ARGV: prefix, cutoff, batch. Returns {forgotten, taken}: fewer
/// taken than the batch means none are left. Every user taken leaves `guests_seen`; one
/// that is not a guest idle since the cutoff (a stale entry) keeps its record.
const FORGET_GUESTS_LUA: &str = r"
local P = ARGV[1]
local idle = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])
local forgotten = 0
for _, user in ipairs(idle) do
  redis.call('ZREM', KEYS[1], user)
  local key = user_key(P, user)
  local found = redis.call('HMGET', key, 'kind', 'seen')
  if found[1] == 'guest' and tonumber(found[2]) < tonumber(ARGV[2]) then
    local rooms = memberships_key(P, user)
    for _, room in ipairs(redis.call('HKEYS', rooms)) do
      redis.call('SREM', room_members_key(P, room), user)
    end
    redis.call('DEL', rooms, key, notify_key(P, user))
    forgotten = forgotten + 1
  end
end
return {forgotten, #idle}
";

/// Redis-backed [`Directory`]. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RedisDirectory {
    /// The store's connection, every call bounded in time.
    redis: Calls,
    keys: Keys,
    create_account: Script,
    seen: Script,
    add_token: Script,
    create_room: Script,
    set_read: Script,
    set_notify: Script,
    forget_guests: Script,
}

impl RedisDirectory {
    /// Uses `conn` (the history store's: [`crate::store::RedisStore::directory`]).
    pub(crate) fn new(conn: ConnectionManager, keys: Keys) -> Self {
        RedisDirectory {
            redis: Calls::new(conn),
            keys,
            create_account: Script::new(CREATE_ACCOUNT_LUA),
            seen: Script::new(SEEN_LUA),
            add_token: Script::new(ADD_TOKEN_LUA),
            create_room: Script::new(CREATE_ROOM_LUA),
            set_read: Script::new(SET_READ_LUA),
            set_notify: Script::new(SET_NOTIFY_LUA),
            forget_guests: Script::new(&format!("{LUA_KEYS}{FORGET_GUESTS_LUA}")),
        }
    }
}

#[async_trait]
impl Directory for RedisDirectory {
    async fn create_account(
        &self,
        user: &str,
        key: &str,
        password_hash: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut inv = self.create_account.key(self.keys.user(user));
        inv.key(self.keys.account_keys())
            .arg(user)
            .arg(key)
            .arg(password_hash)
            .arg(now_ms);
        Ok(self.redis.invoke::<u8>(&inv).await? == 1)
    }

    async fn password_hash(&self, user: &str) -> Result<Option<String>, StoreError> {
        let (kind, password): (Option<String>, Option<String>) = self
            .redis
            .query(
                redis::cmd("HMGET")
                    .arg(self.keys.user(user))
                    .arg("kind")
                    .arg("password"),
            )
            .await?;
        Ok(password.filter(|_| kind.as_deref() == Some(UserKind::Account.as_str())))
    }

    async fn account_with_key(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.redis
            .query(redis::cmd("HGET").arg(self.keys.account_keys()).arg(key))
            .await
    }

    async fn seen(&self, record: &UserRecord, key: &str, now_ms: u64) -> Result<(), StoreError> {
        let mut inv = self.seen.key(self.keys.user(&record.user));
        inv.key(self.keys.account_keys())
            .key(self.keys.guests_seen())
            .arg(&record.user)
            .arg(&record.nick)
            .arg(key)
            .arg(record.kind.as_str())
            .arg(now_ms);
        self.redis.invoke::<u8>(&inv).await?;
        Ok(())
    }

    async fn user(&self, user: &str) -> Result<Option<UserRecord>, StoreError> {
        let (nick, kind): (Option<String>, Option<String>) = self
            .redis
            .query(
                redis::cmd("HMGET")
                    .arg(self.keys.user(user))
                    .arg("nick")
                    .arg("kind"),
            )
            .await?;
        Ok(nick.map(|nick| UserRecord {
            user: user.to_owned(),
            nick,
            kind: kind
                .as_deref()
                .and_then(UserKind::parse)
                .unwrap_or(UserKind::Guest),
        }))
    }

    async fn add_token(&self, hash: &str, user: &str, now_ms: u64) -> Result<(), StoreError> {
        let mut inv = self.add_token.key(self.keys.token(hash));
        inv.arg(user).arg(now_ms);
        match self.redis.invoke::<u8>(&inv).await? {
            1 => Ok(()),
            // As SQLite's primary key refuses it: a second token with one hash would
            // make revoking either ambiguous.
            _ => Err(StoreError::Corrupt(
                "a token with this hash is stored already".to_owned(),
            )),
        }
    }

    async fn token_user(&self, hash: &str) -> Result<Option<String>, StoreError> {
        self.redis
            .query(redis::cmd("HGET").arg(self.keys.token(hash)).arg("user"))
            .await
    }

    async fn revoke_token(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let key = self.keys.token(hash);
        let (user, _deleted): (Option<String>, u64) = self
            .redis
            .transaction(redis::pipe().atomic().hget(&key, "user").del(&key))
            .await?;
        Ok(user)
    }

    async fn settings(&self, room: &str) -> Result<Option<RoomSettings>, StoreError> {
        let (private, owner, dm): (Option<String>, Option<String>, Option<String>) = self
            .redis
            .query(
                redis::cmd("HMGET")
                    .arg(self.keys.room_settings(room))
                    .arg("private")
                    .arg("owner")
                    .arg("dm"),
            )
            .await?;
        Ok(private.map(|private| RoomSettings {
            private: private == "1",
            owner,
            dm: dm.and_then(|d| {
                d.split_once('\n')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
            }),
        }))
    }

    async fn create_room(&self, room: &str, settings: &RoomSettings) -> Result<bool, StoreError> {
        let mut inv = self.create_room.key(self.keys.room_settings(room));
        inv.key(self.keys.rooms())
            .key(self.keys.private_rooms())
            .arg(room)
            .arg("private")
            .arg(u8::from(settings.private));
        if let Some(owner) = &settings.owner {
            inv.arg("owner").arg(owner);
        }
        if let Some((a, b)) = &settings.dm {
            inv.arg("dm").arg(format!("{a}\n{b}"));
        }
        Ok(self.redis.invoke::<u8>(&inv).await? == 1)
    }

    async fn is_member(&self, room: &str, user: &str) -> Result<bool, StoreError> {
        self.redis
            .query(
                redis::cmd("HEXISTS")
                    .arg(self.keys.memberships(user))
                    .arg(room),
            )
            .await
    }

    async fn add_member(&self, room: &str, user: &str, read: u64) -> Result<bool, StoreError> {
        let (added, _): (bool, u64) = self
            .redis
            .transaction(
                redis::pipe()
                    .atomic()
                    .hset_nx(self.keys.memberships(user), room, read)
                    .sadd(self.keys.room_members(room), user),
            )
            .await?;
        Ok(added)
    }

    async fn remove_member(&self, room: &str, user: &str) -> Result<bool, StoreError> {
        let (removed, _): (u64, u64) = self
            .redis
            .transaction(
                redis::pipe()
                    .atomic()
                    .hdel(self.keys.memberships(user), room)
                    .srem(self.keys.room_members(room), user)
                    .hdel(self.keys.notify(user), room)
                    .ignore(),
            )
            .await?;
        Ok(removed == 1)
    }

    /// All of `user`'s memberships in one HGETALL, in room order: a user's memberships
    /// are the rooms they joined, few enough to read whole.
    async fn memberships(
        &self,
        user: &str,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut all: Vec<(String, u64)> = self
            .redis
            .query(redis::cmd("HGETALL").arg(self.keys.memberships(user)))
            .await?;
        all.sort_unstable();
        all.truncate(limit);
        Ok(all)
    }

    async fn set_read(
        &self,
        user: &str,
        room: &str,
        offset: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut inv = self.set_read.key(self.keys.memberships(user));
        inv.arg(room).arg(offset);
        Ok((self.redis.invoke::<u8>(&inv).await? == 1).then_some(offset))
    }

    /// A script per [`FORGET_BATCH`] guests until none idle are left.
    async fn forget_guests(&self, before_ms: u64) -> Result<u64, StoreError> {
        let mut forgotten = 0;
        loop {
            let mut inv = self.forget_guests.key(self.keys.guests_seen());
            inv.arg(self.keys.prefix()).arg(before_ms).arg(FORGET_BATCH);
            let (n, taken): (u64, u64) = self.redis.invoke(&inv).await?;
            forgotten += n;
            if taken < FORGET_BATCH {
                return Ok(forgotten);
            }
        }
    }

    async fn set_notify(
        &self,
        user: &str,
        room: &str,
        level: NotifyLevel,
    ) -> Result<bool, StoreError> {
        let mut inv = self.set_notify.key(self.keys.memberships(user));
        inv.key(self.keys.notify(user))
            .arg(room)
            .arg(level.as_str());
        Ok(self.redis.invoke::<u8>(&inv).await? == 1)
    }

    async fn notify_levels(&self, user: &str) -> Result<Vec<(String, NotifyLevel)>, StoreError> {
        let all: Vec<(String, String)> = self
            .redis
            .query(redis::cmd("HGETALL").arg(self.keys.notify(user)))
            .await?;
        Ok(all
            .into_iter()
            .filter_map(|(room, level)| Some((room, NotifyLevel::parse(&level)?)))
            .collect())
    }

    /// The roster, then each member's nick and level in one pipeline.
    async fn alert_targets(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Vec<AlertTarget>, StoreError> {
        let mut users: Vec<String> = self
            .redis
            .query(redis::cmd("SMEMBERS").arg(self.keys.room_members(room)))
            .await?;
        users.truncate(limit);
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for user in &users {
            pipe.hget(self.keys.user(user), "nick")
                .hget(self.keys.notify(user), room);
        }
        let found: Vec<(Option<String>, Option<String>)> = self.redis.transaction(&pipe).await?;
        Ok(users
            .into_iter()
            .zip(found)
            .filter_map(|(user, (nick, level))| {
                Some(AlertTarget {
                    user,
                    nick: nick?,
                    level: level
                        .as_deref()
                        .and_then(NotifyLevel::parse)
                        .unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn set_quiet(&self, user: &str, quiet: Option<Quiet>) -> Result<(), StoreError> {
        let key = self.keys.user(user);
        match quiet {
            Some(q) => {
                self.redis
                    .query::<()>(
                        redis::cmd("HSET")
                            .arg(key)
                            .arg("quiet")
                            .arg(quiet_to_string(&q)),
                    )
                    .await
            }
            None => {
                self.redis
                    .query::<()>(redis::cmd("HDEL").arg(key).arg("quiet"))
                    .await
            }
        }
    }

    async fn quiet(&self, user: &str) -> Result<Option<Quiet>, StoreError> {
        let q: Option<String> = self
            .redis
            .query(redis::cmd("HGET").arg(self.keys.user(user)).arg("quiet"))
            .await?;
        Ok(q.as_deref().and_then(quiet_from_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_server::Server;
    use crate::directory::conformance;
    use std::time::Duration;

    use crate::store::{AppendOutcome, Change, HistoryStore, NewEntry, Retention};

    #[ignore = "needs redis-server on PATH"]
    #[tokio::test]
    async fn directory_conformance() {
        let server = Server::start().await;
        // One fresh directory per part, each under its own prefix, on one server.
        conformance::accounts_and_tokens(&server.store("a").await.directory()).await;
        conformance::memberships_and_read_offsets(&server.store("b").await.directory()).await;
        conformance::room_settings(&server.store("c").await.directory()).await;
        conformance::idle_guests_are_forgotten(&server.store("d").await.directory()).await;
        conformance::races_leave_one_winner(&server.store("e").await.directory()).await;
        conformance::alert_levels_and_quiet_hours(&server.store("f").await.directory()).await;
    }

    #[ignore = "needs redis-server on PATH"]
    #[tokio::test]
    async fn directory_forgets_guests_in_batches() {
        let server = Server::start().await;
        let d = server.store("huddle").await.directory();
        let n = FORGET_BATCH * 2 + 5;
        for i in 0..n {
            let user = format!("guest:{i}");
            let record = UserRecord {
                user: user.clone(),
                nick: format!("g{i}"),
                kind: UserKind::Guest,
            };
            d.seen(&record, &record.nick, 10).await.unwrap();
            d.add_member("r", &user, 0).await.unwrap();
        }
        assert_eq!(d.forget_guests(11).await.unwrap(), n);
        assert_eq!(d.forget_guests(11).await.unwrap(), 0);
        let mut conn = d.redis.conn();
        let left: u64 = redis::cmd("SCARD")
            .arg(d.keys.room_members("r"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, 0, "their memberships went with them");
    }

    /// A Redis out of memory (`maxmemory` with noeviction) refuses the directory's
    /// writes as [`StoreError::Full`], whether a script, a transaction or a command,
    /// and still answers its reads.
    #[ignore = "needs redis-server on PATH"]
    #[tokio::test]
    async fn directory_writes_to_a_full_redis_are_full() {
        let server = Server::start().await;
        let d = server.store("huddle").await.directory();
        assert!(d.create_account("ann", "ann", "$h", 1).await.unwrap());
        d.add_member("r", "ann", 1).await.unwrap();
        let mut conn = d.redis.conn();
        let config = |max: &'static str| {
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("maxmemory")
                .arg(max)
                .clone()
        };
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory-policy")
            .arg("noeviction")
            .query_async(&mut conn)
            .await
            .unwrap();
        let () = config("1").query_async(&mut conn).await.unwrap();
        let full = |r: Result<_, StoreError>| matches!(r, Err(StoreError::Full(_)));
        assert!(full(
            d.create_account("bob", "bob", "$h", 2).await.map(drop)
        ));
        assert!(full(d.add_member("s", "ann", 0).await.map(drop)));
        assert!(full(d.set_read("ann", "r", 5).await.map(drop)));
        let guest = UserRecord {
            user: "guest:1".into(),
            nick: "g".into(),
            kind: UserKind::Guest,
        };
        assert!(full(d.seen(&guest, "g", 3).await));
        // Reads go on.
        assert_eq!(d.password_hash("ann").await.unwrap().as_deref(), Some("$h"));
        assert_eq!(
            d.memberships("ann", 10).await.unwrap(),
            vec![("r".into(), 1)]
        );
        let () = config("0").query_async(&mut conn).await.unwrap();
        assert_eq!(d.set_read("ann", "r", 5).await.unwrap(), Some(5));
    }

    fn msg(room: &str, id: &str) -> NewEntry {
        NewEntry {
            room: room.into(),
            nick: "x".into(),
            user: "x".into(),
            id: id.into(),
            change: Change::Message {
                text: "hi".into(),
                reply_to: None,
            },
        }
    }

    fn private() -> RoomSettings {
        RoomSettings {
            private: true,
            owner: Some("x".into()),
            dm: None,
        }
    }

    /// Private rooms stay out of `list_rooms` whether they become private before their
    /// first message or after, and still count against the room limit and retention.
    #[ignore = "needs redis-server on PATH"]
    #[tokio::test]
    async fn directory_private_rooms_are_never_listed() {
        let server = Server::start().await;
        let store = server.store("huddle").await.limit(3, &Retention::default());
        let d = store.directory();
        let names = |list: crate::store::RoomList| -> (Vec<String>, u64) {
            (list.rooms.into_iter().map(|(r, _)| r).collect(), list.total)
        };
        store
            .append_batch(vec![msg("a", "1"), msg("a", "2"), msg("b", "1")])
            .await
            .unwrap();
        assert_eq!(
            names(store.rooms(0, 10).await.unwrap()),
            (vec!["a".into(), "b".into()], 2)
        );

        // Made private after its first message: it leaves the list at once.
        assert!(d.create_room("b", &private()).await.unwrap());
        assert_eq!(
            names(store.rooms(0, 10).await.unwrap()),
            (vec!["a".into()], 1)
        );
        assert_eq!(names(store.rooms(1, 10).await.unwrap()), (vec![], 1));
        // Made private before: it is never listed. A public room with settings is.
        assert!(d.create_room("c", &private()).await.unwrap());
        let public = RoomSettings {
            private: false,
            owner: Some("x".into()),
            dm: None,
        };
        assert!(d.create_room("a", &public).await.unwrap());
        let out = store
            .append_batch(vec![msg("c", "1"), msg("b", "2"), msg("a", "3")])
            .await
            .unwrap();
        let offsets: Vec<u64> = out
            .iter()
            .map(|o| match o {
                AppendOutcome::Stored(m) => m.offset(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(offsets, [1, 2, 3], "offsets continue as ever");
        let listed = store.rooms(0, 10).await.unwrap();
        assert_eq!(listed.rooms, vec![("a".to_owned(), 3)]);
        assert_eq!(listed.total, 1);

        // The limit counts private rooms: a, b and c are three.
        let out = store.append_batch(vec![msg("d", "1")]).await.unwrap();
        assert_eq!(out, vec![AppendOutcome::RoomLimit]);

        // Retention forgets private rooms too, which frees their places.
        let a_minute = Retention {
            max_age: Some(Duration::from_secs(60)),
            max_messages: None,
        };
        let later = crate::clock::now_ms() + 3_600_000;
        let pruned = store.prune(&a_minute, later).await.unwrap();
        assert_eq!((pruned.messages, pruned.rooms), (6, 3));
        let out = store
            .append_batch(vec![msg("d", "1"), msg("b", "3")])
            .await
            .unwrap();
        assert!(
            matches!(&out[..], [AppendOutcome::Stored(d), AppendOutcome::Stored(b)]
                if d.offset() == 1 && b.offset() == 3),
            "{out:?}"
        );
        assert_eq!(
            names(store.rooms(0, 10).await.unwrap()),
            (vec!["d".into()], 1),
            "b came back private"
        );
    }
}
