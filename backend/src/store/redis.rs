//! The shared store for several Huddle instances: history in Redis Streams.
//!
//! The keys are named in [`crate::cluster::keys::Keys`] (under `--redis-prefix`); the
//! cluster broker reads the same streams through them. Every instance appends through the
//! same Lua script, and Redis runs scripts one at a time, so each room's offsets are
//! gap-free and totally ordered across all instances without any coordination between
//! them:
//!
//! - `epoch`: names the data set; created with `SET NX` by whoever needs it first, so
//!   after Redis loses its data (restart without persistence, `FLUSHALL`) it changes and
//!   clients get `recovered: false` instead of a silent gap.
//! - `seq(room)`: the room's last offset.
//! - `log(room)`: a stream with one entry per message, id `<offset>-1`, so a range of
//!   offsets is a range of stream ids; trimmed to about `history_max` entries (or the
//!   `--retention` count, if smaller), and with an age retention it expires that long
//!   after the room's last message, so a silent room costs Redis nothing but its `seq`.
//! - `dedupe(room, user, id)`: the offset a message id was stored at, for retries;
//!   expires after a day so it stays bounded.
//! - `rooms`: sorted set of public room names, score = last offset; `prune` drops the
//!   rooms whose log expired. `seq` stays, so a room used again continues its offsets.
//! - `private_rooms`: the same for rooms whose settings (`room_settings(room)`, the
//!   directory's) say private. They are never listed, so `rooms` pages and counts only
//!   what `list_rooms` may show; the room limit and retention cover both sets. The
//!   append script files a room under one or the other, and the directory's
//!   `create_room` moves a room that becomes private.

use std::time::Duration;

use async_trait::async_trait;
use common::{ChatMessage, Deleted, Edited, Entry, Reacted};
use rand::distr::{Alphanumeric, SampleString};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamId, StreamRangeReply};
use redis::{AsyncCommands, Script};

use crate::clock::now_ms;
use crate::cluster::keys::Keys;
use crate::cluster::{CONNECT_TIMEOUT, RESPONSE_TIMEOUT};

use super::{
    AppendOutcome, Change, HistoryStore, NewEntry, Page, Pruned, Refusal, Retention, RoomHead,
    RoomList, StoreError,
};

/// How long a message id is remembered for de-duplicating retries. Clients retry within
/// seconds to minutes; a day covers long disconnects while keeping the keys bounded.
const DEDUPE_TTL_SECS: u64 = 86_400;

/// Hard bound on any one store call, reconnect attempts included: the writer must answer
/// `error internal` in bounded time, never hang its whole queue on a dead Redis.
const CALL_TIMEOUT: Duration = Duration::from_secs(4);

/// Appends one entry atomically. KEYS: epoch, seq, log, dedupe, rooms, room settings,
/// private rooms, room state, erased. ARGV: room, id, nick, text, history_max, a fresh
/// epoch, dedupe ttl, max rooms (0: none), the log's expiry in ms (0: none), the
/// writer's user id, then what the entry does: kind (`m` message, `e` edit, `d`
/// deletion, `r` reaction), target (a message's `reply_to`; 0: none), emoji, `on`
/// (1/0), not_before (an edit's window, 0: none), any (1: the writer owns the room).
/// Returns {offset, outcome, ts}: outcome 0 stored, 1 duplicate (of the entry at
/// `offset`), 2 refused by the room limit, 3 no such message, 4 not the author's, 5
/// the edit window has passed.
///
/// The room is filed under `private_rooms` when its settings say private, else under
/// `rooms`, and taken out of the other set (where it can only be if its settings
/// changed behind the directory's back), so each room is in exactly one of them.
///
/// The next offset is one past both `seq` and the stream's last id, so a lost `seq` key
/// (eviction) can never make XADD fail or reuse an offset. XADD runs first: if it fails,
/// nothing has been written. `ts` comes from Redis' clock, one clock for all instances.
///
/// A deletion erases: the message's entry and its edits' entries are removed from the
/// stream (XDEL: a stream entry cannot be rewritten), their offsets noted in `erased`,
/// and what a `history` item of a deleted message shows (no text) kept in the state. A
/// stream reader that meets the hole looks it up in `erased` to tell it from a trim.
const APPEND_LUA: &str = r"
redis.call('SET', KEYS[1], ARGV[6], 'NX')
local dup = redis.call('GET', KEYS[4])
if dup then
  return {tonumber(dup), 1, 0}
end
local kind, target = ARGV[11], tonumber(ARGV[12])
local t = nil
if target > 0 then
  local e = redis.call('XRANGE', KEYS[3], target .. '-1', target .. '-1')[1]
  if e then
    t = {}
    for i = 1, #e[2], 2 do t[e[2][i]] = e[2][i + 1] end
    if t.k then t = nil end
  end
  if not t then
    -- A reply may answer a message deleted meanwhile.
    if kind ~= 'm' or not redis.call('HEXISTS', KEYS[8], 'd:' .. target) then
      return {0, 3, 0}
    end
  end
  if kind == 'e' then
    if t.nick == '' or t.user ~= ARGV[10] then return {0, 4, 0} end
    local nb = tonumber(ARGV[15])
    if nb > 0 and tonumber(t.ts) < nb then return {0, 5, 0} end
  elseif kind == 'd' then
    if ARGV[16] ~= '1' and (t.nick == '' or t.user ~= ARGV[10]) then return {0, 4, 0} end
  end
end
local listed, unlisted = KEYS[5], KEYS[7]
if redis.call('HGET', KEYS[6], 'private') == '1' then
  listed, unlisted = KEYS[7], KEYS[5]
end
local max_rooms = tonumber(ARGV[8])
if max_rooms > 0 and not redis.call('ZSCORE', KEYS[5], ARGV[1])
   and not redis.call('ZSCORE', KEYS[7], ARGV[1])
   and redis.call('ZCARD', KEYS[5]) + redis.call('ZCARD', KEYS[7]) >= max_rooms then
  return {0, 2, 0}
end
local offset = tonumber(redis.call('GET', KEYS[2]) or '0')
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)[1]
if last then
  local top = tonumber(string.match(last[1], '^(%d+)-'))
  if top and top > offset then offset = top end
end
offset = offset + 1
local tm = redis.call('TIME')
local ts = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local id, sts, sof = string.format('%d-1', offset), string.format('%d', ts), string.format('%d', offset)
if kind == 'm' then
  if target > 0 then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], id, 'id', ARGV[2], 'nick', ARGV[3],
      'text', ARGV[4], 'ts', sts, 'user', ARGV[10], 'rt', ARGV[12])
  else
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], id, 'id', ARGV[2], 'nick', ARGV[3],
      'text', ARGV[4], 'ts', sts, 'user', ARGV[10])
  end
elseif kind == 'e' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], id, 'k', 'e', 'id', ARGV[2],
    'nick', ARGV[3], 'text', ARGV[4], 'ts', sts, 'user', ARGV[10], 't', ARGV[12])
  local was = redis.call('HGET', KEYS[8], 'e:' .. target)
  local at = {}
  if was then at = cjson.decode(was).at end
  table.insert(at, sof)
  redis.call('HSET', KEYS[8], 'e:' .. target, cjson.encode({text = ARGV[4], ts = sts, at = at}))
elseif kind == 'd' then
  local erased = {ARGV[12]}
  local was = redis.call('HGET', KEYS[8], 'e:' .. target)
  if was then
    for _, o in ipairs(cjson.decode(was).at) do table.insert(erased, o) end
  end
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], id, 'k', 'd', 'id', ARGV[2],
    'nick', ARGV[3], 'text', '', 'ts', sts, 'user', ARGV[10], 't', ARGV[12])
  for _, o in ipairs(erased) do
    redis.call('XDEL', KEYS[3], o .. '-1')
    redis.call('ZADD', KEYS[9], o, o)
  end
  redis.call('HDEL', KEYS[8], 'e:' .. target, 'r:' .. target)
  redis.call('HSET', KEYS[8], 'd:' .. target, cjson.encode({id = t.id, nick = t.nick,
    user = t.user or '', ts = t.ts, rt = t.rt or ''}))
else
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], id, 'k', 'r', 'id', ARGV[2],
    'nick', ARGV[3], 'text', '', 'ts', sts, 'user', ARGV[10], 't', ARGV[12],
    'em', ARGV[13], 'on', ARGV[14])
  local was = redis.call('HGET', KEYS[8], 'r:' .. target)
  local list = {}
  if was then list = cjson.decode(was) end
  local kept, found = {}, false
  for _, r in ipairs(list) do
    if r[1] == ARGV[13] and r[2] == ARGV[10] then
      found = true
      if ARGV[14] == '1' then table.insert(kept, r) end
    else
      table.insert(kept, r)
    end
  end
  if ARGV[14] == '1' and not found then table.insert(kept, {ARGV[13], ARGV[10], ARGV[3]}) end
  if #kept == 0 then
    redis.call('HDEL', KEYS[8], 'r:' .. target)
  else
    redis.call('HSET', KEYS[8], 'r:' .. target, cjson.encode(kept))
  end
end
redis.call('SET', KEYS[2], sof)
redis.call('SET', KEYS[4], sof, 'EX', ARGV[7])
redis.call('ZADD', listed, offset, ARGV[1])
redis.call('ZREM', unlisted, ARGV[1])
if tonumber(ARGV[9]) > 0 then
  redis.call('PEXPIRE', KEYS[3], ARGV[9])
  redis.call('PEXPIRE', KEYS[8], ARGV[9])
  redis.call('PEXPIRE', KEYS[9], ARGV[9])
end
return {offset, 0, ts}
";

/// Reads a page of history in its current state. KEYS: log, room state, erased. ARGV:
/// the newest stream id to include (`+` for the newest), the page size. Returns JSON
/// `{items: [...], more: bool}`, items newest first: each message with its fields as
/// stored plus `e` (its current text and edit time) and `r` (its reactions, `[emoji,
/// user, nick]` in the order made), or a deleted one (`del`).
///
/// It walks the stream back over the log's other entries (edits, reactions) until it
/// has one message more than the page (which says whether there are older ones), but
/// no further than [`PAGE_SCAN`] entries, so a room of nothing but reactions costs a
/// bounded read; the page is then shorter and says there is more.
const PAGE_LUA: &str = r"
local want, scan_max = tonumber(ARGV[2]) + 1, tonumber(ARGV[3])
local found, cursor, scanned, lowest, done = {}, ARGV[1], 0, nil, false
while #found < want and scanned < scan_max do
  local batch = redis.call('XREVRANGE', KEYS[1], cursor, '-', 'COUNT', 200)
  if #batch == 0 then done = true break end
  for _, e in ipairs(batch) do
    scanned = scanned + 1
    lowest = tonumber(string.match(e[1], '^(%d+)-'))
    -- Edits, deletions and reactions are written with `k` first: skipped unread.
    if e[2][1] ~= 'k' then
      local f = {}
      for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
      f.offset = string.format('%d', lowest)
      table.insert(found, f)
      if #found >= want then break end
    end
  end
  if #found < want and #batch < 200 then done = true break end
  cursor = '(' .. string.format('%d', lowest) .. '-1'
end
local capped = (not done) and #found < want
-- Deleted messages between the first wanted offset and the lowest one looked at.
local lo = '-inf'
if not done then lo = string.format('%d', lowest or 0) end
local hi = '+inf'
if ARGV[1] ~= '+' then hi = string.match(ARGV[1], '^(%d+)') end
for _, o in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], lo, hi)) do
  local d = redis.call('HGET', KEYS[2], 'd:' .. o)
  if d then
    local f = cjson.decode(d)
    f.offset = o
    f.del = true
    table.insert(found, f)
  end
end
table.sort(found, function(a, b) return tonumber(a.offset) > tonumber(b.offset) end)
local items, more = {}, capped or #found >= want
for i = 1, math.min(#found, want - 1) do
  local f = found[i]
  if not f.del then
    local e = redis.call('HGET', KEYS[2], 'e:' .. f.offset)
    if e then f.e = cjson.decode(e) f.e.at = nil end
    local r = redis.call('HGET', KEYS[2], 'r:' .. f.offset)
    if r then f.r = cjson.decode(r) end
  end
  items[i] = f
end
return cjson.encode({items = items, more = more})
";

/// Most log entries one `history` page looks at in Redis (see [`PAGE_LUA`]).
const PAGE_SCAN: u32 = 5000;

/// Forgets a room whose log is empty or gone, atomically so an append cannot slip in
/// between the check and the removal. KEYS: log, rooms, private rooms, room state,
/// erased. ARGV: room.
/// Returns 1 if it forgot the room. Its `seq` stays, so offsets continue if the room is
/// used again.
const FORGET_LUA: &str = r"
if redis.call('XLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[4], KEYS[5])
  return redis.call('ZREM', KEYS[2], ARGV[1]) + redis.call('ZREM', KEYS[3], ARGV[1])
end
return 0
";

/// Reads a room's head and the epoch in one step (creating the epoch when missing).
/// KEYS: epoch, seq. ARGV: a fresh epoch. Returns {epoch, head}.
///
/// It writes only when the epoch is missing, so a Redis that refuses writes (out of
/// memory, a read-only replica) still answers: joins and `since` recovery go on.
const HEAD_LUA: &str = r"
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[1])
  epoch = ARGV[1]
end
return {epoch, tonumber(redis.call('GET', KEYS[2]) or '0')}
";

/// Redis-backed [`HistoryStore`], shared by every instance pointing at the same Redis.
#[derive(Clone)]
pub struct RedisStore {
    /// Multiplexed and self-reconnecting; cloning shares the one connection.
    conn: ConnectionManager,
    keys: Keys,
    history_max: u64,
    /// `--max-rooms` (0: none) and the log expiry in ms (0: none), set by `limit`. The
    /// room count is `ZCARD rooms` + `ZCARD private_rooms`, checked inside the append
    /// script, so it never overshoots; a room whose log expired counts until the next
    /// `prune` drops it, so the limit may refuse a new room up to one prune interval too
    /// early.
    max_rooms: u64,
    expire_ms: u64,
    /// How long a message id is remembered: [`DEDUPE_TTL_SECS`], or the retention age
    /// if shorter (a retry of a message retention deleted is stored again anyway, as in
    /// SQLite, so remembering its id longer only costs memory).
    dedupe_ttl_secs: u64,
    append: Script,
    head: Script,
    forget: Script,
    page: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("history_max", &self.history_max)
            .finish_non_exhaustive()
    }
}

pub(crate) fn fresh_epoch() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 10)
}

/// Runs one store call with the hard time bound, trying once more when the connection
/// was lost: the first call after Redis comes back meets the dead connection and only
/// starts the reconnect, so without the retry it would fail although Redis is up. Every
/// call may safely run twice: reads change nothing, an append retried after an unseen
/// EXEC finds its messages by their dedupe keys. (The directory's writes, which use it
/// too, leave the same data when run twice, but a retry after a lost reply answers as
/// if another had done it first: `create_account` false, `set_read` `None`, …)
pub(crate) async fn bounded<T, F, Fut>(call: F) -> Result<T, StoreError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let attempts = async {
        match call().await {
            Err(StoreError::Redis(e))
                if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() =>
            {
                call().await
            }
            other => other,
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, attempts)
        .await
        .unwrap_or(Err(StoreError::Timeout(CALL_TIMEOUT)))
}

/// The calls the directory and the inbox make, each within [`bounded`] and with a
/// refusal told apart by [`refused`]. Cheap to clone: the multiplexed, self-reconnecting
/// connection is shared.
#[derive(Clone)]
pub(crate) struct Calls(ConnectionManager);

impl Calls {
    pub(crate) fn new(conn: ConnectionManager) -> Self {
        Calls(conn)
    }

    /// The connection itself, for tests that look at keys directly.
    #[cfg(test)]
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.0.clone()
    }

    /// Runs one command.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        bounded(|| {
            let mut conn = self.0.clone();
            async move { cmd.query_async(&mut conn).await.map_err(refused) }
        })
        .await
    }

    /// Runs a pipeline (atomic when it was built with `atomic()`).
    pub(crate) async fn transaction<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        bounded(|| {
            let mut conn = self.0.clone();
            async move { pipe.query_async(&mut conn).await.map_err(refused) }
        })
        .await
    }

    /// Runs a script (loading it first if Redis does not know it).
    pub(crate) async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        bounded(|| {
            let mut conn = self.0.clone();
            async move { invocation.invoke_async(&mut conn).await.map_err(refused) }
        })
        .await
    }
}

/// A Redis error, told apart: out of memory (`maxmemory` with `noeviction`) or a
/// read-only replica refuses writes until an operator acts, which senders are told.
pub(crate) fn refused(e: redis::RedisError) -> StoreError {
    let text = e.to_string();
    // In a transaction or pipeline the refusal comes wrapped (EXECABORT, or a pipeline
    // failure naming each command's error, `"OOM": command not allowed …`), so the
    // codes are looked for in the text as well.
    let full = matches!(e.code(), Some("OOM" | "READONLY"))
        || [
            "\"OOM\"",
            "OOM command",
            "\"READONLY\"",
            "READONLY You",
            "ReadOnly: You",
        ]
        .iter()
        .any(|code| text.contains(code));
    if full {
        StoreError::Full(Box::new(e))
    } else {
        StoreError::Redis(e)
    }
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

/// The offset in a stream entry id `<offset>-<n>`.
pub(crate) fn offset_of(entry_id: &str) -> Result<u64, StoreError> {
    entry_id
        .split_once('-')
        .and_then(|(ms, _)| ms.parse().ok())
        .ok_or_else(|| corrupt(format!("stream entry id {entry_id:?}")))
}

/// An entry of the log from its stream entry: fields `id`, `nick`, `text`, `ts`,
/// `user` (absent before v2), and by kind (`k`: absent for a message) `t` (target),
/// `rt` (a message's `reply_to`), `em` and `on` (a reaction).
pub(crate) fn stream_entry(room: &str, entry: &StreamId) -> Result<Entry, StoreError> {
    let field = |name: &str| -> Result<String, StoreError> {
        entry
            .get::<String>(name)
            .ok_or_else(|| corrupt(format!("entry {} lacks field {name}", entry.id)))
    };
    let number = |name: &str| -> Result<u64, StoreError> {
        field(name)?
            .parse()
            .map_err(|_| corrupt(format!("entry {} has a bad {name}", entry.id)))
    };
    let room = room.to_owned();
    let offset = offset_of(&entry.id)?;
    let ts = number("ts")?;
    let user = || entry.get::<String>("user").unwrap_or_default();
    Ok(match entry.get::<String>("k").as_deref() {
        None => Entry::Message(ChatMessage {
            room,
            offset,
            id: field("id")?,
            nick: field("nick")?,
            text: field("text")?,
            ts,
            // Absent on entries stored before v2.
            user: entry.get::<String>("user"),
            reply_to: entry.get::<String>("rt").and_then(|r| r.parse().ok()),
            ..ChatMessage::default()
        }),
        Some("e") => Entry::Edited(Edited {
            room,
            offset,
            target: number("t")?,
            text: field("text")?,
            user: user(),
            ts,
        }),
        Some("d") => Entry::Deleted(Deleted {
            room,
            offset,
            target: number("t")?,
            user: user(),
            ts,
        }),
        Some("r") => Entry::Reacted(Reacted {
            room,
            offset,
            target: number("t")?,
            emoji: field("em")?,
            user: user(),
            on: field("on")? == "1",
            ts,
            nick: field("nick")?,
        }),
        Some(other) => {
            return Err(corrupt(format!(
                "entry {} of unknown kind {other:?}",
                entry.id
            )))
        }
    })
}

fn to_entries(room: &str, reply: &StreamRangeReply) -> Result<Vec<Entry>, StoreError> {
    reply.ids.iter().map(|e| stream_entry(room, e)).collect()
}

/// One history item as [`PAGE_LUA`] returns it.
#[derive(serde::Deserialize)]
struct PageItem {
    offset: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    nick: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    ts: String,
    user: Option<String>,
    rt: Option<String>,
    #[serde(default)]
    del: bool,
    e: Option<PageEdit>,
    /// `[emoji, user, nick]` in the order made; Lua's JSON writes an empty list as an
    /// empty object, hence a `Value`.
    r: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct PageEdit {
    text: String,
    ts: String,
}

impl PageItem {
    fn into_message(
        self,
        room: &str,
        nicks: &mut std::collections::BTreeMap<String, String>,
    ) -> Result<ChatMessage, StoreError> {
        let number = |what: &str, s: &str| -> Result<u64, StoreError> {
            s.parse()
                .map_err(|_| corrupt(format!("history item with a bad {what} {s:?}")))
        };
        let mut msg = ChatMessage {
            room: room.to_owned(),
            offset: number("offset", &self.offset)?,
            id: self.id,
            nick: self.nick,
            text: if self.del { String::new() } else { self.text },
            ts: number("ts", &self.ts)?,
            user: self.user.filter(|u| !(self.del && u.is_empty())),
            reply_to: self
                .rt
                .filter(|r| !r.is_empty())
                .map(|r| number("reply_to", &r))
                .transpose()?,
            deleted: self.del,
            ..ChatMessage::default()
        };
        if let Some(edit) = self.e {
            msg.text = edit.text;
            msg.edited_ts = Some(number("edited_ts", &edit.ts)?);
        }
        if let Some(serde_json::Value::Array(list)) = self.r {
            for r in list {
                let parts: Option<Vec<&str>> = r
                    .as_array()
                    .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect());
                let Some([emoji, user, nick]) = parts.as_deref() else {
                    return Err(corrupt("a reaction that is not [emoji, user, nick]"));
                };
                msg.reactions.apply(emoji, user, true);
                nicks.insert((*user).to_owned(), (*nick).to_owned());
            }
        }
        Ok(msg)
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`) and makes sure the epoch exists.
    /// Its keys are named by `keys`; `history_max` bounds each room's stream
    /// (approximately: `MAXLEN ~`).
    pub async fn connect(url: &str, keys: Keys, history_max: u64) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // A few quick attempts per reconnect: a call waiting on a reconnect fails
            // within CALL_TIMEOUT anyway, and the next call starts a new reconnect.
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = bounded(|| {
            let (client, config) = (client.clone(), config.clone());
            async move { Ok(ConnectionManager::new_with_config(client, config).await?) }
        })
        .await?;
        let store = RedisStore {
            conn,
            keys,
            history_max: history_max.max(1),
            max_rooms: 0,
            expire_ms: 0,
            dedupe_ttl_secs: DEDUPE_TTL_SECS,
            append: Script::new(APPEND_LUA),
            head: Script::new(HEAD_LUA),
            forget: Script::new(FORGET_LUA),
            page: Script::new(PAGE_LUA),
        };
        // Fails now, at start-up, if the server is not usable (wrong db, no scripting).
        store.head("").await?;
        Ok(store)
    }

    /// The directory kept in the same Redis, through this store's connection and keys.
    pub(crate) fn directory(&self) -> crate::directory::RedisDirectory {
        crate::directory::RedisDirectory::new(self.conn.clone(), self.keys.clone())
    }

    /// The inbox kept in the same Redis, through this store's connection and keys.
    pub(crate) fn inbox(&self) -> crate::inbox::RedisInbox {
        crate::inbox::RedisInbox::new(self.conn.clone(), self.keys.clone())
    }

    /// Applies `--max-rooms` (0: none) and `--retention`: its count caps each stream
    /// together with `history_max`, its age expires a silent room's log.
    #[must_use]
    pub fn limit(mut self, max_rooms: u64, retention: &Retention) -> Self {
        self.max_rooms = max_rooms;
        if let Some(keep) = retention.max_messages {
            self.history_max = self.history_max.min(keep.max(1));
        }
        self.expire_ms = retention.max_age.map_or(0, |age| age.as_millis() as u64);
        if let Some(age) = retention.max_age {
            // Rounded up to a whole second, at least one (EX 0 is an error).
            let secs = age.as_millis().div_ceil(1000).max(1);
            self.dedupe_ttl_secs = DEDUPE_TTL_SECS.min(u64::try_from(secs).unwrap_or(u64::MAX));
        }
        self
    }

    /// Deletes `room`'s messages older than `cutoff` (ms), a batch at a time; how many.
    async fn prune_old(&self, room: &str, cutoff: u64) -> Result<u64, StoreError> {
        const BATCH: usize = 100;
        let key = self.keys.log(room);
        let mut deleted = 0;
        // Bounded per pass: a room with more old messages than this finishes next time.
        for _ in 0..100 {
            let oldest: StreamRangeReply = bounded(|| {
                let mut conn = self.conn.clone();
                let key = key.clone();
                async move { Ok(conn.xrange_count(&key, "-", "+", BATCH).await?) }
            })
            .await?;
            let old: Vec<u64> = to_entries(room, &oldest)?
                .into_iter()
                .take_while(|m| m.ts() < cutoff)
                .map(|m| m.offset())
                .collect();
            let Some(&last_old) = old.last() else { break };
            let min_id = format!("{}-0", last_old + 1);
            let n: u64 = bounded(|| {
                let mut conn = self.conn.clone();
                let (key, min_id) = (key.clone(), min_id.clone());
                async move {
                    Ok(redis::cmd("XTRIM")
                        .arg(&key)
                        .arg("MINID")
                        .arg(&min_id)
                        .query_async(&mut conn)
                        .await?)
                }
            })
            .await?;
            deleted += n;
            if old.len() < BATCH {
                break;
            }
        }
        Ok(deleted)
    }

    /// One room's share of [`HistoryStore::prune`]: trims it to `policy`'s count, deletes
    /// what is older than `cutoff`, and forgets it if its log is left empty (or expired).
    /// Returns (messages deleted, rooms forgotten).
    async fn prune_room(
        &self,
        room: &str,
        policy: &Retention,
        cutoff: Option<u64>,
    ) -> Result<(u64, u64), StoreError> {
        let mut messages = 0;
        if let Some(keep) = policy.max_messages {
            // Appends trim approximately (`MAXLEN ~`); this makes it exact.
            let n: u64 = bounded(|| {
                let mut conn = self.conn.clone();
                async move {
                    Ok(redis::cmd("XTRIM")
                        .arg(self.keys.log(room))
                        .arg("MAXLEN")
                        .arg(keep)
                        .query_async(&mut conn)
                        .await?)
                }
            })
            .await?;
            messages += n;
        }
        if let Some(cutoff) = cutoff {
            messages += self.prune_old(room, cutoff).await?;
        }
        self.prune_state(room).await?;
        if policy.is_unbounded() {
            // Nothing expires or is pruned: no log can have been left empty.
            return Ok((messages, 0));
        }
        // A log that expired or was pruned empty: forget the room.
        let forgot: u64 = bounded(|| {
            let mut conn = self.conn.clone();
            let mut inv = self.forget.key(self.keys.log(room));
            inv.key(self.keys.rooms())
                .key(self.keys.private_rooms())
                .key(self.keys.room_state(room))
                .key(self.keys.erased(room))
                .arg(room);
            async move { Ok(inv.invoke_async(&mut conn).await?) }
        })
        .await?;
        Ok((messages, forgot))
    }

    /// Drops the state (edits, deletions, reactions) of messages trimmed or pruned
    /// from the log, and the erased offsets below its start.
    async fn prune_state(&self, room: &str) -> Result<(), StoreError> {
        let (state, erased) = (self.keys.room_state(room), self.keys.erased(room));
        let calls = Calls::new(self.conn.clone());
        // Most rooms have neither: one cheap call for them.
        let kept: u64 = calls
            .query(redis::cmd("EXISTS").arg(&state).arg(&erased))
            .await?;
        if kept == 0 {
            return Ok(());
        }
        let Some((first, _)) = bounded(|| self.first_and_last(room)).await? else {
            return Ok(());
        };
        let start = self.start_of(room, first).await?;
        let mut cursor: u64 = 0;
        loop {
            let (next, fields): (u64, Vec<String>) = calls
                .query(
                    redis::cmd("HSCAN")
                        .arg(&state)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(500),
                )
                .await?;
            let old: Vec<&String> = fields
                .iter()
                .step_by(2)
                .filter(|f| {
                    f.split_once(':')
                        .and_then(|(_, o)| o.parse::<u64>().ok())
                        .is_some_and(|o| o < start)
                })
                .collect();
            if !old.is_empty() {
                let () = calls
                    .query(redis::cmd("HDEL").arg(&state).arg(&old))
                    .await?;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let _: u64 = calls
            .query(
                redis::cmd("ZREMRANGEBYSCORE")
                    .arg(&erased)
                    .arg("-inf")
                    .arg(format!("({start}")),
            )
            .await?;
        Ok(())
    }

    /// Where the room's log starts: its first stream entry, or lower when the entries
    /// just before it were erased by a deletion (accounted for, so not a gap).
    async fn start_of(&self, room: &str, first: u64) -> Result<u64, StoreError> {
        let calls = Calls::new(self.conn.clone());
        let below: Vec<u64> = calls
            .query(
                redis::cmd("ZREVRANGEBYSCORE")
                    .arg(self.keys.erased(room))
                    .arg(format!("({first}"))
                    .arg("-inf")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(1000),
            )
            .await?;
        let mut start = first;
        for o in below {
            if o + 1 != start {
                break;
            }
            start = o;
        }
        Ok(start)
    }

    async fn first_and_last(&self, room: &str) -> Result<Option<(u64, u64)>, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.log(room);
        let (first, last): (StreamRangeReply, StreamRangeReply) = redis::pipe()
            .xrange_count(&key, "-", "+", 1)
            .xrevrange_count(&key, "+", "-", 1)
            .query_async(&mut conn)
            .await?;
        match (first.ids.first(), last.ids.first()) {
            (Some(f), Some(l)) => Ok(Some((offset_of(&f.id)?, offset_of(&l.id)?))),
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl HistoryStore for RedisStore {
    /// One MULTI/EXEC holding one script call per message: the batch is stored whole or
    /// not at all (a connection lost before EXEC runs nothing), each room's offsets follow
    /// batch order, and other instances' appends interleave only between batches.
    async fn append_batch(&self, batch: Vec<NewEntry>) -> Result<Vec<AppendOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let epoch = fresh_epoch();
        let mut pipe = redis::pipe();
        pipe.atomic();
        // Loading inside the transaction makes the EVALSHAs after it valid even when Redis
        // restarted (empty script cache) since the last batch.
        pipe.load_script(&self.append).ignore();
        for m in &batch {
            let mut inv = self.append.prepare_invoke();
            inv.key(self.keys.epoch())
                .key(self.keys.seq(&m.room))
                .key(self.keys.log(&m.room))
                .key(self.keys.dedupe(&m.room, &m.user, &m.id))
                .key(self.keys.rooms())
                .key(self.keys.room_settings(&m.room))
                .key(self.keys.private_rooms())
                .key(self.keys.room_state(&m.room))
                .key(self.keys.erased(&m.room));
            let (kind, text, target, emoji, on, not_before, any) = match &m.change {
                Change::Message { text, reply_to } => (
                    "m",
                    text.as_str(),
                    reply_to.unwrap_or(0),
                    "",
                    false,
                    0,
                    false,
                ),
                Change::Edit {
                    target,
                    text,
                    not_before,
                } => (
                    "e",
                    text.as_str(),
                    *target,
                    "",
                    false,
                    not_before.unwrap_or(0),
                    false,
                ),
                Change::Delete { target, any } => ("d", "", *target, "", false, 0, *any),
                Change::React { target, emoji, on } => {
                    ("r", "", *target, emoji.as_str(), *on, 0, false)
                }
            };
            inv.arg(&m.room)
                .arg(&m.id)
                .arg(&m.nick)
                .arg(text)
                .arg(self.history_max)
                .arg(&epoch)
                .arg(self.dedupe_ttl_secs)
                .arg(self.max_rooms)
                .arg(self.expire_ms)
                .arg(&m.user)
                .arg(kind)
                .arg(target)
                .arg(emoji)
                .arg(u8::from(on))
                .arg(not_before)
                .arg(u8::from(any));
            pipe.invoke_script(&inv);
        }
        let pipe = &pipe;
        let results: Vec<(u64, u8, u64)> = bounded(|| {
            let mut conn = self.conn.clone();
            async move { pipe.query_async(&mut conn).await.map_err(refused) }
        })
        .await?;
        if results.len() != batch.len() {
            return Err(corrupt(format!(
                "{} results for {} appends",
                results.len(),
                batch.len()
            )));
        }
        Ok(batch
            .into_iter()
            .zip(results)
            .map(|(m, (offset, outcome, ts))| match outcome {
                0 => AppendOutcome::Stored(m.stored(offset, ts)),
                2 => AppendOutcome::RoomLimit,
                3 => AppendOutcome::Refused(Refusal::UnknownMessage),
                4 => AppendOutcome::Refused(Refusal::NotAuthor),
                5 => AppendOutcome::Refused(Refusal::EditExpired),
                _ => AppendOutcome::Duplicate { offset },
            })
            .collect())
    }

    async fn head(&self, room: &str) -> Result<RoomHead, StoreError> {
        let (epoch, head): (String, u64) = bounded(|| {
            let mut conn = self.conn.clone();
            let mut inv = self.head.key(self.keys.epoch());
            inv.key(self.keys.seq(room)).arg(fresh_epoch());
            async move { Ok(inv.invoke_async(&mut conn).await?) }
        })
        .await?;
        Ok(RoomHead { head, epoch })
    }

    async fn page(&self, room: &str, before: Option<u64>, limit: u32) -> Result<Page, StoreError> {
        let end = match before {
            None => "+".to_owned(),
            // Offsets start at 1: nothing lies before 1.
            Some(0 | 1) => return Ok(Page::default()),
            // An id without sequence part as the end of a range means `<ms>-<max>`.
            Some(b) => (b - 1).to_string(),
        };
        let raw: String = bounded(|| {
            let mut conn = self.conn.clone();
            let mut inv = self.page.key(self.keys.log(room));
            inv.key(self.keys.room_state(room))
                .key(self.keys.erased(room))
                .arg(&end)
                .arg(limit)
                .arg(PAGE_SCAN);
            async move { Ok(inv.invoke_async(&mut conn).await?) }
        })
        .await?;
        #[derive(serde::Deserialize)]
        struct Raw {
            items: serde_json::Value,
            more: bool,
        }
        let parsed: Raw = serde_json::from_str(&raw)
            .map_err(|e| corrupt(format!("history page not JSON: {e}")))?;
        let items: Vec<PageItem> = match parsed.items {
            // Lua's JSON writes an empty list as an empty object.
            serde_json::Value::Object(o) if o.is_empty() => Vec::new(),
            other => serde_json::from_value(other)
                .map_err(|e| corrupt(format!("history page items: {e}")))?,
        };
        let mut nicks = std::collections::BTreeMap::new();
        let mut messages = items
            .into_iter()
            .map(|item| item.into_message(room, &mut nicks))
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(Page {
            messages,
            has_more: parsed.more,
            nicks,
        })
    }

    async fn after(&self, room: &str, after: u64, limit: u32) -> Result<Vec<Entry>, StoreError> {
        if limit == 0 || after == u64::MAX {
            return Ok(Vec::new());
        }
        // An id without sequence part as the start of a range means `<ms>-0`.
        let reply: StreamRangeReply = bounded(|| {
            let mut conn = self.conn.clone();
            async move {
                Ok(conn
                    .xrange_count(self.keys.log(room), (after + 1).to_string(), "+", limit)
                    .await?)
            }
        })
        .await?;
        to_entries(room, &reply)
    }

    /// Trimming removes entries only from the front, and what else removes any (a
    /// deletion) notes it in `erased`, so the offsets accounted for are exactly
    /// `start..=last` and the count needs no scan.
    async fn count_between(&self, room: &str, after: u64, up_to: u64) -> Result<u64, StoreError> {
        if up_to <= after {
            return Ok(0);
        }
        let Some((mut first, last)) = bounded(|| self.first_and_last(room)).await? else {
            return Ok(0);
        };
        if first > after + 1 {
            first = self.start_of(room, first).await?;
        }
        let lo = first.max(after + 1);
        let hi = last.min(up_to);
        Ok(if hi >= lo { hi - lo + 1 } else { 0 })
    }

    /// Pages through `rooms`, which holds the public rooms only (private ones are in
    /// `private_rooms`), so pages are full up to the last and `total` counts what may
    /// be listed. The page and the count are read in one transaction.
    async fn rooms(&self, offset: u64, limit: u32) -> Result<RoomList, StoreError> {
        let (raw, total): (Vec<(String, f64)>, u64) = bounded(|| {
            let mut conn = self.conn.clone();
            async move {
                if limit == 0 {
                    return Ok((vec![], conn.zcard(self.keys.rooms()).await?));
                }
                // By rank, highest score (head) first; equal scores in reverse name
                // order, which is how SQLite orders them too.
                let start = isize::try_from(offset).unwrap_or(isize::MAX);
                let stop = start.saturating_add(limit as isize).saturating_sub(1);
                Ok(redis::pipe()
                    .atomic()
                    .zrevrange_withscores(self.keys.rooms(), start, stop)
                    .zcard(self.keys.rooms())
                    .query_async(&mut conn)
                    .await?)
            }
        })
        .await?;
        let rooms = raw
            .into_iter()
            .map(|(room, head)| (room, head as u64))
            .collect();
        Ok(RoomList { rooms, total })
    }

    async fn prune(&self, policy: &Retention, now_ms: u64) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        let cutoff = policy
            .max_age
            .map(|age| now_ms.saturating_sub(age.as_millis() as u64));
        // Public and private rooms alike; a room moved from one set to the other
        // during the pass (it became private) is pruned on the next pass.
        for set in [self.keys.rooms(), self.keys.private_rooms()] {
            let mut cursor: u64 = 0;
            loop {
                let (next, page): (u64, Vec<String>) = bounded(|| {
                    let mut conn = self.conn.clone();
                    let set = &set;
                    async move {
                        Ok(redis::cmd("ZSCAN")
                            .arg(set)
                            .arg(cursor)
                            .arg("COUNT")
                            .arg(500)
                            .query_async(&mut conn)
                            .await?)
                    }
                })
                .await?;
                // ZSCAN answers member, score, member, score, …
                for room in page.iter().step_by(2) {
                    let (messages, rooms) = self.prune_room(room, policy, cutoff).await?;
                    pruned.messages += messages;
                    pruned.rooms += rooms;
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(pruned)
    }

    /// A plain SET through the same connection appends use: it fails exactly when Redis is
    /// unreachable, refuses writes (read-only replica, `maxmemory` with noeviction), or
    /// answers too slowly.
    async fn check_writable(&self) -> Result<(), StoreError> {
        bounded(|| {
            let mut conn = self.conn.clone();
            async move {
                let () = conn.set(self.keys.ready_probe(), now_ms()).await?;
                Ok(())
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_round_trip() {
        assert_eq!(offset_of("42-1").unwrap(), 42);
        assert!(offset_of("x-1").is_err());
    }
}
