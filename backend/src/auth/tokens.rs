//! Account tokens: the bearer secrets `/api/auth/login` hands out.
//!
//! A token is `hk_` and 43 alphanumeric characters from the thread's CSPRNG (ChaCha,
//! seeded from the OS): 43 × log2(62) ≈ 256 bits. Only its SHA-256 is stored, so a
//! leaked database signs nobody in; a plain hash suffices (no salt, no argon2) because
//! the token is already full-entropy and cannot be guessed from a dictionary.

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every account token starts with: tells it apart from a JWT or a session token
/// at a glance, and lets secret scanners recognise one in a leak.
pub(crate) const PREFIX: &str = "hk_";
/// The random characters after the prefix.
const RANDOM_CHARS: usize = 43;
/// The whole token's length in bytes (all ASCII).
pub(crate) const TOKEN_LEN: usize = PREFIX.len() + RANDOM_CHARS;

/// A fresh account token: give it to the user once, store only [`hash`] of it.
pub(crate) fn new_token() -> String {
    let mut token = String::with_capacity(TOKEN_LEN);
    token.push_str(PREFIX);
    Alphanumeric.append_string(&mut rand::rng(), &mut token, RANDOM_CHARS);
    token
}

/// The hex SHA-256 of `token`: what is stored and looked up.
pub(crate) fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `s` has the shape of an account token (prefix, length, alphanumeric). A JWT
/// has two dots and a session token no `hk_`, so neither passes; it says nothing about
/// whether the token exists.
pub(crate) fn is_account_token(s: &str) -> bool {
    s.len() == TOKEN_LEN
        && s.starts_with(PREFIX)
        && s.as_bytes()[PREFIX.len()..]
            .iter()
            .all(u8::is_ascii_alphanumeric)
}

/// Whether `a` and `b` are equal, in time that depends on their lengths only, not on
/// where they first differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tokens_have_the_documented_shape() {
        for _ in 0..100 {
            let token = new_token();
            assert_eq!(token.len(), 46);
            assert!(token.starts_with("hk_"));
            assert!(is_account_token(&token), "{token}");
        }
    }

    #[test]
    fn tokens_do_not_repeat() {
        let tokens: HashSet<String> = (0..1000).map(|_| new_token()).collect();
        assert_eq!(tokens.len(), 1000);
    }

    #[test]
    fn the_hash_is_stable_hex_sha256() {
        // The SHA-256 test vector of "abc" (FIPS 180-2).
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let token = new_token();
        assert_eq!(hash(&token), hash(&token));
        assert_ne!(hash(&token), hash(&new_token()));
        assert_eq!(hash(&token).len(), 64);
    }

    #[test]
    fn only_account_tokens_pass_the_shape_check() {
        let token = new_token();
        assert!(is_account_token(&token));
        assert!(!is_account_token(&token[..45]), "too short");
        assert!(!is_account_token(&format!("{token}a")), "too long");
        assert!(!is_account_token(&token.replacen("hk_", "hx_", 1)));
        assert!(
            !is_account_token(&format!("hk_{}-", &token[3..45])),
            "charset"
        );
        assert!(
            !is_account_token(&format!("hk_{}é", &token[3..44])),
            "non-ASCII"
        );
        assert!(!is_account_token(""));
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlc2lnbmF0dXJl";
        assert!(!is_account_token(jwt));
    }

    #[test]
    fn same_compares_whole_strings() {
        assert!(same("hk_abc", "hk_abc"));
        assert!(same("", ""));
        assert!(!same("hk_abc", "hk_abd"));
        assert!(!same("hk_abc", "hk_ab"));
        assert!(!same("", "x"));
    }
}
