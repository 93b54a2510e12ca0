//! The Huddle chat server: protocol v1 over WebSockets, durable history in SQLite, and
//! the web app, in one process.
//!
//! # Layout
//! - [`config`]: every flag and limit, parsed by clap.
//! - [`http`]: routes and the WebSocket upgrade; [`web`]: the web app's files.
//! - [`session`]: one connection's loop and its handlers; `session::outbox` holds the
//!   bounded per-connection queue and close control.
//! - [`codec`]: the only place frames become JSON and back.
//! - [`hub`]: local rooms → member outboxes; [`nicks`]: nick ownership and reclaim.
//! - [`broker`]: fan-out across nodes ([`broker::MemoryBroker`] for one node,
//!   [`broker::RedisBroker`] with `--redis`).
//! - [`writer`]: the single history writer (group commit, then broadcast in order).
//! - [`store`]: the [`store::HistoryStore`] trait and [`store::SqliteStore`].
//! - [`shutdown`]: the stop signal.
//! - [`metrics`]: every metric `GET /metrics` exports, per server; [`logsafe`]: logging
//!   client-controlled text without control characters.
//! - [`tls`]: `--tls-cert`/`--tls-key` and the listener that serves plain TCP or TLS.
//! - [`peers`]: per-address limits (connections, `hello`/`join` rate) and the client
//!   address behind trusted proxies.
//!
//! A message flows: session `send` → writer queue → one SQLite transaction → broker
//! publish → hub → each member's outbox → each session's socket; the sender's `ack`
//! comes back from the writer once the transaction committed.

pub mod broker;
pub mod codec;
pub mod config;
pub mod http;
pub mod hub;
pub mod logsafe;
pub mod metrics;
pub mod nicks;
pub mod peers;
pub mod session;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod tls;
pub mod web;
pub mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::{Listener as _, ListenerExt};
use axum::Router;
use tokio::net::TcpListener;

pub use config::Config;
pub use state::AppState;

use broker::{Broker, MemoryBroker, RedisBroker, RedisBrokerTasks};
use hub::Hub;
use metrics::Metrics;
use nicks::Nicks;
use store::{HistoryStore, RedisStore, SqliteStore, StoreError};
use writer::Writer;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// `--redis` is set but Redis cannot be used now (credentials removed from `url`).
    #[error("cannot use Redis at {url}: {reason}; check --redis (HUDDLE_REDIS_URL) and that redis-server is running")]
    Redis { url: String, reason: String },
}

/// The HTTP application for a state: what tests and `run` serve.
pub fn app(state: AppState) -> Router {
    http::router(state)
}

/// Serves Huddle on `listener` until `shutdown` resolves, then closes every WebSocket
/// with 1001, flushes the history writer and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let tls = tls::from_config(&config)?;
    let hub = Hub::default();
    let nicks = Nicks::default();
    let (store, broker, broker_tasks) = open_backends(&config, &hub, &nicks).await?;
    let metrics = Metrics::new();
    let (writer, writer_task) = Writer::start(
        store.clone(),
        broker.clone(),
        config.write_queue,
        config.max_batch,
        metrics.clone(),
    );
    let state = AppState::new(config, hub, nicks, broker, store, writer, metrics);
    let token = state.shutdown.clone();
    let listener = tls::Incoming::new(listener, tls)?;
    let scheme = if listener.is_tls() { "https" } else { "http" };
    let history = match &state.config.redis {
        Some(url) => format!("redis {}", redact_url(url)),
        None => format!("sqlite {}", state.config.db.display()),
    };
    tracing::info!(addr = %listener.local_addr()?, scheme, %history, "huddle listening");
    if !listener.is_tls() {
        tracing::info!("serving plain HTTP: on the open internet, pass --tls-cert and --tls-key, or put a TLS-terminating proxy in front");
    }

    // Chat frames are small and latency matters: without TCP_NODELAY, Nagle's algorithm
    // and delayed ACKs hold a lone frame back for up to ~40 ms.
    let listener = listener.tap_io(|io| {
        if let Err(e) = tls::tcp(io).set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let service = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            shutdown.await;
            token.cancel();
        })
        .await?;

    // HTTP is done; upgraded sockets are closing with 1001. Wait for every session to
    // finish, then drop the last writer handle so the writer drains and stops.
    state.sessions.close();
    state.sessions.wait().await;
    drop(state);
    writer_task.shutdown().await;
    if let Some(tasks) = broker_tasks {
        tasks.shutdown().await;
    }
    tracing::info!("huddle stopped");
    Ok(())
}

/// The history store and broker: Redis for both with `--redis`, else SQLite and
/// in-process delivery. The Redis broker's tasks come back to be stopped last.
async fn open_backends(
    config: &Config,
    hub: &Hub,
    nicks: &Nicks,
) -> Result<
    (
        Arc<dyn HistoryStore>,
        Arc<dyn Broker>,
        Option<RedisBrokerTasks>,
    ),
    RunError,
> {
    let Some(url) = &config.redis else {
        let store = Arc::new(SqliteStore::open(&config.db)?);
        return Ok((store, Arc::new(MemoryBroker::new(hub.clone())), None));
    };
    let failed = |reason: String| RunError::Redis {
        url: redact_url(url),
        reason,
    };
    let store = RedisStore::connect(url, config.history_max)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let (broker, tasks) = RedisBroker::start(url, hub.clone(), nicks.clone())
        .await
        .map_err(|e| failed(e.to_string()))?;
    Ok((Arc::new(store), Arc::new(broker), Some(tasks)))
}

/// A Redis URL without its password, for messages and logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redis_urls_lose_their_credentials() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact_url("redis://:s3cret@h:1/2"), "redis://***@h:1/2");
        assert_eq!(redact_url("rediss://u:p@w@h"), "rediss://***@h");
    }
}
