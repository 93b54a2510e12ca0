//! The Huddle chat server: protocol v1 over WebSockets, durable history in SQLite or
//! Redis, and the web app, in one process; with `--redis`, any number of processes
//! sharing one chat.
//!
//! # Layout
//! - `config`: every flag and limit, parsed by clap.
//! - `http`: routes and the WebSocket upgrade; `web`: the web app's files.
//! - `session`: one connection's loop and its handlers; `session::outbox` holds the
//!   bounded per-connection queue and close control; `disconnect`: why a connection is
//!   closed; `identity`: who it is after `hello`.
//! - `membership`: joining, departing, room events and their announcements: the one
//!   place a member departs.
//! - `hub`: local rooms → member outboxes; the one place a stored message fans out.
//! - Three seams, each with a memory and a Redis implementation: `broker` (fan-out),
//!   `presence` (member lists across nodes), `nicks` (nick ownership).
//! - `store`: the history seam ([`HistoryStore`]) with SQLite and Redis Streams;
//!   `directory`: the people seam (accounts, memberships, read offsets, room settings).
//! - `accounts`: signing in (accounts, account tokens, host JWTs) on top of `auth`'s
//!   proofs; `rooms`: who may see and manage a room, and what a DM is called.
//! - `cluster`: what the Redis implementations share: the key schema (`--redis-prefix`),
//!   this instance's heartbeat and the sweep of dead instances, reconnecting.
//! - `writer`: the single history writer (group commit, then hand over in order);
//!   `retention`: when old history is deleted (`--retention`).
//! - `codec`: the only place frames become JSON and back.
//! - `metrics`, `logsafe`, `tls`, `peers`, `rate`, `clock`, `locks`, `shutdown`.
//!
//! A message flows: session `send` → writer queue → one transaction → broker →
//! hub → each member's outbox → each session's socket; the sender's `ack` comes back
//! from the writer once the transaction committed. ARCHITECTURE.md has the whole map.

mod accounts;
mod alerts;
mod auth;
mod broker;
mod clock;
mod cluster;
mod codec;
mod config;
mod directory;
mod disconnect;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod hub;
mod identity;
mod inbox;
mod locks;
mod logsafe;
mod membership;
mod metrics;
mod nicks;
mod peers;
mod presence;
pub(crate) mod push;
mod rate;
mod retention;
mod rooms;
mod session;
mod shutdown;
mod state;
mod store;
mod streams;
mod tls;
mod web;
mod writer;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use config::{Command, Config, LogFormat, Registration, UserCommand};
// The types of `Config`'s fields.
pub use cluster::keys::Keys as RedisKeys;
pub use http::api::{ApiToken, ApiTokenError, ApiTokenParser};
pub use http::origin::{BadHost, BadPattern, OriginPattern, PortPattern, PublicHost};
pub use metrics::names as metric_names;
pub use peers::{BadNet, IpNet};
pub use shutdown::shutdown_signal;
use state::AppState;
pub use store::{
    AppendOutcome, BadRetention, Change, HistoryStore, NewEntry, Page, Pruned, RedisStore, Refusal,
    Retention, RoomHead, RoomList, SqliteStore, StoreError,
};
pub use tls::TlsError;

use accounts::Accounts;
use alerts::Alerts;
use auth::jwt::JwtVerifier;
use broker::{Broker, MemoryBroker, RedisBroker};
use cluster::instance::{Instance, Recorded};
use directory::Directory;
use hub::Hub;
use inbox::Inbox;
use membership::Membership;
use metrics::Metrics;
use nicks::{MemoryNicks, NickRegistry, RedisNicks};
use presence::{Departed, MemoryPresence, Presence, RedisPresence};
use writer::Writer;

/// How many swept departures may wait to be announced.
const DEPARTURES_QUEUE: usize = 1024;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("server I/O error")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// `--jwt-secret` or `--jwt-public-key` cannot verify anything.
    #[error("cannot use the host-app sign-in key: {0}")]
    Jwt(String),
    /// `--redis` is set but Redis cannot be used now (credentials removed from `url`).
    #[error("--api-keys: {0}")]
    ApiKeys(String),
    #[error("cannot use the Web Push key: {0}")]
    Vapid(String),
    #[error("cannot use Redis at {url}; check --redis (HUDDLE_REDIS_URL) and that redis-server is running")]
    Redis {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Checks that the TLS settings can work (files readable, key matching), so a binary can
/// refuse a bad configuration before it starts anything.
pub fn check_tls(config: &Config) -> Result<(), TlsError> {
    tls::from_config(config).map(drop)
}

/// Serves Huddle on `listener` until `shutdown` resolves, then closes every WebSocket
/// with 1001, flushes the history writer and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let tls = tls::from_config(&config)?;
    let api_keys = http::api::ApiKeys::load(config.api_token.as_ref(), config.api_keys.as_deref())
        .map_err(|e| RunError::ApiKeys(e.to_string()))?;
    let jwt = jwt_verifier(&config)?;
    let metrics = Metrics::new();
    let hub = Hub::default();
    let mut backends = open_backends(&config, &hub).await?;
    // In Redis a prune pass also drops what the log's trimming (`--history-max`) left
    // behind: the edits, deletions and reactions of messages no longer stored. So it
    // runs there whatever the retention.
    if !config.retention.is_unbounded() || config.redis.is_some() {
        let token = backends.tasks.token();
        backends.tasks.spawn(retention::keep(
            Arc::clone(&backends.store),
            config.retention,
            config.prune_interval,
            token,
        ));
    }
    let (membership, farewells) = Membership::new(
        hub,
        Arc::clone(&backends.broker),
        backends.presence,
        config.announce_limit,
        config.presence_grace,
        metrics.clone(),
    );
    let membership = Arc::new(membership);
    let farewells = tokio::spawn(membership::send_farewells(
        Arc::downgrade(&membership),
        farewells,
    ));
    let departures = backends.departed.map(|departed| {
        tokio::spawn(membership::announce_departures(
            Arc::clone(&membership),
            departed,
        ))
    });
    let vapid = Arc::new(vapid_key(&config, backends.inbox.as_ref()).await?);
    let (push_handle, push_wakers) = alerts::pusher::channel();
    let pusher = alerts::pusher::Pusher::new(
        Arc::clone(&backends.inbox),
        Arc::clone(&backends.directory),
        push::PushSender::new(
            Arc::clone(&vapid),
            config.vapid_subject.clone(),
            push::SenderLimits::default(),
        ),
        config.push_rate,
        metrics.clone(),
    );
    backends.tasks.spawn(alerts::pusher::run(
        Arc::new(pusher),
        push_wakers,
        backends.tasks.token(),
    ));
    let alerts = Arc::new(Alerts::new(
        alerts::Stores {
            inbox: Arc::clone(&backends.inbox),
            directory: Arc::clone(&backends.directory),
            history: Arc::clone(&backends.store),
        },
        Arc::clone(&membership),
        Arc::clone(&backends.nicks),
        config.push_delay,
        &push_handle,
        metrics.clone(),
    ));
    let (committed, to_alert) = mpsc::channel(alerts::QUEUE);
    let alerts_task = tokio::spawn(alerts::run(Arc::clone(&alerts), to_alert));
    let (writer, writer_task) = Writer::start(
        Arc::clone(&backends.store),
        backends.broker,
        committed,
        writer::WriterConfig {
            queue: config.write_queue,
            max_batch: config.max_batch,
        },
        metrics.clone(),
    );
    // The stand-in hash an unknown user's login is checked against is made on first
    // use; made now, the first such login takes as long as any other.
    if let Err(e) = tokio::task::spawn_blocking(|| auth::password::verify_dummy("")).await {
        tracing::warn!(error = %e, "dummy password hash not prepared");
    }
    if let Some(jwt) = &jwt {
        tracing::info!(
            algorithm = jwt.algorithm(),
            "host-app sign-in tokens accepted"
        );
    }
    backends.tasks.spawn(forget_idle_guests(
        Arc::clone(&backends.directory),
        backends.tasks.token(),
    ));
    let accounts = Arc::new(Accounts::new(
        Arc::clone(&backends.directory),
        jwt,
        config.registration == config::Registration::Open,
    ));
    let history = match &config.redis {
        Some(url) => format!("redis {}", redact_url(url)),
        None => format!("sqlite {}", config.db.display()),
    };
    let loopback = listener.local_addr()?.ip().is_loopback();
    if !loopback && config.public_host.is_empty() {
        tracing::warn!("no --public-host: requests naming any host are served, so a DNS-rebinding page can reach /ws and the API; set --public-host to the names clients use");
    }
    let state = AppState::new(
        config,
        state::Parts {
            loopback,
            membership,
            nicks: backends.nicks,
            directory: backends.directory,
            alerts,
            vapid_public: Arc::from(vapid.public_b64()),
            api_keys: Arc::new(api_keys),
            accounts,
            store: backends.store,
            streams: backends.streams,
            writer,
            metrics,
        },
    );
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, %history, "huddle listening");
    if tls.is_none() {
        tracing::info!("serving plain HTTP: on the open internet, pass --tls-cert and --tls-key, or put a TLS-terminating proxy in front");
    }
    let limits = http::serve::Limits {
        max_connections: state.config.max_http_connections,
        max_per_ip: state.config.max_http_connections_per_ip,
        header_timeout: state.config.header_timeout,
        ipv6_prefix: state.config.ipv6_prefix,
        trusted_proxies: state.config.trusted_proxies.clone(),
    };
    let token = state.shutdown.clone();
    let stop = tokio::spawn({
        let token = token.clone();
        async move {
            shutdown.await;
            token.cancel();
        }
    });
    http::serve::serve(listener, tls, http::router(state.clone()), limits, token).await;
    stop.abort();

    // HTTP is done; upgraded sockets are closing with 1001. Wait for every session to
    // finish, then drop the last writer handle so the writer drains and stops. The
    // Redis tasks go last: the writer's appends and the sessions' releases need Redis.
    state.sessions.close();
    state.sessions.wait().await;
    drop(state);
    // The writer first: the alerts of what it stores last hold the membership until
    // the writer's end closes their queue.
    writer_task.shutdown().await;
    if let Err(e) = alerts_task.await {
        tracing::error!(error = %e, "alerts task failed");
    }
    backends.tasks.shutdown().await;
    if let Some(departures) = departures {
        // Ends once the keeper, stopped above, dropped its sender.
        if let Err(e) = departures.await {
            tracing::error!(error = %e, "departure announcer failed");
        }
    }
    // Last: the departure announcer holds the membership too, so only now is it gone
    // (with the state and the alerts) and the farewell task ends; its queued
    // departures need no announcing when everyone is leaving. (Awaited before the
    // background tasks stopped, a cluster instance never finished stopping.)
    if let Err(e) = farewells.await {
        tracing::error!(error = %e, "farewell task failed");
    }
    tracing::info!("huddle stopped");
    Ok(())
}

/// How long a guest's memberships outlive their last sign-in.
const GUEST_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// Forgets guests not seen for [`GUEST_LIFETIME`], hourly, until cancelled.
async fn forget_idle_guests(
    directory: Arc<dyn Directory>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = hourly.tick() => {}
        }
        let cutoff = clock::now_ms().saturating_sub(GUEST_LIFETIME.as_millis() as u64);
        match directory.forget_guests(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(guests = n, "idle guests forgotten"),
            Err(e) => tracing::warn!(error = %logsafe::Chain(&e), "idle guests not forgotten"),
        }
    }
}

/// The host application's key (`--jwt-secret` / `--jwt-public-key`), if it signs
/// people in.
/// The key that signs Web Pushes: `--vapid-private-key`, or the one stored with the
/// data (generated and stored on the first start, so subscriptions outlive restarts and
/// every instance of a cluster signs with the same key).
async fn vapid_key(config: &Config, inbox: &dyn Inbox) -> Result<push::Vapid, RunError> {
    if let Some(key) = &config.vapid_private_key {
        return push::Vapid::from_private_b64(key)
            .map_err(|e| RunError::Vapid(format!("--vapid-private-key: {e}")));
    }
    let candidate = push::Vapid::generate().private_b64();
    let stored = inbox
        .vapid_key(&candidate)
        .await
        .map_err(|e| RunError::Vapid(format!("not stored: {}", logsafe::Chain(&e))))?;
    push::Vapid::from_private_b64(&stored)
        .map_err(|e| RunError::Vapid(format!("the stored key is unusable: {e}")))
}

fn jwt_verifier(config: &Config) -> Result<Option<JwtVerifier>, RunError> {
    if let Some(secret) = &config.jwt_secret {
        return JwtVerifier::hs256(secret.as_bytes())
            .map(Some)
            .map_err(|e| RunError::Jwt(format!("--jwt-secret: {e}")));
    }
    let Some(path) = &config.jwt_public_key else {
        return Ok(None);
    };
    let pem = std::fs::read(path).map_err(|e| {
        RunError::Jwt(format!(
            "--jwt-public-key: cannot read {}: {e}",
            path.display()
        ))
    })?;
    JwtVerifier::from_public_pem(&pem)
        .map(Some)
        .map_err(|e| RunError::Jwt(format!("--jwt-public-key {}: {e}", path.display())))
}

/// Checks that `--jwt-secret` / `--jwt-public-key` can verify tokens, so a binary can
/// refuse a bad configuration before it starts anything.
pub fn check_jwt(config: &Config) -> Result<(), RunError> {
    jwt_verifier(config).map(drop)
}

/// `huddle user add NAME`: creates an account with `password` in the configured store
/// (whatever `--registration` says).
pub async fn add_user(config: &Config, name: &str, password: &str) -> Result<(), AddUserError> {
    let hub = Hub::default();
    let backends = open_backends(config, &hub).await?;
    let accounts = Accounts::new(Arc::clone(&backends.directory), None, true);
    let created = accounts.create(name, password).await;
    backends.tasks.shutdown().await;
    created.map_err(|e| match e {
        accounts::AccountError::Store(e) => AddUserError::Store(e),
        other => AddUserError::Refused(other.to_string()),
    })
}

/// Why `huddle user add` failed.
#[derive(Debug, thiserror::Error)]
pub enum AddUserError {
    #[error(transparent)]
    Open(#[from] RunError),
    #[error("the account could not be stored")]
    Store(#[source] StoreError),
    #[error("{0}")]
    Refused(String),
}

/// The implementations behind the seams, and what must be stopped at the end.
struct Backends {
    store: Arc<dyn HistoryStore>,
    inbox: Arc<dyn Inbox>,
    broker: Arc<dyn Broker>,
    presence: Arc<dyn Presence>,
    nicks: Arc<dyn NickRegistry>,
    directory: Arc<dyn Directory>,
    streams: Arc<dyn streams::Streams>,
    /// The Redis implementations' background tasks (none without Redis).
    tasks: cluster::Tasks,
    /// Members of dead instances to announce as left (only with Redis).
    departed: Option<mpsc::Receiver<Departed>>,
}

/// Redis for everything with `--redis`; otherwise SQLite and this process alone.
async fn open_backends(config: &Config, hub: &Hub) -> Result<Backends, RunError> {
    let Some(url) = &config.redis else {
        let store = SqliteStore::open(&config.db)?;
        store.set_max_rooms(config.max_rooms);
        let directory = store.directory()?;
        let inbox = store.inbox()?;
        return Ok(Backends {
            store: Arc::new(store),
            inbox: Arc::new(inbox),
            broker: Arc::new(MemoryBroker::new(Arc::new(hub.clone()))),
            presence: Arc::new(MemoryPresence),
            nicks: Arc::new(MemoryNicks::new(
                config.presence_grace,
                config.max_connections_per_user,
            )),
            directory: Arc::new(directory),
            streams: Arc::new(streams::MemoryStreams::default()),
            tasks: cluster::Tasks::default(),
            departed: None,
        });
    };
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| RunError::Redis {
        url: redact_url(url),
        source,
    };
    let keys = RedisKeys::new(&config.redis_prefix).map_err(|e| failed(Box::new(e)))?;
    let store = RedisStore::connect(url, keys.clone(), config.history_max)
        .await
        .map_err(|e| failed(Box::new(e)))?
        .limit(config.max_rooms, &config.retention);
    let client = ::redis::Client::open(url.as_str()).map_err(|e| failed(Box::new(e)))?;
    let conn = cluster::manager(&client)
        .await
        .map_err(|e| failed(Box::new(e)))?;
    let instance = Arc::new(Instance::new(keys));
    // Registered before the first member can join, so its entries count at once.
    instance
        .beat(&mut conn.clone())
        .await
        .map_err(|e| failed(Box::new(e)))?;
    let mut tasks = cluster::Tasks::default();
    let broker = RedisBroker::start(
        client.clone(),
        conn.clone(),
        &instance,
        Arc::new(hub.clone()),
        &mut tasks,
    );
    let presence = Arc::new(RedisPresence::new(
        Arc::clone(&instance),
        conn.clone(),
        hub.clone(),
    ));
    let nicks = Arc::new(RedisNicks::new(
        Arc::clone(&instance),
        conn.clone(),
        config.presence_grace,
        config.max_connections_per_user,
    ));
    tasks.spawn(Arc::clone(&nicks).obey_control(client, tasks.token()));
    let streams = Arc::new(streams::RedisStreams::new(
        conn.clone(),
        instance.keys().clone(),
    ));
    let (departures, departed) = mpsc::channel(DEPARTURES_QUEUE);
    let recorded: Vec<Arc<dyn Recorded>> = vec![presence.clone(), nicks.clone()];
    tasks.spawn(cluster::instance::keep(
        instance,
        conn,
        recorded,
        departures,
        tasks.token(),
    ));
    let directory = store.directory();
    let inbox = store.inbox();
    Ok(Backends {
        store: Arc::new(store),
        inbox: Arc::new(inbox),
        broker: Arc::new(broker),
        presence,
        nicks,
        directory: Arc::new(directory),
        streams,
        tasks,
        departed: Some(departed),
    })
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
