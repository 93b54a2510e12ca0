//! The operator's routes: `GET /metrics` (Prometheus text) and `GET /readyz` (can this
//! server take traffic: not stopping, and the history store writable).

use std::sync::Mutex;
use std::time::{Duration, Instant};

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
/// How long a probe's answer is reused. The probe commits a write (an fsync, under the
/// writer's lock for SQLite) and the route is public: without this, anyone could make
/// the server fsync as often as they can send requests.
const READY_FRESH: Duration = Duration::from_secs(1);

/// The last readiness answer, shared so that at most one probe runs at a time.
#[derive(Default)]
pub(crate) struct Readiness(Mutex<ReadyState>);

#[derive(Default)]
struct ReadyState {
    /// When the last probe finished, and what it found (`Err`: the public reason).
    last: Option<(Instant, Result<(), &'static str>)>,
    /// A probe is under way; others use the last answer meanwhile.
    probing: bool,
}

/// Clears `probing` however the probe ends, a cancelled request included.
struct Probing<'a>(&'a Readiness);

impl Drop for Probing<'_> {
    fn drop(&mut self) {
        crate::locks::lock(&(self.0).0).probing = false;
    }
}

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
    let readiness = &state.readiness;
    let cached = {
        let mut s = crate::locks::lock(&readiness.0);
        match s.last {
            Some((at, answer)) if at.elapsed() < READY_FRESH || s.probing => Some(answer),
            // The first probe ever is under way: nothing known yet.
            None if s.probing => Some(Err("starting up")),
            _ => {
                s.probing = true;
                None
            }
        }
    };
    let answer = match cached {
        Some(answer) => answer,
        None => {
            let _probing = Probing(readiness);
            let answer = probe(&state).await;
            crate::locks::lock(&readiness.0).last = Some((Instant::now(), answer));
            answer
        }
    };
    match answer {
        Ok(()) => Json(json!({ "ready": true })).into_response(),
        Err(reason) => not_ready(reason),
    }
}

/// One real check: a committed write to the history store, in bounded time.
async fn probe(state: &AppState) -> Result<(), &'static str> {
    match tokio::time::timeout(READY_TIMEOUT, state.store.check_writable()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %Chain(&e), "not ready: the history store cannot be written");
            Err("the history store cannot be written")
        }
        Err(_) => {
            tracing::warn!(timeout = ?READY_TIMEOUT, "not ready: the history store did not answer");
            Err("the history store did not answer in time")
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
