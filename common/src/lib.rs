//! Huddle's wire protocol, version 2: the one place that knows what a frame looks like.
//!
//! Both the server (`backend`) and the web app (`frontend`) depend on this crate, so a
//! frame can only change in one place. It uses serde and nothing async, and compiles
//! for `wasm32-unknown-unknown` as well as natively.
//!
//! # Layout
//! - [`protocol`]: the frames, [`ClientMsg`] (client → server) and [`ServerMsg`]
//!   (server → client), plus the payload structs they carry.
//! - [`decode`]: turns a text frame into a [`ClientMsg`], or into the exact
//!   [`ErrorCode`] the contract prescribes for it.
//! - [`validate`]: the rules for nicks, rooms, texts and ids, and the default [`Limits`].
//! - [`error`]: the stable error vocabulary sent in `error` frames.
//! - [`close`]: WebSocket close codes and whether a client should reconnect after them.
//!
//! The human-readable contract lives in `docs/protocol.md` at the repository root.

pub mod close;
pub mod decode;
pub mod duration;
pub mod error;
pub mod protocol;
pub mod text;
pub mod validate;

pub use close::CloseCode;
pub use decode::{decode_client, DecodeError};
pub use duration::parse_duration;
pub use error::ErrorCode;
pub use protocol::{
    Alert, AlertKind, ChatMessage, ClientMsg, Deleted, Edited, Entry, InboxState, Limits,
    MemberRoom, NotificationKind, NotifyLevel, PushKeys, Quiet, Reacted, Reactions, RoomInfo,
    ServerMsg,
};

/// The WebSocket subprotocol the web app asks for.
pub const SUBPROTOCOL: &str = "huddle.v2";

/// Every subprotocol the server accepts (and echoes back the one the client offered):
/// v2, and v1 for clients written against the first contract.
pub const SUBPROTOCOLS: [&str; 2] = ["huddle.v2", "huddle.v1"];

/// The most rooms in one `rooms` answer, and the page size when `list_rooms` names none:
/// at ~100 bytes a room, a page stays far below the frame limit however many rooms exist.
pub const MAX_ROOMS_PAGE: u64 = 100;

/// The most nicks in one `members` answer, and the page size when `members` names
/// none: at most ~13 KB even of 32-character nicks in four-byte characters, so a page
/// stays far below the frame limit however large the room.
pub const MAX_MEMBERS_PAGE: u64 = 100;

/// The path of the WebSocket endpoint.
pub const WS_PATH: &str = "/ws";

/// The Server-Sent Events stream, the fallback transport's server-to-client half.
pub const SSE_PATH: &str = "/sse";

/// Where the fallback transport's client frames are posted (a JSON array of frames).
pub const SSE_SEND_PATH: &str = "/sse/send";

/// The header of a `POST` to [`SSE_SEND_PATH`] naming the stream it is for.
pub const STREAM_HEADER: &str = "huddle-stream";

/// The most frames one `POST` to [`SSE_SEND_PATH`] may carry.
pub const MAX_POSTED_FRAMES: usize = 64;
