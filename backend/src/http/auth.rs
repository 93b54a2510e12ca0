//! The accounts API: `POST /api/auth/register`, `/api/auth/login`, `/api/auth/logout`.
//! JSON in, JSON out, each refusal with the `error` code the contract names. The rules
//! are [`crate::accounts`]'s; this module owns the routes, the bodies and the statuses.

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::accounts::AccountError;
use crate::broker::Directive;
use crate::logsafe::{Chain, Escaped};
use crate::peers;
use crate::state::AppState;

/// A name and a password are small; anything larger is not a sign-in.
const MAX_BODY_BYTES: usize = 4 * 1024;

/// The routes, under `/api/auth`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

#[derive(Deserialize)]
struct Credentials {
    user: String,
    password: String,
}

#[derive(Serialize)]
struct SignedIn {
    user: String,
    token: String,
}

/// A JSON error answer: `{"error": code, "message": …}`.
fn refuse(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    let body = json!({"error": code, "message": message.to_string()});
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn bad_body(rejection: &JsonRejection) -> Response {
    refuse(
        StatusCode::BAD_REQUEST,
        "invalid_json",
        format!(
            "send a JSON object {{\"user\": ..., \"password\": ...}} with Content-Type: application/json ({})",
            rejection.body_text()
        ),
    )
}

fn account_error(e: &AccountError) -> Response {
    let (status, code) = match e {
        AccountError::UserExists => (StatusCode::CONFLICT, "user_exists"),
        AccountError::InvalidUser => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_user"),
        AccountError::WeakPassword(_) => (StatusCode::UNPROCESSABLE_ENTITY, "weak_password"),
        AccountError::RegistrationClosed => (StatusCode::FORBIDDEN, "registration_closed"),
        AccountError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
        AccountError::Throttled { retry_after } => {
            let mut r = refuse(StatusCode::TOO_MANY_REQUESTS, "rate_limited", e);
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        AccountError::Store(_) | AccountError::Hashing => {
            tracing::error!(error = %Chain(e), "accounts API failed");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server failed; try again",
            );
        }
    };
    refuse(status, code, e)
}

async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Response {
    let Json(c) = match body {
        Ok(body) => body,
        Err(e) => return bad_body(&e),
    };
    // Each account costs a password hash and a row: one address makes them at the
    // rate it may say `hello`, not as fast as it can send requests.
    let client = peers::client_ip(peer, &headers, &state.config.trusted_proxies);
    if !state.peers.try_join(client) {
        return account_error(&AccountError::Throttled { retry_after: 2 });
    }
    match state.accounts.register(&c.user, &c.password).await {
        Ok(token) => {
            tracing::info!(user = %Escaped(&c.user), "account registered");
            let body = SignedIn {
                user: c.user,
                token,
            };
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(e) => account_error(&e),
    }
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Response {
    let Json(c) = match body {
        Ok(body) => body,
        Err(e) => return bad_body(&e),
    };
    let client = peers::client_ip(peer, &headers, &state.config.trusted_proxies);
    match state.accounts.login(client, &c.user, &c.password).await {
        Ok(token) => Json(SignedIn {
            user: c.user,
            token,
        })
        .into_response(),
        Err(e) => {
            if matches!(e, AccountError::InvalidCredentials) {
                tracing::info!(%client, "login refused");
            }
            account_error(&e)
        }
    }
}

/// Signs the bearer token out and closes the connections signed in with it (4003).
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = super::api::bearer_token(&headers).and_then(|t| std::str::from_utf8(t).ok())
    else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "send the token to sign out as Authorization: Bearer <token>",
        );
    };
    match state.accounts.logout(token).await {
        Ok(Some((user, hash))) => {
            let directive = Directive::SignOut { token: hash };
            state
                .membership
                .tell_user(&user, None, None, Some(directive))
                .await;
            StatusCode::NO_CONTENT.into_response()
        }
        // Signing out a token that signs nobody in has the outcome asked for.
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::error!(error = %Chain(&e), "logout failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server failed; try again",
            )
        }
    }
}
