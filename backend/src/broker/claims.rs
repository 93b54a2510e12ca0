//! Cluster-wide nick ownership for the Redis broker: one holder per nick across every
//! instance, session reclaim from any instance, and the control messages that close a
//! replaced connection on the instance that holds it.
//!
//! Keys:
//! - `huddle:nick:{key}`: `"{instance} {conn} {session}"`, the connection holding the nick
//!   (`key` is `validate::nick_key`; instance ids are hex, connection ids decimal and
//!   session tokens alphanumeric, so the space split is unambiguous).
//! - `huddle:instance:{id}:nicks`: set of the nick keys instance `id` took, so the
//!   survivor that sweeps a dead instance deletes them (see [`super::presence`]).
//! - channel `huddle:instance:{id}:control`: `{"evict": conn, "nick": key}` asks instance
//!   `id` to close its connection `conn` with 4001 because its session was reclaimed
//!   elsewhere.
//!
//! A holder whose instance has no heartbeat is dead, so its nick is free: the claim script
//! checks that, in the same atomic step as the write, so two instances can never both win.

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisResult, Script};
use serde::{Deserialize, Serialize};

use crate::session::outbox::ConnId;

pub(super) fn nick_key(key: &str) -> String {
    format!("huddle:nick:{key}")
}

pub(super) fn nicks_key(id: &str) -> String {
    format!("huddle:instance:{id}:nicks")
}

pub(super) fn control_channel(id: &str) -> String {
    format!("huddle:instance:{id}:control")
}

/// Claims `KEYS[1]` for `ARGV[1] ARGV[2] ARGV[3]` (instance, conn, session). A live holder
/// with another session keeps it (`{'taken', instance, conn}`) unless `ARGV[4]` is
/// `force`; otherwise the claim wins and returns the holder it replaced, if any, so that
/// instance can be told to close it.
const CLAIM_LUA: &str = r"
local cur = redis.call('GET', KEYS[1])
local inst, conn, sess
if cur then
  inst, conn, sess = string.match(cur, '^(%S+) (%S+) (%S+)$')
end
if inst and sess ~= ARGV[3] and ARGV[4] ~= 'force'
   and redis.call('EXISTS', 'huddle:instance:' .. inst) == 1 then
  return {'taken', inst, conn}
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3])
redis.call('SADD', KEYS[2], KEYS[1])
if inst and sess == ARGV[3] and not (inst == ARGV[1] and conn == ARGV[2]) then
  return {'replaced', inst, conn}
end
return {'ok'}
";

/// Frees `KEYS[1]` if `ARGV[1]` (`"{instance} {conn} "`) still holds it: a reclaim may
/// have moved it to another connection.
const RELEASE_LUA: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], KEYS[1])
end
return 0
";

/// What a claim found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Claimed {
    /// The nick is this connection's; nobody else held it.
    Free,
    /// The same session held it on `instance` as `conn`; that connection must be closed.
    Replaced { instance: String, conn: ConnId },
    /// A live connection of another session holds it.
    Taken { instance: String, conn: ConnId },
}

/// A request to close a connection, sent to the instance that holds it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Evict {
    pub(super) evict: ConnId,
    pub(super) nick: String,
}

/// This instance's side of the cluster's nick registry.
pub(super) struct Claims {
    id: String,
    claim: Script,
    release: Script,
}

impl Claims {
    pub(super) fn new(id: String) -> Self {
        Claims {
            id,
            claim: Script::new(CLAIM_LUA),
            release: Script::new(RELEASE_LUA),
        }
    }

    /// Claims nick `key` for local connection `conn` with `session`; `force` overrides a
    /// live holder (used only for a holder this instance knows is gone).
    pub(super) async fn claim(
        &self,
        redis: &mut ConnectionManager,
        key: &str,
        session: &str,
        conn: ConnId,
        force: bool,
    ) -> RedisResult<Claimed> {
        let reply: Vec<String> = self
            .claim
            .key(nick_key(key))
            .key(nicks_key(&self.id))
            .arg(&self.id)
            .arg(conn)
            .arg(session)
            .arg(if force { "force" } else { "" })
            .invoke_async(redis)
            .await?;
        let holder = |reply: &[String]| -> (String, ConnId) {
            let instance = reply.get(1).cloned().unwrap_or_default();
            let conn = reply.get(2).and_then(|c| c.parse().ok()).unwrap_or(0);
            (instance, conn)
        };
        Ok(match reply.first().map(String::as_str) {
            Some("taken") => {
                let (instance, conn) = holder(&reply);
                Claimed::Taken { instance, conn }
            }
            Some("replaced") => {
                let (instance, conn) = holder(&reply);
                Claimed::Replaced { instance, conn }
            }
            _ => Claimed::Free,
        })
    }

    /// Gives nick `key` back if local connection `conn` still holds it.
    pub(super) async fn release(
        &self,
        redis: &mut ConnectionManager,
        key: &str,
        conn: ConnId,
    ) -> RedisResult<()> {
        self.release
            .key(nick_key(key))
            .key(nicks_key(&self.id))
            .arg(format!("{} {conn} ", self.id))
            .invoke_async(redis)
            .await
    }

    /// Asks `instance` to close its connection `conn`, which held nick `key`.
    pub(super) async fn evict(
        &self,
        redis: &mut ConnectionManager,
        instance: &str,
        conn: ConnId,
        key: &str,
    ) -> RedisResult<()> {
        let payload = serde_json::to_string(&Evict {
            evict: conn,
            nick: key.to_owned(),
        })
        .unwrap_or_default();
        redis.publish(control_channel(instance), payload).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names() {
        assert_eq!(nick_key("alice"), "huddle:nick:alice");
        assert_eq!(nicks_key("ab"), "huddle:instance:ab:nicks");
        assert_eq!(control_channel("ab"), "huddle:instance:ab:control");
        let evict: Evict = serde_json::from_str(r#"{"evict":7,"nick":"bob"}"#).unwrap();
        assert_eq!(
            evict,
            Evict {
                evict: 7,
                nick: "bob".to_owned()
            }
        );
    }
}
