//! `POST /api/rooms/{room}/notifications`: an `info` notification to a room's members.
//! Without `persist` it reaches the members present now, like `joined`/`left` notices;
//! with `"persist": true` it is stored in the room's log (an offset of its own, as a
//! message's) so members who were away get it on resume and in history.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use common::{validate, NotificationKind, ServerMsg};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{authorize, ApiError, Scope};
use crate::clock::now_ms;
use crate::logsafe::Chain;
use crate::state::AppState;
use crate::store::{AppendOutcome, NewEntry};

/// The route, in axum's path syntax.
pub(super) const PATH: &str = "/api/rooms/{room}/notifications";

/// The success body.
#[derive(Debug, Serialize)]
pub(super) struct Delivered {
    room: String,
    /// Members of the room on this node when the notification was published. Zero is a
    /// success: the room may simply be empty right now.
    delivered_to: u64,
    /// Where a stored notice is in the room's log (with `persist`).
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
}

/// The path and body arrive as `Result`s so that the checks run in the documented order
/// (authentication before anything about the request) and every rejection gets this
/// API's JSON error body instead of axum's plain-text one.
pub(super) async fn notify(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    room: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> Result<(StatusCode, Json<Delivered>), ApiError> {
    authorize(&state, peer, &headers, Scope::RoomsNotify)?;
    let Json(body) = body.map_err(|e| ApiError::from_json(&e))?;
    let Path(raw_room) =
        room.map_err(|e| ApiError::InvalidRoom(format!("bad room in the path: {e}")))?;
    let room = validate::room(&raw_room, &state.limits)
        .map_err(|e| ApiError::InvalidRoom(e.to_string()))?;
    let raw_text = match body.get("text") {
        Some(Value::String(t)) => t,
        _ => {
            return Err(ApiError::InvalidText(
                "the body needs a string field \"text\"".to_owned(),
            ))
        }
    };
    let text = validate::text(raw_text, &state.limits)
        .map_err(|e| ApiError::InvalidText(e.to_string()))?;
    let persist = match body.get("persist") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => {
            return Err(ApiError::BadJson(
                "\"persist\" must be true or false".to_owned(),
            ))
        }
    };
    let room: Arc<str> = Arc::from(room);
    // Counted just before publishing: a member joining or leaving in between changes who
    // actually receives it by one, which is fine for a figure meant as feedback.
    let delivered_to = state.membership.local_count(&room);
    let offset = if persist {
        Some(store_notice(&state, &room, text).await?)
    } else {
        let note = ServerMsg::Notification {
            room: room.to_string(),
            kind: NotificationKind::Info,
            text: text.to_owned(),
            nick: None,
            ts: now_ms(),
            offset: None,
        };
        // Sent by no member, so it goes to every member.
        if let Err(e) = state.membership.publish(&room, None, &note).await {
            tracing::error!(room = %room, error = %Chain(&e), "notifications API: publish failed");
            return Err(ApiError::Unavailable);
        }
        None
    };
    // The text is not logged: it is the caller's data, and the room name is safe to log
    // because the room rule allows only `a-z0-9-_`.
    tracing::info!(room = %room, delivered_to, persist, "notifications API: info notification published");
    Ok((
        StatusCode::ACCEPTED,
        Json(Delivered {
            room: room.to_string(),
            delivered_to,
            offset,
        }),
    ))
}

/// Stores a notice through the history writer, which broadcasts it once it is durable
/// (as a `notification` with its offset: [`common::ChatMessage::is_notice`]).
async fn store_notice(state: &AppState, room: &str, text: &str) -> Result<u64, ApiError> {
    let notice = NewEntry::notice(room, text);
    let outcome = state.writer.append(notice).await.await;
    match outcome {
        Ok(Ok(AppendOutcome::Stored(m))) => Ok(m.offset()),
        Ok(Ok(AppendOutcome::Duplicate { offset })) => Ok(offset),
        Ok(Ok(AppendOutcome::RoomLimit)) => Err(ApiError::RoomLimit),
        // A notice answers nothing and changes nothing, so the log has nothing to
        // refuse; were it ever to, the notice was not stored.
        Ok(Ok(AppendOutcome::Refused(why))) => {
            tracing::error!(room = %room, ?why, "notifications API: notice refused by the log");
            Err(ApiError::Unavailable)
        }
        Ok(Err(e)) => {
            tracing::error!(room = %room, error = %Chain(&e), "notifications API: notice not stored");
            Err(ApiError::Unavailable)
        }
        Err(_) => Err(ApiError::Unavailable),
    }
}
