//! The HTTP surface: routes, and the WebSocket upgrade that hands a socket to a session.

pub mod api;
mod ops;
pub mod origin;
mod ws;

use axum::routing::get;
use axum::Router;

use crate::state::AppState;
use crate::web;

/// The whole HTTP application: `/ws`, `/healthz`, `/readyz`, `/metrics`, the notifications
/// API (`api`), and the web app for everything else.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(common::WS_PATH, get(ws::upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route(api::PATH, api::route())
        .fallback(web::serve)
        .with_state(state)
}

/// The process is up and serving HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}
