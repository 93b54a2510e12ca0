//! Sending one push (RFC 8030 section 5): encrypt, sign, POST to the subscription's
//! endpoint, and read the answer as what the caller should do next ([`Outcome`]).
//!
//! Bounded on purpose, since one notification can fan out to many subscriptions and push
//! services can be slow: a semaphore caps requests in flight, each attempt has a
//! timeout, and only transient failures (network, timeout, 5xx, 429) are retried, a few
//! times, with exponential backoff or the service's `Retry-After`, capped.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

use super::encrypt::encrypt;
use super::{check_endpoint, endpoint_host, PushError, Subscription, Vapid};
use crate::logsafe::Chain;

/// How urgently the push service should wake the device (RFC 8030 section 5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Urgency {
    /// Only when on power and Wi-Fi.
    VeryLow,
    /// Only when on power or Wi-Fi.
    Low,
    /// When not on low battery (the default).
    Normal,
    /// Always, even on low battery: direct messages and mentions.
    High,
}

impl Urgency {
    /// The `Urgency` header value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

/// What came of sending one push, and so what the caller does with the subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The push service accepted it (2xx, normally 201).
    Sent,
    /// 404 or 410: the subscription expired or was withdrawn; the caller deletes it.
    Gone,
    /// Any other non-success answer that retrying would not change (400, 401, 403, 413,
    /// an unexpected 3xx…): the caller does not retry; repeated ones point at our
    /// request or our VAPID key, not at the subscriber.
    Rejected(u16),
    /// Network error, timeout, 5xx or 429 on every attempt; says which, for the logs.
    Failed(String),
}

/// The limits of a [`PushSender`].
#[derive(Debug, Clone)]
pub(crate) struct SenderLimits {
    /// Requests in flight at once, across all sends. Default 16.
    pub(crate) max_concurrent: usize,
    /// How long one attempt may take, connecting to reading the status. Default 10 s.
    pub(crate) attempt_timeout: Duration,
    /// Attempts per push, the first included (at least 1). Default 3.
    pub(crate) max_attempts: u32,
    /// The wait before the second attempt, doubled for each later one. Default 1 s.
    pub(crate) first_backoff: Duration,
    /// The longest wait between attempts, a service's `Retry-After` included, so one
    /// push cannot hold its caller for long. Default 30 s.
    pub(crate) max_backoff: Duration,
}

impl Default for SenderLimits {
    fn default() -> Self {
        Self {
            max_concurrent: 16,
            attempt_timeout: Duration::from_secs(10),
            max_attempts: 3,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Sends encrypted, VAPID-signed pushes. Share one (`Arc`) across the server: the
/// semaphore and the connection pool are only bounded if there is one of each.
pub(crate) struct PushSender {
    /// HTTPS for real push services, plain HTTP for loopback (`check_subscription`
    /// refuses http anywhere else); connections are pooled per host.
    client: Client<HttpsConnector<HttpConnector>, Body>,
    /// Signs every request.
    vapid: Arc<Vapid>,
    /// The VAPID `sub`: a `mailto:` or https URL push services may contact.
    subject: String,
    /// One permit per request in flight.
    permits: Semaphore,
    /// Timeouts, attempts and backoff.
    limits: SenderLimits,
}

/// The most of a push service's answer body read (and discarded) so the connection can
/// be reused; a longer body just closes it.
const MAX_ANSWER_BODY: usize = 16 * 1024;

impl PushSender {
    /// A sender signing with `vapid` as `subject`, within `limits`.
    pub(crate) fn new(vapid: Arc<Vapid>, subject: String, limits: SenderLimits) -> Self {
        // The provider is named rather than taken from the process default, so another
        // crate enabling a second rustls provider cannot make this ambiguous (as in `tls`).
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .expect("ring supports rustls' default protocol versions")
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        Self {
            client,
            vapid,
            subject,
            permits: Semaphore::new(limits.max_concurrent.max(1)),
            limits,
        }
    }

    /// Sends `payload` to one subscription, retrying transient failures within the
    /// limits. `ttl_secs` is how long the push service keeps it for an offline device;
    /// `topic` (1 to 32 base64url characters) lets a newer push replace an undelivered
    /// one with the same topic.
    ///
    /// An `Err` means nothing was sent: the subscription, the payload (over
    /// [`super::encrypt::MAX_PAYLOAD`] bytes) or the topic is invalid.
    pub(crate) async fn send(
        &self,
        sub: &Subscription,
        payload: &[u8],
        ttl_secs: u32,
        urgency: Urgency,
        topic: Option<&str>,
    ) -> Result<Outcome, PushError> {
        let uri = check_endpoint(&sub.endpoint)?;
        let topic = topic.map(check_topic).transpose()?;
        // Encrypted once: a retry resends the same ciphertext, which RFC 8291 allows.
        let body = Bytes::from(encrypt(sub, payload)?);
        let host = endpoint_host(&sub.endpoint);
        let max_attempts = self.limits.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let request = self.request(sub, &uri, body.clone(), ttl_secs, urgency, topic.as_ref());
            let retry = match self.attempt(request).await {
                Attempt::Answered(status, _) if status.is_success() => {
                    tracing::debug!(host, status = status.as_u16(), attempt, "push sent");
                    return Ok(Outcome::Sent);
                }
                Attempt::Answered(StatusCode::NOT_FOUND | StatusCode::GONE, _) => {
                    tracing::debug!(host, "push subscription gone");
                    return Ok(Outcome::Gone);
                }
                Attempt::Answered(status, retry_after)
                    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS =>
                {
                    Retry {
                        reason: format!("status {}", status.as_u16()),
                        retry_after,
                    }
                }
                Attempt::Answered(status, _) => {
                    tracing::warn!(host, status = status.as_u16(), "push rejected");
                    return Ok(Outcome::Rejected(status.as_u16()));
                }
                Attempt::Failed(reason) => Retry {
                    reason,
                    retry_after: None,
                },
            };
            if attempt >= max_attempts {
                tracing::warn!(host, attempts = attempt, reason = %retry.reason, "push failed");
                return Ok(Outcome::Failed(retry.reason));
            }
            let backoff = self
                .limits
                .first_backoff
                .saturating_mul(1 << (attempt - 1).min(16));
            let wait = retry
                .retry_after
                .unwrap_or(backoff)
                .min(self.limits.max_backoff);
            tracing::debug!(host, attempt, reason = %retry.reason, ?wait, "push will be retried");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One POST, built afresh for each attempt so its VAPID token is current.
    fn request(
        &self,
        sub: &Subscription,
        uri: &Uri,
        body: Bytes,
        ttl_secs: u32,
        urgency: Urgency,
        topic: Option<&HeaderValue>,
    ) -> Request<Body> {
        let now_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let authorization = self
            .vapid
            .authorization(&sub.endpoint, &self.subject, now_secs);
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(uri.clone())
            .header(CONTENT_ENCODING, "aes128gcm")
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("ttl", ttl_secs)
            .header("urgency", urgency.as_str())
            .header(AUTHORIZATION, authorization);
        if let Some(topic) = topic {
            builder = builder.header("topic", topic);
        }
        builder
            .body(Body::from(body))
            // Every part is either checked (the URI, the topic) or made here from
            // header-safe characters (base64url, digits).
            .expect("a push request from checked parts")
    }

    /// One attempt within the concurrency cap and the timeout.
    async fn attempt(&self, request: Request<Body>) -> Attempt {
        // The semaphore is never closed, so acquiring only waits.
        let Ok(_permit) = self.permits.acquire().await else {
            return Attempt::Failed("sender closed".to_owned());
        };
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            // Read the (small) answer so the pooled connection can serve the next push;
            // its content does not matter.
            let _ = axum::body::to_bytes(Body::new(response.into_body()), MAX_ANSWER_BODY).await;
            Ok::<_, hyper_util::client::legacy::Error>(Attempt::Answered(status, retry_after))
        };
        match tokio::time::timeout(self.limits.attempt_timeout, exchange).await {
            Ok(Ok(answered)) => answered,
            // The client's errors name the failing step (connect, TLS, reading), not the
            // URL, so the chain is safe to keep.
            Ok(Err(e)) => Attempt::Failed(format!("network: {}", Chain(&e))),
            Err(_) => Attempt::Failed("timed out".to_owned()),
        }
    }
}

/// What one attempt came to.
enum Attempt {
    /// The service answered with this status and, maybe, a `Retry-After` in seconds.
    Answered(StatusCode, Option<Duration>),
    /// No answer: network error or timeout.
    Failed(String),
}

/// Why an attempt is to be retried.
struct Retry {
    reason: String,
    retry_after: Option<Duration>,
}

/// RFC 8030 section 5.4: a topic is at most 32 characters of the URL-safe base64 alphabet.
fn check_topic(topic: &str) -> Result<HeaderValue, PushError> {
    let valid = (1..=32).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(PushError::Topic);
    }
    HeaderValue::from_str(topic).map_err(|_| PushError::Topic)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use axum::extract::{Path, State};
    use axum::http::HeaderMap;
    use axum::routing::post;
    use axum::Router;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use p256::elliptic_curve::sec1::ToEncodedPoint;

    use super::super::random_secret;
    use super::*;

    /// What the test server saw.
    #[derive(Default)]
    struct Seen {
        /// Requests per path.
        counts: HashMap<String, u32>,
        /// The last request to `/ok`: its headers and body.
        last_ok: Option<(HeaderMap, Vec<u8>)>,
    }

    /// A push service in miniature: `/ok` 201, `/gone` 410, `/missing` 404, `/bad` 400,
    /// `/flaky` 503 (Retry-After: 0) then 201, `/down` always 503, `/busy` always 429,
    /// `/slow` answers after 2 s.
    async fn service() -> (String, Arc<Mutex<Seen>>) {
        async fn handle(
            State(seen): State<Arc<Mutex<Seen>>>,
            Path(path): Path<String>,
            headers: HeaderMap,
            body: Bytes,
        ) -> (StatusCode, HeaderMap) {
            let count = {
                let mut seen = seen.lock().unwrap();
                let count = seen.counts.entry(path.clone()).or_default();
                *count += 1;
                let count = *count;
                if path == "ok" {
                    seen.last_ok = Some((headers, body.to_vec()));
                }
                count
            };
            let mut answer = HeaderMap::new();
            let status = match (path.as_str(), count) {
                ("ok", _) | ("flaky", 2..) => StatusCode::CREATED,
                ("gone", _) => StatusCode::GONE,
                ("missing", _) => StatusCode::NOT_FOUND,
                ("bad", _) => StatusCode::BAD_REQUEST,
                ("busy", _) => StatusCode::TOO_MANY_REQUESTS,
                ("slow", _) => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    StatusCode::CREATED
                }
                _ => {
                    answer.insert(RETRY_AFTER, HeaderValue::from_static("0"));
                    StatusCode::SERVICE_UNAVAILABLE
                }
            };
            (status, answer)
        }
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .route("/push/{path}", post(handle))
            .with_state(Arc::clone(&seen));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/push/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, seen)
    }

    fn subscriber(endpoint: String) -> (p256::SecretKey, [u8; 16], Subscription) {
        let secret = random_secret();
        let auth: [u8; 16] = rand::random();
        let sub = Subscription {
            endpoint,
            p256dh: URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes()),
            auth: URL_SAFE_NO_PAD.encode(auth),
        };
        (secret, auth, sub)
    }

    fn sender(vapid: Arc<Vapid>) -> PushSender {
        PushSender::new(
            vapid,
            "mailto:ops@huddle.example".to_owned(),
            SenderLimits {
                max_concurrent: 4,
                attempt_timeout: Duration::from_millis(500),
                max_attempts: 3,
                first_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(50),
            },
        )
    }

    #[tokio::test]
    async fn sends_an_encrypted_signed_push() {
        let (base, seen) = service().await;
        let vapid = Arc::new(Vapid::generate());
        let (secret, auth, sub) = subscriber(format!("{base}ok"));
        let outcome = sender(Arc::clone(&vapid))
            .send(
                &sub,
                b"{\"room\":\"general\"}",
                3600,
                Urgency::High,
                Some("room-general"),
            )
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Sent);

        let (headers, body) = seen.lock().unwrap().last_ok.take().unwrap();
        let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(header("content-encoding"), "aes128gcm");
        assert_eq!(header("content-type"), "application/octet-stream");
        assert_eq!(header("ttl"), "3600");
        assert_eq!(header("urgency"), "high");
        assert_eq!(header("topic"), "room-general");
        assert!(header("authorization").starts_with("vapid t="));
        assert!(header("authorization").ends_with(&format!(", k={}", vapid.public_b64())));
        let plain = web_push_native::decrypt(
            body,
            &secret,
            &web_push_native::Auth::clone_from_slice(&auth),
        )
        .unwrap();
        assert_eq!(plain, b"{\"room\":\"general\"}");
    }

    #[tokio::test]
    async fn reads_each_answer_as_an_outcome() {
        let (base, seen) = service().await;
        let sender = sender(Arc::new(Vapid::generate()));
        let send = |path: &'static str| {
            let (_, _, sub) = subscriber(format!("{base}{path}"));
            let sender = &sender;
            async move {
                sender
                    .send(&sub, b"hi", 60, Urgency::Normal, None)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(send("gone").await, Outcome::Gone);
        assert_eq!(send("missing").await, Outcome::Gone);
        assert_eq!(send("bad").await, Outcome::Rejected(400));
        assert_eq!(send("flaky").await, Outcome::Sent);
        assert_eq!(send("down").await, Outcome::Failed("status 503".to_owned()));
        assert_eq!(send("busy").await, Outcome::Failed("status 429".to_owned()));
        assert_eq!(send("slow").await, Outcome::Failed("timed out".to_owned()));

        let counts = seen.lock().unwrap().counts.clone();
        // Final answers are not retried; transient ones are, up to max_attempts.
        for (path, expected) in [
            ("gone", 1),
            ("missing", 1),
            ("bad", 1),
            ("flaky", 2),
            ("down", 3),
            ("busy", 3),
            ("slow", 3),
        ] {
            assert_eq!(counts.get(path), Some(&expected), "{path}");
        }
    }

    #[tokio::test]
    async fn a_refused_service_is_a_network_failure() {
        // Bind and drop a listener for a port where nothing listens.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let (_, _, sub) = subscriber(format!("http://127.0.0.1:{port}/push/x"));
        let outcome = sender(Arc::new(Vapid::generate()))
            .send(&sub, b"hi", 60, Urgency::Low, None)
            .await
            .unwrap();
        assert!(
            matches!(&outcome, Outcome::Failed(r) if r.starts_with("network:")),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn refuses_before_sending() {
        let (base, seen) = service().await;
        let sender = sender(Arc::new(Vapid::generate()));
        let (_, _, sub) = subscriber(format!("{base}ok"));
        assert!(matches!(
            sender
                .send(&sub, &[0; 3994], 60, Urgency::Normal, None)
                .await,
            Err(PushError::PayloadTooLarge { .. })
        ));
        for topic in ["", "has space", "x/y", &"a".repeat(33)] {
            assert!(matches!(
                sender
                    .send(&sub, b"hi", 60, Urgency::Normal, Some(topic))
                    .await,
                Err(PushError::Topic)
            ));
        }
        let (_, _, far) = subscriber("http://push.example/x".to_owned());
        assert!(matches!(
            sender.send(&far, b"hi", 60, Urgency::Normal, None).await,
            Err(PushError::Endpoint(_))
        ));
        assert!(seen.lock().unwrap().counts.is_empty());
    }

    #[tokio::test]
    async fn caps_requests_in_flight() {
        // `/slow` holds each request for 2 s; with 4 permits and a 500 ms attempt
        // timeout, 8 sends of one attempt each need two rounds.
        let (base, seen) = service().await;
        let sender = PushSender::new(
            Arc::new(Vapid::generate()),
            "mailto:ops@huddle.example".to_owned(),
            SenderLimits {
                max_concurrent: 4,
                attempt_timeout: Duration::from_millis(300),
                max_attempts: 1,
                ..SenderLimits::default()
            },
        );
        let (_, _, sub) = subscriber(format!("{base}slow"));
        let started = std::time::Instant::now();
        let sends = (0..8).map(|_| sender.send(&sub, b"hi", 60, Urgency::Normal, None));
        let outcomes = futures_util::future::join_all(sends).await;
        assert!(outcomes.iter().all(|o| matches!(o, Ok(Outcome::Failed(_)))));
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(seen.lock().unwrap().counts.get("slow"), Some(&8));
    }
}
