//! Signing in, as a service: built-in accounts (register, log in, log out, made on the
//! command line) and the tokens `hello {token}` carries, whether the server's own
//! account tokens or the host application's JWTs. The HTTP routes (`http::auth`), the
//! session's `hello` and `huddle user add` all go through it, so each rule is written
//! once: what an account name is, what a password must be, that an unknown user and a
//! wrong password answer alike, how attempts are throttled, and who a token names.
//!
//! The proofs themselves (argon2id, token hashing, JWT checks, the throttle) are in
//! [`crate::auth`]; who exists is the [`Directory`]'s.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::auth::jwt::{JwtError, JwtVerifier};
use crate::auth::password::{self, WeakPassword};
use crate::auth::throttle::LoginThrottle;
use crate::auth::tokens;
use crate::clock::now_ms;
use crate::directory::{Directory, UserKind};
use crate::store::StoreError;

/// Most password hashes computed at once: each takes tens of milliseconds of a core and
/// 19 MiB, so without a bound a burst of logins would take every core and much memory.
/// Fewer on a machine with fewer cores: hashes time-sliced on one core only evict each
/// other's memory from its caches (measured: 63 logins/s one at a time, 51 four at a
/// time, on one core).
const HASHING_MAX: usize = 4;

/// Who a token signs in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignIn {
    pub(crate) user: String,
    pub(crate) nick: String,
    pub(crate) kind: UserKind,
    /// The account token's hash (its sign-out closes the connection).
    pub(crate) token_hash: Option<String>,
    /// When a host token expires, in seconds since the epoch.
    pub(crate) expires: Option<u64>,
}

/// Why an account request was refused; each maps to one answer of the contract.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccountError {
    #[error("that name is taken")]
    UserExists,
    #[error("an account name is 1 to 32 of a-z, 0-9, '-', '_' and '.'")]
    InvalidUser,
    #[error("{0}")]
    WeakPassword(#[from] WeakPassword),
    #[error("this server does not let people register; ask its operator for an account")]
    RegistrationClosed,
    /// The same for an unknown user and a wrong password.
    #[error("wrong user name or password")]
    InvalidCredentials,
    #[error("too many failed attempts; try again in {retry_after} s")]
    Throttled { retry_after: u64 },
    #[error("storage failed")]
    Store(#[from] StoreError),
    #[error("password hashing failed")]
    Hashing,
}

/// Why a token does not sign in. The client is only ever told `invalid_token`; the
/// reason is for the log.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("not an account token, and this server accepts no host tokens")]
    Unrecognised,
    #[error("unknown or signed-out account token")]
    UnknownToken,
    #[error("host token refused")]
    Jwt(#[from] JwtError),
    #[error("the host token's name is not a valid nick")]
    BadName,
    /// The host token names a user who signs in another way (an account, a guest):
    /// the host application cannot speak for them.
    #[error("the host token's subject is another kind of user here")]
    NotHostUser,
    #[error("storage failed")]
    Store(#[from] StoreError),
}

/// Whether `name` is a valid account name (it is also the account's nick).
pub(crate) fn is_account_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

/// Sign-in; see the module docs. Cheap to share (`Arc`).
pub(crate) struct Accounts {
    directory: Arc<dyn Directory>,
    jwt: Option<JwtVerifier>,
    throttle: LoginThrottle,
    open: bool,
    hashing: Semaphore,
}

impl Accounts {
    /// Accounts kept in `directory`; `open`: anyone may register; `jwt`: the host
    /// application's key, if it signs people in.
    pub(crate) fn new(directory: Arc<dyn Directory>, jwt: Option<JwtVerifier>, open: bool) -> Self {
        Accounts {
            directory,
            jwt,
            throttle: LoginThrottle::new(),
            open,
            hashing: Semaphore::new(
                std::thread::available_parallelism()
                    .map_or(1, std::num::NonZeroUsize::get)
                    .min(HASHING_MAX),
            ),
        }
    }

    /// Runs `f` (a password hash or check) on the blocking pool, a few at a time.
    async fn hash_work<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AccountError> {
        let _slot = self
            .hashing
            .acquire()
            .await
            .map_err(|_| AccountError::Hashing)?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| AccountError::Hashing)
    }

    /// `POST /api/auth/register`: a new account, signed in.
    pub(crate) async fn register(&self, user: &str, pass: &str) -> Result<String, AccountError> {
        if !self.open {
            return Err(AccountError::RegistrationClosed);
        }
        self.create(user, pass).await?;
        self.issue(user).await
    }

    /// Creates account `user` (also `huddle user add`, whatever `--registration` says).
    pub(crate) async fn create(&self, user: &str, pass: &str) -> Result<(), AccountError> {
        if !is_account_name(user) {
            return Err(AccountError::InvalidUser);
        }
        password::check_strength(pass)?;
        let pass = pass.to_owned();
        let hash = self
            .hash_work(move || password::hash(&pass))
            .await?
            .map_err(|_| AccountError::Hashing)?;
        let key = common::validate::nick_key(user);
        if self
            .directory
            .create_account(user, &key, &hash, now_ms())
            .await?
        {
            Ok(())
        } else {
            Err(AccountError::UserExists)
        }
    }

    /// `POST /api/auth/login`: a fresh token for `user`, if `pass` is theirs.
    pub(crate) async fn login(
        &self,
        from: IpAddr,
        user: &str,
        pass: &str,
    ) -> Result<String, AccountError> {
        if let Err(t) = self.throttle.check(from, user) {
            return Err(AccountError::Throttled {
                retry_after: t.retry_after_secs,
            });
        }
        let stored = if is_account_name(user) {
            self.directory.password_hash(user).await?
        } else {
            None
        };
        let pass = pass.to_owned();
        let matches = self
            .hash_work(move || match stored {
                Some(phc) => password::verify(&pass, &phc),
                None => {
                    // As long as a real check, so timing tells no one who exists.
                    password::verify_dummy(&pass);
                    false
                }
            })
            .await?;
        if !matches {
            self.throttle.failed(from, user);
            return Err(AccountError::InvalidCredentials);
        }
        self.throttle.succeeded(from, user);
        self.issue(user).await
    }

    /// A new token for `user`, stored as its hash only.
    async fn issue(&self, user: &str) -> Result<String, AccountError> {
        let token = tokens::new_token();
        self.directory
            .add_token(&tokens::hash(&token), user, now_ms())
            .await?;
        Ok(token)
    }

    /// `POST /api/auth/logout`: the token stops signing in. The user and the token's
    /// hash, so the caller can close the connections signed in with it.
    pub(crate) async fn logout(&self, token: &str) -> Result<Option<(String, String)>, StoreError> {
        if !tokens::is_account_token(token) {
            return Ok(None);
        }
        let hash = tokens::hash(token);
        Ok(self
            .directory
            .revoke_token(&hash)
            .await?
            .map(|user| (user, hash)))
    }

    /// Who `token` (an account token or a host JWT) signs in as.
    pub(crate) async fn verify(&self, token: &str) -> Result<SignIn, TokenError> {
        if tokens::is_account_token(token) {
            let hash = tokens::hash(token);
            let user = self
                .directory
                .token_user(&hash)
                .await?
                .ok_or(TokenError::UnknownToken)?;
            return Ok(SignIn {
                nick: user.clone(),
                user,
                kind: UserKind::Account,
                token_hash: Some(hash),
                expires: None,
            });
        }
        let jwt = self.jwt.as_ref().ok_or(TokenError::Unrecognised)?;
        let claims = jwt.verify(token)?;
        let name = claims.name.unwrap_or_else(|| claims.sub.clone());
        let limits = common::Limits::default();
        let nick = common::validate::nick(&name, &limits)
            .map_err(|_| TokenError::BadName)?
            .to_owned();
        // One id, one person: with accounts and host tokens both enabled, an account
        // named like a host user (or the other way round) must not become them.
        if let Some(known) = self.directory.user(&claims.sub).await? {
            if known.kind != UserKind::Host {
                return Err(TokenError::NotHostUser);
            }
        }
        Ok(SignIn {
            user: claims.sub,
            nick,
            kind: UserKind::Host,
            token_hash: None,
            expires: Some(claims.exp),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        for good in ["a", "bob", "x.y-z_1", &"a".repeat(32)] {
            assert!(is_account_name(good), "{good}");
        }
        for bad in ["", "Bob", "a b", "guest:1", "é", &"a".repeat(33)] {
            assert!(!is_account_name(bad), "{bad}");
        }
    }
}
