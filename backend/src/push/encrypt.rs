//! RFC 8291 message encryption (`Content-Encoding: aes128gcm`, RFC 8188), by
//! `web-push-native`: a fresh ephemeral key and salt per message, ECDH with the
//! subscriber's key, HKDF with its auth secret, AES-128-GCM in one record. Nothing here
//! implements a primitive; this file only adapts the crate to our types and limits.

use web_push_native::Auth;

use super::{auth_secret, public_key, PushError, Subscription};

/// The largest payload that fits in one 4096-byte record (RFC 8291 section 4): 4096
/// minus the 86-byte header (salt 16, record size 4, key id length 1, key id 65) and the
/// 17 bytes of padding delimiter and AEAD tag.
pub(crate) const MAX_PAYLOAD: usize = 4096 - 86 - 17;

/// Encrypts `payload` for a subscriber, giving the request body to POST.
pub(crate) fn encrypt(sub: &Subscription, payload: &[u8]) -> Result<Vec<u8>, PushError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(PushError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD,
        });
    }
    let ua_public = public_key(&sub.p256dh)?;
    let auth = Auth::clone_from_slice(&auth_secret(&sub.auth)?);
    web_push_native::encrypt(payload.to_vec(), &ua_public, &auth)
        .map_err(|e| PushError::Encrypt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use p256::elliptic_curve::sec1::ToEncodedPoint;

    use super::super::random_secret;
    use super::*;

    /// A browser's side of a subscription: its private key and the subscription it hands
    /// out.
    fn subscriber() -> (p256::SecretKey, [u8; 16], Subscription) {
        let secret = random_secret();
        let auth: [u8; 16] = rand::random();
        let sub = Subscription {
            endpoint: "https://push.example/x".to_owned(),
            p256dh: URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes()),
            auth: URL_SAFE_NO_PAD.encode(auth),
        };
        (secret, auth, sub)
    }

    fn decrypt(body: Vec<u8>, secret: &p256::SecretKey, auth: &[u8; 16]) -> Vec<u8> {
        web_push_native::decrypt(body, secret, &Auth::clone_from_slice(auth)).unwrap()
    }

    #[test]
    fn round_trips_through_the_subscribers_key() {
        let (secret, auth, sub) = subscriber();
        for payload in [&b""[..], b"{\"room\":\"general\"}", &[7u8; MAX_PAYLOAD]] {
            let body = encrypt(&sub, payload).unwrap();
            // One record: the 86-byte header, the payload, the delimiter and the tag.
            assert_eq!(body.len(), 86 + payload.len() + 17);
            assert!(body.len() <= 4096);
            assert_eq!(decrypt(body, &secret, &auth), payload);
        }
    }

    #[test]
    fn each_message_has_its_own_key_and_salt() {
        let (_, _, sub) = subscriber();
        let (a, b) = (
            encrypt(&sub, b"same").unwrap(),
            encrypt(&sub, b"same").unwrap(),
        );
        assert_ne!(a[..16], b[..16], "salt");
        assert_ne!(a[21..86], b[21..86], "ephemeral key");
    }

    #[test]
    fn another_subscriber_cannot_read_it() {
        let (_, auth, sub) = subscriber();
        let (other, _, _) = subscriber();
        let body = encrypt(&sub, b"secret").unwrap();
        assert!(web_push_native::decrypt(body, &other, &Auth::clone_from_slice(&auth)).is_err());
    }

    #[test]
    fn refuses_a_payload_over_one_record() {
        let (_, _, sub) = subscriber();
        assert!(matches!(
            encrypt(&sub, &[0u8; MAX_PAYLOAD + 1]),
            Err(PushError::PayloadTooLarge {
                len: 3994,
                max: 3993
            })
        ));
    }

    #[test]
    fn decrypts_the_rfc_8291_example() {
        // RFC 8291 Appendix A: the user agent's keys and the message it receives.
        let ua_private = p256::SecretKey::from_slice(
            &URL_SAFE_NO_PAD
                .decode("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")
                .unwrap(),
        )
        .unwrap();
        let auth: [u8; 16] = URL_SAFE_NO_PAD
            .decode("BTBZMqHH6r4Tts7J_aSIgg")
            .unwrap()
            .try_into()
            .unwrap();
        let body = URL_SAFE_NO_PAD
            .decode(
                "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
            )
            .unwrap();
        assert_eq!(
            decrypt(body, &ua_private, &auth),
            b"When I grow up, I want to be a watermelon"
        );
    }
}
