//! The server's VAPID identity (RFC 8292): an ES256 (P-256) key pair whose public half
//! the browser pins at subscribe time (`applicationServerKey`), and the `Authorization`
//! header that proves each push comes from the holder of the private half.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use serde::Serialize;

use super::{decode_b64url, random_secret, PushError};

/// How long a VAPID token stays valid. RFC 8292 allows at most 24 hours; 12 leaves room
/// for clock skew between us and the push service.
pub(crate) const TOKEN_LIFETIME_SECS: u64 = 12 * 60 * 60;

/// An ES256 key pair for VAPID. Debug shows the public key only.
pub(crate) struct Vapid {
    /// The private scalar, kept to export it (`private_b64`).
    secret: p256::SecretKey,
    /// The same key in the form jsonwebtoken signs with, made once.
    signing: EncodingKey,
    /// The uncompressed public point, base64url without padding: made once, as every
    /// header carries it.
    public_b64: String,
}

impl Vapid {
    /// A fresh key pair.
    pub(crate) fn generate() -> Self {
        Self::from_secret(random_secret())
    }

    /// The key pair from its private key: the raw 32-byte scalar in base64url (padding
    /// optional), as `web-push generate-vapid-keys` and similar tools print it.
    pub(crate) fn from_private_b64(private: &str) -> Result<Self, PushError> {
        let bytes = decode_b64url(private.trim()).ok_or(PushError::VapidKey("not base64url"))?;
        if bytes.len() != 32 {
            return Err(PushError::VapidKey("not 32 bytes"));
        }
        let secret = p256::SecretKey::from_slice(&bytes)
            .map_err(|_| PushError::VapidKey("not a P-256 private key"))?;
        Ok(Self::from_secret(secret))
    }

    fn from_secret(secret: p256::SecretKey) -> Self {
        // jsonwebtoken's ES256 signer takes PKCS#8 DER; the conversion cannot fail for a
        // valid key.
        let der = secret
            .to_pkcs8_der()
            .expect("a P-256 key always encodes as PKCS#8");
        let public_b64 =
            URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes());
        Self {
            signing: EncodingKey::from_ec_der(der.as_bytes()),
            secret,
            public_b64,
        }
    }

    /// The private scalar, base64url without padding (the form `from_private_b64` reads).
    pub(crate) fn private_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.secret.to_bytes())
    }

    /// The public key, uncompressed (65 bytes), base64url without padding: what the
    /// browser's `applicationServerKey` takes.
    pub(crate) fn public_b64(&self) -> &str {
        &self.public_b64
    }

    /// The `Authorization` header for a push to `endpoint` (RFC 8292 section 3):
    /// `vapid t=<JWT>, k=<public key>`, the JWT signed with ES256 and carrying `aud` (the
    /// endpoint's origin), `exp` (`now_secs` + 12 h) and `sub` (`subject`, a `mailto:` or
    /// https URL the push service may contact).
    ///
    /// `endpoint` is assumed checked by [`super::check_subscription`]; an endpoint that
    /// does not parse gets an empty `aud`, which the push service will refuse.
    pub(crate) fn authorization(&self, endpoint: &str, subject: &str, now_secs: u64) -> String {
        let claims = Claims {
            aud: origin(endpoint).unwrap_or_default(),
            exp: now_secs + TOKEN_LIFETIME_SECS,
            sub: subject,
        };
        // ES256 over a serialisable struct with a valid key cannot fail.
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.signing)
            .expect("ES256 signing with a valid P-256 key");
        format!("vapid t={token}, k={}", self.public_b64)
    }
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public", &self.public_b64)
            .finish_non_exhaustive()
    }
}

/// The JWT claims RFC 8292 asks for.
#[derive(Serialize)]
struct Claims<'a> {
    aud: String,
    exp: u64,
    sub: &'a str,
}

/// `scheme://host[:port]` of a URL: the audience a push service expects. The port is
/// kept only when the URL names it, as browsers' origins do.
pub(crate) fn origin(endpoint: &str) -> Option<String> {
    let uri: hyper::Uri = endpoint.parse().ok()?;
    let scheme = uri.scheme_str()?;
    let host = uri.host()?;
    Some(match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Decoded {
        aud: String,
        exp: u64,
        sub: String,
    }

    /// Verifies a header the way a push service does: the JWT against the key in `k`.
    fn verify(header: &str, aud: &str) -> Decoded {
        try_verify(header, aud).unwrap()
    }

    fn try_verify(header: &str, aud: &str) -> jsonwebtoken::errors::Result<Decoded> {
        let rest = header.strip_prefix("vapid t=").unwrap();
        let (token, k) = rest.split_once(", k=").unwrap();
        let point = URL_SAFE_NO_PAD.decode(k).unwrap();
        assert_eq!(point.len(), 65);
        let key = DecodingKey::from_ec_components(
            &URL_SAFE_NO_PAD.encode(&point[1..33]),
            &URL_SAFE_NO_PAD.encode(&point[33..]),
        )
        .unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[aud]);
        // `now` is the real clock, so jsonwebtoken's default `exp` check applies too.
        jsonwebtoken::decode::<Decoded>(token, &key, &validation).map(|data| data.claims)
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn the_header_verifies_with_the_public_key() {
        let vapid = Vapid::generate();
        let now = now();
        let header = vapid.authorization(
            "https://fcm.googleapis.com/fcm/send/abc?x=1",
            "mailto:ops@example.com",
            now,
        );
        assert!(header.ends_with(&format!(", k={}", vapid.public_b64())));
        let claims = verify(&header, "https://fcm.googleapis.com");
        assert_eq!(claims.aud, "https://fcm.googleapis.com");
        assert_eq!(claims.exp, now + 12 * 60 * 60);
        assert_eq!(claims.sub, "mailto:ops@example.com");
    }

    #[test]
    fn the_audience_keeps_an_explicit_port() {
        let vapid = Vapid::generate();
        let header = vapid.authorization(
            "http://127.0.0.1:4567/push/1",
            "https://huddle.example",
            now(),
        );
        assert_eq!(
            verify(&header, "http://127.0.0.1:4567").aud,
            "http://127.0.0.1:4567"
        );
    }

    #[test]
    fn another_key_does_not_verify() {
        let (a, b) = (Vapid::generate(), Vapid::generate());
        let header = a.authorization("https://push.example/x", "mailto:a@b.c", now());
        let forged = header.replace(a.public_b64(), b.public_b64());
        assert!(try_verify(&forged, "https://push.example").is_err());
        assert!(try_verify(&header, "https://other.example").is_err());
        assert!(try_verify(&header, "https://push.example").is_ok());
    }

    #[test]
    fn the_private_key_round_trips_and_stays_out_of_debug() {
        let vapid = Vapid::generate();
        let private = vapid.private_b64();
        assert_eq!(URL_SAFE_NO_PAD.decode(&private).unwrap().len(), 32);
        let again = Vapid::from_private_b64(&private).unwrap();
        assert_eq!(again.public_b64(), vapid.public_b64());
        assert_eq!(
            URL_SAFE_NO_PAD.decode(vapid.public_b64()).unwrap().len(),
            65
        );
        assert!(!format!("{vapid:?}").contains(&private));

        assert!(Vapid::from_private_b64("short").is_err());
        assert!(Vapid::from_private_b64(&URL_SAFE_NO_PAD.encode([0u8; 32])).is_err());
        assert!(Vapid::from_private_b64(&URL_SAFE_NO_PAD.encode([0xffu8; 32])).is_err());
    }

    #[test]
    fn reads_a_published_key_pair() {
        // The application server's key pair from RFC 8291 Appendix A, in the base64url
        // form web-push tools print: the public key must follow from the private one.
        let vapid = Vapid::from_private_b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw").unwrap();
        assert_eq!(
            vapid.public_b64(),
            "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
        );
        // Padding is accepted too.
        assert!(Vapid::from_private_b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw=").is_ok());
    }
}
