//! The notifications API, so an application, a deploy script or a CI job can tell a room
//! or a person something without speaking WebSocket: `rooms` (`POST
//! /api/rooms/{room}/notifications`, stored in the room's log with `persist`), `users`
//! (`POST /api/users/{user}/notifications` into the user's inbox, `GET
//! /api/notifications/{id}` for its receipt, and the public `GET /api/push/key`), and
//! `keys` (`--api-token` and the scoped keys of `--api-keys`).
//!
//! This module owns the routes, the bearer-key check, and the mapping of every failure
//! to a status code with a JSON body `{"error": "<code>", "message": "..."}`.
//!
//! Order of checks, each answered before the next is looked at: the API is enabled
//! (404), the caller's address has not failed too often (429: twenty failures, then one
//! every 6 s), the `Authorization` header is a bearer key (401), a known one (403) with
//! the scope the route needs (403 `insufficient_scope`), then the request itself: body
//! size (413), content type (415), JSON (422), the rules for its fields (422).
//! Authentication comes first so that a caller without a key learns nothing about what
//! a valid request looks like.

use std::net::SocketAddr;
use std::str::FromStr;

use axum::extract::rejection::JsonRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::header::{ALLOW, AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde::Serialize;
use subtle::ConstantTimeEq as _;

use crate::peers;
use crate::state::AppState;

mod keys;
mod rooms;
mod users;

pub(crate) use keys::{ApiKeys, Scope};

/// Largest request body accepted, in bytes. The text limit (4000 characters) is what
/// really bounds a request; this only has to admit every valid one, even a text whose
/// characters are all sent as `\uXXXX\uXXXX` surrogate-pair escapes (12 bytes each).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// The shortest API token accepted: 32 characters, 128 bits or more of a random hex or
/// base64 token.
pub(crate) const MIN_TOKEN_CHARS: usize = 32;

/// The secret callers of the API present as `Authorization: Bearer <token>`.
///
/// Its `Debug` output is redacted so that logging the configuration never leaks it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

/// Why a configured token is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiTokenError {
    #[error("the API token is empty; unset it to disable the notifications API")]
    Empty,
    #[error("the API token is shorter than {MIN_TOKEN_CHARS} characters, which can be guessed; make one with `openssl rand -hex 32`")]
    TooShort,
    #[error("the API token may only contain visible ASCII characters (no spaces), since it is sent in an HTTP header")]
    Charset,
}

impl FromStr for ApiToken {
    type Err = ApiTokenError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.is_empty() {
            return Err(ApiTokenError::Empty);
        }
        if raw.len() < MIN_TOKEN_CHARS {
            return Err(ApiTokenError::TooShort);
        }
        // A token a client cannot put in a header verbatim would make the API unusable
        // in a way that only shows up as 403s; refuse it at startup instead.
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiTokenError::Charset);
        }
        Ok(ApiToken(raw.to_owned()))
    }
}

/// clap's own message for a bad value quotes the value; for a secret that would put the
/// token (or a near miss of it) into logs, so this parser words its errors itself.
#[derive(Clone, Copy, Debug)]
pub struct ApiTokenParser;

impl clap::builder::TypedValueParser for ApiTokenParser {
    type Value = ApiToken;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<ApiToken, clap::Error> {
        let parsed = value
            .to_str()
            .ok_or(ApiTokenError::Charset)
            .and_then(str::parse);
        parsed.map_err(|e| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("bad --api-token / HUDDLE_API_TOKEN: {e}\n"),
            )
        })
    }
}

impl clap::builder::ValueParserFactory for ApiToken {
    type Parser = ApiTokenParser;

    fn value_parser() -> ApiTokenParser {
        ApiTokenParser
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl ApiToken {
    /// Compares in time independent of where the two differ, so response times do not
    /// reveal how much of a guess was right. (A length mismatch returns early; the length
    /// of a token is not the secret.)
    pub(crate) fn matches(&self, given: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(given).into()
    }
}

/// The API's routes with their body limit. Other methods get this API's JSON error
/// body rather than an empty 405.
pub(crate) fn routes() -> Router<AppState> {
    let only = |route: MethodRouter<AppState>, allow: &'static str| {
        route
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .fallback(move || async move { ApiError::MethodNotAllowed(allow) })
    };
    Router::new()
        .route(rooms::PATH, only(post(rooms::notify), "POST"))
        .route(users::NOTIFY_PATH, only(post(users::notify), "POST"))
        .route(users::RECEIPT_PATH, only(get(users::receipt), "GET"))
        .route(users::PUSH_KEY_PATH, only(get(users::push_key), "GET"))
}

/// Any other path under `/api`: a JSON 404, not the web app's HTML.
pub(crate) async fn no_such_endpoint() -> Response {
    ApiError::NoSuchEndpoint.into_response()
}

/// Every way a request can fail, each with its status and stable `error` code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("the notifications API is disabled on this server; start it with --api-token or HUDDLE_API_TOKEN to enable it")]
    Disabled,
    #[error("send the API token as `Authorization: Bearer <token>`")]
    MissingToken,
    #[error("the API token is wrong")]
    WrongToken,
    #[error("too many failed attempts from your address; wait a minute")]
    LockedOut,
    #[error("the request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("send the body as JSON with `Content-Type: application/json`")]
    ContentType,
    #[error("the body must be a JSON object like {{\"text\": \"...\"}}: {0}")]
    BadJson(String),
    #[error("{0}")]
    InvalidText(String),
    #[error("{0}")]
    InvalidRoom(String),
    #[error("this API key does not have the {0} scope")]
    Scope(Scope),
    #[error("{0}")]
    UnknownUser(String),
    #[error("no notification with that id")]
    UnknownNotification,
    #[error("the Idempotency-Key header must be 1-255 visible ASCII characters")]
    BadIdempotencyKey,
    #[error("the room holds as many rooms as this server allows; the notice was not stored")]
    RoomLimit,
    #[error("the notification could not be delivered; try again")]
    Unavailable,
    #[error("no such API endpoint; see docs/protocol.md for the notifications API")]
    NoSuchEndpoint,
    #[error("use {0} for this endpoint")]
    MethodNotAllowed(&'static str),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Disabled => StatusCode::NOT_FOUND,
            ApiError::MissingToken => StatusCode::UNAUTHORIZED,
            ApiError::WrongToken | ApiError::Scope(_) => StatusCode::FORBIDDEN,
            ApiError::UnknownUser(_) | ApiError::UnknownNotification => StatusCode::NOT_FOUND,
            ApiError::BadIdempotencyKey => StatusCode::BAD_REQUEST,
            ApiError::RoomLimit => StatusCode::CONFLICT,
            ApiError::LockedOut => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadJson(_) | ApiError::InvalidText(_) | ApiError::InvalidRoom(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NoSuchEndpoint => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    const fn code(&self) -> &'static str {
        match self {
            ApiError::Disabled => "api_disabled",
            ApiError::MissingToken => "unauthorized",
            ApiError::WrongToken => "forbidden",
            ApiError::Scope(_) => "insufficient_scope",
            ApiError::UnknownUser(_) => "unknown_user",
            ApiError::UnknownNotification => "not_found",
            ApiError::BadIdempotencyKey => "invalid_idempotency_key",
            ApiError::RoomLimit => "room_limit",
            ApiError::LockedOut => "too_many_attempts",
            ApiError::TooLarge => "payload_too_large",
            ApiError::ContentType => "unsupported_media_type",
            ApiError::BadJson(_) => "invalid_json",
            ApiError::InvalidText(_) => "invalid_text",
            ApiError::InvalidRoom(_) => "invalid_room",
            ApiError::Unavailable => "unavailable",
            ApiError::NoSuchEndpoint => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
        }
    }

    pub(crate) fn from_json(rejection: &JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::ContentType,
            // The body limit surfaces as a failure to buffer the body, with status 413.
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
            JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_) => {
                ApiError::BadJson(rejection.body_text())
            }
            // Any other failure to read the body (the client went away mid-body, …) is
            // still the request's fault, and "not valid JSON" describes it well enough.
            other => ApiError::BadJson(other.body_text()),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code(),
            message: self.to_string(),
        };
        let mut response = (self.status(), Json(body)).into_response();
        if matches!(self, ApiError::MissingToken) {
            // RFC 6750: a 401 names the scheme the client should use.
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"huddle\""),
            );
        }
        if let ApiError::MethodNotAllowed(allow) = self {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// Checks the caller: the API is enabled, the address is not locked out, and the
/// bearer key is one that has `scope`. Failures count against the address.
pub(crate) fn authorize(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<(), ApiError> {
    if state.api_keys.is_empty() {
        return Err(ApiError::Disabled);
    }
    // Failures are limited per address, and an address over the limit is not even
    // told whether its next guess was right.
    let client = peers::client_ip(peer, headers, &state.config.trusted_proxies);
    if state.peers.api_locked_out(client) {
        return Err(ApiError::LockedOut);
    }
    let Some(given) = bearer_token(headers) else {
        state.peers.api_failed(client);
        return Err(ApiError::MissingToken);
    };
    match state.api_keys.scopes(given) {
        None => {
            tracing::warn!(%client, "notifications API: wrong token");
            state.peers.api_failed(client);
            Err(ApiError::WrongToken)
        }
        Some(scopes) if !scopes.has(scope) => Err(ApiError::Scope(scope)),
        Some(_) => Ok(()),
    }
}

/// The token of an `Authorization: Bearer <token>` header; `None` when the header is
/// missing, not visible ASCII, uses another scheme, or carries no token.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    // The scheme is case-insensitive (RFC 9110 §11.1).
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim_start_matches(' ');
    (!token.is_empty()).then_some(token.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn parses_bearer_headers() {
        assert_eq!(bearer_token(&headers("Bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer_token(&headers("bearer   abc")), Some(&b"abc"[..]));
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&headers("Bearer")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn tokens_are_checked_and_redacted() {
        let secret = "s3cr3t-T0ken-0123456789abcdef-xyz";
        let token: ApiToken = secret.parse().unwrap();
        assert!(token.matches(secret.as_bytes()));
        assert!(!token.matches(b"s3cr3t-T0ken-0123456789abcdef-xyZ"));
        assert!(!token.matches(b"s3cr3t"));
        assert!(!token.matches(b""));
        assert_eq!(format!("{token:?}"), "ApiToken(<redacted>)");
        assert_eq!("".parse::<ApiToken>(), Err(ApiTokenError::Empty));
        assert_eq!(
            "s3cr3t-T0ken".parse::<ApiToken>(),
            Err(ApiTokenError::TooShort)
        );
        let spaced = format!("a b{}", "c".repeat(32));
        assert_eq!(spaced.parse::<ApiToken>(), Err(ApiTokenError::Charset));
        let accented = format!("é{}", "c".repeat(32));
        assert_eq!(accented.parse::<ApiToken>(), Err(ApiTokenError::Charset));
    }
}
