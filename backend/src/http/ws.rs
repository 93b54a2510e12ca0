//! `GET /ws`: the admission checks (Origin → 403; connections in total and per address
//! → 1008), the WebSocket upgrade tuned for many connections, then one session per socket.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    CONNECTION, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tungstenite::protocol::WebSocketConfig;

use super::admit::Admission;
use super::serve::Connection;
use crate::peers;
use crate::session::link::Link;
use crate::session::socket::{Socket, Transport};
use crate::state::AppState;

/// Bytes read from the socket at a time, which is also what every connection keeps
/// allocated for reading while idle (tungstenite's default is 128 KiB). Client frames
/// are a few hundred bytes; a larger one (up to the frame limit) takes several reads.
/// 4 KiB was the largest item in a heap profile of idle connections (BENCHMARKS.md).
const READ_BUFFER: usize = 512;

pub(super) async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let headers = &parts.headers;
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let key = match handshake_key(headers) {
        Ok(key) => key,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded to a WebSocket\n",
        )
            .into_response();
    };
    // Refused before the upgrade: a page from another site gets nothing to talk to.
    if !state.origins.allows(headers) {
        tracing::info!(%peer, origin = ?headers.get(ORIGIN), "websocket refused: origin not allowed");
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    // The address the per-address limits count and the logs show: the peer, or the
    // client a trusted proxy names (the port stays the peer's; proxies do not pass it).
    let client_ip = peers::client_ip(peer, headers, &state.config.trusted_proxies);
    let peer = SocketAddr::new(client_ip, peer.port());
    let protocol = subprotocol(headers);
    let max_frame = state.config.max_frame_bytes as usize;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame));
    // Over a limit (in total or per address) the upgrade still completes, so the client
    // gets a close code (1008) and reason it can act on rather than an opaque failed
    // handshake, as the contract lists 1008 for connection limits.
    let admission = Admission::take(&state, client_ip);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let link = Link::WebSocket(socket_of(upgraded, config));
        admission.serve(link, state, peer, None).await;
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let out = response.headers_mut();
    out.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    out.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&tungstenite::handshake::derive_accept_key(key)) {
        out.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(protocol) = protocol {
        out.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    }
    response
}

/// The client's `Sec-WebSocket-Key` if the request is a WebSocket handshake (RFC 6455
/// §4.2.1), else what is wrong with it.
fn handshake_key(headers: &HeaderMap) -> Result<&[u8], &'static str> {
    let has_token = |name, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(CONNECTION, "upgrade") {
        return Err("Connection header did not include 'upgrade'\n");
    }
    if !has_token(UPGRADE, "websocket") {
        return Err("`Upgrade` header did not include 'websocket'\n");
    }
    if headers
        .get(SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err("`Sec-WebSocket-Version` header did not include '13'\n");
    }
    headers
        .get(SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .ok_or("`Sec-WebSocket-Key` header missing\n")
}

/// The first subprotocol the client offers that we speak, if any.
fn subprotocol(headers: &HeaderMap) -> Option<&'static str> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|offered| {
            common::SUBPROTOCOLS
                .iter()
                .copied()
                .find(|ours| *ours == offered)
        })
}

/// The WebSocket over an upgraded connection: on plain TCP the socket itself (shared
/// with the outbox for direct writes), otherwise the stream as hyper hands it over.
fn socket_of(upgraded: Upgraded, config: WebSocketConfig) -> Socket {
    match upgraded.downcast::<TokioIo<Connection>>() {
        Ok(parts) => {
            let transport = match parts.io.into_inner() {
                tokio_util::either::Either::Left(tcp) => Transport::Tcp(Arc::new(tcp)),
                tokio_util::either::Either::Right(tls) => Transport::stream(Box::new(tls)),
            };
            Socket::new(transport, &parts.read_buf, config)
        }
        Err(upgraded) => Socket::new(
            Transport::stream(Box::new(TokioIo::new(upgraded))),
            &[],
            config,
        ),
    }
}
