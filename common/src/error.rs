//! The stable error vocabulary of `error` frames.

use serde::{Deserialize, Serialize};

/// Why a request was refused. The connection stays open after every one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not a JSON object with a string `type`, or an optional field had
    /// the wrong type (a missing or mistyped required field gets that field's code).
    BadJson,
    /// The `type` is not one the server knows.
    UnknownType,
    /// A frame other than `hello` came before a successful `hello`.
    HelloRequired,
    /// The nick breaks the nick rule.
    InvalidNick,
    /// Another connected session holds that nick.
    NickTaken,
    /// The room name breaks the room rule.
    InvalidRoom,
    /// The connection is not a member of that room.
    NotJoined,
    /// The text breaks the text rule.
    InvalidText,
    /// The message id breaks the id rule.
    InvalidId,
    /// Too many `send`s (this one was neither stored nor broadcast), or too many `hello`s
    /// and `join`s from one address (this one was not executed).
    RateLimited,
    /// The server failed (for example its storage); nothing was acknowledged.
    Internal,
    /// A `send` would create a room, and the server holds as many rooms as it allows
    /// (`--max-rooms`); it was not stored. An addition to v1.
    RoomLimit,
    /// The storage refuses writes for now (full, or read-only); the `send` was not
    /// stored. An addition to v1.
    Unavailable,
    /// A `hello {token}` whose token is bad, expired, signed out or unverifiable (v2).
    InvalidToken,
    /// A guest `hello` on a server that admits only signed-in people (v2).
    GuestsDisabled,
    /// A private room the user is not a member of, or an owner's request by someone
    /// else (v2). For a non-member a private room does not exist.
    Forbidden,
    /// `create_room` for a room that exists (v2).
    RoomExists,
    /// `invite`, `remove` or `open_dm` naming a user the server does not know (v2).
    UnknownUser,
    /// A `push_subscribe` whose endpoint is not an https URL (http only on loopback) or
    /// whose keys are not a P-256 point and a 16-byte secret. An addition to the
    /// contract.
    InvalidSubscription,
    /// A setting out of range, such as quiet hours past midnight. An addition to the
    /// contract.
    InvalidSetting,
    /// `edit`, `delete`, `react` or `send {reply_to}` naming an offset that holds no
    /// message of that room (never stored, an edit or reaction rather than a message,
    /// removed by retention, or, except for a reply, deleted) (v2, an addition to the
    /// contract).
    UnknownMessage,
    /// An `edit` of a message older than the server's edit window (`--edit-window`)
    /// (v2, an addition to the contract).
    EditExpired,
    /// A `react` whose emoji is not one of the reactions the server offers (v2, an
    /// addition to the contract).
    InvalidEmoji,
    /// Only in the body of a `404` to `POST /sse/send`: no open stream has that id (it
    /// ended, or never existed). An addition to the contract.
    NoStream,
    /// Only in the body of a `413` to `POST /sse/send`: more frames or bytes than one
    /// POST may carry. An addition to the contract.
    TooLarge,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 25] = [
        ErrorCode::BadJson,
        ErrorCode::UnknownType,
        ErrorCode::HelloRequired,
        ErrorCode::InvalidNick,
        ErrorCode::NickTaken,
        ErrorCode::InvalidRoom,
        ErrorCode::NotJoined,
        ErrorCode::InvalidText,
        ErrorCode::InvalidId,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::RoomLimit,
        ErrorCode::Unavailable,
        ErrorCode::InvalidToken,
        ErrorCode::GuestsDisabled,
        ErrorCode::Forbidden,
        ErrorCode::RoomExists,
        ErrorCode::UnknownUser,
        ErrorCode::InvalidSubscription,
        ErrorCode::InvalidSetting,
        ErrorCode::UnknownMessage,
        ErrorCode::EditExpired,
        ErrorCode::InvalidEmoji,
        ErrorCode::NoStream,
        ErrorCode::TooLarge,
    ];

    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::HelloRequired => "hello_required",
            ErrorCode::InvalidNick => "invalid_nick",
            ErrorCode::NickTaken => "nick_taken",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::InvalidText => "invalid_text",
            ErrorCode::InvalidId => "invalid_id",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
            ErrorCode::RoomLimit => "room_limit",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::GuestsDisabled => "guests_disabled",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RoomExists => "room_exists",
            ErrorCode::UnknownUser => "unknown_user",
            ErrorCode::InvalidSubscription => "invalid_subscription",
            ErrorCode::InvalidSetting => "invalid_setting",
            ErrorCode::UnknownMessage => "unknown_message",
            ErrorCode::EditExpired => "edit_expired",
            ErrorCode::InvalidEmoji => "invalid_emoji",
            ErrorCode::NoStream => "no_stream",
            ErrorCode::TooLarge => "too_large",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
