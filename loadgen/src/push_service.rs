//! A local Web Push service for `loadgen pushes`: subscribers with their own P-256 keys
//! and 16-byte auth secrets (what a browser holds), and `POST /push/<id>` on 127.0.0.1
//! answered `201` once the push decrypts with that subscriber's private key (RFC 8291,
//! `aes128gcm`, by `web-push-native`, as the server's own test service does). Every push
//! is decrypted, so the plaintext each one carried is checked, not assumed.
//!
//! Checked besides the encryption: `Content-Encoding: aes128gcm`, a `TTL`, and an
//! `Authorization: vapid t=…, k=…` header (its form; the signature itself is the server's
//! tests' business, `backend/tests/it/support/push_service.rs`). A push that fails a
//! check is answered `400` and counted; an unknown id gets `404`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use tokio::task::JoinHandle;

/// What the service calls for each push that decrypted: the subscriber's index, the
/// plaintext, and when the request arrived.
pub(crate) type OnPush = Arc<dyn Fn(usize, &[u8], Instant) + Send + Sync>;

/// The service; stops when dropped.
pub(crate) struct PushService {
    origin: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// A browser's subscription: what it sends in `push_subscribe`.
pub(crate) struct Subscription {
    pub(crate) endpoint: String,
    pub(crate) p256dh: String,
    pub(crate) auth: String,
}

struct Shared {
    /// Subscriber `i`'s private key and auth secret; fixed before the service starts,
    /// so the handler reads it without a lock.
    keys: Vec<(p256::SecretKey, [u8; 16])>,
    on_push: OnPush,
    /// Pushes refused (a failed check).
    refused: AtomicU64,
    /// Pushes that decrypted.
    accepted: AtomicU64,
}

impl PushService {
    /// Starts on 127.0.0.1 (a free port) with `subscribers` fresh key pairs.
    pub(crate) async fn start(subscribers: usize, on_push: OnPush) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let keys = (0..subscribers)
            .map(|_| (random_secret(), rand::random::<[u8; 16]>()))
            .collect();
        let shared = Arc::new(Shared {
            keys,
            on_push,
            refused: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/push/{id}", post(receive))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("loadgen: push service stopped: {e}");
            }
        });
        Ok(PushService {
            origin: format!("http://{addr}"),
            shared,
            task,
        })
    }

    /// Subscriber `i`'s subscription (endpoint and public keys, base64url).
    pub(crate) fn subscription(&self, i: usize) -> Subscription {
        let (secret, auth) = &self.shared.keys[i];
        Subscription {
            endpoint: format!("{}/push/{i}", self.origin),
            p256dh: URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes()),
            auth: URL_SAFE_NO_PAD.encode(auth),
        }
    }

    /// Pushes that failed a check.
    pub(crate) fn refused(&self) -> u64 {
        self.shared.refused.load(Relaxed)
    }

    /// Pushes that decrypted.
    pub(crate) fn accepted(&self) -> u64 {
        self.shared.accepted.load(Relaxed)
    }
}

impl Drop for PushService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `POST /push/<id>`.
async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    let Some((secret, auth)) = shared.keys.get(id) else {
        return StatusCode::NOT_FOUND;
    };
    match check(&headers, &body, secret, auth) {
        Ok(plain) => {
            shared.accepted.fetch_add(1, Relaxed);
            (shared.on_push)(id, &plain, at);
            StatusCode::CREATED
        }
        Err(why) => {
            if shared.refused.fetch_add(1, Relaxed) < 5 {
                eprintln!("loadgen: push to {id} refused: {why}");
            }
            StatusCode::BAD_REQUEST
        }
    }
}

/// Checks the headers a push service requires, and decrypts the body.
fn check(
    headers: &HeaderMap,
    body: &[u8],
    secret: &p256::SecretKey,
    auth: &[u8; 16],
) -> Result<Vec<u8>, String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("content-encoding") != Some("aes128gcm") {
        return Err("Content-Encoding is not aes128gcm".to_owned());
    }
    if header("ttl").and_then(|t| t.parse::<u32>().ok()).is_none() {
        return Err("no TTL".to_owned());
    }
    let vapid = header("authorization").unwrap_or_default();
    if !(vapid.starts_with("vapid ") && vapid.contains("t=") && vapid.contains("k=")) {
        return Err("no VAPID authorization".to_owned());
    }
    web_push_native::decrypt(
        body.to_vec(),
        secret,
        &web_push_native::Auth::clone_from_slice(auth),
    )
    .map_err(|e| format!("does not decrypt: {e}"))
}

/// A fresh P-256 private key (p256 0.13 speaks rand_core 0.6, this crate rand 0.9).
fn random_secret() -> p256::SecretKey {
    loop {
        if let Ok(secret) = p256::SecretKey::from_bytes(&rand::random::<[u8; 32]>().into()) {
            return secret;
        }
    }
}
