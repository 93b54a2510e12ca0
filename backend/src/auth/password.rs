//! Password hashes and the password rules.
//!
//! Hashes are argon2id PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`):
//! the string carries its own parameters, so raising the cost later still verifies the
//! hashes stored before.

use std::sync::LazyLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

/// The fewest characters a new password may have.
pub(crate) const MIN_CHARS: usize = 8;
/// The most characters a new password may have: enough for any passphrase, and it keeps
/// what a client can make the server hash bounded.
pub(crate) const MAX_CHARS: usize = 256;

/// Why a password could not be hashed. Only a failing OS random source can cause it in
/// practice.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PasswordError {
    #[error("hashing the password failed: {0}")]
    Hash(#[source] argon2::password_hash::Error),
}

/// Why a new password is refused; the message is meant for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WeakPassword {
    #[error("the password must have at least {MIN_CHARS} characters")]
    TooShort,
    #[error("the password must have at most {MAX_CHARS} characters")]
    TooLong,
    #[error("the password must not be one character repeated")]
    OneCharacter,
}

/// Hashes `password` with argon2id and the argon2 crate's default cost (argon2 0.6:
/// 19 456 KiB of memory, 2 iterations, 1 lane, the OWASP minimum), under a fresh random
/// 16-byte salt from the OS (`getrandom`). Returns the PHC string to store.
///
/// Costs tens of milliseconds of CPU and 19 MiB: run it on a blocking thread.
pub(crate) fn hash(password: &str) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|phc| phc.to_string())
        .map_err(PasswordError::Hash)
}

/// Whether `password` matches the stored `phc` string. A malformed or unsupported
/// `phc` is a mismatch, never a panic: the stored value is data, not code.
///
/// The cost comes from the parameters in `phc`, not from this build's defaults.
pub(crate) fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash made with the same default cost as [`hash`], so verifying against it takes as
/// long as verifying a real account's password. Built on first use from a fixed salt
/// (it is never stored, so the salt need not be secret or unique); the server may call
/// [`verify_dummy`] once at start-up so the first unknown name is not slower either.
static DUMMY: LazyLock<PasswordHash> = LazyLock::new(|| {
    Argon2::default()
        .hash_password_with_salt(b"huddle: no such account", b"huddle-dummy-salt")
        // Default parameters and a 17-byte salt are within every argon2 limit, and no
        // randomness is involved: this cannot fail.
        .expect("argon2 with default parameters and a fixed salt")
});

/// Spends the time of one [`verify`] against a fixed hash, and discards the answer.
/// Sign-in calls it when the account does not exist, so "no such user" and "wrong
/// password" cannot be told apart by timing.
pub(crate) fn verify_dummy(password: &str) {
    let matched = Argon2::default()
        .verify_password(password.as_bytes(), &*DUMMY)
        .is_ok();
    // Keep the verification from being optimised away.
    std::hint::black_box(matched);
}

/// Whether `password` is acceptable for a new account or a password change: between
/// [`MIN_CHARS`] and [`MAX_CHARS`] characters (Unicode scalar values), and not a single
/// character repeated. Deliberately no composition rules (NIST SP 800-63B): length is
/// what makes a password hard to guess.
pub(crate) fn check_strength(password: &str) -> Result<(), WeakPassword> {
    let mut chars = password.chars();
    let count = password.chars().count();
    if count < MIN_CHARS {
        return Err(WeakPassword::TooShort);
    }
    if count > MAX_CHARS {
        return Err(WeakPassword::TooLong);
    }
    if let Some(first) = chars.next() {
        if chars.all(|c| c == first) {
            return Err(WeakPassword::OneCharacter);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn hash_then_verify_round_trips() {
        let phc = hash("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse battery staple", &phc));
        assert!(!verify("correct horse battery stapler", &phc));
        assert!(!verify("", &phc));
    }

    #[test]
    fn the_same_password_hashes_differently_each_time() {
        let (a, b) = (
            hash("same password").unwrap(),
            hash("same password").unwrap(),
        );
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify("same password", &a) && verify("same password", &b));
    }

    #[test]
    fn a_malformed_hash_is_a_mismatch() {
        let phc = hash("password1").unwrap();
        for bad in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$bcrypt$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            &phc[..phc.len() - 5],
            &phc.replace("t=2", "t=0"),
            &phc.replace("m=19456", "m=1"),
        ] {
            assert!(!verify("password1", bad), "{bad:?}");
        }
    }

    #[test]
    fn dummy_verify_takes_about_as_long_as_a_real_one() {
        let phc = hash("the real password").unwrap();
        verify_dummy("warm up the lazy hash");
        // Best of three of each, so one scheduling hiccup does not decide the test.
        let time = |f: &dyn Fn()| {
            (0..3)
                .map(|_| {
                    let start = Instant::now();
                    f();
                    start.elapsed()
                })
                .min()
                .unwrap_or(Duration::ZERO)
        };
        let real = time(&|| assert!(!verify("a wrong guess", &phc)));
        let dummy = time(&|| verify_dummy("a wrong guess"));
        let ratio = dummy.as_secs_f64() / real.as_secs_f64();
        assert!(
            (0.5..2.0).contains(&ratio),
            "real {real:?}, dummy {dummy:?}"
        );
    }

    #[test]
    fn strength_rules() {
        assert_eq!(check_strength(""), Err(WeakPassword::TooShort));
        assert_eq!(check_strength("seven77"), Err(WeakPassword::TooShort));
        assert_eq!(check_strength("eight888"), Ok(()));
        // Characters, not bytes: four 3-byte characters are four.
        assert_eq!(check_strength("€€€x"), Err(WeakPassword::TooShort));
        assert_eq!(check_strength("ab€€€€€€"), Ok(()));
        assert_eq!(check_strength(&"ab".repeat(128)), Ok(()));
        assert_eq!(
            check_strength(&"ab".repeat(129)),
            Err(WeakPassword::TooLong)
        );
        assert_eq!(check_strength("aaaaaaaa"), Err(WeakPassword::OneCharacter));
        assert_eq!(check_strength("€€€€€€€€€"), Err(WeakPassword::OneCharacter));
        assert_eq!(check_strength("aaaaaaab"), Ok(()));
        assert!(WeakPassword::TooShort
            .to_string()
            .contains("at least 8 characters"));
        assert!(WeakPassword::TooLong
            .to_string()
            .contains("at most 256 characters"));
    }
}
