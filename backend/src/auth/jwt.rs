//! Verifying JWTs minted by a host application, so its users sign in to Huddle without a
//! Huddle password.
//!
//! One verifier holds one key and accepts exactly one algorithm: HS256 for a shared
//! secret, RS256 for an RSA public key, ES256 for an EC P-256 public key. The algorithm
//! comes from the key the operator configured, never from the token's header, which
//! closes the classic confusions (`alg: none`, or an HS256 token "signed" with the RSA
//! public key as its secret).
//!
//! Rules for a token: `exp` required; `nbf` honoured when present; 60 s of leeway for
//! both (clock skew between the host and us); `sub` non-empty, at most
//! [`MAX_SUB_BYTES`], no control characters; `name` an optional string; a token with an
//! `aud` claim is refused, as Huddle has no audience of its own to match it against
//! (accepting any would let a token meant for another service sign in here).

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The shortest HS256 secret accepted: as long as the SHA-256 output (RFC 7518 §3.2).
pub(crate) const MIN_SECRET_BYTES: usize = 32;
/// The longest `sub` accepted; it becomes a user id in storage and in logs.
pub(crate) const MAX_SUB_BYTES: usize = 128;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub(crate) const LEEWAY_SECS: u64 = 60;
/// Longer tokens are refused before any decoding: a real one is well under 2 KiB
/// (an RS256 signature of a 4096-bit key is 683 characters).
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The RSA modulus sizes accepted, in bits: below 2048 is breakable, above 4096 the
/// `rsa` crate refuses to verify.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claims {
    /// The host's id for the user: who signs in.
    pub(crate) sub: String,
    /// A display name the host suggests, if any.
    pub(crate) name: Option<String>,
    /// When the token stops being accepted, in seconds since the Unix epoch (a session
    /// it opened may be held to it).
    pub(crate) exp: u64,
}

/// The claims as decoded, before the rules. `exp` is optional here only so that its
/// absence reaches the validation and is logged as such, not as a type error.
#[derive(Deserialize)]
struct RawClaims {
    sub: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
}

/// Why a configured JWT key is refused; the message is for the operator.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwtKeyError {
    #[error("the JWT secret is {len} bytes; at least {MIN_SECRET_BYTES} are needed for HS256 (make one with `openssl rand -hex 32`)")]
    ShortSecret { len: usize },
    #[error("the JWT key is not PEM; accepted: an RSA public key (`-----BEGIN PUBLIC KEY-----` or `-----BEGIN RSA PUBLIC KEY-----`, for RS256) or an EC P-256 public key (`-----BEGIN PUBLIC KEY-----`, for ES256)")]
    NotPem,
    #[error("the JWT key is a private key; give the server only the public key (`openssl pkey -in private.pem -pubout`)")]
    PrivateKey,
    #[error("the JWT key is a certificate; give the server its public key (`openssl x509 -in cert.pem -pubkey -noout`)")]
    Certificate,
    #[error(
        "the JWT key is a PEM `{0}`; accepted: `PUBLIC KEY` (RSA or EC P-256) or `RSA PUBLIC KEY`"
    )]
    UnknownPem(String),
    #[error(
        "the JWT key is {0}; accepted: an RSA public key (RS256) or an EC P-256 public key (ES256)"
    )]
    Unsupported(&'static str),
    #[error("the JWT key is an RSA key of {bits} bits; accepted: 2048 to 4096 bits")]
    RsaSize { bits: usize },
    #[error("the JWT key could not be read ({0}); accepted: an RSA public key (RS256) or an EC P-256 public key (ES256) in PEM")]
    Malformed(&'static str),
}

/// Why a token was refused: for the server's log. A client is told only that it is not
/// signed in, whatever the variant. The reasons are fixed strings: nothing from the
/// token itself reaches the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JwtError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid: {0}")]
    Invalid(&'static str),
}

/// Checks host-app JWTs against one configured key.
#[derive(Clone)]
pub(crate) struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    algorithm: Algorithm,
}

// By hand: `DecodingKey`'s own Debug would print an HS256 secret.
impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for HS256 tokens signed with `secret` (the raw bytes, used as given).
    pub(crate) fn hs256(secret: &[u8]) -> Result<Self, JwtKeyError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(JwtKeyError::ShortSecret { len: secret.len() });
        }
        Ok(Self::new(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
        ))
    }

    /// A verifier for a public key in PEM: an RSA key (`PUBLIC KEY` or PKCS#1
    /// `RSA PUBLIC KEY`, 2048 to 4096 bits) verifies RS256 only; an EC P-256 key
    /// (`PUBLIC KEY`) verifies ES256 only. The key is checked here, so a bad one fails at
    /// start-up rather than at every sign-in.
    pub(crate) fn from_public_pem(pem: &[u8]) -> Result<Self, JwtKeyError> {
        let (label, der) = pem_block(pem)?;
        match label.as_str() {
            "PUBLIC KEY" => {}
            "RSA PUBLIC KEY" => return rsa_verifier(&der),
            l if l.contains("PRIVATE KEY") => return Err(JwtKeyError::PrivateKey),
            "CERTIFICATE" => return Err(JwtKeyError::Certificate),
            _ => return Err(JwtKeyError::UnknownPem(label)),
        }
        let spki = Spki::parse(&der).ok_or(JwtKeyError::Malformed("not a public key"))?;
        match (spki.algorithm, spki.curve) {
            (oid::RSA, _) => rsa_verifier(spki.key),
            (oid::EC, Some(oid::P256)) => {
                let key = DecodingKey::from_ec_der(spki.key);
                // The provider parses the point now (on the curve, right length), which
                // `DecodingKey` alone would leave to the first token.
                (jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.verifier_factory)(
                    &Algorithm::ES256,
                    &key,
                )
                .map_err(|_| JwtKeyError::Malformed("not a valid P-256 point"))?;
                Ok(Self::new(key, Algorithm::ES256))
            }
            (oid::EC, Some(oid::P384)) => Err(JwtKeyError::Unsupported("an EC P-384 key")),
            (oid::EC, Some(oid::P521)) => Err(JwtKeyError::Unsupported("an EC P-521 key")),
            (oid::EC, _) => Err(JwtKeyError::Unsupported("an EC key on another curve")),
            (oid::ED25519, _) => Err(JwtKeyError::Unsupported("an Ed25519 key")),
            (oid::RSA_PSS, _) => Err(JwtKeyError::Unsupported("an RSA-PSS-only key")),
            _ => Err(JwtKeyError::Unsupported("a key of an unknown type")),
        }
    }

    fn new(key: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        // No audience configured: with `validate_aud` on, any token carrying `aud` is
        // refused (see the module docs).
        validation.validate_aud = true;
        JwtVerifier {
            key,
            validation,
            algorithm,
        }
    }

    /// The one algorithm this verifier accepts ("HS256", "RS256" or "ES256"), for the
    /// start-up log.
    pub(crate) fn algorithm(&self) -> &'static str {
        match self.algorithm {
            Algorithm::HS256 => "HS256",
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
            // `new` is only ever given the three above.
            _ => "other",
        }
    }

    /// Verifies `token`'s signature and rules (module docs) and returns its claims.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Invalid("longer than 8 KiB"));
        }
        let raw = jsonwebtoken::decode::<RawClaims>(token, &self.key, &self.validation)
            .map_err(|e| refusal(e.kind()))?
            .claims;
        let claims = Claims {
            sub: raw.sub,
            name: raw.name,
            // Validation already refused a token without one; this is for the types.
            exp: raw.exp.ok_or(JwtError::Invalid("missing exp"))?,
        };
        if claims.sub.is_empty() {
            return Err(JwtError::Invalid("empty sub"));
        }
        if claims.sub.len() > MAX_SUB_BYTES {
            return Err(JwtError::Invalid("sub longer than 128 bytes"));
        }
        if claims.sub.chars().any(char::is_control) {
            return Err(JwtError::Invalid("control character in sub"));
        }
        Ok(claims)
    }
}

/// The log reason for a refusal from `jsonwebtoken`. Its own messages may quote the
/// token (serde errors do), so they are not passed on.
fn refusal(kind: &ErrorKind) -> JwtError {
    JwtError::Invalid(match kind {
        ErrorKind::ExpiredSignature => return JwtError::Expired,
        ErrorKind::ImmatureSignature => "not valid yet (nbf)",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm => "algorithm not the key's",
        ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => "unknown algorithm",
        ErrorKind::MissingRequiredClaim(_) => "missing exp",
        ErrorKind::InvalidClaimFormat(_) => "exp or nbf not a number",
        ErrorKind::InvalidAudience => "has an aud claim, which is not accepted",
        ErrorKind::Json(e) if e.is_data() => "claims missing or of the wrong type",
        ErrorKind::Json(_) => "header or claims not JSON",
        ErrorKind::Base64(_) => "not base64url",
        ErrorKind::Utf8(_) => "not UTF-8",
        ErrorKind::InvalidToken => "not a JWT",
        _ => "not accepted",
    })
}

/// A verifier for a PKCS#1 `RSAPublicKey`, after checking its size.
fn rsa_verifier(pkcs1: &[u8]) -> Result<JwtVerifier, JwtKeyError> {
    let (n, e) = rsa_components(pkcs1).ok_or(JwtKeyError::Malformed("not an RSA public key"))?;
    let bits = bit_length(n);
    if !RSA_BITS.contains(&bits) {
        return Err(JwtKeyError::RsaSize { bits });
    }
    // The `rsa` crate's bounds on the exponent; an even one is no RSA key at all.
    let e_value = e.iter().try_fold(0u64, |acc, &b| {
        (acc < 1 << 56).then(|| (acc << 8) | u64::from(b))
    });
    if !matches!(e_value, Some(v) if (3..1 << 33).contains(&v) && v % 2 == 1) {
        return Err(JwtKeyError::Malformed("RSA exponent out of range"));
    }
    Ok(JwtVerifier::new(
        DecodingKey::from_rsa_der(pkcs1),
        Algorithm::RS256,
    ))
}

/// The first PEM block's label and decoded contents.
fn pem_block(pem: &[u8]) -> Result<(String, Vec<u8>), JwtKeyError> {
    use base64::Engine as _;
    let text = std::str::from_utf8(pem).map_err(|_| JwtKeyError::NotPem)?;
    let (_, after_begin) = text.split_once("-----BEGIN ").ok_or(JwtKeyError::NotPem)?;
    let (label, rest) = after_begin.split_once("-----").ok_or(JwtKeyError::NotPem)?;
    let end = format!("-----END {label}-----");
    let (body, _) = rest.split_once(&end).ok_or(JwtKeyError::NotPem)?;
    if body.contains(':') {
        // RFC 1421 headers ("Proc-Type: 4,ENCRYPTED") only come with encrypted private
        // keys.
        return Err(JwtKeyError::PrivateKey);
    }
    let b64: String = body.split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| JwtKeyError::Malformed("PEM body not base64"))?;
    Ok((label.to_owned(), der))
}

/// The object identifiers (DER contents) told apart in a `SubjectPublicKeyInfo`.
mod oid {
    /// rsaEncryption, 1.2.840.113549.1.1.1
    pub(super) const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    /// id-RSASSA-PSS, 1.2.840.113549.1.1.10
    pub(super) const RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
    /// id-ecPublicKey, 1.2.840.10045.2.1
    pub(super) const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// prime256v1 (P-256), 1.2.840.10045.3.1.7
    pub(super) const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// secp384r1 (P-384), 1.3.132.0.34
    pub(super) const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    /// secp521r1 (P-521), 1.3.132.0.35
    pub(super) const P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
    /// id-Ed25519, 1.3.101.112
    pub(super) const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
}

/// DER tags used below.
const SEQUENCE: u8 = 0x30;
const OBJECT_ID: u8 = 0x06;
const BIT_STRING: u8 = 0x03;
const INTEGER: u8 = 0x02;

/// The parts of a `SubjectPublicKeyInfo` (RFC 5280 §4.1) that decide the algorithm.
struct Spki<'a> {
    algorithm: &'a [u8],
    /// The named curve, for EC keys.
    curve: Option<&'a [u8]>,
    /// The key itself: PKCS#1 for RSA, the SEC1 point for EC.
    key: &'a [u8],
}

impl<'a> Spki<'a> {
    fn parse(der: &'a [u8]) -> Option<Self> {
        let (SEQUENCE, spki, []) = tlv(der)? else {
            return None;
        };
        let (SEQUENCE, algorithm_id, rest) = tlv(spki)? else {
            return None;
        };
        let (BIT_STRING, bits, []) = tlv(rest)? else {
            return None;
        };
        let (OBJECT_ID, algorithm, params) = tlv(algorithm_id)? else {
            return None;
        };
        let curve = match tlv(params) {
            Some((OBJECT_ID, curve, [])) => Some(curve),
            _ => None,
        };
        // A key is a whole number of bytes: no unused bits.
        let (0, key) = bits.split_first()? else {
            return None;
        };
        Some(Spki {
            algorithm,
            curve,
            key,
        })
    }
}

/// The modulus and exponent of a PKCS#1 `RSAPublicKey`, big-endian, without the sign
/// byte.
fn rsa_components(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (SEQUENCE, body, []) = tlv(der)? else {
        return None;
    };
    let (INTEGER, n, rest) = tlv(body)? else {
        return None;
    };
    let (INTEGER, e, []) = tlv(rest)? else {
        return None;
    };
    Some((strip_zeros(n), strip_zeros(e)))
}

fn strip_zeros(int: &[u8]) -> &[u8] {
    let start = int.iter().position(|&b| b != 0).unwrap_or(int.len());
    &int[start..]
}

/// The bits in a big-endian unsigned integer without leading zero bytes.
fn bit_length(int: &[u8]) -> usize {
    match int.first() {
        Some(&top) => (int.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    }
}

/// One DER element: its tag, contents, and what follows it. Only the definite lengths
/// DER allows; `None` on anything truncated.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 3 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{json, Value};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const RSA_PRIVATE: &[u8] = include_bytes!("testdata/rsa2048-private.pem");
    const RSA_PUBLIC: &[u8] = include_bytes!("testdata/rsa2048-public.pem");
    const RSA_PUBLIC_PKCS1: &[u8] = include_bytes!("testdata/rsa2048-public-pkcs1.pem");
    const RSA_1024_PUBLIC: &[u8] = include_bytes!("testdata/rsa1024-public.pem");

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
    }

    fn hs(claims: &Value) -> String {
        sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET), claims)
    }

    fn hs_verifier() -> JwtVerifier {
        JwtVerifier::hs256(SECRET).unwrap()
    }

    fn valid_claims() -> Value {
        json!({ "sub": "alice", "name": "Alice", "exp": now() + 300 })
    }

    fn invalid(result: Result<Claims, JwtError>) -> &'static str {
        match result {
            Err(JwtError::Invalid(reason)) => reason,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    /// An unsigned token: what an attacker sends hoping `alg` is trusted.
    fn unsigned(header: &Value, claims: &Value) -> String {
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        format!("{}.{}.", part(header), part(claims))
    }

    #[test]
    fn a_good_hs256_token_gives_its_claims() {
        let exp = now() + 300;
        let claims = hs_verifier()
            .verify(&hs(
                &json!({ "sub": "alice", "name": "Alice", "exp": exp, "iat": now() }),
            ))
            .unwrap();
        assert_eq!(
            claims,
            Claims {
                sub: "alice".to_owned(),
                name: Some("Alice".to_owned()),
                exp
            }
        );
        assert_eq!(hs_verifier().algorithm(), "HS256");
    }

    #[test]
    fn name_is_an_optional_string() {
        let v = hs_verifier();
        let exp = now() + 300;
        let no_name = v.verify(&hs(&json!({ "sub": "a", "exp": exp }))).unwrap();
        assert_eq!(no_name.name, None);
        let null_name = v.verify(&hs(&json!({ "sub": "a", "exp": exp, "name": null })));
        assert_eq!(null_name.unwrap().name, None);
        let number = v.verify(&hs(&json!({ "sub": "a", "exp": exp, "name": 7 })));
        assert_eq!(invalid(number), "claims missing or of the wrong type");
    }

    #[test]
    fn expiry_is_required_and_has_a_minute_of_leeway() {
        let v = hs_verifier();
        let at = |exp: u64| json!({ "sub": "a", "exp": exp });
        assert_eq!(v.verify(&hs(&at(now() - 120))), Err(JwtError::Expired));
        assert_eq!(v.verify(&hs(&at(now() - 75))), Err(JwtError::Expired));
        assert!(v.verify(&hs(&at(now() - 30))).is_ok(), "within the leeway");
        assert_eq!(
            invalid(v.verify(&hs(&json!({ "sub": "a" })))),
            "missing exp"
        );
        let text = json!({ "sub": "a", "exp": (now() + 300).to_string() });
        assert_eq!(
            invalid(v.verify(&hs(&text))),
            "claims missing or of the wrong type"
        );
        let null = json!({ "sub": "a", "exp": null });
        invalid(v.verify(&hs(&null)));
    }

    #[test]
    fn not_before_is_honoured_when_present() {
        let v = hs_verifier();
        let nbf = |nbf: u64| json!({ "sub": "a", "exp": now() + 600, "nbf": nbf });
        assert_eq!(
            invalid(v.verify(&hs(&nbf(now() + 120)))),
            "not valid yet (nbf)"
        );
        assert!(v.verify(&hs(&nbf(now() + 30))).is_ok(), "within the leeway");
        assert!(v.verify(&hs(&nbf(now() - 30))).is_ok());
        let text = json!({ "sub": "a", "exp": now() + 600, "nbf": "soon" });
        assert_eq!(invalid(v.verify(&hs(&text))), "exp or nbf not a number");
    }

    #[test]
    fn alg_none_is_refused() {
        let v = hs_verifier();
        for alg in ["none", "None", "NONE", ""] {
            let token = unsigned(&json!({ "alg": alg, "typ": "JWT" }), &valid_claims());
            invalid(v.verify(&token));
        }
        // No header `alg` at all.
        invalid(v.verify(&unsigned(&json!({ "typ": "JWT" }), &valid_claims())));
    }

    #[test]
    fn a_wrong_secret_or_tampered_claims_are_refused() {
        let v = hs_verifier();
        let other = EncodingKey::from_secret(b"another secret of 32 bytes long!");
        let token = sign(Algorithm::HS256, &other, &valid_claims());
        assert_eq!(invalid(v.verify(&token)), "bad signature");

        // Someone else's claims under a valid signature.
        let good = hs(&valid_claims());
        let mallory = hs(&json!({ "sub": "mallory", "exp": now() + 300 }));
        let (head, rest) = good.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let payload = mallory.split('.').nth(1).unwrap();
        assert_eq!(
            invalid(v.verify(&format!("{head}.{payload}.{sig}"))),
            "bad signature"
        );

        // A forged expired token says "bad signature", not "expired".
        let stale = sign(Algorithm::HS256, &other, &json!({ "sub": "a", "exp": 1 }));
        assert_eq!(invalid(v.verify(&stale)), "bad signature");
    }

    #[test]
    fn only_the_keys_one_algorithm_is_accepted() {
        let hs384 = sign(
            Algorithm::HS384,
            &EncodingKey::from_secret(SECRET),
            &valid_claims(),
        );
        assert_eq!(
            invalid(hs_verifier().verify(&hs384)),
            "algorithm not the key's"
        );
    }

    #[test]
    fn sub_rules() {
        let v = hs_verifier();
        let sub = |sub: &str| hs(&json!({ "sub": sub, "exp": now() + 300 }));
        assert_eq!(invalid(v.verify(&sub(""))), "empty sub");
        assert!(v.verify(&sub(&"a".repeat(128))).is_ok());
        assert_eq!(
            invalid(v.verify(&sub(&"a".repeat(129)))),
            "sub longer than 128 bytes"
        );
        assert_eq!(invalid(v.verify(&sub("a\nb"))), "control character in sub");
        assert_eq!(
            invalid(v.verify(&sub("a\u{9b}b"))),
            "control character in sub"
        );
        assert!(v.verify(&sub("auth0|5f7c8ec7c33c6c004bbafe82")).is_ok());
        let missing = hs(&json!({ "exp": now() + 300 }));
        assert_eq!(
            invalid(v.verify(&missing)),
            "claims missing or of the wrong type"
        );
    }

    #[test]
    fn an_audience_is_refused() {
        let token = hs(&json!({ "sub": "a", "exp": now() + 300, "aud": "other-service" }));
        assert_eq!(
            invalid(hs_verifier().verify(&token)),
            "has an aud claim, which is not accepted"
        );
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let v = hs_verifier();
        for token in ["", ".", "..", "a.b.c", "hk_abc", "eyJ.eyJ.", "a.b.c.d"] {
            invalid(v.verify(token));
        }
        let long = format!("{}.{}.x", "a".repeat(5000), "b".repeat(5000));
        assert_eq!(invalid(v.verify(&long)), "longer than 8 KiB");
    }

    #[test]
    fn short_secrets_are_refused() {
        let err = JwtVerifier::hs256(&SECRET[..31]).unwrap_err();
        assert!(matches!(err, JwtKeyError::ShortSecret { len: 31 }));
        assert!(err.to_string().contains("at least 32"), "{err}");
        assert!(JwtVerifier::hs256(b"").is_err());
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let shown = format!("{:?}", hs_verifier());
        assert!(
            shown.contains("HS256") && !shown.contains("0123456789"),
            "{shown}"
        );
    }

    #[test]
    fn rs256_with_an_rsa_public_key() {
        let private = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
        let token = sign(Algorithm::RS256, &private, &valid_claims());
        for pem in [RSA_PUBLIC, RSA_PUBLIC_PKCS1] {
            let v = JwtVerifier::from_public_pem(pem).unwrap();
            assert_eq!(v.algorithm(), "RS256");
            assert_eq!(v.verify(&token).unwrap().sub, "alice");
            let rs384 = sign(Algorithm::RS384, &private, &valid_claims());
            assert_eq!(invalid(v.verify(&rs384)), "algorithm not the key's");
            let ps256 = sign(Algorithm::PS256, &private, &valid_claims());
            assert_eq!(invalid(v.verify(&ps256)), "algorithm not the key's");
        }
    }

    #[test]
    fn an_hs256_token_keyed_with_the_rsa_public_key_is_refused() {
        let v = JwtVerifier::from_public_pem(RSA_PUBLIC).unwrap();
        for secret in [RSA_PUBLIC, RSA_PUBLIC_PKCS1] {
            let forged = sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(secret),
                &valid_claims(),
            );
            assert_eq!(invalid(v.verify(&forged)), "algorithm not the key's");
        }
        invalid(v.verify(&hs(&valid_claims())));
    }

    #[test]
    fn es256_with_an_ec_p256_public_key() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let private = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        let v = JwtVerifier::from_public_pem(pair.public_key_pem().as_bytes()).unwrap();
        assert_eq!(v.algorithm(), "ES256");
        let token = sign(Algorithm::ES256, &private, &valid_claims());
        assert_eq!(v.verify(&token).unwrap().sub, "alice");

        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let other = EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap();
        let forged = sign(Algorithm::ES256, &other, &valid_claims());
        assert_eq!(invalid(v.verify(&forged)), "bad signature");

        let key_as_secret = EncodingKey::from_secret(pair.public_key_pem().as_bytes());
        let confused = sign(Algorithm::HS256, &key_as_secret, &valid_claims());
        assert_eq!(invalid(v.verify(&confused)), "algorithm not the key's");
        let rs = sign(
            Algorithm::RS256,
            &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
            &valid_claims(),
        );
        assert_eq!(invalid(v.verify(&rs)), "algorithm not the key's");
        let rsa = JwtVerifier::from_public_pem(RSA_PUBLIC).unwrap();
        assert_eq!(invalid(rsa.verify(&token)), "algorithm not the key's");
    }

    #[test]
    fn unsuitable_keys_are_refused_with_what_is_accepted() {
        let from = |pem: &[u8]| JwtVerifier::from_public_pem(pem).unwrap_err();
        let generate = |alg| rcgen::KeyPair::generate_for(alg).unwrap();

        assert!(matches!(from(RSA_PRIVATE), JwtKeyError::PrivateKey));
        let ec = generate(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert!(matches!(
            from(ec.serialize_pem().as_bytes()),
            JwtKeyError::PrivateKey
        ));
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        assert!(matches!(
            from(cert.cert.pem().as_bytes()),
            JwtKeyError::Certificate
        ));

        let p384 = generate(&rcgen::PKCS_ECDSA_P384_SHA384).public_key_pem();
        let err = from(p384.as_bytes());
        assert!(matches!(err, JwtKeyError::Unsupported("an EC P-384 key")));
        assert!(err.to_string().contains("EC P-256"), "{err}");
        let ed = generate(&rcgen::PKCS_ED25519).public_key_pem();
        assert!(matches!(
            from(ed.as_bytes()),
            JwtKeyError::Unsupported("an Ed25519 key")
        ));

        let small = from(RSA_1024_PUBLIC);
        assert!(
            matches!(small, JwtKeyError::RsaSize { bits: 1024 }),
            "{small}"
        );
        assert!(small.to_string().contains("2048 to 4096"), "{small}");

        assert!(matches!(from(b"hello"), JwtKeyError::NotPem));
        assert!(matches!(from(b"\xff\xfe"), JwtKeyError::NotPem));
        let unterminated = "-----BEGIN PUBLIC KEY-----\nMFkw\n";
        assert!(matches!(from(unterminated.as_bytes()), JwtKeyError::NotPem));
        let other = "-----BEGIN X509 CRL-----\nMFkw\n-----END X509 CRL-----\n";
        assert!(matches!(from(other.as_bytes()), JwtKeyError::UnknownPem(l) if l == "X509 CRL"));
        let not_b64 = "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            from(not_b64.as_bytes()),
            JwtKeyError::Malformed(_)
        ));

        // Every truncation of a good key is refused, none panics.
        let good = String::from_utf8(RSA_PUBLIC.to_vec()).unwrap();
        let (_, der) = pem_block(RSA_PUBLIC).unwrap();
        for cut in 0..der.len() {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&der[..cut]);
            let pem = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
            assert!(
                JwtVerifier::from_public_pem(pem.as_bytes()).is_err(),
                "{cut}"
            );
        }
        assert!(JwtVerifier::from_public_pem(good.as_bytes()).is_ok());

        // A point that is not on P-256: the key is refused now, not at the first token.
        let mut point = pem_block(ec.public_key_pem().as_bytes()).unwrap().1;
        let last = point.len() - 1;
        point[last] ^= 1;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&point);
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
        assert!(matches!(
            from(pem.as_bytes()),
            JwtKeyError::Malformed("not a valid P-256 point")
        ));
    }
}
