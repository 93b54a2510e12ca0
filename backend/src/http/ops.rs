//! The operator's routes: `GET /metrics` (Prometheus text) and `GET /readyz` (can this
//! server take traffic: not stopping, and the history store writable).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::logsafe::Chain;
use crate::metrics;
use crate::state::AppState;

/// How long the readiness probe may take. A store that does not answer in time is as
/// unready as one that fails: sends would hang behind it.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Every metric of this server.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

/// 200 `{"ready": true}` when a write to the history store commits now; otherwise 503
/// with a reason, so a load balancer stops sending new clients here. The reason is
/// generic: the endpoint is public, the details go to the log.
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    if state.shutdown.is_cancelled() {
        return not_ready("shutting down");
    }
    match tokio::time::timeout(READY_TIMEOUT, state.store.check_writable()).await {
        Ok(Ok(())) => Json(json!({ "ready": true })).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %Chain(&e), "not ready: the history store cannot be written");
            not_ready("the history store cannot be written")
        }
        Err(_) => {
            tracing::warn!(timeout = ?READY_TIMEOUT, "not ready: the history store did not answer");
            not_ready("the history store did not answer in time")
        }
    }
}

fn not_ready(reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "ready": false, "reason": reason })),
    )
        .into_response()
}
