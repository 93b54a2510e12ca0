//! TLS built in: loading `--tls-cert`/`--tls-key` into a rustls configuration. The
//! handshakes themselves, and their limits, are in `http::serve`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::Config;

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
