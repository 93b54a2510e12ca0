//! Cluster-wide member lists for the Redis broker: which nicks are in which room on every
//! live instance, and the clean-up after an instance that died without leaving.
//!
//! Keys (one writer per instance-specific key: the instance itself, or the one survivor
//! that claimed it once it was dead):
//! - `huddle:instances`: set of the ids of instances that registered and were not swept.
//! - `huddle:instance:{id}`: the heartbeat, refreshed every [`HEARTBEAT`], expiring after
//!   [`HEARTBEAT_TTL`]; an instance without it is dead.
//! - `huddle:instance:{id}:rooms`: set of rooms where the instance has members.
//! - `huddle:room:{room}:members:{id}`: hash, connection id → nick, of its members there.
//! - `huddle:instance:{id}:nicks`: the nicks it holds (owned by [`super::claims`]).
//!
//! A room's list is the union of the member hashes of the instances whose heartbeat is
//! alive, so a dead instance's members vanish from lists as soon as its heartbeat expires,
//! even before the sweep. The sweep (in the heartbeat task, every beat) claims each
//! registered instance without a heartbeat in one script: `SREM` from `huddle:instances`
//! answers 1 to exactly one caller, so one survivor takes (reads and deletes) its members
//! and announces them as left; the others see nothing to do.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisResult, Script};

use super::claims::nicks_key;
use crate::session::outbox::ConnId;

/// How often an instance refreshes its heartbeat and sweeps dead instances.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a heartbeat lives: three missed beats, so a Redis hiccup or a busy instance
/// is not taken for a dead one.
const HEARTBEAT_TTL: Duration = Duration::from_secs(3);

const INSTANCES_KEY: &str = "huddle:instances";

fn heartbeat_key(id: &str) -> String {
    format!("huddle:instance:{id}")
}

fn rooms_key(id: &str) -> String {
    format!("huddle:instance:{id}:rooms")
}

fn members_key(room: &str, id: &str) -> String {
    format!("huddle:room:{room}:members:{id}")
}

/// The nicks of every live instance's members of room `ARGV[1]`. Key names are built in
/// the script: which instances exist is only known inside it.
const MEMBERS_LUA: &str = r"
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', 'huddle:instance:' .. id) == 1 then
    local key = 'huddle:room:' .. ARGV[1] .. ':members:' .. id
    for _, nick in ipairs(redis.call('HVALS', key)) do
      out[#out + 1] = nick
    end
  end
end
return out
";

/// Removes one member; forgets the room for the instance when it was the last, in the
/// same step, so a concurrent join cannot be left out of the instance's room set.
const LEAVE_LUA: &str = r"
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
end
return 0
";

/// Claims dead instance `ARGV[1]`: unless its heartbeat came back or another survivor
/// claimed it first, deletes its entries and the nicks it still holds (see
/// [`super::claims`]) and returns the entries as room, nick, room, nick…
const CLAIM_LUA: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return {} end
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return {} end
local out = {}
for _, room in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local key = 'huddle:room:' .. room .. ':members:' .. ARGV[1]
  for _, nick in ipairs(redis.call('HVALS', key)) do
    out[#out + 1] = room
    out[#out + 1] = nick
  end
  redis.call('DEL', key)
end
redis.call('DEL', KEYS[3])
for _, key in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local cur = redis.call('GET', key)
  if cur and string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
    redis.call('DEL', key)
  end
end
redis.call('DEL', KEYS[4])
return out
";

/// This instance's view of the cluster's member lists.
pub(super) struct Presence {
    id: String,
    members: Script,
    leave: Script,
    claim: Script,
}

impl Presence {
    pub(super) fn new(id: String) -> Self {
        Presence {
            id,
            members: Script::new(MEMBERS_LUA),
            leave: Script::new(LEAVE_LUA),
            claim: Script::new(CLAIM_LUA),
        }
    }

    /// Records a local member.
    pub(super) async fn register(
        &self,
        conn: &mut ConnectionManager,
        room: &str,
        member: ConnId,
        nick: &str,
    ) -> RedisResult<()> {
        redis::pipe()
            .atomic()
            .hset(members_key(room, &self.id), member, nick)
            .ignore()
            .sadd(rooms_key(&self.id), room)
            .ignore()
            .query_async(conn)
            .await
    }

    /// Forgets a local member.
    pub(super) async fn unregister(
        &self,
        conn: &mut ConnectionManager,
        room: &str,
        member: ConnId,
    ) -> RedisResult<()> {
        self.leave
            .key(members_key(room, &self.id))
            .key(rooms_key(&self.id))
            .arg(member)
            .arg(room)
            .invoke_async(conn)
            .await
    }

    /// The nicks in `room` on every live instance, unsorted, possibly repeated.
    pub(super) async fn members(
        &self,
        conn: &mut ConnectionManager,
        room: &str,
    ) -> RedisResult<Vec<String>> {
        self.members
            .key(INSTANCES_KEY)
            .arg(room)
            .invoke_async(conn)
            .await
    }

    /// Refreshes the heartbeat. True when this instance was not registered (first beat,
    /// swept after a long outage, or Redis lost its data): its members must be recorded
    /// again.
    pub(super) async fn beat(&self, conn: &mut ConnectionManager) -> RedisResult<bool> {
        let (added,): (u64,) = redis::pipe()
            .atomic()
            .pset_ex(heartbeat_key(&self.id), 1, HEARTBEAT_TTL.as_millis() as u64)
            .ignore()
            .sadd(INSTANCES_KEY, &self.id)
            .query_async(conn)
            .await?;
        Ok(added == 1)
    }

    /// Stops the heartbeat at a clean shutdown, so the others sweep at once.
    pub(super) async fn stop(&self, conn: &mut ConnectionManager) -> RedisResult<()> {
        conn.del(heartbeat_key(&self.id)).await
    }

    /// Claims every dead instance this survivor gets to; returns their members by room.
    pub(super) async fn sweep(
        &self,
        conn: &mut ConnectionManager,
    ) -> RedisResult<BTreeMap<String, Vec<String>>> {
        let ids: Vec<String> = conn.smembers(INSTANCES_KEY).await?;
        let mut gone: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for id in ids.iter().filter(|id| **id != self.id) {
            let alive: bool = conn.exists(heartbeat_key(id)).await?;
            if alive {
                continue;
            }
            let taken: Vec<String> = self
                .claim
                .key(INSTANCES_KEY)
                .key(heartbeat_key(id))
                .key(rooms_key(id))
                .key(nicks_key(id))
                .arg(id)
                .invoke_async(conn)
                .await?;
            for pair in taken.chunks_exact(2) {
                gone.entry(pair[0].clone())
                    .or_default()
                    .push(pair[1].clone());
            }
            tracing::info!(instance = %id, "swept a dead instance's members");
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_outlives_missed_beats() {
        assert!(HEARTBEAT_TTL >= HEARTBEAT * 2);
        assert_eq!(members_key("r", "i"), "huddle:room:r:members:i");
    }
}
