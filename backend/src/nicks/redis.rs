//! Nicks across instances through Redis: one user per nick in the cluster, and the
//! control channel that closes a connection on the instance that holds it.
//!
//! A claim goes to the local registry first (it decides between connections of this
//! instance and counts the user's connections here), then to Redis: `nick(key)` holds
//! `"{instance} {conn} {user}"` (instance ids are hex, connection ids decimal, so the
//! split after the second space is unambiguous) and `instance_nicks(id)` lists the keys
//! an instance took, for the sweep of a dead instance. A holder whose instance has no
//! heartbeat is dead, so its nick is free: the claim script checks that in the same
//! atomic step as the write, so two instances can never both win. Another connection of
//! the same user simply becomes the holder; a signed-in user takes the nick whoever
//! holds it (their token vouches for their name; only guests are refused). Release is
//! compare-and-set, so a connection's clean-up cannot free a newer holder's nick: it
//! leaves `"released {user}"` with an expiry of the grace period, which only that user
//! may claim until it expires.
//!
//! `nick_conns(key)` lists every connection of the holder (`"{instance} {conn}"`), so
//! the nick stays held while any of them is on a live instance, whichever goes first.
//!
//! `user_conns(user)` counts a user's connections across the cluster (oldest first), so
//! `--max-connections-per-user` closes their oldest wherever it is: here directly,
//! elsewhere through that instance's control channel.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Client, RedisResult, Script};
use tokio_util::sync::CancellationToken;

use super::{ClaimError, MemoryNicks, NickRegistry};
use crate::cluster::instance::{Instance, Recorded};
use crate::cluster::keys::LUA_KEYS;
use crate::cluster::{pause, Retry, CONNECT_TIMEOUT};
use crate::codec::{self, Evict};
use crate::disconnect::Disconnect;
use crate::identity::Identity;
use crate::logsafe::Escaped;
use crate::session::outbox::{ConnId, Control};

/// Claims `KEYS[1]` for `ARGV[1] ARGV[2] ARGV[3]` (instance, conn, user; prefix
/// `ARGV[5]`). Another user who still has a connection on a live instance (in
/// `KEYS[3]`, the holder's connections) keeps it (`{'taken', instance, conn}`), and a
/// nick kept for another user stays kept (`{'reserved'}`), unless `ARGV[4]` is `force`;
/// otherwise the claim wins and this connection joins the holder's connections.
const CLAIM_LUA: &str = r"
local cur = redis.call('GET', KEYS[1])
local force = ARGV[4] == 'force'
local inst, conn, user
if cur then
  local kept = string.match(cur, '^released (.+)$')
  if kept then
    if kept ~= ARGV[3] and not force then
      return {'reserved'}
    end
  else
    inst, conn, user = string.match(cur, '^(%S+) (%S+) (.+)$')
  end
end
if inst and user ~= ARGV[3] then
  if not force then
    for _, m in ipairs(redis.call('SMEMBERS', KEYS[3])) do
      local i = string.match(m, '^(%S+) ')
      if i and redis.call('EXISTS', heartbeat_key(ARGV[5], i)) == 1 then
        return {'taken', inst, conn}
      end
    end
  end
  redis.call('DEL', KEYS[3])
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1] .. ' ' .. ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
return {'ok'}
";

/// Takes connection `ARGV[1]` (`"{instance} {conn}"`) out of the holder's connections
/// (`KEYS[3]`). While user `ARGV[2]` has another on a live instance (prefix `ARGV[4]`),
/// that one holds the nick; otherwise the nick is freed, kept for the user for `ARGV[3]`
/// ms (none when 0).
const RELEASE_LUA: &str = r"
local cur = redis.call('GET', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[1])
if not cur then
  return 0
end
local user = string.match(cur, '^%S+ %S+ (.+)$')
if user ~= ARGV[2] then
  return 0
end
for _, m in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local i = string.match(m, '^(%S+) ')
  if i and redis.call('EXISTS', heartbeat_key(ARGV[4], i)) == 1 then
    redis.call('SET', KEYS[1], m .. ' ' .. ARGV[2])
    return 0
  end
  redis.call('SREM', KEYS[3], m)
end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], 'released ' .. ARGV[2], 'PX', ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
redis.call('SREM', KEYS[2], KEYS[1])
return 0
";

/// Adds connection `ARGV[1]` (`"{instance} {conn}"`, opened at `ARGV[2]` ms) to user's
/// connections `KEYS[1]`, forgets those on dead instances (prefix `ARGV[4]`), and
/// returns the oldest beyond `ARGV[3]` (0: no limit), which are taken out: their
/// instances close them.
const CAP_LUA: &str = r"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local i = string.match(m, '^(%S+) ')
  if not i or redis.call('EXISTS', heartbeat_key(ARGV[4], i)) == 0 then
    redis.call('ZREM', KEYS[1], m)
  end
end
local max = tonumber(ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
if max == 0 or n <= max then
  return {}
end
local out = redis.call('ZRANGE', KEYS[1], 0, n - max - 1)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - max - 1)
return out
";

/// What a claim in Redis found.
#[derive(Debug, PartialEq, Eq)]
enum Claimed {
    /// The nick is this connection's now.
    Free,
    /// A live connection of another user holds it.
    Taken { instance: String, conn: ConnId },
    /// Another user's connection ended moments ago; they keep the nick for the grace.
    Reserved,
}

/// Cluster-wide nick ownership; see the module docs.
pub(crate) struct RedisNicks {
    local: MemoryNicks,
    grace: std::time::Duration,
    instance: Arc<Instance>,
    conn: ConnectionManager,
    claim: Script,
    release: Script,
    cap: Script,
    max_per_user: usize,
}

impl RedisNicks {
    pub(crate) fn new(
        instance: Arc<Instance>,
        conn: ConnectionManager,
        grace: std::time::Duration,
        max_per_user: usize,
    ) -> Self {
        RedisNicks {
            local: MemoryNicks::new(grace, max_per_user),
            grace,
            instance,
            conn,
            claim: Script::new(&format!("{LUA_KEYS}{CLAIM_LUA}")),
            release: Script::new(&format!("{LUA_KEYS}{RELEASE_LUA}")),
            cap: Script::new(&format!("{LUA_KEYS}{CAP_LUA}")),
            max_per_user,
        }
    }

    /// Claims `key` in Redis for local connection `conn` of `user`; `force` overrides a
    /// live holder (a signed-in user, or a holder this instance knows is gone).
    async fn claim_in_redis(
        &self,
        redis: &mut ConnectionManager,
        key: &str,
        user: &str,
        conn: ConnId,
        force: bool,
    ) -> RedisResult<Claimed> {
        let (keys, id) = (self.instance.keys(), self.instance.id());
        let mut invocation = self.claim.prepare_invoke();
        invocation
            .key(keys.nick(key))
            .key(keys.instance_nicks(id))
            .key(keys.nick_conns(key))
            .arg(id)
            .arg(conn)
            .arg(user)
            .arg(if force { "force" } else { "" })
            .arg(keys.prefix());
        // The first command after Redis came back meets the dead connection and only
        // starts the reconnect: try once more. A claim that ran but whose answer was lost
        // finds itself the holder the second time, so repeating it is harmless.
        let reply: Vec<String> = match invocation.invoke_async(redis).await {
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() => {
                invocation.invoke_async(redis).await?
            }
            other => other?,
        };
        let holder = || {
            let instance = reply.get(1).cloned().unwrap_or_default();
            let conn = reply.get(2).and_then(|c| c.parse().ok()).unwrap_or(0);
            (instance, conn)
        };
        Ok(match reply.first().map(String::as_str) {
            Some("taken") => {
                let (instance, conn) = holder();
                Claimed::Taken { instance, conn }
            }
            Some("reserved") => Claimed::Reserved,
            _ => Claimed::Free,
        })
    }

    /// The cluster half of a claim the local registry already granted.
    async fn claim_cluster(&self, who: &Identity, conn: ConnId) -> Result<(), ClaimError> {
        let mut redis = self.conn.clone();
        let unavailable = |e: redis::RedisError| ClaimError::Unavailable(Box::new(e));
        let force = !who.is_guest();
        let mut claimed = self
            .claim_in_redis(&mut redis, &who.key, &who.user, conn, force)
            .await
            .map_err(unavailable)?;
        if let Claimed::Taken { instance, .. } = &claimed {
            // Held by a user of this instance who is gone: their release never reached
            // Redis (an outage), so the entry is stale.
            if instance == self.instance.id() && !self.local.holds_key(&who.key) {
                claimed = self
                    .claim_in_redis(&mut redis, &who.key, &who.user, conn, true)
                    .await
                    .map_err(unavailable)?;
            }
        }
        match claimed {
            Claimed::Free => {}
            Claimed::Taken { .. } => return Err(ClaimError::Taken),
            Claimed::Reserved => return Err(ClaimError::Reserved),
        }
        self.displace_beyond_cap(&mut redis, who, conn).await;
        Ok(())
    }

    /// Counts connection `conn` among `who`'s across the cluster and closes their
    /// oldest beyond `--max-connections-per-user`, wherever they are.
    async fn displace_beyond_cap(
        &self,
        redis: &mut ConnectionManager,
        who: &Identity,
        conn: ConnId,
    ) {
        let (keys, id) = (self.instance.keys(), self.instance.id());
        let oldest: RedisResult<Vec<String>> = self
            .cap
            .key(keys.user_conns(&who.user))
            .arg(format!("{id} {conn}"))
            .arg(crate::clock::now_ms())
            .arg(self.max_per_user)
            .arg(keys.prefix())
            .invoke_async(redis)
            .await;
        let oldest = match oldest {
            Ok(oldest) => oldest,
            Err(e) => {
                // Each instance still holds the user to the cap on its own.
                tracing::warn!(error = %e, "connections per user not counted across the cluster");
                return;
            }
        };
        for member in oldest {
            let Some((instance, old)) = member
                .split_once(' ')
                .and_then(|(i, c)| Some((i, c.parse::<ConnId>().ok()?)))
            else {
                continue;
            };
            if instance == id {
                self.local.close(&who.user, old, Disconnect::Displaced);
                continue;
            }
            let evict = codec::encode_evict(&Evict {
                evict: old,
                user: who.user.to_string(),
            });
            let sent: RedisResult<()> = redis.publish(keys.control(instance), evict).await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, "a displaced connection on another instance not told to close");
            }
        }
    }

    /// Listens on this instance's control channel and closes the connections whose
    /// sessions were reclaimed elsewhere, until cancelled.
    pub(crate) async fn obey_control(self: Arc<Self>, client: Client, cancel: CancellationToken) {
        let channel = self.instance.keys().control(self.instance.id());
        let mut retry = Retry::new("redis control subscriber");
        while !cancel.is_cancelled() {
            let result = async {
                let mut pubsub = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
                    .await
                    .map_err(|_| "connect timed out".to_owned())?
                    .map_err(|e| e.to_string())?;
                pubsub
                    .subscribe(&channel)
                    .await
                    .map_err(|e| e.to_string())?;
                retry.connected();
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return Ok(()),
                        msg = messages.next() => {
                            let Some(msg) = msg else {
                                return Err("connection closed".to_owned());
                            };
                            self.evict(msg.get_payload_bytes());
                        }
                    }
                }
            }
            .await;
            if let Err(e) = result {
                if !pause(&cancel, retry.failed(&e)).await {
                    break;
                }
            }
        }
    }

    fn evict(&self, payload: &[u8]) {
        match codec::decode_evict(payload) {
            Ok(Evict { evict, user }) => {
                if self.local.close(&user, evict, Disconnect::Displaced) {
                    tracing::info!(conn = evict, "displaced by the user's newer connections on another instance; closing with 4001");
                }
            }
            Err(_) => tracing::warn!("unreadable control message skipped"),
        }
    }
}

#[async_trait]
impl NickRegistry for RedisNicks {
    async fn claim(
        &self,
        who: &Identity,
        conn: ConnId,
        control: Arc<Control>,
    ) -> Result<(), ClaimError> {
        self.local.claim(who, conn, control).await?;
        if let Err(e) = self.claim_cluster(who, conn).await {
            self.local.release(who, conn).await;
            return Err(e);
        }
        Ok(())
    }

    async fn release(&self, who: &Identity, conn: ConnId) {
        self.local.release(who, conn).await;
        let (keys, id) = (self.instance.keys(), self.instance.id());
        let released: RedisResult<()> = self
            .release
            .key(keys.nick(&who.key))
            .key(keys.instance_nicks(id))
            .key(keys.nick_conns(&who.key))
            .arg(format!("{id} {conn}"))
            .arg(&*who.user)
            .arg(self.grace.as_millis() as u64)
            .arg(keys.prefix())
            .invoke_async(&mut self.conn.clone())
            .await;
        if let Err(e) = released {
            // The next claim of this nick sees the entry names a connection this
            // instance no longer has, and overrides it.
            tracing::warn!(nick = %Escaped(&who.key), error = %e, "nick not released in redis");
        }
        let forgotten: RedisResult<()> = self
            .conn
            .clone()
            .zrem(keys.user_conns(&who.user), format!("{id} {conn}"))
            .await;
        if let Err(e) = forgotten {
            // Counted until this instance's heartbeat stops or the next claim prunes
            // it; meanwhile the user may be one connection short of the cap.
            tracing::warn!(error = %e, "connection not uncounted in redis");
        }
    }

    /// Here first; then the cluster's count of the user's connections, which a dead
    /// instance's entries inflate only until its sweep.
    async fn online(&self, user: &str) -> bool {
        if self.local.online(user).await {
            return true;
        }
        let counted: RedisResult<u64> = self
            .conn
            .clone()
            .zcard(self.instance.keys().user_conns(user))
            .await;
        counted.is_ok_and(|n| n > 0)
    }
}

#[async_trait]
impl Recorded for RedisNicks {
    /// Claims every local nick again; a user whose nick someone else took meanwhile
    /// has their connections here closed, since one of the two must go and the other
    /// got it first.
    async fn record_again(&self, redis: &mut ConnectionManager) -> RedisResult<()> {
        for (key, user, conns) in self.local.holders() {
            let Some(&newest) = conns.last() else {
                continue;
            };
            let claimed = self
                .claim_in_redis(redis, &key, &user, newest, false)
                .await?;
            if let Claimed::Taken { .. } | Claimed::Reserved = claimed {
                tracing::warn!(nick = %Escaped(&key), "nick taken elsewhere while redis was lost; closing the local holder");
                for conn in conns {
                    self.local.close(&user, conn, Disconnect::Displaced);
                }
            }
        }
        Ok(())
    }
}
