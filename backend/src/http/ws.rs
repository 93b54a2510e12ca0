//! `GET /ws`: WebSocket upgrade tuned for many connections, then one session per socket.

use std::net::SocketAddr;
use std::sync::Arc;

use common::CloseCode;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::session;
use crate::state::AppState;

/// Bytes read from the socket at a time. tungstenite's default is 128 KiB per
/// connection; chat frames are small, and 4 KiB keeps 10,000 idle sockets cheap.
const READ_BUFFER: usize = 4 * 1024;
/// Bytes gathered before a write is flushed.
const WRITE_BUFFER: usize = 8 * 1024;
/// The most bytes one connection may have waiting to be written. It must fit the
/// largest frame we send (a full `history` page); beyond it writes fail and the
/// connection ends, so a stuck peer holds bounded memory.
const MAX_WRITE_BUFFER: usize = 4 * 1024 * 1024;

pub(super) async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let max_frame = state.config.max_frame_bytes as usize;
    // The token keeps shutdown waiting until this session has said goodbye.
    let token = state.sessions.token();
    // Over the limit the upgrade still completes, so the client gets a close code
    // (1008) it can act on rather than an opaque failed handshake.
    let permit = Arc::clone(&state.connection_slots).try_acquire_owned().ok();
    ws.protocols([common::SUBPROTOCOL])
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            match permit {
                Some(permit) => {
                    session::run(socket, state, peer).await;
                    drop(permit);
                }
                None => session::refuse(socket, CloseCode::Policy, peer).await,
            }
            drop(token);
        })
}
