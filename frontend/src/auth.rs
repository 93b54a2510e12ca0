//! Signing in as a person rather than a guest: the accounts API over HTTP
//! (`/api/auth/login`, `/register`, `/logout`), the token kept between visits, and a
//! host application's token handed over in the URL fragment (`#token=…`).
//!
//! The rules (account names, which answer means what, reading the fragment) are plain
//! Rust and unit-tested; the browser calls below them are thin.

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

use crate::{http, prefs};

/// Longest account name (the server's rule: 1–32 of `a-z 0-9 - _ .`).
pub(crate) const USER_MAX_CHARS: usize = 32;

const TOKEN_KEY: &str = "huddle.token";
const TOKEN_KIND_KEY: &str = "huddle.token_kind";

/// Where a token came from, which decides what signing out does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// Issued by this server's accounts: signing out revokes it on the server.
    Account,
    /// The host application's (a JWT in the URL fragment): it is the host's to revoke,
    /// so signing out only forgets it here.
    Host,
}

impl TokenKind {
    const fn as_str(self) -> &'static str {
        match self {
            TokenKind::Account => "account",
            TokenKind::Host => "host",
        }
    }
}

/// A token and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignIn {
    pub(crate) token: String,
    pub(crate) kind: TokenKind,
}

/// Log in, or create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Login,
    Register,
}

impl Mode {
    const fn path(self) -> &'static str {
        match self {
            Mode::Login => "/api/auth/login",
            Mode::Register => "/api/auth/register",
        }
    }
}

/// Why signing in or registering did not work, each with a sentence for the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthError {
    InvalidCredentials,
    UserExists,
    InvalidUser,
    WeakPassword,
    RegistrationClosed,
    RateLimited,
    /// No answer (offline, server down) or one we cannot read.
    Network,
    /// An answer this app does not know, by HTTP status.
    Other(u16),
}

impl AuthError {
    /// What the server's answer means: by its `error` code when it has one we know,
    /// otherwise by the HTTP status.
    pub(crate) fn from_answer(status: u16, body: &str) -> AuthError {
        #[derive(Deserialize)]
        struct Body {
            error: String,
        }
        let code = serde_json::from_str::<Body>(body).ok().map(|b| b.error);
        match (code.as_deref(), status) {
            (Some("invalid_credentials"), _) | (None, 401) => AuthError::InvalidCredentials,
            (Some("user_exists"), _) | (None, 409) => AuthError::UserExists,
            (Some("invalid_user"), _) => AuthError::InvalidUser,
            (Some("weak_password"), _) => AuthError::WeakPassword,
            (Some("registration_closed"), _) | (None, 403) => AuthError::RegistrationClosed,
            (Some("rate_limited"), _) | (None, 429) => AuthError::RateLimited,
            _ => AuthError::Other(status),
        }
    }

    /// The sentence shown under the form.
    pub(crate) fn message(&self) -> String {
        match self {
            AuthError::InvalidCredentials => {
                "That user name and password do not match an account.".to_owned()
            }
            AuthError::UserExists => {
                "That user name is taken: pick another one, or log in.".to_owned()
            }
            AuthError::InvalidUser => {
                "User names are 1 to 32 of a–z, 0–9, “-”, “_” and “.”.".to_owned()
            }
            AuthError::WeakPassword => {
                "That password is too weak: make it longer and harder to guess.".to_owned()
            }
            AuthError::RegistrationClosed => {
                "This server does not take new accounts: ask its operator for one.".to_owned()
            }
            AuthError::RateLimited => {
                "Too many attempts: wait a minute, then try again.".to_owned()
            }
            AuthError::Network => {
                "The server could not be reached: check your connection and try again.".to_owned()
            }
            AuthError::Other(status) => {
                format!("The server could not sign you in (HTTP {status}): try again later.")
            }
        }
    }
}

/// Checks an account name before it is sent: trimmed, letters lowercased (names are
/// lowercase, so "Alice" means "alice"), then 1–32 of `a-z 0-9 - _ .`.
pub(crate) fn validate_user(raw: &str) -> Result<String, String> {
    let user = raw.trim().to_ascii_lowercase();
    if user.is_empty() {
        return Err("Enter a user name.".to_owned());
    }
    if user.chars().count() > USER_MAX_CHARS {
        return Err(format!(
            "User names are at most {USER_MAX_CHARS} characters."
        ));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c);
    if let Some(bad) = user.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "“{bad}” cannot be in a user name: use a–z, 0–9, “-”, “_” and “.”."
        ));
    }
    Ok(user)
}

/// Takes a `token=…` parameter out of a URL fragment (`#token=abc`, or next to the
/// room route: `#/r/dev&token=abc`). Returns the token, percent-decoded, and the
/// fragment without it (`""` when nothing is left), or `None` when there is none.
pub(crate) fn split_fragment_token(hash: &str) -> Option<(String, String)> {
    let body = hash.strip_prefix('#').unwrap_or(hash);
    let mut token = None;
    let mut rest = Vec::new();
    for part in body.split('&') {
        match part.strip_prefix("token=") {
            Some(raw) if token.is_none() => token = Some(crate::route::percent_decode(raw)?),
            _ if part.is_empty() => {}
            _ => rest.push(part),
        }
    }
    let token = token.filter(|t| !t.is_empty())?;
    let rest = if rest.is_empty() {
        String::new()
    } else {
        format!("#{}", rest.join("&"))
    };
    Some((token, rest))
}

/// A host application's token in the address bar: taken, remembered, and removed
/// from the address (with `replaceState`, so no history entry) so it is not
/// bookmarked, shared or left in the history.
pub(crate) fn take_fragment_token() -> Option<SignIn> {
    let window = web_sys::window()?;
    let location = window.location();
    let (token, rest) = split_fragment_token(&location.hash().ok()?)?;
    let path = location.pathname().unwrap_or_default();
    let search = location.search().unwrap_or_default();
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(
            &JsValue::NULL,
            "",
            Some(&format!("{path}{search}{rest}")),
        );
    }
    let sign_in = SignIn {
        token,
        kind: TokenKind::Host,
    };
    save_token(&sign_in);
    Some(sign_in)
}

/// The token from an earlier visit.
pub(crate) fn saved_token() -> Option<SignIn> {
    let storage = prefs::storage()?;
    let token = storage.get_item(TOKEN_KEY).ok().flatten()?;
    let kind = match storage.get_item(TOKEN_KIND_KEY).ok().flatten().as_deref() {
        Some("host") => TokenKind::Host,
        _ => TokenKind::Account,
    };
    Some(SignIn { token, kind })
}

/// Remembers a token, so a reload (and the person's other tabs) sign in with it.
pub(crate) fn save_token(sign_in: &SignIn) {
    if let Some(storage) = prefs::storage() {
        let _ = storage.set_item(TOKEN_KEY, &sign_in.token);
        let _ = storage.set_item(TOKEN_KIND_KEY, sign_in.kind.as_str());
    }
}

/// Forgets the token (signed out, or the server no longer takes it).
pub(crate) fn forget_token() {
    if let Some(storage) = prefs::storage() {
        let _ = storage.remove_item(TOKEN_KEY);
        let _ = storage.remove_item(TOKEN_KIND_KEY);
    }
}

#[derive(Serialize)]
struct Credentials<'a> {
    user: &'a str,
    password: &'a str,
}

#[derive(Deserialize)]
struct Issued {
    token: String,
}

/// Logs in or registers; the account's token on success.
pub(crate) async fn sign_in(mode: Mode, user: &str, password: &str) -> Result<String, AuthError> {
    let body =
        serde_json::to_string(&Credentials { user, password }).map_err(|_| AuthError::Network)?;
    let (status, text) = http::post(mode.path(), Some(&body), &[])
        .await
        .map_err(|_| AuthError::Network)?;
    if !(200..300).contains(&status) {
        return Err(AuthError::from_answer(status, &text));
    }
    serde_json::from_str::<Issued>(&text)
        .map(|i| i.token)
        .map_err(|_| AuthError::Other(status))
}

/// Revokes an account token on the server (its other connections close with 4003).
/// Failing is not the person's problem: the token is forgotten here either way.
pub(crate) async fn logout(token: &str) {
    let bearer = format!("Bearer {token}");
    if let Err(err) = http::post("/api/auth/logout", None, &[("Authorization", &bearer)]).await {
        leptos::logging::warn!("logout failed: {err:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_are_checked_before_sending() {
        assert_eq!(validate_user("  Alice ").as_deref(), Ok("alice"));
        assert_eq!(validate_user("a.b-c_9").as_deref(), Ok("a.b-c_9"));
        assert!(validate_user("").is_err());
        assert!(validate_user("   ").is_err());
        assert!(validate_user("al ice").is_err());
        assert!(validate_user("zoë").is_err());
        assert!(validate_user("a@b").is_err());
        assert!(validate_user(&"a".repeat(32)).is_ok());
        assert!(validate_user(&"a".repeat(33)).is_err());
    }

    #[test]
    fn answers_become_sentences() {
        let cases = [
            (
                401,
                r#"{"error":"invalid_credentials"}"#,
                AuthError::InvalidCredentials,
            ),
            (409, r#"{"error":"user_exists"}"#, AuthError::UserExists),
            (422, r#"{"error":"invalid_user"}"#, AuthError::InvalidUser),
            (422, r#"{"error":"weak_password"}"#, AuthError::WeakPassword),
            (
                403,
                r#"{"error":"registration_closed"}"#,
                AuthError::RegistrationClosed,
            ),
            (429, r#"{"error":"rate_limited"}"#, AuthError::RateLimited),
            // A proxy's page instead of JSON: the status decides.
            (
                429,
                "<html>Too Many Requests</html>",
                AuthError::RateLimited,
            ),
            (401, "", AuthError::InvalidCredentials),
            (502, "Bad Gateway", AuthError::Other(502)),
            (422, "{}", AuthError::Other(422)),
        ];
        for (status, body, want) in cases {
            let got = AuthError::from_answer(status, body);
            assert_eq!(got, want, "{status} {body}");
            assert!(got.message().ends_with('.'), "{}", got.message());
        }
        assert!(AuthError::Other(502).message().contains("502"));
    }

    #[test]
    fn a_token_is_taken_from_the_fragment_and_the_room_route_kept() {
        assert_eq!(
            split_fragment_token("#token=abc.def"),
            Some(("abc.def".to_owned(), String::new()))
        );
        assert_eq!(
            split_fragment_token("#/r/dev&token=abc"),
            Some(("abc".to_owned(), "#/r/dev".to_owned()))
        );
        assert_eq!(
            split_fragment_token("#token=a%2Bb&/r/dev"),
            Some(("a+b".to_owned(), "#/r/dev".to_owned()))
        );
        assert_eq!(split_fragment_token("#/r/dev"), None);
        assert_eq!(split_fragment_token(""), None);
        assert_eq!(split_fragment_token("#token="), None);
        assert_eq!(split_fragment_token("#token=%zz"), None);
        // A room named like the parameter is not a token.
        assert_eq!(split_fragment_token("#/r/token=x"), None);
    }
}
