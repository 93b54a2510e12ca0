//! Fuzz target: the client frame decoder and the validation rules, on arbitrary input.
//!
//! Every WebSocket text frame a client sends goes through `decode_client`, and every name
//! and text through `validate`, so both must hold up against anything. Beyond "no panic",
//! this checks the properties the server relies on:
//! - a decoded frame re-encodes to JSON that decodes to the same frame, with its `type`;
//! - a refused frame gets a code the contract allows for it, with a consistent `ref`
//!   (the rules in docs/protocol.md, "Error codes" and "Choices where the contract is open");
//! - each rule accepts exactly what an independent re-statement of it accepts, returns
//!   the value trimmed (nick, text) or untouched (room, id), and reports the right code.
//!
//! Run it with `cargo xtask fuzz`; seeds are in `fuzz/corpus/decode/`.

#![no_main]

use common::validate::{self, RuleError};
use common::{decode_client, ClientMsg, DecodeError, ErrorCode, Limits};
use libfuzzer_sys::fuzz_target;
use unicode_security::general_security_profile::IdentifierType;
use unicode_security::{GeneralSecurityProfile as _, MixedScript as _};

/// The frame types a client may send, and the codes a missing or mistyped required field
/// of each earns (mirrors the table in docs/protocol.md).
const KNOWN: &[(&str, &[ErrorCode])] = &[
    ("hello", &[ErrorCode::InvalidNick, ErrorCode::InvalidToken]),
    ("join", &[ErrorCode::InvalidRoom]),
    ("leave", &[ErrorCode::InvalidRoom]),
    ("typing", &[ErrorCode::InvalidRoom]),
    ("history", &[ErrorCode::InvalidRoom]),
    ("read", &[ErrorCode::InvalidRoom]),
    ("create_room", &[ErrorCode::InvalidRoom]),
    ("room_notify", &[ErrorCode::InvalidRoom]),
    ("invite", &[ErrorCode::InvalidRoom, ErrorCode::UnknownUser]),
    ("remove", &[ErrorCode::InvalidRoom, ErrorCode::UnknownUser]),
    ("open_dm", &[ErrorCode::UnknownUser]),
    ("push_subscribe", &[ErrorCode::InvalidSubscription]),
    ("push_unsubscribe", &[ErrorCode::InvalidSubscription]),
    ("inbox", &[]),
    ("alert_read", &[]),
    ("quiet_hours", &[]),
    (
        "send",
        &[
            ErrorCode::InvalidRoom,
            ErrorCode::InvalidText,
            ErrorCode::InvalidId,
        ],
    ),
    ("list_rooms", &[]),
    ("members", &[ErrorCode::InvalidRoom]),
    (
        "edit",
        &[
            ErrorCode::InvalidRoom,
            ErrorCode::InvalidText,
            ErrorCode::InvalidId,
        ],
    ),
    ("delete", &[ErrorCode::InvalidRoom, ErrorCode::InvalidId]),
    (
        "react",
        &[
            ErrorCode::InvalidRoom,
            ErrorCode::InvalidEmoji,
            ErrorCode::InvalidId,
        ],
    ),
];

/// The frames whose `ref` is their `id` (when it is a string) rather than their type:
/// those that write to a room's log.
const REF_IS_ID: &[&str] = &["send", "edit", "delete", "react"];

fuzz_target!(|data: &[u8]| {
    // The WebSocket layer only hands over valid UTF-8 text frames.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let decoded = decode_client(text);
    assert_eq!(decoded, decode_client(text), "decoding is deterministic");

    let mut strings = vec![text];
    match &decoded {
        Ok(msg) => {
            check_round_trip(msg);
            strings.extend(fields(msg));
        }
        Err(e) => check_refusal(e),
    }

    // Limits from the input's first bytes, so small maxima put boundaries in reach.
    let small = Limits {
        nick_max_chars: u32::from(data.first().copied().unwrap_or(0) % 8),
        room_max_chars: u32::from(data.get(1).copied().unwrap_or(0) % 8),
        text_max_chars: u32::from(data.get(2).copied().unwrap_or(0) % 8),
        id_max_chars: u32::from(data.get(3).copied().unwrap_or(0) % 8),
        ..Limits::default()
    };
    for limits in [&Limits::default(), &small] {
        for s in &strings {
            check_rules(s, limits);
        }
    }
});

/// A decoded frame survives encoding and decoding again, also with an unknown field.
fn check_round_trip(msg: &ClientMsg) {
    let json = serde_json::to_string(msg).expect("a ClientMsg always serializes");
    assert_eq!(
        decode_client(&json).as_ref(),
        Ok(msg),
        "round trip via {json}"
    );

    let mut value = serde_json::to_value(msg).expect("a ClientMsg always serializes");
    assert_eq!(value["type"], msg.kind(), "`type` of {json}");
    value["fuzz_extra"] = serde_json::json!({"ignored": [1, "x"]});
    assert_eq!(
        decode_client(&value.to_string()).as_ref(),
        Ok(msg),
        "unknown fields are ignored"
    );
}

/// A refusal carries a code this frame can earn and the `ref` the contract prescribes.
fn check_refusal(e: &DecodeError) {
    assert!(!e.message.is_empty(), "{e:?}");
    let Some(kind) = e.frame_type.as_deref() else {
        // Not an object with a string `type`: always `bad_json`, about nothing in particular.
        assert_eq!(e.code, ErrorCode::BadJson, "{e:?}");
        assert_eq!(e.reference, None, "{e:?}");
        return;
    };
    let Some((_, field_codes)) = KNOWN.iter().find(|(k, _)| *k == kind) else {
        assert_eq!(e.code, ErrorCode::UnknownType, "{e:?}");
        assert_eq!(e.reference.as_deref(), Some(kind), "{e:?}");
        return;
    };
    assert!(
        e.code == ErrorCode::BadJson || field_codes.contains(&e.code),
        "{kind:?} cannot earn {:?}: {e:?}",
        e.code
    );
    // `ref` is the frame's type, except for a frame writing to the log with a string
    // `id`, whose `ref` is that id (which may be anything, including "send").
    if !REF_IS_ID.contains(&kind) {
        assert_eq!(e.reference.as_deref(), Some(kind), "{e:?}");
    } else {
        assert!(e.reference.is_some(), "{e:?}");
    }
}

/// The client-supplied strings inside a decoded frame.
fn fields(msg: &ClientMsg) -> Vec<&str> {
    match msg {
        ClientMsg::Hello {
            nick,
            session,
            token,
        } => {
            let mut v: Vec<&str> = nick.as_deref().into_iter().collect();
            v.extend(session.as_deref());
            v.extend(token.as_deref());
            v
        }
        ClientMsg::Join { room, epoch, .. } => {
            let mut v = vec![room.as_str()];
            v.extend(epoch.as_deref());
            v
        }
        ClientMsg::Leave { room }
        | ClientMsg::Typing { room }
        | ClientMsg::History { room, .. }
        | ClientMsg::Read { room, .. }
        | ClientMsg::CreateRoom { room, .. } => {
            vec![room.as_str()]
        }
        ClientMsg::Invite { room, user } | ClientMsg::Remove { room, user } => {
            vec![room.as_str(), user.as_str()]
        }
        ClientMsg::OpenDm { user } => vec![user.as_str()],
        ClientMsg::RoomNotify { room, .. } => vec![room.as_str()],
        ClientMsg::PushSubscribe { endpoint, keys } => {
            vec![endpoint.as_str(), keys.p256dh.as_str(), keys.auth.as_str()]
        }
        ClientMsg::PushUnsubscribe { endpoint } => vec![endpoint.as_str()],
        ClientMsg::Inbox { .. } | ClientMsg::AlertRead { .. } | ClientMsg::QuietHours { .. } => {
            Vec::new()
        }
        ClientMsg::Send { room, text, id, .. } | ClientMsg::Edit { room, text, id, .. } => {
            vec![room.as_str(), text.as_str(), id.as_str()]
        }
        ClientMsg::Delete { room, id, .. } => vec![room.as_str(), id.as_str()],
        ClientMsg::React {
            room, emoji, id, ..
        } => vec![room.as_str(), emoji.as_str(), id.as_str()],
        ClientMsg::ListRooms { .. } => Vec::new(),
        ClientMsg::Members { room, after, .. } => {
            let mut v = vec![room.as_str()];
            v.extend(after.as_deref());
            v
        }
    }
}

/// Each rule against a plain re-statement of it.
fn check_rules(raw: &str, limits: &Limits) {
    let chars = |s: &str| s.chars().count();
    let within = |n: usize, max: u32| n >= 1 && n <= max as usize;
    let trimmed = raw.trim_matches(char::is_whitespace);

    // nick: trimmed, 1..=max characters, no control, default-ignorable or unassigned
    // character, and one script (UTS #39's resolved script set is not empty).
    let kind = |c: char| c.identifier_type();
    let want = if !within(chars(trimmed), limits.nick_max_chars) {
        Err(RuleError::NickLength {
            max: limits.nick_max_chars,
        })
    } else if trimmed.chars().any(char::is_control) {
        Err(RuleError::NickControl)
    } else if trimmed
        .chars()
        .any(|c| kind(c) == Some(IdentifierType::Default_Ignorable))
    {
        Err(RuleError::NickInvisible)
    } else if trimmed
        .chars()
        .any(|c| kind(c) == Some(IdentifierType::Not_Character))
    {
        Err(RuleError::NickUnassigned)
    } else if trimmed.resolve_script_set().is_empty() {
        Err(RuleError::NickMixedScripts)
    } else {
        Ok(trimmed)
    };
    let got = validate::nick(raw, limits);
    assert_eq!(got, want, "nick {raw:?}");
    if let Err(e) = got {
        assert_eq!(e.code(), ErrorCode::InvalidNick);
    }

    // room: untouched, only a-z 0-9 - _, 1..=max (bytes equal characters here).
    let charset_ok = raw
        .chars()
        .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_'));
    let want = if !charset_ok {
        Err(RuleError::RoomCharset)
    } else if !within(chars(raw), limits.room_max_chars) {
        Err(RuleError::RoomLength {
            max: limits.room_max_chars,
        })
    } else {
        Ok(raw)
    };
    let got = validate::room(raw, limits);
    assert_eq!(got, want, "room {raw:?}");
    if let Err(e) = got {
        assert_eq!(e.code(), ErrorCode::InvalidRoom);
    }

    // text: trimmed, 1..=max characters.
    let want = if within(chars(trimmed), limits.text_max_chars) {
        Ok(trimmed)
    } else {
        Err(RuleError::TextLength {
            max: limits.text_max_chars,
        })
    };
    let got = validate::text(raw, limits);
    assert_eq!(got, want, "text {raw:?}");
    if let Err(e) = got {
        assert_eq!(e.code(), ErrorCode::InvalidText);
    }

    // id: untouched, 1..=max characters.
    let want = if within(chars(raw), limits.id_max_chars) {
        Ok(raw)
    } else {
        Err(RuleError::IdLength {
            max: limits.id_max_chars,
        })
    };
    let got = validate::id(raw, limits);
    assert_eq!(got, want, "id {raw:?}");
    if let Err(e) = got {
        assert_eq!(e.code(), ErrorCode::InvalidId);
    }

    // emoji: exactly one of the offered reactions (a bare heart taken as the heart).
    let got = validate::emoji(raw);
    let heart = "\u{2764}\u{fe0f}";
    let wanted = if raw == "\u{2764}" { heart } else { raw };
    match got {
        Ok(e) => {
            assert_eq!(e, wanted, "emoji {raw:?}");
            assert!(validate::REACTIONS.contains(&e), "emoji {raw:?}");
        }
        Err(e) => {
            assert!(!validate::REACTIONS.contains(&wanted), "emoji {raw:?}");
            assert_eq!(e.code(), ErrorCode::InvalidEmoji);
        }
    }

    // Nicks that differ only in case share a key; computing it must not panic.
    let _ = validate::nick_key(raw);
}
