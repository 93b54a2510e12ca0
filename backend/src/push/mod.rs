//! Web Push, the sending side: standards only (RFC 8030 delivery, RFC 8291 message
//! encryption, RFC 8292 VAPID), no vendor API.
//!
//! This module owns what it takes to put one notification into a browser's push
//! service: checking a subscription the browser handed us ([`check_subscription`]), the
//! server's VAPID key pair and `Authorization` header ([`vapid`]), encrypting the payload
//! for the subscriber ([`encrypt`]), and the bounded HTTP sender with its retry policy
//! ([`sender`]). It knows nothing of rooms, users or storage: the caller decides who gets
//! what, and deletes a subscription when [`sender::Outcome::Gone`] says so.
//!
//! Keys and endpoints are secrets of a kind (an endpoint is a bearer capability to wake
//! someone's browser), so logs name the endpoint's host only and no key is ever printed.

// Wired into the server by the notifications work; until then only the tests use it.
#![allow(dead_code)]

pub(crate) mod encrypt;
pub(crate) mod sender;
pub(crate) mod vapid;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

// The API the notifications work will call; unused until it lands.
#[allow(unused_imports)]
pub(crate) use sender::{Outcome, PushSender, SenderLimits, Urgency};
pub(crate) use vapid::Vapid;

/// The longest endpoint URL accepted, in bytes. Real push services use a few hundred;
/// the bound keeps a stored subscription small.
pub(crate) const MAX_ENDPOINT_LEN: usize = 2048;

/// Why a subscription, key or payload was refused before anything was sent.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
    /// The endpoint is not an absolute https URL (or http on a loopback host), or too long.
    #[error("invalid push endpoint: {0}")]
    Endpoint(&'static str),
    /// `p256dh` is not base64url, or not an uncompressed P-256 point.
    #[error("invalid p256dh key: {0}")]
    P256dh(&'static str),
    /// `auth` is not base64url, or not 16 bytes.
    #[error("invalid auth secret: {0}")]
    Auth(&'static str),
    /// The VAPID private key is not base64url of a 32-byte P-256 scalar.
    #[error("invalid VAPID private key: {0}")]
    VapidKey(&'static str),
    /// The payload does not fit in one 4096-byte aes128gcm record.
    #[error("push payload is {len} bytes; at most {max} fit in one record")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// [`encrypt::MAX_PAYLOAD`].
        max: usize,
    },
    /// The `Topic` is not 1 to 32 characters of the base64url alphabet (RFC 8030 5.4).
    #[error("invalid push topic")]
    Topic,
    /// Encryption failed (the crate refused the input).
    #[error("push encryption failed: {0}")]
    Encrypt(String),
}

/// A browser's push subscription: where to send and the keys to encrypt for, as the
/// browser gives them (`PushSubscription.toJSON()`).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    /// The push service URL for this browser; a capability, so never logged whole.
    pub(crate) endpoint: String,
    /// The browser's P-256 public key, uncompressed, base64url.
    pub(crate) p256dh: String,
    /// The browser's 16-byte authentication secret, base64url.
    pub(crate) auth: String,
}

impl std::fmt::Debug for Subscription {
    // The endpoint and the auth secret would let anyone push to this browser: show the
    // host only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("host", &endpoint_host(&self.endpoint))
            .finish_non_exhaustive()
    }
}

/// Checks a subscription before it is stored, so that sending never meets a malformed
/// one: the endpoint is an absolute `https://` URL (`http://` only on a loopback host,
/// for tests) of at most [`MAX_ENDPOINT_LEN`] bytes, `p256dh` decodes to an uncompressed
/// P-256 point and `auth` to 16 bytes. Base64url padding is optional.
pub(crate) fn check_subscription(
    endpoint: &str,
    p256dh: &str,
    auth: &str,
) -> Result<(), PushError> {
    check_endpoint(endpoint)?;
    public_key(p256dh)?;
    auth_secret(auth)?;
    Ok(())
}

/// The endpoint's host, the only part of it that may be logged.
pub(crate) fn endpoint_host(endpoint: &str) -> &str {
    if !endpoint
        .parse::<hyper::Uri>()
        .is_ok_and(|uri| uri.host().is_some())
    {
        return "?";
    }
    // Sliced from the string itself, as `Uri::host` borrows the parsed copy.
    let Some((_, rest)) = endpoint.split_once("://") else {
        return "?";
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host_port.split(':').next().unwrap_or(host_port),
    }
}

/// Whether `endpoint` (already checked) is at one of the push services in `allowed`:
/// its host is one of them or a subdomain of one. Without this a user could make the
/// server POST to any host it can reach (an internal one included) by subscribing
/// with its URL.
pub(crate) fn allowed_host(endpoint: &str, allowed: &[String]) -> bool {
    let host = endpoint_host(endpoint).to_ascii_lowercase();
    allowed.iter().any(|service| {
        let service = service.to_ascii_lowercase();
        host == service
            || host
                .strip_suffix(service.as_str())
                .is_some_and(|sub| sub.ends_with('.'))
    })
}

fn check_endpoint(endpoint: &str) -> Result<hyper::Uri, PushError> {
    if endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(PushError::Endpoint("longer than 2048 bytes"));
    }
    let uri: hyper::Uri = endpoint
        .parse()
        .map_err(|_| PushError::Endpoint("not a URL"))?;
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or(PushError::Endpoint("not an absolute URL"))?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(PushError::Endpoint("has user info"));
    }
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        // Plain http would expose the request (and its VAPID token) on the wire; only a
        // service on this machine, such as the tests' push service, may use it.
        Some("http") if is_loopback(host) => Ok(uri),
        Some("http") => Err(PushError::Endpoint(
            "http is allowed on a loopback host only",
        )),
        _ => Err(PushError::Endpoint("scheme is not https")),
    }
}

#[cfg(test)]
#[test]
fn only_the_listed_push_services_are_reached() {
    let allowed = vec![
        "fcm.googleapis.com".to_owned(),
        "notify.windows.com".to_owned(),
    ];
    assert!(allowed_host(
        "https://fcm.googleapis.com/fcm/send/x",
        &allowed
    ));
    assert!(allowed_host(
        "https://wns2-par02p.notify.windows.com/w/?t=1",
        &allowed
    ));
    assert!(allowed_host("https://FCM.googleapis.com/x", &allowed));
    assert!(!allowed_host(
        "https://evilfcm.googleapis.com.attacker.example/x",
        &allowed
    ));
    assert!(!allowed_host("https://xnotify.windows.com/x", &allowed));
    assert!(!allowed_host("https://10.0.0.7/admin", &allowed));
    assert!(!allowed_host("http://127.0.0.1:9/x", &allowed));
    assert!(allowed_host(
        "http://127.0.0.1:9/x",
        &["127.0.0.1".to_owned()]
    ));
}

fn is_loopback(host: &str) -> bool {
    // `Uri::host` keeps an IPv6 literal's brackets.
    matches!(host, "127.0.0.1" | "[::1]" | "localhost")
}

/// A fresh P-256 private key from the operating system's generator.
pub(crate) fn random_secret() -> p256::SecretKey {
    use rand::TryRngCore;
    // p256 0.13 speaks rand_core 0.6 and this crate uses rand 0.9, so the scalar is made
    // from 32 random bytes; `from_bytes` refuses zero and values ≥ the group order, which
    // happens with probability about 2^-32, so the loop all but never repeats.
    loop {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the operating system's random generator failed");
        if let Ok(secret) = p256::SecretKey::from_bytes(&bytes.into()) {
            return secret;
        }
    }
}

/// Decodes base64url with or without padding, as browsers and tools differ.
fn decode_b64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// The subscriber's public key from `p256dh`.
pub(crate) fn public_key(p256dh: &str) -> Result<p256::PublicKey, PushError> {
    let bytes = decode_b64url(p256dh).ok_or(PushError::P256dh("not base64url"))?;
    // RFC 8291 3.1: the key is sent uncompressed (0x04 || x || y); a compressed or
    // identity encoding is refused, as some services reject it anyway.
    if bytes.len() != 65 || bytes[0] != 0x04 {
        return Err(PushError::P256dh("not an uncompressed 65-byte point"));
    }
    p256::PublicKey::from_sec1_bytes(&bytes).map_err(|_| PushError::P256dh("not a point on P-256"))
}

/// The subscriber's authentication secret from `auth`.
pub(crate) fn auth_secret(auth: &str) -> Result<[u8; 16], PushError> {
    let bytes = decode_b64url(auth).ok_or(PushError::Auth("not base64url"))?;
    bytes
        .try_into()
        .map_err(|_| PushError::Auth("not 16 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point_b64() -> String {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let secret = random_secret();
        URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes())
    }

    const AUTH: &str = "AAECAwQFBgcICQoLDA0ODw";

    #[test]
    fn accepts_https_and_loopback_http() {
        let key = point_b64();
        for endpoint in [
            "https://fcm.googleapis.com/fcm/send/abc:def",
            "https://updates.push.services.mozilla.com/wpush/v2/gAAA",
            "http://127.0.0.1:8080/push/1",
            "http://[::1]:9/push/1",
            "http://localhost/push",
        ] {
            check_subscription(endpoint, &key, AUTH).unwrap();
        }
        // Padding is optional on both keys.
        check_subscription(
            "https://a.example/x",
            &format!("{key}="),
            "AAECAwQFBgcICQoLDA0ODw==",
        )
        .unwrap();
    }

    #[test]
    fn refuses_bad_endpoints() {
        let key = point_b64();
        let long = format!("https://a.example/{}", "x".repeat(MAX_ENDPOINT_LEN));
        for endpoint in [
            "http://push.example/x",
            "http://10.0.0.1/x",
            "ftp://push.example/x",
            "/push/1",
            "push.example/x",
            "",
            "https://user:pw@push.example/x",
            long.as_str(),
        ] {
            assert!(
                matches!(
                    check_subscription(endpoint, &key, AUTH),
                    Err(PushError::Endpoint(_))
                ),
                "{endpoint}"
            );
        }
    }

    #[test]
    fn refuses_bad_keys() {
        let endpoint = "https://push.example/x";
        let key = point_b64();
        let bytes = URL_SAFE_NO_PAD.decode(&key).unwrap();
        let compressed = {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let public = p256::PublicKey::from_sec1_bytes(&bytes).unwrap();
            URL_SAFE_NO_PAD.encode(public.to_encoded_point(true).as_bytes())
        };
        let mut off_curve = bytes.clone();
        off_curve[64] ^= 1;
        for p256dh in [
            "not base64!".to_owned(),
            compressed,
            URL_SAFE_NO_PAD.encode(&bytes[..64]),
            URL_SAFE_NO_PAD.encode(off_curve),
        ] {
            assert!(matches!(
                check_subscription(endpoint, &p256dh, AUTH),
                Err(PushError::P256dh(_))
            ));
        }
        for auth in ["AAECAwQFBgcICQoLDA0O", "AAECAwQFBgcICQoLDA0ODxA", "***"] {
            assert!(matches!(
                check_subscription(endpoint, &key, auth),
                Err(PushError::Auth(_))
            ));
        }
    }

    #[test]
    fn logs_show_the_host_only() {
        assert_eq!(
            endpoint_host("https://fcm.googleapis.com/fcm/send/secret"),
            "fcm.googleapis.com"
        );
        assert_eq!(endpoint_host("http://127.0.0.1:8080/push/1"), "127.0.0.1");
        assert_eq!(endpoint_host("http://[::1]:9/push/1"), "::1");
        assert_eq!(endpoint_host("garbage"), "?");
        let sub = Subscription {
            endpoint: "https://push.example/secret-token".to_owned(),
            p256dh: "key".to_owned(),
            auth: "auth-secret".to_owned(),
        };
        let debug = format!("{sub:?}");
        assert!(
            debug.contains("push.example") && !debug.contains("secret"),
            "{debug}"
        );
    }
}
