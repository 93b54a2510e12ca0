//! The shared state every connection and handler sees.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::Limits;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounts::Accounts;
use crate::alerts::Alerts;
use crate::config::Config;
use crate::directory::Directory;
use crate::http::api::ApiKeys;
use crate::http::ops::Readiness;
use crate::http::origin::{AllowedOrigins, PublicHosts};
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::nicks::NickRegistry;
use crate::peers::{PeerLimits, Peers};
use crate::session::outbox::ConnId;
use crate::store::HistoryStore;
use crate::streams::Streams;
use crate::writer::Writer;

/// Cheap-to-clone handle to the server's shared parts.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

/// The parts themselves.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// What `welcome` advertises; derived from `config` once.
    pub(crate) limits: Limits,
    /// Joining, departing and room events.
    pub(crate) membership: Arc<Membership>,
    pub(crate) nicks: Arc<dyn NickRegistry>,
    /// Accounts, memberships, read offsets, room settings.
    pub(crate) directory: Arc<dyn Directory>,
    /// Making and delivering alerts; holds the inbox.
    pub(crate) alerts: Arc<Alerts>,
    /// The VAPID public key browsers subscribe with (`GET /api/push/key`).
    pub(crate) vapid_public: Arc<str>,
    /// Who may call the notifications API (`--api-token`, `--api-keys`).
    pub(crate) api_keys: Arc<ApiKeys>,
    /// Signing in: accounts and tokens.
    pub(crate) accounts: Arc<Accounts>,
    pub(crate) store: Arc<dyn HistoryStore>,
    /// The SSE streams' resume records.
    pub(crate) streams: Arc<dyn Streams>,
    pub(crate) writer: Writer,
    /// Cancelled when the server starts shutting down; sessions then close with 1001.
    pub(crate) shutdown: CancellationToken,
    /// Tracks every live session so shutdown can wait for their close frames.
    pub(crate) sessions: TaskTracker,
    /// One permit per live WebSocket (`--max-connections`).
    pub(crate) connection_slots: Arc<Semaphore>,
    /// Per-address connection counts and `hello`/`join` buckets.
    pub(crate) peers: Peers,
    /// Which `Origin`s may open a WebSocket.
    pub(crate) origins: AllowedOrigins,
    /// Which `Host`s `/ws`, the API and `/metrics` answer for.
    pub(crate) hosts: PublicHosts,
    /// The last `/readyz` answer, reused for a moment.
    pub(crate) readiness: Readiness,
    /// This server's metrics (`GET /metrics`); per server, so tests that run several in
    /// one process see each one's own numbers.
    pub(crate) metrics: Metrics,
    next_conn: AtomicU64,
}

/// The parts [`AppState::new`] puts together.
pub(crate) struct Parts {
    /// Whether the server listens on a loopback address only (development defaults).
    pub(crate) loopback: bool,
    pub(crate) membership: Arc<Membership>,
    pub(crate) nicks: Arc<dyn NickRegistry>,
    pub(crate) directory: Arc<dyn Directory>,
    pub(crate) alerts: Arc<Alerts>,
    pub(crate) vapid_public: Arc<str>,
    pub(crate) api_keys: Arc<ApiKeys>,
    pub(crate) accounts: Arc<Accounts>,
    pub(crate) store: Arc<dyn HistoryStore>,
    pub(crate) streams: Arc<dyn Streams>,
    pub(crate) writer: Writer,
    pub(crate) metrics: Metrics,
}

impl AppState {
    pub(crate) fn new(config: Config, parts: Parts) -> Self {
        let limits = config.limits();
        let connection_slots = Arc::new(Semaphore::new(config.max_connections));
        let peers = Peers::new(PeerLimits {
            max_conns: config.max_connections_per_ip,
            per_minute: config.ip_join_rate,
            burst: config.ip_join_burst,
            max_connections: config.max_connections,
            ipv6_prefix: config.ipv6_prefix,
        });
        let origins = AllowedOrigins::new(&config.allowed_origins, parts.loopback);
        let hosts = PublicHosts::new(&config.public_host, parts.loopback);
        AppState(Arc::new(Shared {
            config,
            limits,
            membership: parts.membership,
            nicks: parts.nicks,
            directory: parts.directory,
            alerts: parts.alerts,
            vapid_public: parts.vapid_public,
            api_keys: parts.api_keys,
            accounts: parts.accounts,
            store: parts.store,
            streams: parts.streams,
            writer: parts.writer,
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
            connection_slots,
            peers,
            origins,
            hosts,
            readiness: Readiness::default(),
            metrics: parts.metrics,
            next_conn: AtomicU64::new(1),
        }))
    }

    /// A fresh connection id.
    pub(crate) fn next_conn_id(&self) -> ConnId {
        self.0.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
