//! Decoding client frames, with the error the contract prescribes for each failure.
//!
//! The fast path is one `serde_json::from_str`. Only a frame that fails it is looked at
//! again as a `serde_json::Value`, to tell a broken frame (`bad_json`) from an unknown
//! `type` (`unknown_type`) from a missing or mistyped field (`invalid_room`, …).

use serde_json::{Map, Value};

use crate::error::ErrorCode;
use crate::protocol::ClientMsg;

/// A client frame that could not be decoded, and how to answer it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DecodeError {
    pub code: ErrorCode,
    pub message: String,
    /// The `id` or `type` the error concerns, echoed as `ref`.
    pub reference: Option<String>,
    /// The frame's `type` when it was a JSON object with a string `type`.
    pub frame_type: Option<String>,
}

/// Whether a string field must be there, or only must be a string when it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Required,
    IfPresent,
}

/// The string fields of each known type, with the code a missing (when required) or
/// mistyped one earns. Other optional fields of the wrong type are `bad_json`.
fn string_fields(kind: &str) -> Option<&'static [(&'static str, ErrorCode, Need)]> {
    use Need::{IfPresent, Required};
    const ROOM: &[(&str, ErrorCode, Need)] = &[("room", ErrorCode::InvalidRoom, Required)];
    const ROOM_USER: &[(&str, ErrorCode, Need)] = &[
        ("room", ErrorCode::InvalidRoom, Required),
        ("user", ErrorCode::UnknownUser, Required),
    ];
    Some(match kind {
        // A guest names a nick, a signed-in person a token: neither is required alone
        // (a `hello` with neither is answered `invalid_nick` by the server).
        "hello" => &[
            ("nick", ErrorCode::InvalidNick, IfPresent),
            ("token", ErrorCode::InvalidToken, IfPresent),
        ],
        "join" | "leave" | "typing" | "history" | "read" | "create_room" | "room_notify"
        | "members" => ROOM,
        "send" => &[
            ("room", ErrorCode::InvalidRoom, Required),
            ("text", ErrorCode::InvalidText, Required),
            ("id", ErrorCode::InvalidId, Required),
        ],
        "edit" => &[
            ("room", ErrorCode::InvalidRoom, Required),
            ("text", ErrorCode::InvalidText, Required),
            ("id", ErrorCode::InvalidId, Required),
        ],
        "delete" => &[
            ("room", ErrorCode::InvalidRoom, Required),
            ("id", ErrorCode::InvalidId, Required),
        ],
        "react" => &[
            ("room", ErrorCode::InvalidRoom, Required),
            ("emoji", ErrorCode::InvalidEmoji, Required),
            ("id", ErrorCode::InvalidId, Required),
        ],
        "invite" | "remove" => ROOM_USER,
        "open_dm" => &[("user", ErrorCode::UnknownUser, Required)],
        "push_subscribe" | "push_unsubscribe" => {
            &[("endpoint", ErrorCode::InvalidSubscription, Required)]
        }
        "list_rooms" | "inbox" | "alert_read" | "quiet_hours" => &[],
        _ => return None,
    })
}

/// Decodes one text frame from a client.
pub fn decode_client(text: &str) -> Result<ClientMsg, DecodeError> {
    match serde_json::from_str::<ClientMsg>(text) {
        Ok(msg) => Ok(msg),
        Err(err) => Err(classify(text, &err)),
    }
}

fn classify(text: &str, err: &serde_json::Error) -> DecodeError {
    let bad = |message: String| DecodeError {
        code: ErrorCode::BadJson,
        message,
        reference: None,
        frame_type: None,
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return bad(format!("frame is not valid JSON: {e}")),
    };
    let Value::Object(obj) = value else {
        return bad("a frame must be a JSON object".to_owned());
    };
    let Some(kind) = obj.get("type").and_then(Value::as_str) else {
        return bad("a frame needs a string field \"type\"".to_owned());
    };
    let frame_type = Some(kind.to_owned());
    let Some(fields) = string_fields(kind) else {
        return DecodeError {
            code: ErrorCode::UnknownType,
            message: format!("unknown frame type {kind:?}"),
            reference: frame_type.clone(),
            frame_type,
        };
    };
    let reference = reference_for(kind, &obj);
    for (field, code, need) in fields {
        let ok = match obj.get(*field) {
            None => *need == Need::IfPresent,
            Some(v) => v.is_string(),
        };
        if !ok {
            return DecodeError {
                code: *code,
                message: format!("\"{kind}\" needs a string field \"{field}\""),
                reference,
                frame_type,
            };
        }
    }
    DecodeError {
        code: ErrorCode::BadJson,
        message: format!("malformed \"{kind}\" frame: {err}"),
        reference,
        frame_type,
    }
}

fn reference_for(kind: &str, obj: &Map<String, Value>) -> Option<String> {
    if matches!(kind, "send" | "edit" | "delete" | "react") {
        if let Some(id) = obj.get("id").and_then(Value::as_str) {
            return Some(id.to_owned());
        }
    }
    Some(kind.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        decode_client(text).unwrap_err().code
    }

    #[test]
    fn classifies_failures() {
        assert_eq!(code("not json"), ErrorCode::BadJson);
        assert_eq!(code("[1,2]"), ErrorCode::BadJson);
        assert_eq!(code(r#"{"nick":"a"}"#), ErrorCode::BadJson);
        assert_eq!(code(r#"{"type":7}"#), ErrorCode::BadJson);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"hello","nick":5}"#), ErrorCode::InvalidNick);
        assert_eq!(
            code(r#"{"type":"hello","token":[]}"#),
            ErrorCode::InvalidToken
        );
        assert_eq!(code(r#"{"type":"open_dm"}"#), ErrorCode::UnknownUser);
        assert_eq!(
            code(r#"{"type":"invite","room":"a","user":1}"#),
            ErrorCode::UnknownUser
        );
        assert_eq!(code(r#"{"type":"read","room":"a"}"#), ErrorCode::BadJson);
        assert_eq!(code(r#"{"type":"join","room":5}"#), ErrorCode::InvalidRoom);
        assert_eq!(
            code(r#"{"type":"send","room":"a","id":"x"}"#),
            ErrorCode::InvalidText
        );
        assert_eq!(
            code(r#"{"type":"send","room":"a","text":"x"}"#),
            ErrorCode::InvalidId
        );
        assert_eq!(
            code(r#"{"type":"join","room":"a","since":"x"}"#),
            ErrorCode::BadJson
        );
        assert_eq!(
            code(r#"{"type":"history","room":"a","limit":-1}"#),
            ErrorCode::BadJson
        );
        assert_eq!(
            code(r#"{"type":"react","room":"a","offset":1,"on":true,"id":"r"}"#),
            ErrorCode::InvalidEmoji
        );
        assert_eq!(
            code(r#"{"type":"edit","room":"a","offset":1,"id":"e"}"#),
            ErrorCode::InvalidText
        );
        assert_eq!(
            code(r#"{"type":"delete","room":"a","id":"d"}"#),
            ErrorCode::BadJson
        );
        let e =
            decode_client(r#"{"type":"delete","room":"a","offset":"1","id":"d7"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.reference.as_deref()),
            (ErrorCode::BadJson, Some("d7"))
        );
        let e = decode_client(r#"{"type":"send","room":1,"text":"x","id":"m9"}"#).unwrap_err();
        assert_eq!(e.reference.as_deref(), Some("m9"));
        assert_eq!(e.frame_type.as_deref(), Some("send"));
    }

    #[test]
    fn ignores_unknown_fields() {
        let msg = decode_client(r#"{"type":"leave","room":"a","extra":{"x":1}}"#).unwrap();
        assert_eq!(msg, ClientMsg::Leave { room: "a".into() });
        let msg = decode_client(r#"{"type":"list_rooms","junk":true}"#).unwrap();
        assert_eq!(
            msg,
            ClientMsg::ListRooms {
                cursor: None,
                limit: None
            }
        );
    }
}
