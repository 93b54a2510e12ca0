//! TLS built in: with `--tls-cert`/`--tls-key` the server speaks HTTPS and wss:// (here
//! with a self-signed certificate made by the test), and refuses TLS settings that
//! cannot work with a clear error and exit code 2.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::support::{Client, TestServer, WAIT};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::Connector;

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM files.
struct SelfSigned {
    _dir: tempfile::TempDir,
    cert_path: PathBuf,
    key_path: PathBuf,
    der: CertificateDer<'static>,
}

fn self_signed() -> SelfSigned {
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    SelfSigned {
        _dir: dir,
        cert_path,
        key_path,
        der: certified.cert.der().clone(),
    }
}

/// A client configuration that trusts exactly `cert`.
fn trusting(cert: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

async fn tls_server(cert: &SelfSigned) -> TestServer {
    let (cert_path, key_path) = (cert.cert_path.clone(), cert.key_path.clone());
    TestServer::with(move |c| {
        c.tls_cert = Some(cert_path);
        c.tls_key = Some(key_path);
    })
    .await
}

async fn wss_client(server: &TestServer, cert: &SelfSigned) -> Client {
    let url = format!("wss://127.0.0.1:{}/ws", server.addr.port());
    let connector = Connector::Rustls(trusting(&cert.der));
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(connector));
    let (ws, _) = tokio::time::timeout(WAIT, connecting)
        .await
        .expect("wss handshake timed out")
        .expect("wss connect");
    Client::from_stream(ws)
}

#[tokio::test]
async fn chat_over_wss_with_a_self_signed_certificate() {
    let cert = self_signed();
    let mut server = tls_server(&cert).await;
    let mut alice = wss_client(&server, &cert).await;
    assert_eq!(alice.hello("alice").await["type"], "welcome");
    assert_eq!(alice.join("lobby").await["type"], "joined");
    let mut bob = wss_client(&server, &cert).await;
    assert_eq!(bob.hello("bob").await["type"], "welcome");
    assert_eq!(bob.join("lobby").await["type"], "joined");
    alice.next_of("presence").await;

    let offset = alice.say_acked("lobby", "over TLS").await;
    assert_eq!(offset, 1);
    let m = bob.next_of("message").await;
    assert_eq!(
        (m["nick"].as_str(), m["text"].as_str(), m["offset"].as_u64()),
        (Some("alice"), Some("over TLS"), Some(1))
    );

    // Shutdown still closes TLS sockets with 1001 and returns.
    server.stop().await.unwrap();
    assert_eq!(bob.expect_close().await, Some(1001));
}

#[tokio::test]
async fn https_serves_the_web_app_and_plain_http_gets_nothing() {
    let cert = self_signed();
    let server = tls_server(&cert).await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(trusting(&cert.der));
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, tls.read_to_end(&mut response))
        .await
        .expect("response timed out")
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // A plain-HTTP request to the TLS port is not answered as HTTP.
    let mut plain = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut bytes)).await;
    assert!(!bytes.starts_with(b"HTTP/"), "plain HTTP was served");
}

#[tokio::test]
async fn a_stalled_handshake_does_not_block_others() {
    let cert = self_signed();
    let server = tls_server(&cert).await;
    // Connects and says nothing: its handshake never finishes.
    let _stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut client = wss_client(&server, &cert).await;
    assert_eq!(client.hello("alice").await["type"], "welcome");
}

#[tokio::test]
async fn a_handshake_flood_from_one_address_gets_only_its_share() {
    let cert = self_signed();
    let (cert_path, key_path) = (cert.cert_path.clone(), cert.key_path.clone());
    let server = TestServer::with(move |c| {
        c.tls_cert = Some(cert_path);
        c.tls_key = Some(key_path);
        // Each loopback address its own client, and no per-address connection cap:
        // only the handshake share stands between the flood and everyone else.
        c.trusted_proxies = vec![];
        c.max_http_connections_per_ip = 0;
    })
    .await;
    // More silent connections than the old global cap of 1,024 handshakes.
    let mut flood = Vec::new();
    for _ in 0..1100 {
        flood.push(crate::http_limits::connect_from("127.0.0.2", server.addr).await);
    }
    let started = std::time::Instant::now();
    let mut client = wss_client(&server, &cert).await;
    assert_eq!(client.hello("alice").await["type"], "welcome");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // All but the share were closed at once rather than held for the handshake timeout.
    let mut open = 0;
    for s in &mut flood {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(std::time::Duration::from_millis(20), s.read(&mut byte));
        if read.await.is_err() {
            open += 1;
        }
    }
    assert!(open <= 8, "{open} silent handshakes still held");
}

#[tokio::test]
async fn a_stalled_handshake_does_not_hold_shutdown() {
    let cert = self_signed();
    let mut server = tls_server(&cert).await;
    let _stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // Let the server take it into a handshake.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    server.stop().await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "shutdown waited {:?} for a handshake",
        started.elapsed()
    );
}

/// Runs the real binary with `args` and returns its exit code and stderr.
async fn huddle(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_huddle"))
        .arg("--addr")
        .arg("127.0.0.1:0")
        .arg("--db")
        .arg(dir.join("huddle.db"))
        .args(args)
        .env_remove("HUDDLE_TLS_CERT")
        .env_remove("HUDDLE_TLS_KEY")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, out)
        .await
        .expect("huddle did not exit")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn tls_settings_that_cannot_work_stop_the_server_with_exit_code_2() {
    let cert = self_signed();
    let dir = tempfile::tempdir().unwrap();
    let cert_arg = cert.cert_path.to_str().unwrap();
    let key_arg = cert.key_path.to_str().unwrap();

    let (code, err) = huddle(dir.path(), &["--tls-cert", cert_arg]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--tls-cert and --tls-key go together"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let missing = dir.path().join("missing.pem");
    let (code, err) = huddle(
        dir.path(),
        &[
            "--tls-cert",
            missing.to_str().unwrap(),
            "--tls-key",
            key_arg,
        ],
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("missing.pem") && err.contains("--tls-cert"),
        "{err}"
    );

    // The files swapped: the key file holds no certificate.
    let (code, err) = huddle(dir.path(), &["--tls-cert", key_arg, "--tls-key", cert_arg]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no valid PEM certificate"), "{err}");

    // A key that does not belong to the certificate.
    let other = self_signed();
    let other_key = other.key_path.to_str().unwrap();
    let (code, err) = huddle(
        dir.path(),
        &["--tls-cert", cert_arg, "--tls-key", other_key],
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot be used together"), "{err}");
    assert!(
        !dir.path().join("huddle.db").exists(),
        "nothing started before the TLS check"
    );
}
