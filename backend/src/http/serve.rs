//! Serving connections: the accept loop and every limit that holds before a request
//! has been read. A peer gets a bounded share of the server before it has said
//! anything: open TCP connections in total (`--max-http-connections`) and per address
//! (`--max-http-connections-per-ip`), TLS handshakes per address, the time to send a
//! request's headers (`--header-timeout`, which also ends idle keep-alive connections)
//! and their size. Once a connection upgrades to a WebSocket it leaves these counts;
//! the WebSocket limits in `http::ws` take over.
//!
//! Each connection is a task of its own (so a stalled TLS handshake or a slow request
//! never holds up accepting others), tracked so shutdown can end them: on shutdown the
//! loop stops accepting, every connection is asked to finish its current request, and
//! whatever is still open [`SHUTDOWN_GRACE`] later is dropped. An unfinished request
//! therefore cannot keep the server from stopping.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service as _;

use crate::peers::{IpNet, Tally};

/// A peer that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes one address (or IPv6 network) may have under way at once. A browser
/// opens a handful of connections to a server; a flood of silent ones from one place
/// gets this many and no more, and other addresses' handshakes go on.
const HANDSHAKES_PER_IP: usize = 8;
/// The largest request head (request line and headers) read, in bytes; larger ones are
/// answered 431. Big enough for long cookies, far below hyper's default of ~400 KB,
/// which an unfinished request would hold while it dawdles.
const MAX_HEAD_BYTES: usize = 32 * 1024;
/// After shutdown begins, how long a connection may take to finish the request it is
/// serving before it is dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Written to a plain-HTTP connection refused for being over a limit, so a person or a
/// load balancer sees why rather than a bare reset.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: 21\r\n\r\ntoo many connections\n";

/// The limits in front of HTTP, from `Config`.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Open connections that are not (yet) WebSockets, in total.
    pub(crate) max_connections: usize,
    /// The same per client address; 0: no limit. Trusted proxies count only in total.
    pub(crate) max_per_ip: usize,
    /// Time to send a request's headers; also how long a keep-alive connection may idle.
    pub(crate) header_timeout: Duration,
    pub(crate) ipv6_prefix: u8,
    pub(crate) trusted_proxies: Vec<IpNet>,
}

/// Accepts connections on `listener` and serves `router` on each (over TLS when `tls`
/// is given) until `shutdown` is cancelled; returns once every connection has ended.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let total = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Tally::new(limits.max_per_ip, limits.ipv6_prefix);
    let handshakes = Tally::new(HANDSHAKES_PER_IP, limits.ipv6_prefix);
    let tls = tls.map(TlsAcceptor::from);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        // One `send` per write, not `writev`: std's send passes MSG_NOSIGNAL, writev
        // cannot, and a client gone before its response would raise SIGPIPE in a host
        // that does not ignore it (the fuzz harness). Responses are small or streamed in
        // small chunks, so flattening them costs a copy of little.
        .writev(false);
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let ip = peer.ip().to_canonical();
        let trusted = limits.trusted_proxies.iter().any(|net| net.contains(ip));
        let Ok(place) = Arc::clone(&total).try_acquire_owned() else {
            refuse(&tcp, tls.is_some(), peer, "open connections");
            continue;
        };
        let slot = if trusted {
            None
        } else {
            match per_ip.try_take(ip) {
                Some(slot) => Some(slot),
                None => {
                    refuse(
                        &tcp,
                        tls.is_some(),
                        peer,
                        "open connections from this address",
                    );
                    continue;
                }
            }
        };
        // Chat frames are small and latency matters: without TCP_NODELAY, Nagle's
        // algorithm and delayed ACKs hold a lone frame back for up to ~40 ms.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let stream = match &tls {
            None => Stream::Plain(tcp),
            Some(acceptor) if trusted => Stream::Handshake(tcp, acceptor.clone(), None),
            Some(acceptor) => match handshakes.try_take(ip) {
                Some(share) => Stream::Handshake(tcp, acceptor.clone(), Some(share)),
                None => {
                    tracing::debug!(%peer, "refused: too many TLS handshakes from this address");
                    continue;
                }
            },
        };
        let service = service(router.clone(), peer);
        let http = http.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            // Held for as long as the connection is HTTP; an upgraded WebSocket goes on
            // in a task of its own, counted by the WebSocket limits instead.
            let _held = (place, slot);
            let io = tokio::select! {
                io = stream.open(peer) => io,
                // A handshake still under way is not worth waiting for.
                () = shutdown.cancelled() => None,
            };
            let Some(io) = io else {
                return;
            };
            let conn = http
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            let finished = tokio::select! {
                finished = conn.as_mut() => finished,
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    match tokio::time::timeout(SHUTDOWN_GRACE, conn).await {
                        Ok(finished) => finished,
                        Err(_) => {
                            tracing::debug!(%peer, "connection dropped at shutdown");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = finished {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// The router as hyper calls it, with the peer's address for `ConnectInfo`.
fn service(
    router: Router,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    axum::http::Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    hyper::service::service_fn(move |mut request: axum::http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().call(request)
    })
}

/// A connection as HTTP is spoken on it: plain TCP or TLS. Named, because an upgraded
/// WebSocket takes it back from hyper by this type (`http::ws`).
pub(crate) type Connection = Either<TcpStream, tokio_rustls::server::TlsStream<TcpStream>>;

/// A connection before it speaks HTTP.
enum Stream {
    Plain(TcpStream),
    /// TLS still to be negotiated; the share (none for a trusted proxy) is held until
    /// the handshake ends.
    Handshake(TcpStream, TlsAcceptor, Option<crate::peers::TallySlot>),
}

impl Stream {
    /// The stream HTTP is spoken on, or `None` if the TLS handshake failed or stalled.
    async fn open(self, peer: SocketAddr) -> Option<Connection> {
        match self {
            Stream::Plain(tcp) => Some(Either::Left(tcp)),
            Stream::Handshake(tcp, acceptor, share) => {
                let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                drop(share);
                match result {
                    Ok(Ok(tls)) => Some(Either::Right(tls)),
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        None
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        None
                    }
                }
            }
        }
    }
}

/// Closes a connection that is over a limit, telling a plain-HTTP client why when its
/// socket takes the answer at once (it never waits on the peer).
fn refuse(tcp: &TcpStream, tls: bool, peer: SocketAddr, what: &str) {
    tracing::debug!(%peer, "refused: too many {what}");
    if !tls {
        let _ = tcp.try_write(REFUSAL);
    }
}

/// Per-connection accept errors are skipped; others (such as running out of file
/// descriptors) are logged and retried after a pause, so the loop does not spin.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
