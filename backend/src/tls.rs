//! TLS built in: loading `--tls-cert`/`--tls-key` into a rustls configuration, and the
//! listener `run` serves on, which speaks either plain TCP or TLS.
//!
//! TLS handshakes happen in tasks owned by the listener, not in `accept`: axum accepts
//! one connection at a time, so a peer that stalls its handshake must not stop others
//! from being accepted. The listener is dropped when graceful shutdown stops accepting,
//! and dropping it aborts the accept loop and every handshake still under way, so TLS
//! adds nothing that shutdown has to wait for.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tokio_util::task::AbortOnDropHandle;

use crate::config::Config;

/// A peer that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most TLS handshakes under way at once; beyond it new connections wait in the
/// kernel's accept backlog, so a handshake flood costs bounded memory.
const MAX_HANDSHAKES: usize = 1024;
/// Finished handshakes waiting for axum to take them.
const READY_QUEUE: usize = 64;

/// Why the TLS configuration could not be loaded. Every message names the flag to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--tls-cert and --tls-key go together: give both PEM files for HTTPS and wss://, or neither for plain HTTP")]
    Incomplete,
    #[error("cannot read the {what} file {path}: {source}; check the path given with --{flag}")]
    Read {
        what: &'static str,
        flag: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path} holds no valid PEM certificate ({reason}); --tls-cert needs a PEM file starting with -----BEGIN CERTIFICATE-----")]
    Certificate { path: PathBuf, reason: String },
    #[error("{path} holds no valid PEM private key ({reason}); --tls-key needs a PKCS#8, PKCS#1 or SEC1 PEM key")]
    Key { path: PathBuf, reason: String },
    #[error("the certificate in --tls-cert and the key in --tls-key cannot be used together: {0}")]
    Mismatch(#[source] rustls::Error),
}

/// The TLS configuration `config` asks for: `None` for plain HTTP.
pub(crate) fn from_config(config: &Config) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    match (&config.tls_cert, &config.tls_key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => load(cert, key).map(Some),
        _ => Err(TlsError::Incomplete),
    }
}

/// Reads a PEM certificate chain and private key into a server configuration.
pub(crate) fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_pem = read(cert_path, "certificate", "tls-cert")?;
    let key_pem = read(key_path, "private key", "tls-key")?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate {
            path: cert_path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certificate {
            path: cert_path.to_owned(),
            reason: "no CERTIFICATE section".to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Key {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    // The provider is named explicitly rather than taken from the process default, so
    // another crate enabling a second provider cannot make this ambiguous.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Mismatch)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Mismatch)?;
    // The server speaks HTTP/1.1 only (which is also what WebSocket upgrades use).
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

fn read(path: &Path, what: &'static str, flag: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        flag,
        path: path.to_owned(),
        source,
    })
}

/// A connection accepted by [`Incoming`]: plain TCP or TLS over TCP.
pub(crate) type Stream = Either<TcpStream, TlsStream<TcpStream>>;

/// The TCP socket under a [`Stream`], for socket options such as `TCP_NODELAY`.
pub(crate) fn tcp(stream: &Stream) -> &TcpStream {
    match stream {
        Either::Left(tcp) => tcp,
        Either::Right(tls) => tls.get_ref().0,
    }
}

/// What `run` serves on: the bound listener, with TLS when it is configured.
pub(crate) struct Incoming(Inner);

enum Inner {
    Plain(TcpListener),
    Tls {
        local_addr: SocketAddr,
        /// Connections whose handshake finished.
        ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
        /// The accept loop; dropping the listener aborts it and its handshakes.
        _accept: AbortOnDropHandle<()>,
    },
}

impl Incoming {
    /// Serves plain TCP on `listener`, or TLS with `tls`.
    ///
    /// Must be called inside a tokio runtime when `tls` is given (it spawns the accept
    /// loop).
    pub(crate) fn new(listener: TcpListener, tls: Option<Arc<ServerConfig>>) -> io::Result<Self> {
        let Some(tls) = tls else {
            return Ok(Incoming(Inner::Plain(listener)));
        };
        let local_addr = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let accept = tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls), tx));
        Ok(Incoming(Inner::Tls {
            local_addr,
            ready,
            _accept: AbortOnDropHandle::new(accept),
        }))
    }

    /// Whether connections are served over TLS.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.0, Inner::Tls { .. })
    }
}

impl Listener for Incoming {
    type Io = Stream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Stream, SocketAddr) {
        match &mut self.0 {
            Inner::Plain(listener) => {
                let (tcp, peer) = Listener::accept(listener).await;
                (Either::Left(tcp), peer)
            }
            Inner::Tls { ready, .. } => match ready.recv().await {
                Some((tls, peer)) => (Either::Right(tls), peer),
                // The accept loop only ends when this listener is dropped; should it
                // end anyway, accept nothing more rather than spin.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.0 {
            Inner::Plain(listener) => listener.local_addr(),
            Inner::Tls { local_addr, .. } => Ok(*local_addr),
        }
    }
}

/// Accepts TCP connections and runs their handshakes concurrently (at most
/// [`MAX_HANDSHAKES`], each within [`HANDSHAKE_TIMEOUT`]), passing finished ones on.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept(), if handshakes.len() < MAX_HANDSHAKES => {
                match accepted {
                    Ok((tcp, peer)) => {
                        let acceptor = acceptor.clone();
                        handshakes.spawn(async move {
                            let result =
                                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                            (result, peer)
                        });
                    }
                    Err(e) => accept_error(e).await,
                }
            }
            Some(done) = handshakes.join_next(), if !handshakes.is_empty() => {
                let Ok((result, peer)) = done else { continue };
                match result {
                    Ok(Ok(tls)) => {
                        if ready.send((tls, peer)).await.is_err() {
                            return;
                        }
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
            () = ready.closed() => return,
        }
    }
}

/// What axum does on an accept error: per-connection errors are skipped; others (such
/// as running out of file descriptors) are logged and retried after a pause, so the
/// loop does not spin.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_name_the_flag() {
        let err = load(Path::new("/nonexistent/cert.pem"), Path::new("/x")).unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::Read {
                    flag: "tls-cert",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("--tls-cert"), "{err}");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let err = load(&cert, &key).unwrap_err();
        assert!(matches!(err, TlsError::Certificate { .. }), "{err}");
    }

    #[test]
    fn one_flag_alone_is_refused() {
        let mut config = Config::with_db("x.db");
        config.tls_cert = Some("cert.pem".into());
        assert!(matches!(from_config(&config), Err(TlsError::Incomplete)));
        config.tls_cert = None;
        assert!(matches!(from_config(&config), Ok(None)));
    }
}
