//! Presence across instances through Redis: each instance records its members in its
//! own hash per room (`members(room, id)`: connection → nick, and `room_users(room, id)`:
//! user → their connections there; plus `instance_rooms(id)`), and a room's list is the
//! union over the instances whose heartbeat is alive (one script), so a dead
//! instance's members vanish from lists as soon as its heartbeat expires, even before
//! the sweep (`redis::instance`) deletes them and has them announced as left.

use std::sync::Arc;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisResult, Script};

use super::Presence;
use crate::cluster::instance::{Instance, Recorded};
use crate::cluster::keys::LUA_KEYS;
use crate::hub::Hub;
use crate::logsafe::Escaped;
use crate::session::outbox::ConnId;

/// The nicks of every live instance's members of room `ARGV[1]` (prefix `ARGV[2]`).
/// KEYS: instances.
const MEMBERS_LUA: &str = r"
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', heartbeat_key(ARGV[2], id)) == 1 then
    for _, nick in ipairs(redis.call('HVALS', members_key(ARGV[2], ARGV[1], id))) do
      out[#out + 1] = nick
    end
  end
end
return out
";

/// Removes one member; forgets the room for the instance when it was the last, in the
/// same step, so a concurrent join cannot be left out of the instance's room set.
/// KEYS: members, instance rooms, room users. ARGV: conn, room, user.
const LEAVE_LUA: &str = r"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[3], ARGV[3], -1) <= 0 then
    redis.call('HDEL', KEYS[3], ARGV[3])
  end
end
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
  redis.call('DEL', KEYS[3])
end
return 0
";

/// 1 if user `ARGV[3]` has a connection in room `ARGV[1]` on a live instance other than
/// `ARGV[4]` (prefix `ARGV[2]`). KEYS: instances.
const ELSEWHERE_LUA: &str = r"
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[4] and redis.call('EXISTS', heartbeat_key(ARGV[2], id)) == 1
     and redis.call('HEXISTS', room_users_key(ARGV[2], ARGV[1], id), ARGV[3]) == 1 then
    return 1
  end
end
return 0
";

/// This instance's side of the cluster's member lists.
pub(crate) struct RedisPresence {
    instance: Arc<Instance>,
    conn: ConnectionManager,
    /// This instance's members, recorded again when Redis forgot them.
    hub: Hub,
    members: Script,
    leave: Script,
    elsewhere: Script,
}

impl RedisPresence {
    pub(crate) fn new(instance: Arc<Instance>, conn: ConnectionManager, hub: Hub) -> Self {
        RedisPresence {
            instance,
            conn,
            hub,
            members: Script::new(&format!("{LUA_KEYS}{MEMBERS_LUA}")),
            leave: Script::new(LEAVE_LUA),
            elsewhere: Script::new(&format!("{LUA_KEYS}{ELSEWHERE_LUA}")),
        }
    }

    async fn record(
        &self,
        conn: &mut ConnectionManager,
        room: &str,
        member: ConnId,
        user: &str,
        nick: &str,
    ) -> RedisResult<()> {
        let (keys, id) = (self.instance.keys(), self.instance.id());
        let members = keys.members(room, id);
        // Counted once per connection, even when recorded again.
        let counted: bool = conn.hexists(&members, member).await?;
        let mut pipe = redis::pipe();
        pipe.atomic().hset(&members, member, nick).ignore();
        if !counted {
            pipe.hincr(keys.room_users(room, id), user, 1).ignore();
        }
        pipe.sadd(keys.instance_rooms(id), room)
            .ignore()
            .query_async(conn)
            .await
    }

    async fn all(&self, room: &str) -> RedisResult<Vec<String>> {
        let keys = self.instance.keys();
        self.members
            .key(keys.instances())
            .arg(room)
            .arg(keys.prefix())
            .invoke_async(&mut self.conn.clone())
            .await
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn joined(&self, room: &str, conn: ConnId, user: &str, nick: &str) {
        if let Err(e) = self
            .record(&mut self.conn.clone(), room, conn, user, nick)
            .await
        {
            // The next re-recording (after the heartbeat finds this instance unknown)
            // or the member's next join records it.
            tracing::warn!(room = %Escaped(room), error = %e, "member not recorded in redis");
        }
    }

    async fn left(&self, room: &str, conn: ConnId, user: &str) {
        let (keys, id) = (self.instance.keys(), self.instance.id());
        let result: RedisResult<()> = self
            .leave
            .key(keys.members(room, id))
            .key(keys.instance_rooms(id))
            .key(keys.room_users(room, id))
            .arg(conn)
            .arg(room)
            .arg(user)
            .invoke_async(&mut self.conn.clone())
            .await;
        if let Err(e) = result {
            tracing::warn!(room = %Escaped(room), error = %e, "member not removed from redis");
        }
    }

    async fn elsewhere(&self, room: &str, user: &str) -> bool {
        let (keys, id) = (self.instance.keys(), self.instance.id());
        let found: RedisResult<u8> = self
            .elsewhere
            .key(keys.instances())
            .arg(room)
            .arg(keys.prefix())
            .arg(user)
            .arg(id)
            .invoke_async(&mut self.conn.clone())
            .await;
        match found {
            Ok(n) => n == 1,
            Err(e) => {
                // Best-effort like the lists: at worst a duplicate notice.
                tracing::warn!(room = %Escaped(room), error = %e, "cluster presence of a user unknown");
                false
            }
        }
    }

    async fn members(&self, room: &str, local: Vec<String>) -> Vec<String> {
        let mut all = match self.all(room).await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(room = %Escaped(room), error = %e, "cluster member list unavailable; sending this instance's");
                Vec::new()
            }
        };
        all.extend(local);
        all.sort();
        all.dedup();
        all
    }
}

#[async_trait]
impl Recorded for RedisPresence {
    async fn record_again(&self, conn: &mut ConnectionManager) -> RedisResult<()> {
        for m in self.hub.memberships() {
            self.record(conn, &m.room, m.conn, &m.user, &m.nick).await?;
        }
        Ok(())
    }
}
