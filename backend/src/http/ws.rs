//! `GET /ws`: the admission checks (Origin → 403; connections in total and per address
//! → 1008), the WebSocket upgrade tuned for many connections, then one session per socket.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::header::ORIGIN;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::disconnect::Disconnect;
use crate::peers;
use crate::session;
use crate::state::AppState;

/// Bytes read from the socket at a time, which is also what every connection keeps
/// allocated for reading while idle (tungstenite's default is 128 KiB). Client frames
/// are a few hundred bytes; a larger one (up to the frame limit) takes several reads.
/// 4 KiB was the largest item in a heap profile of idle connections (BENCHMARKS.md).
const READ_BUFFER: usize = 512;
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
    headers: HeaderMap,
) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    // Refused before the upgrade: a page from another site gets nothing to talk to.
    if !state.origins.allows(&headers) {
        tracing::info!(%peer, origin = ?headers.get(ORIGIN), "websocket refused: origin not allowed");
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    // The address the per-address limits count and the logs show: the peer, or the
    // client a trusted proxy names (the port stays the peer's; proxies do not pass it).
    let client_ip = peers::client_ip(peer, &headers, &state.config.trusted_proxies);
    let peer = SocketAddr::new(client_ip, peer.port());
    let max_frame = state.config.max_frame_bytes as usize;
    // The token keeps shutdown waiting until this session has said goodbye.
    let token = state.sessions.token();
    // Over a limit (in total or per address) the upgrade still completes, so the client
    // gets a close code (1008) and reason it can act on rather than an opaque failed
    // handshake, as the contract lists 1008 for connection limits.
    let permit = Arc::clone(&state.connection_slots).try_acquire_owned().ok();
    // Only a connection within the total takes a per-address place, which keeps the
    // live entries of the per-address table within --max-connections.
    let slot = permit
        .as_ref()
        .and_then(|_| state.peers.try_connect(client_ip));
    ws.protocols(common::SUBPROTOCOLS)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            // Counted as open until this future ends, however it ends.
            let open = state.metrics.connection_opened();
            match (permit, slot) {
                (Some(permit), Some(slot)) => {
                    // Boxed so this task's own state stays the size of the refusal path.
                    Box::pin(session::run(socket, state, peer)).await;
                    drop((slot, permit));
                }
                (None, _) => {
                    let why = Disconnect::TooManyConnections;
                    state.metrics.closed(why.code());
                    session::refuse(socket, why, peer).await;
                }
                (Some(permit), None) => {
                    drop(permit);
                    let why = Disconnect::TooManyFromAddress;
                    state.metrics.closed(why.code());
                    session::refuse(socket, why, peer).await;
                }
            }
            drop((open, token));
        })
}
