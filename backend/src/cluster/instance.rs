//! This instance in the cluster: its id, its registration and heartbeat, and the sweep
//! that cleans up after instances that died without leaving.
//!
//! Keys (see [`Keys`]): `instances` (the registered ids), `heartbeat(id)` (refreshed
//! every [`HEARTBEAT`], expiring after [`HEARTBEAT_TTL`]; an instance without it is
//! dead), and what a dead instance leaves behind: `instance_rooms(id)` with
//! `members(room, id)` (presence) and `instance_nicks(id)` with the `nick(key)` entries
//! it holds (nicks).
//!
//! The keeper task beats, and when Redis had forgotten this instance (first beat, swept
//! during a long outage, or data lost) asks the registries to record their local state
//! again. Then it sweeps: each registered instance without a heartbeat is claimed in one
//! script whose `SREM` succeeds for exactly one survivor, which deletes its entries and
//! reports its members as departed, so they are announced as left exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisResult, Script};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::keys::{Keys, LUA_KEYS};
use super::{pause, RESPONSE_TIMEOUT};
use crate::presence::Departed;

/// How often an instance refreshes its heartbeat and sweeps dead instances.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a heartbeat lives: three missed beats, so a Redis hiccup or a busy instance
/// is not taken for a dead one.
const HEARTBEAT_TTL: Duration = Duration::from_secs(3);

/// Claims dead instance `ARGV[1]` (prefix `ARGV[2]`): unless its heartbeat came back or
/// another survivor claimed it first, deletes its member entries and the nicks it still
/// holds, and returns the members as room, nick, room, nick…
/// KEYS: instances, heartbeat, instance rooms, instance nicks.
const SWEEP_LUA: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return {} end
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return {} end
local out = {}
for _, room in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local key = members_key(ARGV[2], room, ARGV[1])
  for _, nick in ipairs(redis.call('HVALS', key)) do
    out[#out + 1] = room
    out[#out + 1] = nick
  end
  redis.call('DEL', key)
  redis.call('DEL', room_users_key(ARGV[2], room, ARGV[1]))
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

/// Local state a registry keeps in Redis under this instance's name.
#[async_trait]
pub(crate) trait Recorded: Send + Sync {
    /// Records it again: Redis forgot this instance.
    async fn record_again(&self, conn: &mut ConnectionManager) -> RedisResult<()>;
}

/// This instance's identity and liveness in Redis.
pub(crate) struct Instance {
    id: String,
    keys: Keys,
    sweep: Script,
}

impl Instance {
    /// A new instance with a random id.
    pub(crate) fn new(keys: Keys) -> Self {
        Instance {
            id: format!("{:016x}", rand::random::<u64>()),
            keys,
            sweep: Script::new(&format!("{LUA_KEYS}{SWEEP_LUA}")),
        }
    }

    /// Random per process: tells this instance's entries and events from others'.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Refreshes the heartbeat. True when this instance was not registered, so its
    /// local state must be recorded again.
    pub(crate) async fn beat(&self, conn: &mut ConnectionManager) -> RedisResult<bool> {
        let (added,): (u64,) = redis::pipe()
            .atomic()
            .pset_ex(
                self.keys.heartbeat(&self.id),
                1,
                HEARTBEAT_TTL.as_millis() as u64,
            )
            .ignore()
            .sadd(self.keys.instances(), &self.id)
            .query_async(conn)
            .await?;
        Ok(added == 1)
    }

    /// Stops the heartbeat at a clean shutdown, so the others sweep at once.
    async fn stop(&self, conn: &mut ConnectionManager) -> RedisResult<()> {
        conn.del(self.keys.heartbeat(&self.id)).await
    }

    /// Claims every dead instance this survivor gets to; returns their members by room.
    async fn sweep(
        &self,
        conn: &mut ConnectionManager,
    ) -> RedisResult<BTreeMap<String, Vec<String>>> {
        let ids: Vec<String> = conn.smembers(self.keys.instances()).await?;
        let mut gone: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for id in ids.iter().filter(|id| **id != self.id) {
            let alive: bool = conn.exists(self.keys.heartbeat(id)).await?;
            if alive {
                continue;
            }
            let taken: Vec<String> = self
                .sweep
                .key(self.keys.instances())
                .key(self.keys.heartbeat(id))
                .key(self.keys.instance_rooms(id))
                .key(self.keys.instance_nicks(id))
                .arg(id)
                .arg(self.keys.prefix())
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

/// The keeper task; see the module docs. `recorded` are the registries to re-record;
/// members of swept instances go to `departed` (best-effort: if its reader lags, the
/// notices are dropped, and the next change corrects the member lists).
pub(crate) async fn keep(
    instance: Arc<Instance>,
    mut conn: ConnectionManager,
    recorded: Vec<Arc<dyn Recorded>>,
    departed: mpsc::Sender<Departed>,
    cancel: CancellationToken,
) {
    let mut failing = false;
    while pause(&cancel, HEARTBEAT).await {
        let result = round(&instance, &mut conn, &recorded, &departed).await;
        match result {
            Ok(()) if failing => {
                tracing::info!("instance keeper reaches redis again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                tracing::warn!(error = %e, "instance keeper cannot reach redis; retrying");
                failing = true;
            }
            Err(_) => {}
        }
    }
    let stop = instance.stop(&mut conn);
    if !matches!(
        tokio::time::timeout(RESPONSE_TIMEOUT, stop).await,
        Ok(Ok(()))
    ) {
        tracing::warn!("heartbeat not removed at shutdown; it expires on its own");
    }
}

/// One heartbeat: refresh, record again if Redis forgot this instance, sweep the dead.
async fn round(
    instance: &Instance,
    conn: &mut ConnectionManager,
    recorded: &[Arc<dyn Recorded>],
    departed: &mpsc::Sender<Departed>,
) -> RedisResult<()> {
    if instance.beat(conn).await? {
        for registry in recorded {
            registry.record_again(conn).await?;
        }
    }
    for (room, nicks) in instance.sweep(conn).await? {
        if departed.try_send(Departed { room, nicks }).is_err() {
            tracing::warn!("departures of a dead instance not announced: queue full");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_outlives_missed_beats() {
        assert!(HEARTBEAT_TTL >= HEARTBEAT * 2);
    }
}
