//! Property tests: every frame survives a JSON round trip, the validation rules are
//! exactly the contract's, and `decode_client` never panics and classifies unknown types.

use common::validate::{self, RuleError};
use common::{
    decode_client, ChatMessage, ClientMsg, ErrorCode, Limits, NotificationKind, RoomInfo, ServerMsg,
};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value};

// ---------------------------------------------------------------- strings

/// Any Unicode scalar value, with extra weight on the characters the rules care about:
/// whitespace (ASCII and not), control characters, the room alphabet, JSON escapes and
/// characters outside the BMP.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => prop::char::range('a', 'z'),
        1 => select(vec![
            ' ', '\t', '\n', '\r', '\u{0}', '\u{1}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}',
            '\u{a0}', '\u{2028}', '\u{3000}', '\u{feff}', '\u{200b}', '"', '\\', '/', 'é',
            'Å', '😀', '-', '_', '0', '9', 'A', 'Z',
        ]),
    ]
}

/// An arbitrary Unicode string of at most `max` characters.
fn ustring(max: usize) -> impl Strategy<Value = String> {
    vec(any_char(), 0..=max).prop_map(|cs| cs.into_iter().collect())
}

/// Whitespace only, for padding around a value that is trimmed.
fn ws_pad() -> impl Strategy<Value = String> {
    vec(
        select(vec![
            ' ', '\t', '\n', '\r', '\u{a0}', '\u{3000}', '\u{2028}',
        ]),
        0..4,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

/// `pad` + `n` copies of a non-space character + `pad`, to land on length boundaries.
fn padded_run(lengths: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    (
        ws_pad(),
        lengths,
        select(vec!['x', 'é', '😀', '\u{7}', ' ']),
        ws_pad(),
    )
        .prop_map(|(pre, n, c, post)| format!("{pre}{}{post}", c.to_string().repeat(n)))
}

/// The contract's notion of trimming: whitespace off both ends.
fn trimmed(s: &str) -> &str {
    s.trim_matches(char::is_whitespace)
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

// ---------------------------------------------------------------- frames

fn s() -> impl Strategy<Value = String> {
    ustring(16)
}

fn chat_message() -> impl Strategy<Value = ChatMessage> {
    (s(), any::<u64>(), s(), s(), s(), any::<u64>()).prop_map(
        |(room, offset, id, nick, text, ts)| ChatMessage {
            room,
            offset,
            id,
            nick,
            text,
            ts,
            user: None,
            ..Default::default()
        },
    )
}

prop_compose! {
    fn limits()(
        nick_max_chars in any::<u32>(),
        room_max_chars in any::<u32>(),
        text_max_chars in any::<u32>(),
        id_max_chars in any::<u32>(),
        history_max in any::<u32>(),
        history_default in any::<u32>(),
        rate_per_sec in any::<u32>(),
        rate_burst in any::<u32>(),
        max_frame_bytes in any::<u32>(),
        typing_interval_ms in any::<u32>(),
        edit_window_ms in proptest::option::of(any::<u64>()),
    ) -> Limits {
        Limits {
            nick_max_chars,
            room_max_chars,
            text_max_chars,
            id_max_chars,
            history_max,
            history_default,
            rate_per_sec,
            rate_burst,
            max_frame_bytes,
            typing_interval_ms,
            edit_window_ms,
        }
    }
}

prop_compose! {
    fn room_info()(room in s(), members in any::<u64>(), head in any::<u64>()) -> RoomInfo {
        RoomInfo { room, members, head }
    }
}

prop_compose! {
    fn client_hello()(nick in s(), session in option::of(s())) -> ClientMsg {
        ClientMsg::Hello { nick: Some(nick), session, token: None }
    }
}

prop_compose! {
    fn client_join()(
        room in s(),
        since in option::of(any::<u64>()),
        epoch in option::of(s()),
    ) -> ClientMsg {
        ClientMsg::Join { room, since, epoch }
    }
}

prop_compose! {
    fn client_send()(room in s(), text in s(), id in s()) -> ClientMsg {
        ClientMsg::Send { reply_to: None,  room, text, id }
    }
}

prop_compose! {
    fn client_history()(
        room in s(),
        before in option::of(any::<u64>()),
        limit in option::of(any::<u64>()),
    ) -> ClientMsg {
        ClientMsg::History { room, before, limit }
    }
}

fn client_msg() -> impl Strategy<Value = ClientMsg> {
    prop_oneof![
        client_hello(),
        client_join(),
        s().prop_map(|room| ClientMsg::Leave { room }),
        client_send(),
        s().prop_map(|room| ClientMsg::Typing { room }),
        client_history(),
        (option::of("[0-9a-z]{0,8}"), option::of(0u64..200))
            .prop_map(|(cursor, limit)| ClientMsg::ListRooms { cursor, limit }),
    ]
}

prop_compose! {
    fn server_welcome()(nick in s(), session in s(), server in s(), limits in limits())
        -> ServerMsg {
        ServerMsg::Welcome { nick, session, server, limits, user: String::new(), rooms: Vec::new(), inbox: Default::default(), quiet: None }
    }
}

prop_compose! {
    fn server_joined()(
        room in s(),
        head in any::<u64>(),
        epoch in s(),
        nicks in vec(s(), 0..4),
        recovered in option::of(any::<bool>()),
    ) -> ServerMsg {
        ServerMsg::Joined { room, head, epoch, nicks, recovered, members: None, next: None }
    }
}

prop_compose! {
    fn server_ack()(id in s(), room in s(), offset in any::<u64>()) -> ServerMsg {
        ServerMsg::Ack { id, room, offset }
    }
}

prop_compose! {
    fn server_notification()(
        room in s(),
        kind in select(vec![NotificationKind::Joined, NotificationKind::Left, NotificationKind::Info]),
        text in s(),
        nick in option::of(s()),
        ts in any::<u64>(),
    ) -> ServerMsg {
        ServerMsg::Notification { room, kind, text, nick, ts, offset: None }
    }
}

prop_compose! {
    fn server_history()(
        room in s(),
        messages in vec(chat_message(), 0..4),
        has_more in any::<bool>(),
    ) -> ServerMsg {
        ServerMsg::History { nicks: Default::default(),  room, messages, has_more }
    }
}

prop_compose! {
    fn server_error()(
        code in select(ErrorCode::ALL.to_vec()),
        message in s(),
        reference in option::of(s()),
    ) -> ServerMsg {
        ServerMsg::Error { code, message, reference }
    }
}

fn server_msg() -> impl Strategy<Value = ServerMsg> {
    prop_oneof![
        server_welcome(),
        server_joined(),
        s().prop_map(|room| ServerMsg::Left { room }),
        chat_message().prop_map(ServerMsg::Message),
        server_ack(),
        server_notification(),
        (s(), vec(s(), 0..4)).prop_map(|(room, nicks)| ServerMsg::Presence { room, nicks }),
        (s(), s()).prop_map(|(room, nick)| ServerMsg::Typing { room, nick }),
        server_history(),
        (
            vec(room_info(), 0..4),
            any::<u64>(),
            option::of("[0-9]{1,6}")
        )
            .prop_map(|(rooms, total, next)| ServerMsg::Rooms { rooms, total, next }),
        server_error(),
    ]
}

// ---------------------------------------------------------------- arbitrary JSON

const KNOWN_TYPES: [&str; 7] = [
    "hello",
    "join",
    "leave",
    "send",
    "typing",
    "history",
    "list_rooms",
];

/// Object keys: mostly the protocol's own field names, so decoding gets past `type`.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec![
            "nick", "session", "room", "since", "epoch", "text", "id", "before", "limit",
        ])
        .prop_map(str::to_owned),
        1 => ustring(6),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ustring(8).prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map(key(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object whose `type` is anything at all, a known type, or absent.
fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    let kind = prop_oneof![
        2 => select(KNOWN_TYPES.to_vec()).prop_map(|t| Some(Value::from(t))),
        1 => ustring(10).prop_map(|t| Some(Value::String(t))),
        1 => json_value().prop_map(Some),
        1 => Just(None),
    ];
    (kind, btree_map(key(), json_value(), 0..6)).prop_map(|(kind, fields)| {
        let mut obj: Map<String, Value> = fields.into_iter().collect();
        if let Some(kind) = kind {
            obj.insert("type".to_owned(), kind);
        }
        obj
    })
}

/// The codes a frame of a known `type` can be refused with while decoding.
fn possible_codes(kind: &str) -> Vec<ErrorCode> {
    let mut codes = vec![ErrorCode::BadJson];
    codes.extend(match kind {
        "hello" => vec![ErrorCode::InvalidNick],
        "join" | "leave" | "typing" | "history" => vec![ErrorCode::InvalidRoom],
        "send" => vec![
            ErrorCode::InvalidRoom,
            ErrorCode::InvalidText,
            ErrorCode::InvalidId,
        ],
        _ => vec![],
    });
    codes
}

// ---------------------------------------------------------------- (a) round trips

proptest! {
    #[test]
    fn client_msg_round_trips(msg in client_msg()) {
        let json = serde_json::to_string(&msg).unwrap();
        prop_assert_eq!(&serde_json::from_str::<ClientMsg>(&json).unwrap(), &msg);
        prop_assert_eq!(&decode_client(&json).unwrap(), &msg);
        let value: Value = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(value["type"].as_str(), Some(msg.kind()));
    }

    #[test]
    fn client_msg_ignores_unknown_fields(
        msg in client_msg(),
        extra in btree_map("x_[a-z]{1,6}", json_value(), 1..4),
    ) {
        let Value::Object(mut obj) = serde_json::to_value(&msg).unwrap() else {
            panic!("a frame is an object");
        };
        obj.extend(extra);
        let json = Value::Object(obj).to_string();
        prop_assert_eq!(decode_client(&json).unwrap(), msg);
    }

    #[test]
    fn server_msg_round_trips(msg in server_msg()) {
        let json = serde_json::to_string(&msg).unwrap();
        prop_assert_eq!(serde_json::from_str::<ServerMsg>(&json).unwrap(), msg);
    }
}

// ---------------------------------------------------------------- (b) validation rules

/// The nick rule as UTS #39 states it: no control, default-ignorable or unassigned
/// character, and a non-empty resolved script set.
fn nick_oracle(raw: &str, max: usize) -> Option<&str> {
    use unicode_security::general_security_profile::IdentifierType as T;
    use unicode_security::{GeneralSecurityProfile as _, MixedScript as _};
    let t = trimmed(raw);
    let restricted = t.chars().any(|c| {
        c.is_control()
            || matches!(
                c.identifier_type(),
                Some(T::Default_Ignorable | T::Not_Character)
            )
    });
    let scripts = !t.resolve_script_set().is_empty();
    ((1..=max).contains(&chars(t)) && !restricted && scripts).then_some(t)
}

fn room_oracle(raw: &str, max: usize) -> bool {
    (1..=max).contains(&chars(raw))
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn text_oracle(raw: &str, max: usize) -> Option<&str> {
    let t = trimmed(raw);
    (1..=max).contains(&chars(t)).then_some(t)
}

fn id_oracle(raw: &str, max: usize) -> bool {
    (1..=max).contains(&chars(raw))
}

fn room_string() -> impl Strategy<Value = String> {
    let room_char = select(
        "abcdefghijklmnopqrstuvwxyz0123456789-_"
            .chars()
            .collect::<Vec<_>>(),
    );
    prop_oneof![
        // Valid alphabet around the length boundary.
        vec(room_char.clone(), 0..=70).prop_map(|cs| cs.into_iter().collect::<String>()),
        // Valid alphabet with one foreign character somewhere.
        (
            vec(room_char, 0..=66),
            any_char(),
            any::<prop::sample::Index>()
        )
            .prop_map(|(cs, bad, at)| {
                let mut cs = cs;
                let i = at.index(cs.len() + 1);
                cs.insert(i, bad);
                cs.into_iter().collect::<String>()
            }),
        ustring(70),
    ]
}

proptest! {
    #[test]
    fn nick_rule(raw in prop_oneof![ustring(40), padded_run(0..=34)]) {
        let l = Limits::default();
        let got = validate::nick(&raw, &l);
        match nick_oracle(&raw, 32) {
            Some(t) => prop_assert_eq!(got, Ok(t)),
            None => prop_assert_eq!(got.map_err(|e| e.code()), Err(ErrorCode::InvalidNick)),
        }
    }

    #[test]
    fn nick_rule_with_small_limit(raw in ustring(8), max in 1u32..6) {
        let l = Limits { nick_max_chars: max, ..Limits::default() };
        prop_assert_eq!(validate::nick(&raw, &l).ok(), nick_oracle(&raw, max as usize));
    }

    #[test]
    fn room_rule(raw in room_string()) {
        let l = Limits::default();
        let got = validate::room(&raw, &l);
        if room_oracle(&raw, 64) {
            // Never trimmed, never changed.
            prop_assert_eq!(got, Ok(raw.as_str()));
        } else {
            let err = got.unwrap_err();
            prop_assert_eq!(err.code(), ErrorCode::InvalidRoom);
            let room_error = matches!(err, RuleError::RoomLength { .. } | RuleError::RoomCharset);
            prop_assert!(room_error, "unexpected {:?}", err);
        }
    }

    #[test]
    fn text_rule(raw in prop_oneof![ustring(40), padded_run(3995..=4005), padded_run(0..=3)]) {
        let l = Limits::default();
        let got = validate::text(&raw, &l);
        match text_oracle(&raw, 4000) {
            Some(t) => prop_assert_eq!(got, Ok(t)),
            None => prop_assert_eq!(got, Err(RuleError::TextLength { max: 4000 })),
        }
    }

    #[test]
    fn text_rule_with_small_limit(raw in ustring(8), max in 1u32..6) {
        let l = Limits { text_max_chars: max, ..Limits::default() };
        prop_assert_eq!(validate::text(&raw, &l).ok(), text_oracle(&raw, max as usize));
    }

    #[test]
    fn id_rule(raw in prop_oneof![ustring(70), padded_run(60..=68)]) {
        let l = Limits::default();
        let got = validate::id(&raw, &l);
        if id_oracle(&raw, 64) {
            // Ids are opaque: not trimmed, not changed.
            prop_assert_eq!(got, Ok(raw.as_str()));
        } else {
            prop_assert_eq!(got, Err(RuleError::IdLength { max: 64 }));
        }
    }
}

// ---------------------------------------------------------------- (c) decoding never panics

proptest! {
    #[test]
    fn decode_client_never_panics_on_strings(raw in prop_oneof![any::<String>(), ustring(64)]) {
        if let Err(e) = decode_client(&raw) {
            // Not even JSON, or not an object: always bad_json.
            if serde_json::from_str::<Map<String, Value>>(&raw).is_err() {
                prop_assert_eq!(e.code, ErrorCode::BadJson);
            }
        }
    }

    #[test]
    fn decode_client_never_panics_on_json(value in json_value()) {
        let json = value.to_string();
        let result = decode_client(&json);
        if !value.is_object() {
            prop_assert_eq!(result.unwrap_err().code, ErrorCode::BadJson);
        }
    }

    #[test]
    fn decode_client_classifies_objects(obj in json_object()) {
        let json = Value::Object(obj.clone()).to_string();
        let result = decode_client(&json);
        match obj.get("type").and_then(Value::as_str) {
            None => prop_assert_eq!(result.unwrap_err().code, ErrorCode::BadJson),
            Some(kind) if !KNOWN_TYPES.contains(&kind) => {
                let e = result.unwrap_err();
                prop_assert_eq!(e.code, ErrorCode::UnknownType);
                prop_assert_eq!(e.reference.as_deref(), Some(kind));
                prop_assert_eq!(e.frame_type.as_deref(), Some(kind));
            }
            Some(kind) => match result {
                Ok(msg) => prop_assert_eq!(msg.kind(), kind),
                Err(e) => {
                    prop_assert!(possible_codes(kind).contains(&e.code), "{:?} for {}", e.code, json);
                    prop_assert_eq!(e.frame_type.as_deref(), Some(kind));
                    let expected_ref = match obj.get("id").and_then(Value::as_str) {
                        Some(id) if kind == "send" => id,
                        _ => kind,
                    };
                    prop_assert_eq!(e.reference.as_deref(), Some(expected_ref));
                }
            },
        }
    }

    #[test]
    fn unknown_string_type_is_unknown_type(
        kind in ustring(12).prop_filter("not a known type", |k| !KNOWN_TYPES.contains(&k.as_str())),
        fields in btree_map(key(), json_value(), 0..4),
    ) {
        let mut obj: Map<String, Value> = fields.into_iter().collect();
        obj.insert("type".to_owned(), Value::String(kind.clone()));
        let e = decode_client(&Value::Object(obj).to_string()).unwrap_err();
        prop_assert_eq!(e.code, ErrorCode::UnknownType);
        prop_assert_eq!(e.reference, Some(kind));
    }
}

#[test]
fn decode_client_survives_deep_nesting() {
    for open in ["[", "{\"a\":"] {
        let deep = open.repeat(100_000);
        assert_eq!(decode_client(&deep).unwrap_err().code, ErrorCode::BadJson);
    }
    let deep = format!(
        "{{\"type\":\"hello\",\"nick\":{}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert_eq!(decode_client(&deep).unwrap_err().code, ErrorCode::BadJson);
}
