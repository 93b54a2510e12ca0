//! The HTTP surface: routes, and the WebSocket upgrade that hands a socket to a session.

mod ws;

use axum::routing::get;
use axum::Router;

use crate::state::AppState;
use crate::web;

/// The whole HTTP application: `/ws`, `/healthz`, and the web app for everything else.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(common::WS_PATH, get(ws::upgrade))
        .route("/healthz", get(healthz))
        .fallback(web::serve)
        .with_state(state)
}

/// The process is up and serving HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}
