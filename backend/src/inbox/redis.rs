//! The inbox in Redis, shared by every instance of a cluster (keys named in
//! [`crate::cluster::keys::Keys`], under `--redis-prefix`):
//!
//! - `alert(id)`: hash of one alert: `user`, `seq`, `kind`, `title`, `body`, `ts`, and
//!   when they apply `room`, `offset`, `url`, `delivered`, `read`, `pushed` (ms). Keyed
//!   by the alert's id, so a receipt is one read and needs no index.
//! - `inbox(user)`: sorted set, alert id → seq: the user's stored alerts, at most
//!   [`KEEP_PER_USER`]; the append script drops the oldest (with their hashes and
//!   schedules) beyond that.
//! - `inbox_unread(user)`: the same for the unread ones only, so the unread count is a
//!   `ZCARD` and reading touches only what was unread.
//! - `inbox_head(user)`: hash `head` (the last seq handed out, `HINCRBY`, never reused,
//!   so it outlives the alerts) and `delivered` (the seq up to which alerts are marked
//!   delivered, so `delivered` touches only newer ones).
//! - `idempotency(user, key)`: `"{id} {created}"` of the first alert stored with an
//!   `Idempotency-Key`; expires after [`IDEMPOTENCY_MS`].
//! - `push_due`: one sorted set for all users, alert id → when its push is due, or
//!   when the lease of the instance that claimed it ends.
//! - `push_subs(user)`: hash, endpoint → `"{created} {p256dh length} {p256dh}{auth}"`;
//!   `push_endpoints`: hash, endpoint → user, so one browser belongs to one user.
//! - `vapid`: the VAPID key, `SET NX` by whoever needs it first.
//!
//! Nothing grows without bound: alerts (and so the unread set and the schedule) are
//! capped per user, idempotency keys expire, subscriptions are capped per user and
//! their endpoint index is kept in step. What stays is a user's `inbox_head`, one small
//! hash per user ever alerted: it is what keeps a seq from being reused, as SQLite's
//! `inbox_heads` row.
//!
//! Every method is one atomic step, as the [`Inbox`] contract asks: one command, a
//! MULTI/EXEC, or a Lua script where what is read decides what is written (Redis runs a
//! script whole, with nothing in between), so racing appends with one key store one
//! alert and instances claiming pushes at once never claim the same one. Reads of more
//! than one key are scripts too, as a full Redis refuses every MULTI/EXEC but not a
//! script that only reads. The scripts that scan read at most [`KEEP_PER_USER`] alerts
//! of one user.
//!
//! Calls go through the history store's time bound and retry (`store::redis::bounded`),
//! and a Redis that refuses writes (out of memory, read-only replica) is
//! [`StoreError::Full`], as for the history. An append retried after its reply was lost
//! finds its alert by the id it was given and answers it, so it is never stored twice;
//! other writes retried so leave the same data but answer as if someone else had done
//! them first (`read_upto` marks nothing, `unsubscribe` false).

use std::collections::HashMap;

use async_trait::async_trait;
use common::{Alert, AlertKind, InboxState};
use redis::aio::ConnectionManager;
use redis::Script;

use super::{
    Appended, DuePush, Inbox, MarkedRead, NewAlert, Receipt, Subscription, IDEMPOTENCY_MS,
    KEEP_PER_USER, MAX_SUBSCRIPTIONS,
};
use crate::cluster::keys::{Keys, LUA_KEYS};
use crate::store::redis::Calls;
use crate::store::StoreError;

/// Stores an alert. KEYS: inbox, unread, head, push due, and the idempotency key when
/// there is one. ARGV: prefix, user, id, now, push due ('' none), idempotency ms, alerts
/// kept, then the alert's own fields and values. Returns {id, seq}: seq 0 when the
/// idempotency key answered an earlier alert, whose id it is.
///
/// An alert whose id is stored already is this call's retry (ids are random): it
/// answers that alert again. The first write is `HINCRBY`, so an append refused for
/// lack of memory writes nothing.
const APPEND_LUA: &str = r"
local P, id, now = ARGV[1], ARGV[3], ARGV[4]
local key = alert_key(P, id)
local again = redis.call('HGET', key, 'seq')
if again then
  return {id, tonumber(again)}
end
if KEYS[5] then
  local before = redis.call('GET', KEYS[5])
  if before then
    local first, created = string.match(before, '^(%S+) (%d+)$')
    if first and tonumber(now) - tonumber(created) < tonumber(ARGV[6]) then
      return {first, 0}
    end
  end
end
local seq = redis.call('HINCRBY', KEYS[3], 'head', 1)
local s = string.format('%d', seq)
redis.call('HSET', key, 'user', ARGV[2], 'seq', s, 'ts', now, unpack(ARGV, 8))
redis.call('ZADD', KEYS[1], s, id)
redis.call('ZADD', KEYS[2], s, id)
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[5], id)
end
if KEYS[5] then
  redis.call('SET', KEYS[5], id .. ' ' .. now, 'PX', ARGV[6])
end
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[7])
if over > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[1], 0, over - 1)) do
    redis.call('DEL', alert_key(P, old))
    redis.call('ZREM', KEYS[2], old)
    redis.call('ZREM', KEYS[4], old)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
end
return {id, seq}
";

/// Alerts after a seq, or the newest. KEYS: inbox, unread, head. ARGV: prefix, since
/// ('' none: the newest), limit. Returns {head, unread, {alert hash, …}} in seq order.
const SINCE_LUA: &str = r"
local limit = tonumber(ARGV[3])
local ids = {}
if limit > 0 then
  if ARGV[2] == '' then
    ids = redis.call('ZRANGE', KEYS[1], -limit, -1)
  else
    ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '+inf', 'LIMIT', 0, limit)
  end
end
local alerts = {}
for i, id in ipairs(ids) do
  alerts[i] = redis.call('HGETALL', alert_key(ARGV[1], id))
end
local head = tonumber(redis.call('HGET', KEYS[3], 'head') or '0')
return {head, redis.call('ZCARD', KEYS[2]), alerts}
";

/// The head and the unread count. KEYS: head, unread. A script rather than MULTI/EXEC,
/// which a full Redis refuses even for reads.
const STATE_LUA: &str = r"
return {tonumber(redis.call('HGET', KEYS[1], 'head') or '0'), redis.call('ZCARD', KEYS[2])}
";

/// Marks one unread alert read and cancels its push, noting it in `m` = {upto,
/// pushed_upto}. Prepended to the two read scripts.
const MARK_READ_LUA: &str = r"
local function mark(P, unread, due, id, seq, now, m)
  local key = alert_key(P, id)
  redis.call('ZREM', unread, id)
  redis.call('ZREM', due, id)
  if redis.call('EXISTS', key) == 0 then
    return
  end
  redis.call('HSET', key, 'read', now)
  if seq > m[1] then m[1] = seq end
  if redis.call('HEXISTS', key, 'pushed') == 1 and seq > m[2] then m[2] = seq end
end
";

/// Reads up to a seq. KEYS: unread, push due. ARGV: prefix, seq, now. Returns {upto,
/// pushed_upto}.
const READ_UPTO_LUA: &str = r"
local m = {0, 0}
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'WITHSCORES')
for i = 1, #found, 2 do
  mark(ARGV[1], KEYS[1], KEYS[2], found[i], tonumber(found[i + 1]), ARGV[3], m)
end
return m
";

/// Reads the alerts about a room at or before an offset, looking through the unread
/// ones (at most the alerts kept). KEYS: unread, push due. ARGV: prefix, room, offset,
/// now. Returns {upto, pushed_upto}.
const READ_ROOM_LUA: &str = r"
local m = {0, 0}
local offset = tonumber(ARGV[3])
local found = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #found, 2 do
  local at = redis.call('HMGET', alert_key(ARGV[1], found[i]), 'room', 'offset')
  if at[1] == ARGV[2] and at[2] and tonumber(at[2]) <= offset then
    mark(ARGV[1], KEYS[1], KEYS[2], found[i], tonumber(found[i + 1]), ARGV[4], m)
  end
end
return m
";

/// Marks alerts delivered up to a seq (no further than the head, so an alert stored
/// later is not skipped), starting after the last seq marked. KEYS: head, inbox. ARGV:
/// prefix, seq, now. Returns 1 if anything was marked.
const DELIVERED_LUA: &str = r"
local got = redis.call('HMGET', KEYS[1], 'head', 'delivered')
local head, from = tonumber(got[1] or '0'), tonumber(got[2] or '0')
local upto = math.min(tonumber(ARGV[2]), head)
if upto <= from then
  return 0
end
local range = redis.call('ZRANGEBYSCORE', KEYS[2], string.format('(%d', from),
  string.format('%d', upto))
for _, id in ipairs(range) do
  redis.call('HSETNX', alert_key(ARGV[1], id), 'delivered', ARGV[3])
end
redis.call('HSET', KEYS[1], 'delivered', string.format('%d', upto))
return 1
";

/// Claims due pushes: each is re-scored to the end of the lease (later than now, so a
/// claim never hands one out twice), one whose alert is read or gone leaves the
/// schedule. KEYS: push due. ARGV: prefix, now, lease end, limit. Returns the claimed
/// alerts' hashes.
const CLAIM_LUA: &str = r"
local claimed = {}
local want = tonumber(ARGV[4])
while #claimed < want do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0,
    want - #claimed)
  local skipped = 0
  for _, id in ipairs(ids) do
    local alert = redis.call('HGETALL', alert_key(ARGV[1], id))
    local read = false
    for i = 1, #alert, 2 do
      if alert[i] == 'read' then read = true end
    end
    if #alert == 0 or read then
      redis.call('ZREM', KEYS[1], id)
      skipped = skipped + 1
    else
      redis.call('ZADD', KEYS[1], ARGV[3], id)
      claimed[#claimed + 1] = alert
    end
  end
  -- Only skipped ones leave room for more; none skipped means none are left due.
  if skipped == 0 then break end
end
return claimed
";

/// Ends an alert's schedule. KEYS: inbox, push due. ARGV: prefix, seq, pushed ('' not
/// sent).
const FINISH_LUA: &str = r"
local id = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[2])[1]
if not id then
  return 0
end
redis.call('ZREM', KEYS[2], id)
if ARGV[3] ~= '' then
  redis.call('HSET', alert_key(ARGV[1], id), 'pushed', ARGV[3])
end
return 1
";

/// Moves an unread alert's push. KEYS: unread, push due. ARGV: seq, due.
const DEFER_LUA: &str = r"
local id = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])[1]
if not id then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[2], id)
return 1
";

/// Adds or renews a subscription; takes the endpoint from another user who had it, and
/// drops the oldest beyond the cap. KEYS: subs, endpoints. ARGV: prefix, user,
/// endpoint, value, cap.
const SUBSCRIBE_LUA: &str = r"
local P, user, endpoint = ARGV[1], ARGV[2], ARGV[3]
local owner = redis.call('HGET', KEYS[2], endpoint)
if owner and owner ~= user then
  redis.call('HDEL', push_subs_key(P, owner), endpoint)
end
redis.call('HSET', KEYS[1], endpoint, ARGV[4])
redis.call('HSET', KEYS[2], endpoint, user)
local all = redis.call('HGETALL', KEYS[1])
local over = #all / 2 - tonumber(ARGV[5])
if over <= 0 then
  return 0
end
local subs = {}
for i = 1, #all, 2 do
  subs[#subs + 1] = {tonumber(string.match(all[i + 1], '^(%d+) ') or '0'), all[i]}
end
table.sort(subs, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
for i = 1, over do
  local gone = subs[i][2]
  redis.call('HDEL', KEYS[1], gone)
  if redis.call('HGET', KEYS[2], gone) == user then
    redis.call('HDEL', KEYS[2], gone)
  end
end
return over
";

/// Forgets one of a user's subscriptions. KEYS: subs, endpoints. ARGV: user, endpoint.
/// Returns 1 if it was theirs.
const UNSUBSCRIBE_LUA: &str = r"
if redis.call('HDEL', KEYS[1], ARGV[2]) == 0 then
  return 0
end
if redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[1] then
  redis.call('HDEL', KEYS[2], ARGV[2])
end
return 1
";

/// Redis-backed [`Inbox`]. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RedisInbox {
    /// The store's connection, every call bounded in time.
    redis: Calls,
    keys: Keys,
    append: Script,
    since: Script,
    state: Script,
    read_upto: Script,
    read_room: Script,
    delivered: Script,
    claim: Script,
    finish: Script,
    defer: Script,
    subscribe: Script,
    unsubscribe: Script,
}

impl RedisInbox {
    /// Uses `conn` (the history store's: [`crate::store::RedisStore::inbox`]).
    pub(crate) fn new(conn: ConnectionManager, keys: Keys) -> Self {
        let with_keys = |lua: &str| Script::new(&format!("{LUA_KEYS}{lua}"));
        RedisInbox {
            redis: Calls::new(conn),
            keys,
            append: with_keys(APPEND_LUA),
            since: with_keys(SINCE_LUA),
            state: Script::new(STATE_LUA),
            read_upto: with_keys(&format!("{MARK_READ_LUA}{READ_UPTO_LUA}")),
            read_room: with_keys(&format!("{MARK_READ_LUA}{READ_ROOM_LUA}")),
            delivered: with_keys(DELIVERED_LUA),
            claim: with_keys(CLAIM_LUA),
            finish: with_keys(FINISH_LUA),
            defer: Script::new(DEFER_LUA),
            subscribe: with_keys(SUBSCRIBE_LUA),
            unsubscribe: Script::new(UNSUBSCRIBE_LUA),
        }
    }

    /// Runs one of the read scripts for `user` with `args` after the prefix.
    async fn mark_read(
        &self,
        script: &Script,
        user: &str,
        args: &[String],
    ) -> Result<MarkedRead, StoreError> {
        let mut inv = script.key(self.keys.inbox_unread(user));
        inv.key(self.keys.push_due()).arg(self.keys.prefix());
        for arg in args {
            inv.arg(arg);
        }
        let (upto, pushed_upto): (u64, u64) = self.redis.invoke(&inv).await?;
        Ok(MarkedRead { upto, pushed_upto })
    }
}

/// One stored alert's hash, as `HGETALL` gives it.
type Fields = HashMap<String, String>;

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

fn text(f: &Fields, name: &str) -> Result<String, StoreError> {
    f.get(name)
        .cloned()
        .ok_or_else(|| corrupt(format!("an alert lacks field {name}")))
}

fn number(f: &Fields, name: &str) -> Result<Option<u64>, StoreError> {
    f.get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| corrupt(format!("an alert's {name} is {v:?}")))
        })
        .transpose()
}

fn required(f: &Fields, name: &str) -> Result<u64, StoreError> {
    number(f, name)?.ok_or_else(|| corrupt(format!("an alert lacks field {name}")))
}

fn to_alert(f: &Fields) -> Result<Alert, StoreError> {
    Ok(Alert {
        seq: required(f, "seq")?,
        kind: AlertKind::parse(&text(f, "kind")?).unwrap_or(AlertKind::App),
        title: text(f, "title")?,
        body: text(f, "body")?,
        room: f.get("room").cloned(),
        offset: number(f, "offset")?,
        url: f.get("url").cloned(),
        ts: required(f, "ts")?,
        read: f.contains_key("read"),
    })
}

/// A subscription's stored value: `"{created} {p256dh length} {p256dh}{auth}"`. The
/// length keeps the two keys apart whatever they hold; the creation time comes first
/// so the subscribe script can find the oldest.
fn encode_sub(sub: &Subscription, now_ms: u64) -> String {
    format!("{now_ms} {} {}{}", sub.p256dh.len(), sub.p256dh, sub.auth)
}

/// The subscription and its creation time from [`encode_sub`]'s value.
fn decode_sub(endpoint: String, value: &str) -> Result<(u64, Subscription), StoreError> {
    let bad = || corrupt(format!("a push subscription is {value:?}"));
    let mut parts = value.splitn(3, ' ');
    let created: u64 = parts.next().and_then(|c| c.parse().ok()).ok_or_else(bad)?;
    let len: usize = parts.next().and_then(|l| l.parse().ok()).ok_or_else(bad)?;
    let keys = parts.next().ok_or_else(bad)?;
    let (p256dh, auth) = (
        keys.get(..len).ok_or_else(bad)?,
        keys.get(len..).ok_or_else(bad)?,
    );
    Ok((
        created,
        Subscription {
            endpoint,
            p256dh: p256dh.to_owned(),
            auth: auth.to_owned(),
        },
    ))
}

#[async_trait]
impl Inbox for RedisInbox {
    async fn append(
        &self,
        user: &str,
        alert: &NewAlert,
        now_ms: u64,
        push_due: Option<u64>,
        idempotency: Option<&str>,
    ) -> Result<Appended, StoreError> {
        let id = super::new_id();
        let mut inv = self.append.key(self.keys.inbox(user));
        inv.key(self.keys.inbox_unread(user))
            .key(self.keys.inbox_head(user))
            .key(self.keys.push_due());
        if let Some(key) = idempotency {
            inv.key(self.keys.idempotency(user, key));
        }
        inv.arg(self.keys.prefix())
            .arg(user)
            .arg(&id)
            .arg(now_ms)
            .arg(push_due.map(|d| d.to_string()).unwrap_or_default())
            .arg(IDEMPOTENCY_MS)
            .arg(KEEP_PER_USER)
            .arg("kind")
            .arg(alert.kind.as_str())
            .arg("title")
            .arg(&alert.title)
            .arg("body")
            .arg(&alert.body);
        if let Some(room) = &alert.room {
            inv.arg("room").arg(room);
        }
        if let Some(offset) = alert.offset {
            inv.arg("offset").arg(offset);
        }
        if let Some(url) = &alert.url {
            inv.arg("url").arg(url);
        }
        let (id, seq): (String, u64) = self.redis.invoke(&inv).await?;
        Ok(Appended {
            alert: (seq > 0).then(|| super::alert(seq, alert, now_ms)),
            id,
        })
    }

    async fn state(&self, user: &str) -> Result<InboxState, StoreError> {
        let mut inv = self.state.key(self.keys.inbox_head(user));
        inv.key(self.keys.inbox_unread(user));
        let (head, unread): (u64, u64) = self.redis.invoke(&inv).await?;
        Ok(InboxState { head, unread })
    }

    async fn since(
        &self,
        user: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Alert>, InboxState), StoreError> {
        // No more than an inbox holds, so the script's reads stay bounded.
        let limit = limit.min(KEEP_PER_USER as usize);
        let mut inv = self.since.key(self.keys.inbox(user));
        inv.key(self.keys.inbox_unread(user))
            .key(self.keys.inbox_head(user))
            .arg(self.keys.prefix())
            .arg(since.map(|s| s.to_string()).unwrap_or_default())
            .arg(limit);
        let (head, unread, found): (u64, u64, Vec<Fields>) = self.redis.invoke(&inv).await?;
        let alerts = found.iter().map(to_alert).collect::<Result<Vec<_>, _>>()?;
        Ok((alerts, InboxState { head, unread }))
    }

    async fn read_upto(&self, user: &str, seq: u64, now_ms: u64) -> Result<MarkedRead, StoreError> {
        self.mark_read(
            &self.read_upto,
            user,
            &[seq.to_string(), now_ms.to_string()],
        )
        .await
    }

    async fn read_room(
        &self,
        user: &str,
        room: &str,
        offset: u64,
        now_ms: u64,
    ) -> Result<MarkedRead, StoreError> {
        self.mark_read(
            &self.read_room,
            user,
            &[room.to_owned(), offset.to_string(), now_ms.to_string()],
        )
        .await
    }

    async fn delivered(&self, user: &str, seq: u64, now_ms: u64) -> Result<(), StoreError> {
        let mut inv = self.delivered.key(self.keys.inbox_head(user));
        inv.key(self.keys.inbox(user))
            .arg(self.keys.prefix())
            .arg(seq)
            .arg(now_ms);
        self.redis.invoke::<u8>(&inv).await?;
        Ok(())
    }

    async fn receipt(&self, id: &str) -> Result<Option<Receipt>, StoreError> {
        let f: Fields = self
            .redis
            .query(redis::cmd("HGETALL").arg(self.keys.alert(id)))
            .await?;
        if f.is_empty() {
            return Ok(None);
        }
        Ok(Some(Receipt {
            id: id.to_owned(),
            user: text(&f, "user")?,
            created: required(&f, "ts")?,
            delivered: number(&f, "delivered")?,
            read: number(&f, "read")?,
            pushed: number(&f, "pushed")?,
        }))
    }

    async fn claim_due(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<DuePush>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut inv = self.claim.key(self.keys.push_due());
        inv.arg(self.keys.prefix())
            .arg(now_ms)
            // A lease ends after now, or the claim would find its own claims due.
            .arg(now_ms.saturating_add(lease_ms.max(1)))
            .arg(limit);
        let claimed: Vec<Fields> = self.redis.invoke(&inv).await?;
        claimed
            .iter()
            .map(|f| {
                Ok(DuePush {
                    user: text(f, "user")?,
                    alert: to_alert(f)?,
                })
            })
            .collect()
    }

    async fn finish_push(
        &self,
        user: &str,
        seq: u64,
        pushed: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut inv = self.finish.key(self.keys.inbox(user));
        inv.key(self.keys.push_due())
            .arg(self.keys.prefix())
            .arg(seq)
            .arg(pushed.map(|p| p.to_string()).unwrap_or_default());
        self.redis.invoke::<u8>(&inv).await?;
        Ok(())
    }

    async fn defer_push(&self, user: &str, seq: u64, due: u64) -> Result<(), StoreError> {
        let mut inv = self.defer.key(self.keys.inbox_unread(user));
        inv.key(self.keys.push_due()).arg(seq).arg(due);
        self.redis.invoke::<u8>(&inv).await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        user: &str,
        sub: &Subscription,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let mut inv = self.subscribe.key(self.keys.push_subs(user));
        inv.key(self.keys.push_endpoints())
            .arg(self.keys.prefix())
            .arg(user)
            .arg(&sub.endpoint)
            .arg(encode_sub(sub, now_ms))
            .arg(MAX_SUBSCRIPTIONS);
        self.redis.invoke::<u64>(&inv).await?;
        Ok(())
    }

    async fn unsubscribe(&self, user: &str, endpoint: &str) -> Result<bool, StoreError> {
        let mut inv = self.unsubscribe.key(self.keys.push_subs(user));
        inv.key(self.keys.push_endpoints()).arg(user).arg(endpoint);
        Ok(self.redis.invoke::<u8>(&inv).await? == 1)
    }

    /// Newest first, as SQLite's.
    async fn subscriptions(&self, user: &str) -> Result<Vec<Subscription>, StoreError> {
        let all: Vec<(String, String)> = self
            .redis
            .query(redis::cmd("HGETALL").arg(self.keys.push_subs(user)))
            .await?;
        let mut subs = all
            .into_iter()
            .map(|(endpoint, value)| decode_sub(endpoint, &value))
            .collect::<Result<Vec<_>, _>>()?;
        subs.sort_unstable_by(|(a, x), (b, y)| b.cmp(a).then_with(|| x.endpoint.cmp(&y.endpoint)));
        Ok(subs.into_iter().map(|(_, sub)| sub).collect())
    }

    /// A read first, so a full Redis still answers the key it has.
    async fn vapid_key(&self, candidate: &str) -> Result<String, StoreError> {
        let key = self.keys.vapid();
        if let Some(stored) = self.redis.query(redis::cmd("GET").arg(&key)).await? {
            return Ok(stored);
        }
        let (_set, stored): (bool, String) = self
            .redis
            .transaction(
                redis::pipe()
                    .atomic()
                    .set_options(
                        &key,
                        candidate,
                        redis::SetOptions::default().conditional_set(redis::ExistenceCheck::NX),
                    )
                    .get(&key),
            )
            .await?;
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_server::Server;
    use crate::inbox::conformance;

    /// An inbox under its own prefix: a fresh data set.
    async fn inbox(server: &Server, prefix: &str) -> RedisInbox {
        server.store(prefix).await.inbox()
    }

    #[ignore = "needs redis-server on PATH"]
    #[tokio::test]
    async fn inbox_conformance() {
        let server = Server::start().await;
        // One fresh inbox per part, each under its own prefix, on one server.
        conformance::alerts_numbered_read_and_resumed(&inbox(&server, "a").await).await;
        conformance::idempotency(&inbox(&server, "b").await).await;
        conformance::push_schedule(&inbox(&server, "c").await).await;
        conformance::subscriptions_and_vapid(&inbox(&server, "d").await).await;
        conformance::old_alerts_dropped(&inbox(&server, "e").await).await;
    }

    /// Dropping old alerts takes everything of theirs along (hash, unread entry,
    /// schedule), so an inbox costs at most [`KEEP_PER_USER`] alerts; idempotency keys
    /// expire.
    #[ignore = "needs redis-server on PATH"]
    #[tokio::test]
    async fn inbox_stays_bounded() {
        let server = Server::start().await;
        let i = inbox(&server, "huddle").await;
        let new = NewAlert {
            kind: AlertKind::App,
            title: "t".into(),
            body: String::new(),
            room: None,
            offset: None,
            url: None,
        };
        let first = i.append("ann", &new, 1, Some(5), Some("k")).await.unwrap();
        for n in 0..KEEP_PER_USER + 2 {
            i.append("ann", &new, 2 + n, Some(5), None).await.unwrap();
        }
        assert!(i.receipt(&first.id).await.unwrap().is_none());
        let mut conn = i.redis.conn();
        let count = |cmd: &str, key: String| redis::cmd(cmd).arg(key).clone();
        let (alerts, due): (u64, u64) = redis::pipe()
            .add_command(count("ZCARD", i.keys.inbox("ann")))
            .add_command(count("ZCARD", i.keys.push_due()))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!((alerts, due), (KEEP_PER_USER, KEEP_PER_USER));
        let hashes: Vec<String> = redis::cmd("KEYS")
            .arg(i.keys.alert("*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(hashes.len() as u64, KEEP_PER_USER);
        let ttl: i64 = redis::cmd("PTTL")
            .arg(i.keys.idempotency("ann", "k"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= IDEMPOTENCY_MS as i64, "{ttl}");
        // The schedule of dropped alerts went with them: every claim is a kept alert.
        let due = i.claim_due(10, 1000, 5000).await.unwrap();
        assert_eq!(due.len() as u64, KEEP_PER_USER);
        assert!(due.iter().all(|d| d.alert.seq > 3));
    }

    /// A Redis out of memory (`maxmemory` with noeviction) refuses new alerts and
    /// subscriptions as [`StoreError::Full`], and still answers reads, idempotent
    /// repeats and marking read.
    #[ignore = "needs redis-server on PATH"]
    #[tokio::test]
    async fn inbox_writes_to_a_full_redis_are_full() {
        let server = Server::start().await;
        let i = inbox(&server, "huddle").await;
        let new = NewAlert {
            kind: AlertKind::Mention,
            title: "t".into(),
            body: "b".into(),
            room: Some("r".into()),
            offset: Some(3),
            url: None,
        };
        let first = i.append("ann", &new, 1, None, Some("k")).await.unwrap();
        assert_eq!(i.vapid_key("v1").await.unwrap(), "v1");
        let mut conn = i.redis.conn();
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
        assert!(full(i.append("ann", &new, 2, None, None).await.map(drop)));
        assert!(full(
            i.append("bob", &new, 2, Some(9), None).await.map(drop)
        ));
        let sub = Subscription {
            endpoint: "https://push.example/1".into(),
            p256dh: "p".into(),
            auth: "a".into(),
        };
        assert!(full(i.subscribe("ann", &sub, 3).await));
        // Reads go on, and so does a repeat the idempotency key answers.
        let again = i.append("ann", &new, 5, None, Some("k")).await.unwrap();
        assert_eq!((again.id.as_str(), again.alert), (first.id.as_str(), None));
        let st = i.state("ann").await.unwrap();
        assert_eq!((st.head, st.unread), (1, 1));
        assert_eq!(i.since("ann", None, 10).await.unwrap().0.len(), 1);
        assert_eq!(i.vapid_key("v2").await.unwrap(), "v1");
        // Marking read starts by removing (which Redis allows when full), so it too
        // goes on: a full Redis does not keep read alerts unread.
        assert_eq!(i.read_upto("ann", 1, 4).await.unwrap().upto, 1);
        assert_eq!(i.state("ann").await.unwrap().unread, 0);
        let () = config("0").query_async(&mut conn).await.unwrap();
        let next = i.append("ann", &new, 7, None, None).await.unwrap();
        assert_eq!(next.alert.unwrap().seq, 2, "a refused append took no seq");
    }

    #[test]
    fn subscriptions_round_trip_whatever_their_keys_hold() {
        let sub = Subscription {
            endpoint: "https://push.example/1".into(),
            p256dh: "a b\n7 ".into(),
            auth: " x".into(),
        };
        let value = encode_sub(&sub, 42);
        assert_eq!(decode_sub(sub.endpoint.clone(), &value).unwrap(), (42, sub));
        assert!(decode_sub("e".into(), "42 9 short").is_err());
    }
}
