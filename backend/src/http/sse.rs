//! The fallback transport over plain HTTP (docs/protocol.md, "Server-Sent Events"):
//! `GET /sse` opens a stream, a session like a WebSocket's whose frames go out as
//! events; `POST /sse/send` hands client frames to a stream's session on whichever
//! instance holds it (through the broker, so no request needs to reach a particular
//! instance). The admission rules are the WebSocket's: Origin, connections in total and
//! per address, shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use common::{ErrorCode, ServerMsg, MAX_POSTED_FRAMES, STREAM_HEADER};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::broker::Directive;
use crate::logsafe::Chain;
use crate::peers;
use crate::session::events::{self, EventStream};
use crate::session::link::Link;
use crate::session::Resumption;
use crate::state::AppState;

use super::admit::Admission;

/// `GET /sse`: a new stream (resuming the session its `Last-Event-ID` names, if it
/// may), or a stream that only says why it cannot be one.
pub(super) async fn open(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    if !state.origins.allows(&headers) {
        tracing::info!(%peer, origin = ?headers.get(ORIGIN), "stream refused: origin not allowed");
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    let client_ip = peers::client_ip(peer, &headers, &state.config.trusted_proxies);
    let peer = SocketAddr::new(client_ip, peer.port());
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|id| events::parse_event_id(id, state.config.max_rooms_per_conn))
        .map(|(from, rooms)| Resumption { from, rooms });
    let (body, chunks) = mpsc::channel(events::BODY_QUEUE);
    let stream = EventStream::new(events::new_stream_id(), body);
    let admission = Admission::take(&state, client_ip);
    tokio::spawn(async move {
        let link = Link::Events(stream);
        admission.serve(link, state, peer, resume).await;
    });
    let body = futures_util::stream::unfold(chunks, |mut chunks| async move {
        let chunk = chunks.recv().await?;
        Some((Ok::<Bytes, Infallible>(chunk), chunks))
    });
    let mut response = Response::new(Body::from_stream(body));
    let out = response.headers_mut();
    out.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    out.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // nginx (and proxies that follow it) pass each event on at once.
    out.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// `POST /sse/send`: a JSON array of client frames for the stream `Huddle-Stream`
/// names, answered 202 once its session has them (see the module docs).
pub(super) async fn send(State(state): State<AppState>, request: Request) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let headers = request.headers();
    if !state.origins.allows(headers) {
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    let Some(id) = headers
        .get(STREAM_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| events::is_stream_id(id))
        .map(str::to_owned)
    else {
        return refusal(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadJson,
            "name the stream in the Huddle-Stream header, as its `stream` event gave it",
        );
    };
    let limit = 4 * state.config.max_frame_bytes as usize;
    let Ok(body) = axum::body::to_bytes(request.into_body(), limit).await else {
        let message = format!("a POST carries at most {limit} bytes; send fewer frames at once");
        return refusal(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, message);
    };
    let frames: Vec<&RawValue> = match serde_json::from_slice(&body) {
        Ok(frames) => frames,
        Err(_) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadJson,
                "the body must be a JSON array of protocol frames",
            )
        }
    };
    if frames.len() > MAX_POSTED_FRAMES {
        let message = format!("a POST carries at most {MAX_POSTED_FRAMES} frames");
        return refusal(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, message);
    }
    let accepted = frames.len();
    let frames = frames.into_iter().map(|f| f.get().to_owned()).collect();
    match state
        .membership
        .post_to_stream(&id, Directive::Frames { frames })
        .await
    {
        Ok(true) => (
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({ "accepted": accepted })),
        )
            .into_response(),
        Ok(false) => refusal(
            StatusCode::NOT_FOUND,
            ErrorCode::NoStream,
            "no open stream has this id: it ended, or never existed; open /sse again",
        ),
        Err(e) => {
            tracing::warn!(error = %Chain(&e), "posted frames not delivered");
            refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "the frames could not be delivered right now; post them again",
            )
        }
    }
}

/// A refused POST: the status, with an `error` frame as the body.
fn refusal(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    let frame = ServerMsg::error(code, message, None);
    (status, axum::Json(frame)).into_response()
}
