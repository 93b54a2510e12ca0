//! The HTTP surface: routes, and the WebSocket upgrade that hands a socket to a session.

pub(crate) mod api;
pub(crate) mod ops;
pub(crate) mod origin;
pub(crate) mod serve;
mod ws;

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;

use crate::state::AppState;
use crate::web;

/// The whole HTTP application: `/ws`, `/healthz`, `/readyz`, `/metrics`, the notifications
/// API (`api`; any other `/api/...` path is a JSON 404), and the web app for every other
/// GET or HEAD (any other method there is a 405).
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route(common::WS_PATH, get(ws::upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route(api::PATH, api::route())
        .route("/api", any(api::no_such_endpoint))
        .route("/api/{*rest}", any(api::no_such_endpoint))
        .fallback(web_app)
        .with_state(state)
}

/// The process is up and serving HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// The web app's files, for reading only: a POST to a page is a client's mistake, and
/// answering it with the app's HTML and 200 would hide that.
async fn web_app(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method == Method::GET || method == Method::HEAD {
        return web::serve(uri, headers).await;
    }
    let mut response = (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}
