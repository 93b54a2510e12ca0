//! The shared state every connection and handler sees.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::Limits;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;
use crate::config::Config;
use crate::http::origin::AllowedOrigins;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::nicks::Nicks;
use crate::peers::Peers;
use crate::session::outbox::ConnId;
use crate::store::HistoryStore;
use crate::writer::Writer;

/// Cheap-to-clone handle to the server's shared parts.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The parts themselves.
pub struct Shared {
    pub config: Config,
    /// What `welcome` advertises; derived from `config` once.
    pub limits: Limits,
    pub hub: Hub,
    pub broker: Arc<dyn Broker>,
    pub store: Arc<dyn HistoryStore>,
    pub writer: Writer,
    pub nicks: Nicks,
    /// Cancelled when the server starts shutting down; sessions then close with 1001.
    pub shutdown: CancellationToken,
    /// Tracks every live session so shutdown can wait for their close frames.
    pub sessions: TaskTracker,
    /// One permit per live WebSocket (`--max-connections`).
    pub connection_slots: Arc<Semaphore>,
    /// Per-address connection counts and `hello`/`join` buckets.
    pub peers: Peers,
    /// Which `Origin`s may open a WebSocket.
    pub origins: AllowedOrigins,
    /// This server's metrics (`GET /metrics`); per server, so tests that run several in
    /// one process see each one's own numbers.
    pub metrics: Metrics,
    next_conn: AtomicU64,
}

impl AppState {
    pub fn new(
        config: Config,
        hub: Hub,
        nicks: Nicks,
        broker: Arc<dyn Broker>,
        store: Arc<dyn HistoryStore>,
        writer: Writer,
        metrics: Metrics,
    ) -> Self {
        let limits = config.limits();
        let connection_slots = Arc::new(Semaphore::new(config.max_connections));
        let peers = Peers::new(
            config.max_connections_per_ip,
            config.ip_join_rate,
            config.ip_join_burst,
            config.max_connections,
        );
        let origins = AllowedOrigins::new(&config.allowed_origins);
        AppState(Arc::new(Shared {
            config,
            limits,
            hub,
            broker,
            store,
            writer,
            nicks,
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
            connection_slots,
            peers,
            origins,
            metrics,
            next_conn: AtomicU64::new(1),
        }))
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
        self.0.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
