//! The cluster plumbing every Redis-backed part shares (`--redis`): the key schema ([`keys`]), this
//! instance's registration and heartbeat ([`instance`]), and connecting, timing out and
//! reconnecting with backoff. The parts themselves live beside their seams:
//! `store::redis` (history), `broker::redis` and `broker::redis_streams` (fan-out),
//! `presence::redis` (member lists), `nicks::redis` (nick ownership).

pub(crate) mod instance;
pub(crate) mod keys;
#[cfg(test)]
pub(crate) mod test_server;

use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Client;
use tokio_util::sync::CancellationToken;

/// Connecting (per attempt) may take this long.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A command may take this long to answer; a stopped or hung Redis then fails the call.
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnect backoff bounds for the background tasks.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A multiplexed, self-reconnecting connection for commands that do not block, with
/// the timeouts above. Fails when Redis cannot be reached now.
pub(crate) async fn manager(client: &Client) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(BACKOFF_MAX);
    client.get_connection_manager_with_config(config).await
}

/// Background tasks that stop when [`Tasks::shutdown`] is called.
#[derive(Default)]
pub(crate) struct Tasks {
    cancel: CancellationToken,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Tasks {
    /// The token a task watches to stop.
    pub(crate) fn token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    pub(crate) fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.handles.push(tokio::spawn(task));
    }

    /// Stops every task and waits for them.
    pub(crate) async fn shutdown(self) {
        self.cancel.cancel();
        for handle in self.handles {
            if let Err(e) = handle.await {
                tracing::error!(error = %e, "background task failed");
            }
        }
    }
}

/// Reconnect bookkeeping for a task: the wait doubles while connections fail (or fail
/// again right after connecting) and starts over once one lasted; one warning per
/// outage, so a long one does not flood the log.
pub(crate) struct Retry {
    what: &'static str,
    backoff: Duration,
    since: Option<Instant>,
    failing: bool,
}

impl Retry {
    pub(crate) fn new(what: &'static str) -> Self {
        Retry {
            what,
            backoff: BACKOFF_MIN,
            since: None,
            failing: false,
        }
    }

    pub(crate) fn connected(&mut self) {
        if self.failing {
            tracing::info!(task = self.what, "reconnected to redis");
        }
        self.since = Some(Instant::now());
    }

    /// Records a failure and returns how long to wait before the next attempt.
    pub(crate) fn failed(&mut self, error: &dyn std::fmt::Display) -> Duration {
        if self
            .since
            .take()
            .is_some_and(|t| t.elapsed() >= BACKOFF_MAX)
        {
            self.backoff = BACKOFF_MIN;
            self.failing = false;
        }
        if !self.failing {
            tracing::warn!(task = self.what, %error, "lost the redis connection; retrying");
            self.failing = true;
        }
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        wait
    }
}

/// Sleeps unless cancelled; false when cancelled.
pub(crate) async fn pause(cancel: &CancellationToken, wait: Duration) -> bool {
    tokio::select! {
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_while_connections_die_at_once() {
        let mut retry = Retry::new("test");
        assert_eq!(retry.failed(&"down"), BACKOFF_MIN);
        for _ in 0..20 {
            retry.connected();
            retry.failed(&"died again");
        }
        assert_eq!(retry.failed(&"down"), BACKOFF_MAX);
    }
}
