//! The HTTP surface: routes, and the WebSocket upgrade that hands a socket to a session.

mod admit;
pub(crate) mod api;
mod auth;
pub(crate) mod ops;
pub(crate) mod origin;
pub(crate) mod serve;
mod sse;
mod ws;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;

use crate::state::AppState;
use crate::web;

/// The whole HTTP application: `/ws`, `/healthz`, `/readyz`, `/metrics`, the notifications
/// API (`api`; any other `/api/...` path is a JSON 404), and the web app for every other
/// GET or HEAD (any other method there is a 405).
pub(crate) fn router(state: AppState) -> Router {
    // What a page on another site could use against a user or a private network: only
    // for the hosts this server answers for (see `origin::PublicHosts`).
    let guarded = Router::new()
        .route(common::WS_PATH, get(ws::upgrade))
        .route(common::SSE_PATH, get(sse::open))
        .route(common::SSE_SEND_PATH, axum::routing::post(sse::send))
        .route("/metrics", get(ops::metrics))
        .merge(api::routes())
        .merge(auth::routes())
        .route("/api", any(api::no_such_endpoint))
        .route("/api/{*rest}", any(api::no_such_endpoint))
        .route_layer(middleware::from_fn_with_state(state.clone(), public_host));
    Router::new()
        .merge(guarded)
        .route("/healthz", get(healthz))
        .route("/readyz", get(ops::readyz))
        .fallback(web_app)
        .with_state(state)
}

/// Answers 421 to a request for a host this server does not answer for: a DNS-rebinding
/// page, or a misrouted request.
async fn public_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let proxied = request.headers().contains_key("x-forwarded-for")
        && peer.is_some_and(|ip| {
            state
                .config
                .trusted_proxies
                .iter()
                .any(|net| net.contains(ip))
        });
    if state.hosts.allows(request.headers(), proxied) {
        return next.run(request).await;
    }
    tracing::info!(host = ?request.headers().get(header::HOST), path = %request.uri().path(), "refused: not a public host");
    (
        StatusCode::MISDIRECTED_REQUEST,
        "misdirected request: this server does not answer for that host\n",
    )
        .into_response()
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
