//! The notifications API for people: `POST /api/users/{user}/notifications` puts an
//! `app` alert in a user's inbox (delivered to their open connections, pushed when
//! they do not read it), `GET /api/notifications/{id}` tells the application whether
//! it was delivered, read and pushed, and `GET /api/push/key` gives browsers the key
//! their push subscriptions are made for (public: it is what a page passes to
//! `pushManager.subscribe`).

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use common::AlertKind;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{authorize, ApiError, Scope};
use crate::inbox::NewAlert;
use crate::logsafe::Chain;
use crate::state::AppState;

pub(super) const NOTIFY_PATH: &str = "/api/users/{user}/notifications";
pub(super) const RECEIPT_PATH: &str = "/api/notifications/{id}";
pub(super) const PUSH_KEY_PATH: &str = "/api/push/key";

/// Longest title, in characters: it is a notification's headline.
const TITLE_CHARS: usize = 200;
/// Longest `url`, in bytes.
const URL_BYTES: usize = 2048;
/// Longest `Idempotency-Key`.
const KEY_BYTES: usize = 255;

#[derive(Debug, Serialize)]
pub(super) struct Created {
    id: String,
}

#[derive(Debug, Serialize)]
pub(super) struct ReceiptBody {
    id: String,
    user: String,
    created: u64,
    delivered: Option<u64>,
    read: Option<u64>,
    pushed: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(super) struct PushKey {
    key: String,
}

/// `POST /api/users/{user}/notifications` `{title, body, url?}`.
pub(super) async fn notify(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    user: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    authorize(&state, peer, &headers, Scope::UsersNotify)?;
    let Json(body) = body.map_err(|e| ApiError::from_json(&e))?;
    let Path(user) =
        user.map_err(|e| ApiError::UnknownUser(format!("bad user in the path: {e}")))?;
    let idempotency = idempotency_key(&headers)?;
    let alert = alert_of(&body, state.limits.text_max_chars as usize)?;
    match state.directory.user(&user).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(ApiError::UnknownUser(
                "no user by that id has ever signed in".to_owned(),
            ))
        }
        Err(e) => {
            tracing::error!(error = %Chain(&e), "notifications API: user lookup failed");
            return Err(ApiError::Unavailable);
        }
    }
    match state
        .alerts
        .deliver(&user, &alert, idempotency.as_deref())
        .await
    {
        Ok(appended) => {
            // Neither the user nor the text is logged: both are the caller's data.
            tracing::info!(
                repeated = appended.alert.is_none(),
                "notifications API: alert for a user"
            );
            Ok((StatusCode::ACCEPTED, Json(Created { id: appended.id })))
        }
        Err(e) => {
            tracing::error!(error = %Chain(&e), "notifications API: alert not stored");
            Err(ApiError::Unavailable)
        }
    }
}

/// The `Idempotency-Key` header, if sent.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=KEY_BYTES).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(ApiError::BadIdempotencyKey)?;
    Ok(Some(key.to_owned()))
}

/// The alert a request body describes.
fn alert_of(body: &Map<String, Value>, body_chars: usize) -> Result<NewAlert, ApiError> {
    let string = |field: &str, required: bool| -> Result<Option<&str>, ApiError> {
        match body.get(field) {
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            None | Some(Value::Null) if !required => Ok(None),
            _ => Err(ApiError::InvalidText(format!(
                "the body needs a string field {field:?}"
            ))),
        }
    };
    let title = string("title", true)?.unwrap_or_default().trim();
    if title.is_empty() || title.chars().count() > TITLE_CHARS {
        return Err(ApiError::InvalidText(format!(
            "title must be 1-{TITLE_CHARS} characters"
        )));
    }
    let text = string("body", false)?.unwrap_or_default().trim();
    if text.chars().count() > body_chars {
        return Err(ApiError::InvalidText(format!(
            "body must be at most {body_chars} characters"
        )));
    }
    let url = string("url", false)?.map(str::to_owned);
    if let Some(url) = &url {
        if !safe_url(url) {
            return Err(ApiError::InvalidText(format!(
                "url must be an http(s) URL or a path starting with \"/\", at most {URL_BYTES} bytes"
            )));
        }
    }
    Ok(NewAlert {
        kind: AlertKind::App,
        title: title.to_owned(),
        body: text.to_owned(),
        room: None,
        offset: None,
        url,
    })
}

/// A URL a notification may open when clicked: web pages and this site's paths, never
/// `javascript:` or `data:` ones.
fn safe_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    url.len() <= URL_BYTES
        && !url.chars().any(char::is_control)
        && ((lower.starts_with("https://") || lower.starts_with("http://"))
            || (url.starts_with('/') && !url.starts_with("//") && !url.starts_with("/\\")))
}

/// `GET /api/notifications/{id}`.
pub(super) async fn receipt(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<ReceiptBody>, ApiError> {
    authorize(&state, peer, &headers, Scope::Read)?;
    let Path(id) = id.map_err(|_| ApiError::UnknownNotification)?;
    match state.alerts.inbox().receipt(&id).await {
        Ok(Some(r)) => Ok(Json(ReceiptBody {
            id: r.id,
            user: r.user,
            created: r.created,
            delivered: r.delivered,
            read: r.read,
            pushed: r.pushed,
        })),
        Ok(None) => Err(ApiError::UnknownNotification),
        Err(e) => {
            tracing::error!(error = %Chain(&e), "notifications API: receipt not read");
            Err(ApiError::Unavailable)
        }
    }
}

/// `GET /api/push/key`: the VAPID public key, base64url.
pub(super) async fn push_key(State(state): State<AppState>) -> Json<PushKey> {
    Json(PushKey {
        key: state.vapid_public.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_urls_and_paths_open() {
        assert!(safe_url("https://example.com/x"));
        assert!(safe_url("/#/r/lobby"));
        assert!(!safe_url("javascript:alert(1)"));
        assert!(!safe_url("JAVASCRIPT:alert(1)"));
        assert!(!safe_url("data:text/html,x"));
        assert!(!safe_url("//evil.example"));
        assert!(!safe_url("/\\evil.example"));
        assert!(!safe_url("https://a\n.example"));
    }

    #[test]
    fn bodies_need_a_title() {
        let body = |v: Value| v.as_object().unwrap().clone();
        assert!(alert_of(&body(serde_json::json!({"title": "Hi"})), 10).is_ok());
        assert!(alert_of(&body(serde_json::json!({"body": "x"})), 10).is_err());
        assert!(alert_of(&body(serde_json::json!({"title": "  "})), 10).is_err());
        assert!(alert_of(
            &body(serde_json::json!({"title": "a", "body": "x".repeat(11)})),
            10
        )
        .is_err());
        let a = alert_of(&body(serde_json::json!({"title": "a", "url": "/x"})), 10).unwrap();
        assert_eq!(a.url.as_deref(), Some("/x"));
        assert_eq!(a.kind, AlertKind::App);
    }
}
