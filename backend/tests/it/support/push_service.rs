//! A real Web Push service on 127.0.0.1 for the tests: subscribers with their own P-256
//! keys and auth secrets, and `POST /push/<id>` checked as a strict push service would
//! (RFC 8030 headers, RFC 8292 VAPID signature and claims) and then DECRYPTED with the
//! subscriber's private key (RFC 8291), so a test sees the plaintext the browser would.
//!
//! Every push that verifies and decrypts is recorded as a [`ReceivedPush`] and answered
//! 201; one that does not is answered 400 and recorded in [`PushService::failures`], which
//! a test asserts empty. A subscriber can be told to answer 410 from now on
//! ([`Subscriber::answer_gone`]) or 503 a number of times ([`Subscriber::fail_next`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The longest a VAPID token may live (RFC 8292 section 2).
const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 60 * 60;

/// One push that verified and decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPush {
    /// Whose endpoint it was posted to ([`Subscriber::id`]).
    pub subscriber_id: u64,
    /// The `k` of its VAPID header: the sender's public key, base64url.
    pub vapid_public_key: String,
    /// The decrypted payload.
    pub payload: Vec<u8>,
    /// Its `TTL` header.
    pub ttl: u32,
    /// Its `Urgency` header, if any.
    pub urgency: Option<String>,
    /// Its `Topic` header, if any.
    pub topic: Option<String>,
}

/// The push service. Stops when dropped.
pub struct PushService {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// A browser's side of one subscription: the keys only it holds.
pub struct Subscriber {
    id: u64,
    endpoint: String,
    p256dh: String,
    auth: String,
    shared: Arc<Shared>,
}

struct Shared {
    /// `http://127.0.0.1:PORT`: the VAPID `aud` every push must carry.
    origin: String,
    /// Everything the handler and the test share. A std Mutex: every critical section is
    /// a few map operations, never across an `.await`.
    state: Mutex<ServiceState>,
    /// Woken (`notify_waiters`) on every recorded push, for `next_push`.
    arrived: Notify,
}

#[derive(Default)]
struct ServiceState {
    next_id: u64,
    subscribers: HashMap<u64, SubscriberState>,
    received: Vec<ReceivedPush>,
    failures: Vec<String>,
    /// How many of `received` `next_push` has handed out.
    taken: usize,
}

struct SubscriberState {
    secret: p256::SecretKey,
    auth: [u8; 16],
    /// Answer 410 to every push from now on.
    gone: bool,
    /// Answer 503 to this many more pushes.
    fail_next: u32,
    /// Every POST to this endpoint, answered however.
    requests: u32,
}

impl PushService {
    /// Starts the service on 127.0.0.1, on a free port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            origin: format!("http://{addr}"),
            state: Mutex::new(ServiceState::default()),
            arrived: Notify::new(),
        });
        let app = Router::new()
            .route("/push/{id}", post(receive))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, shared, task }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the `aud` it requires.
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    /// A new subscriber with a fresh P-256 key pair and 16-byte auth secret.
    pub fn subscriber(&self) -> Subscriber {
        let secret = random_secret();
        let auth: [u8; 16] = rand::random();
        let id = {
            let mut state = self.shared.state.lock().unwrap();
            state.next_id += 1;
            let id = state.next_id;
            state.subscribers.insert(
                id,
                SubscriberState {
                    secret: secret.clone(),
                    auth,
                    gone: false,
                    fail_next: 0,
                    requests: 0,
                },
            );
            id
        };
        Subscriber {
            id,
            endpoint: format!("{}/push/{id}", self.shared.origin),
            p256dh: URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes()),
            auth: URL_SAFE_NO_PAD.encode(auth),
            shared: Arc::clone(&self.shared),
        }
    }

    /// Every push received so far, in arrival order.
    pub fn received(&self) -> Vec<ReceivedPush> {
        self.shared.state.lock().unwrap().received.clone()
    }

    /// How many pushes were received.
    pub fn count(&self) -> usize {
        self.shared.state.lock().unwrap().received.len()
    }

    /// Why each refused push was refused (bad headers, VAPID or encryption).
    pub fn failures(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().failures.clone()
    }

    /// The next push this method has not returned yet, waiting up to `timeout`.
    pub async fn next_push(&self, timeout: Duration) -> Option<ReceivedPush> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Created before looking, so a push recorded in between still wakes it.
            let arrived = self.shared.arrived.notified();
            {
                let mut state = self.shared.state.lock().unwrap();
                if let Some(push) = state.received.get(state.taken).cloned() {
                    state.taken += 1;
                    return Some(push);
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }
}

impl Drop for PushService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    /// Its id, as in [`ReceivedPush::subscriber_id`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// `http://127.0.0.1:PORT/push/<id>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Its public key, uncompressed, base64url.
    pub fn p256dh(&self) -> &str {
        &self.p256dh
    }

    /// Its auth secret, base64url.
    pub fn auth(&self) -> &str {
        &self.auth
    }

    /// What a browser's `PushSubscription.toJSON()` gives.
    pub fn subscription_json(&self) -> Value {
        json!({
            "endpoint": self.endpoint,
            "expirationTime": null,
            "keys": { "p256dh": self.p256dh, "auth": self.auth },
        })
    }

    /// Answer 410 Gone to every push from now on, as for an unsubscribed browser.
    pub fn answer_gone(&self) {
        self.with(|s| s.gone = true);
    }

    /// Answer 503 to the next `n` pushes (before checking them), then accept again.
    pub fn fail_next(&self, n: u32) {
        self.with(|s| s.fail_next = n);
    }

    /// Every POST to this endpoint so far, whatever the answer: to count retries.
    pub fn requests(&self) -> u32 {
        self.with(|s| s.requests)
    }

    /// Pushes received for this subscriber.
    pub fn received(&self) -> Vec<ReceivedPush> {
        let state = self.shared.state.lock().unwrap();
        state
            .received
            .iter()
            .filter(|p| p.subscriber_id == self.id)
            .cloned()
            .collect()
    }

    fn with<T>(&self, f: impl FnOnce(&mut SubscriberState) -> T) -> T {
        let mut state = self.shared.state.lock().unwrap();
        f(state
            .subscribers
            .get_mut(&self.id)
            .expect("subscriber exists"))
    }
}

/// `POST /push/<id>`.
async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    // Take what the checks need and decide the scripted answers under the lock; the
    // checks themselves run without it.
    let (secret, auth) = {
        let mut state = shared.state.lock().unwrap();
        let Some(sub) = state.subscribers.get_mut(&id) else {
            return StatusCode::NOT_FOUND;
        };
        sub.requests += 1;
        if sub.gone {
            return StatusCode::GONE;
        }
        if sub.fail_next > 0 {
            sub.fail_next -= 1;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        (sub.secret.clone(), sub.auth)
    };
    match check(&shared.origin, &headers, &body, &secret, &auth) {
        Ok(mut push) => {
            push.subscriber_id = id;
            shared.state.lock().unwrap().received.push(push);
            shared.arrived.notify_waiters();
            StatusCode::CREATED
        }
        Err(why) => {
            shared
                .state
                .lock()
                .unwrap()
                .failures
                .push(format!("push to {id}: {why}"));
            StatusCode::BAD_REQUEST
        }
    }
}

/// Checks one push as a push service would, and decrypts it.
fn check(
    origin: &str,
    headers: &HeaderMap,
    body: &[u8],
    secret: &p256::SecretKey,
    auth: &[u8; 16],
) -> Result<ReceivedPush, String> {
    let header = |name: &str| -> Result<Option<String>, String> {
        headers
            .get(name)
            .map(|v| v.to_str().map(str::to_owned))
            .transpose()
            .map_err(|_| format!("{name} is not text"))
    };
    let encoding = header("content-encoding")?;
    if encoding.as_deref() != Some("aes128gcm") {
        return Err(format!("Content-Encoding is {encoding:?}, not aes128gcm"));
    }
    let ttl = header("ttl")?
        .ok_or("no TTL header")?
        .parse::<u32>()
        .map_err(|_| "TTL is not a number")?;
    let authorization = header("authorization")?.ok_or("no Authorization header")?;
    let vapid_public_key = verify_vapid(origin, &authorization)?;
    let payload = web_push_native::decrypt(
        body.to_vec(),
        secret,
        &web_push_native::Auth::clone_from_slice(auth),
    )
    .map_err(|e| format!("does not decrypt: {e}"))?;
    Ok(ReceivedPush {
        subscriber_id: 0,
        vapid_public_key,
        payload,
        ttl,
        urgency: header("urgency")?,
        topic: header("topic")?,
    })
}

/// Checks `vapid t=<JWT>, k=<key>` (RFC 8292 section 3): the JWT is ES256-signed by `k`,
/// its `aud` is this service's origin, its `exp` is in the future and at most 24 hours
/// away, and it has a `sub`. Returns `k`.
fn verify_vapid(origin: &str, authorization: &str) -> Result<String, String> {
    let (scheme, params) = authorization
        .split_once(' ')
        .ok_or("Authorization has no parameters")?;
    if !scheme.eq_ignore_ascii_case("vapid") {
        return Err(format!("Authorization scheme is {scheme}, not vapid"));
    }
    let (mut token, mut key) = (None, None);
    for param in params.split(',') {
        match param.trim().split_once('=') {
            Some(("t", v)) => token = Some(v.trim()),
            Some(("k", v)) => key = Some(v.trim()),
            _ => return Err(format!("unexpected VAPID parameter {param:?}")),
        }
    }
    let (token, key) = (token.ok_or("no t=")?, key.ok_or("no k=")?);
    let point = URL_SAFE_NO_PAD
        .decode(key.trim_end_matches('='))
        .map_err(|_| "k is not base64url")?;
    if point.len() != 65 || point[0] != 4 {
        return Err("k is not an uncompressed P-256 point".to_owned());
    }
    let decoding = DecodingKey::from_ec_components(
        &URL_SAFE_NO_PAD.encode(&point[1..33]),
        &URL_SAFE_NO_PAD.encode(&point[33..]),
    )
    .map_err(|e| format!("k is not a key: {e}"))?;

    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[origin]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    // A push service allows no slack on expiry here: the sender's clock is ours.
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Value>(token, &decoding, &validation)
        .map_err(|e| format!("VAPID JWT refused: {e}"))?
        .claims;
    let exp = claims["exp"].as_u64().ok_or("exp is not a number")?;
    if exp > now_secs() + MAX_TOKEN_LIFETIME_SECS {
        return Err(format!("exp is more than 24 h away ({exp})"));
    }
    let sub = claims["sub"].as_str().unwrap_or_default();
    if !(sub.starts_with("mailto:") || sub.starts_with("https://")) {
        return Err(format!("sub {sub:?} is not a mailto: or https: URL"));
    }
    Ok(key.to_owned())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fresh P-256 private key (p256 0.13 speaks rand_core 0.6; this crate uses rand 0.9).
fn random_secret() -> p256::SecretKey {
    loop {
        if let Ok(secret) = p256::SecretKey::from_bytes(&rand::random::<[u8; 32]>().into()) {
            return secret;
        }
    }
}

/// The service checked against an independent sender: `web-push-native` encryption and a
/// VAPID JWT from jsonwebtoken, posted with hyper-util.
mod tests {
    use super::*;
    use axum::body::Body;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use jsonwebtoken::{EncodingKey, Header};
    use p256::pkcs8::EncodePrivateKey;

    const WAIT: Duration = Duration::from_secs(5);

    /// A VAPID header for `aud`, signed by `signer` but naming `k` = `claimed`'s key.
    fn vapid(signer: &p256::SecretKey, claimed: &p256::SecretKey, aud: &str, exp: u64) -> String {
        let der = signer.to_pkcs8_der().unwrap();
        let claims = json!({ "aud": aud, "exp": exp, "sub": "mailto:tests@huddle.example" });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            &claims,
            &EncodingKey::from_ec_der(der.as_bytes()),
        )
        .unwrap();
        let k = URL_SAFE_NO_PAD.encode(claimed.public_key().to_encoded_point(false).as_bytes());
        format!("vapid t={token}, k={k}")
    }

    /// Encrypts `payload` for `sub` and posts it with `authorization`; the status.
    async fn post(sub: &Subscriber, payload: &[u8], authorization: &str) -> u16 {
        let p256dh = URL_SAFE_NO_PAD.decode(sub.p256dh()).unwrap();
        let auth = URL_SAFE_NO_PAD.decode(sub.auth()).unwrap();
        let body = web_push_native::encrypt(
            payload.to_vec(),
            &p256::PublicKey::from_sec1_bytes(&p256dh).unwrap(),
            &web_push_native::Auth::clone_from_slice(&auth),
        )
        .unwrap();
        let request = axum::http::Request::post(sub.endpoint())
            .header("content-encoding", "aes128gcm")
            .header("content-type", "application/octet-stream")
            .header("ttl", "60")
            .header("urgency", "high")
            .header("authorization", authorization)
            .body(Body::from(body))
            .unwrap();
        let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
        client.request(request).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn decrypts_a_signed_push() {
        let service = PushService::start().await;
        let sub = service.subscriber();
        let key = random_secret();
        let header = vapid(&key, &key, service.origin(), now_secs() + 3600);
        assert_eq!(post(&sub, b"hello, browser", &header).await, 201);
        assert_eq!(service.failures(), Vec::<String>::new());

        let push = service.next_push(WAIT).await.unwrap();
        assert_eq!(push.subscriber_id, sub.id());
        assert_eq!(push.payload, b"hello, browser");
        assert_eq!(
            (push.ttl, push.urgency.as_deref(), push.topic),
            (60, Some("high"), None)
        );
        assert_eq!(
            push.vapid_public_key,
            URL_SAFE_NO_PAD.encode(key.public_key().to_encoded_point(false).as_bytes())
        );
        assert_eq!(service.count(), 1);
        assert!(service.next_push(Duration::from_millis(50)).await.is_none());

        let json = sub.subscription_json();
        assert_eq!(
            json["endpoint"],
            format!("{}/push/{}", service.origin(), sub.id())
        );
        assert_eq!(json["keys"]["auth"], sub.auth());
    }

    #[tokio::test]
    async fn refuses_a_bad_vapid_signature_or_claims() {
        let service = PushService::start().await;
        let sub = service.subscriber();
        let (key, other) = (random_secret(), random_secret());
        let later = now_secs() + 3600;
        let bad = [
            vapid(&other, &key, service.origin(), later),
            vapid(&key, &key, "http://127.0.0.1:1", later),
            vapid(&key, &key, service.origin(), now_secs() - 10),
            vapid(&key, &key, service.origin(), now_secs() + 25 * 3600),
            "WebPush abc".to_owned(),
        ];
        for header in &bad {
            assert_eq!(post(&sub, b"x", header).await, 400, "{header}");
        }
        assert_eq!(
            service.failures().len(),
            bad.len(),
            "{:?}",
            service.failures()
        );
        assert_eq!(service.count(), 0);
    }

    #[tokio::test]
    async fn refuses_what_it_cannot_decrypt() {
        let service = PushService::start().await;
        let (alice, bob) = (service.subscriber(), service.subscriber());
        let key = random_secret();
        let header = vapid(&key, &key, service.origin(), now_secs() + 3600);
        // Encrypted for Bob, posted to Alice's endpoint.
        let p256dh = URL_SAFE_NO_PAD.decode(bob.p256dh()).unwrap();
        let auth = URL_SAFE_NO_PAD.decode(bob.auth()).unwrap();
        let body = web_push_native::encrypt(
            b"for bob".to_vec(),
            &p256::PublicKey::from_sec1_bytes(&p256dh).unwrap(),
            &web_push_native::Auth::clone_from_slice(&auth),
        )
        .unwrap();
        let request = axum::http::Request::post(alice.endpoint())
            .header("content-encoding", "aes128gcm")
            .header("ttl", "60")
            .header("authorization", &header)
            .body(Body::from(body))
            .unwrap();
        let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
        assert_eq!(client.request(request).await.unwrap().status(), 400);
        assert!(
            service.failures()[0].contains("decrypt"),
            "{:?}",
            service.failures()
        );
    }

    #[tokio::test]
    async fn answers_as_scripted() {
        let service = PushService::start().await;
        let sub = service.subscriber();
        let key = random_secret();
        let header = vapid(&key, &key, service.origin(), now_secs() + 3600);
        sub.fail_next(2);
        assert_eq!(post(&sub, b"1", &header).await, 503);
        assert_eq!(post(&sub, b"2", &header).await, 503);
        assert_eq!(post(&sub, b"3", &header).await, 201);
        sub.answer_gone();
        assert_eq!(post(&sub, b"4", &header).await, 410);
        assert_eq!(sub.requests(), 4);
        assert_eq!(sub.received().len(), 1);
        assert_eq!(service.received()[0].payload, b"3");
        assert!(service.failures().is_empty());
    }
}
