//! Retention: the background task that deletes what `--retention` no longer keeps and
//! forgets rooms left without messages, through [`HistoryStore::prune`] (each store
//! implements the deleting; this module only decides when).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::logsafe::Chain;
use crate::store::{HistoryStore, Pruned, Retention};

/// Prunes at start and then every `every` until cancelled.
pub(crate) async fn keep(
    store: Arc<dyn HistoryStore>,
    policy: Retention,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        // A pass is bounded steps, each atomic on its own (one SQLite transaction, one
        // Redis command or script), so dropping it between steps loses nothing: a long
        // first pass over years of history does not hold shutdown up.
        let pass = tokio::select! {
            () = cancel.cancelled() => return,
            pass = store.prune(&policy, now_ms()) => pass,
        };
        match pass {
            Ok(pruned) if pruned != Pruned::default() => tracing::info!(
                messages = pruned.messages,
                rooms = pruned.rooms,
                "retention: old history deleted"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "retention pass failed; trying again later")
            }
        }
    }
}
