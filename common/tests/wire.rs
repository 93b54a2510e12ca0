//! Golden tests: the exact JSON of every frame of protocol v1.
//!
//! Every literal below is what a client on the other end of the socket sees (or sends),
//! byte for byte, with fields in declaration order. A failure here means the wire format
//! changed, which the contract (`docs/protocol.md`) forbids for anything it names.

use common::{
    decode_client, Alert, AlertKind, ChatMessage, ClientMsg, CloseCode, Deleted, Edited, ErrorCode,
    InboxState, Limits, MemberRoom, NotificationKind, NotifyLevel, PushKeys, Quiet, Reacted,
    RoomInfo, ServerMsg, SUBPROTOCOL, WS_PATH,
};

/// `Limits::default()` as it appears inside `welcome`.
const DEFAULT_LIMITS_JSON: &str = concat!(
    r#"{"nick_max_chars":32,"room_max_chars":64,"text_max_chars":4000,"id_max_chars":64,"#,
    r#""history_max":100,"history_default":50,"rate_per_sec":20,"rate_burst":40,"#,
    r#""max_frame_bytes":65536,"typing_interval_ms":2000}"#
);

fn enc<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("frames always serialize")
}

fn server(json: &str) -> ServerMsg {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("server frame {json} must decode: {e}"))
}

fn client(json: &str) -> ClientMsg {
    let via_decode =
        decode_client(json).unwrap_or_else(|e| panic!("client frame {json} must decode: {e:?}"));
    let via_serde: ClientMsg = serde_json::from_str(json).expect("serde agrees with decode_client");
    assert_eq!(via_decode, via_serde);
    via_decode
}

/// Asserts that `msg` encodes to exactly `json` and that `json` decodes back to `msg`.
fn golden_server(msg: &ServerMsg, json: &str) {
    assert_eq!(enc(msg), json);
    assert_eq!(&server(json), msg);
}

fn golden_client(msg: &ClientMsg, json: &str) {
    assert_eq!(enc(msg), json);
    assert_eq!(&client(json), msg);
}

fn chat(offset: u64, id: &str, text: &str) -> ChatMessage {
    ChatMessage {
        room: "lobby".into(),
        offset,
        id: id.into(),
        nick: "alice".into(),
        text: text.into(),
        ts: 1_764_097_200_000,
        user: None,
        ..Default::default()
    }
}

// ---------------------------------------------------------------- client → server

#[test]
fn client_hello() {
    golden_client(
        &ClientMsg::Hello {
            nick: Some("alice".into()),
            session: None,
            token: None,
        },
        r#"{"type":"hello","nick":"alice"}"#,
    );
    golden_client(
        &ClientMsg::Hello {
            nick: Some("alice".into()),
            session: Some("s_7Gq".into()),
            token: None,
        },
        r#"{"type":"hello","nick":"alice","session":"s_7Gq"}"#,
    );
}

#[test]
fn client_join() {
    golden_client(
        &ClientMsg::Join {
            room: "lobby".into(),
            since: None,
            epoch: None,
        },
        r#"{"type":"join","room":"lobby"}"#,
    );
    golden_client(
        &ClientMsg::Join {
            room: "lobby".into(),
            since: Some(41),
            epoch: None,
        },
        r#"{"type":"join","room":"lobby","since":41}"#,
    );
    golden_client(
        &ClientMsg::Join {
            room: "lobby".into(),
            since: Some(0),
            epoch: Some("e1".into()),
        },
        r#"{"type":"join","room":"lobby","since":0,"epoch":"e1"}"#,
    );
    golden_client(
        &ClientMsg::Join {
            room: "lobby".into(),
            since: None,
            epoch: Some("e1".into()),
        },
        r#"{"type":"join","room":"lobby","epoch":"e1"}"#,
    );
}

#[test]
fn client_leave_send_typing_list_rooms() {
    golden_client(
        &ClientMsg::Leave {
            room: "lobby".into(),
        },
        r#"{"type":"leave","room":"lobby"}"#,
    );
    golden_client(
        &ClientMsg::Send {
            reply_to: None,
            room: "lobby".into(),
            text: "hi all".into(),
            id: "m1".into(),
        },
        r#"{"type":"send","room":"lobby","text":"hi all","id":"m1"}"#,
    );
    golden_client(
        &ClientMsg::Typing {
            room: "lobby".into(),
        },
        r#"{"type":"typing","room":"lobby"}"#,
    );
    golden_client(
        &ClientMsg::ListRooms {
            cursor: None,
            limit: None,
        },
        r#"{"type":"list_rooms"}"#,
    );
    golden_client(
        &ClientMsg::ListRooms {
            cursor: Some("100".into()),
            limit: Some(20),
        },
        r#"{"type":"list_rooms","cursor":"100","limit":20}"#,
    );
}

#[test]
fn client_history() {
    golden_client(
        &ClientMsg::History {
            room: "lobby".into(),
            before: None,
            limit: None,
        },
        r#"{"type":"history","room":"lobby"}"#,
    );
    golden_client(
        &ClientMsg::History {
            room: "lobby".into(),
            before: Some(42),
            limit: None,
        },
        r#"{"type":"history","room":"lobby","before":42}"#,
    );
    golden_client(
        &ClientMsg::History {
            room: "lobby".into(),
            before: None,
            limit: Some(100),
        },
        r#"{"type":"history","room":"lobby","limit":100}"#,
    );
    golden_client(
        &ClientMsg::History {
            room: "lobby".into(),
            before: Some(42),
            limit: Some(10),
        },
        r#"{"type":"history","room":"lobby","before":42,"limit":10}"#,
    );
}

#[test]
fn client_kind_is_the_type_tag() {
    let all = [
        ClientMsg::Hello {
            nick: Some("a".into()),
            session: None,
            token: None,
        },
        ClientMsg::Join {
            room: "r".into(),
            since: None,
            epoch: None,
        },
        ClientMsg::Leave { room: "r".into() },
        ClientMsg::Send {
            reply_to: None,
            room: "r".into(),
            text: "t".into(),
            id: "i".into(),
        },
        ClientMsg::Typing { room: "r".into() },
        ClientMsg::History {
            room: "r".into(),
            before: None,
            limit: None,
        },
        ClientMsg::ListRooms {
            cursor: None,
            limit: None,
        },
        ClientMsg::Members {
            room: "r".into(),
            after: None,
            limit: None,
        },
    ];
    for msg in all {
        let value: serde_json::Value = serde_json::from_str(&enc(&msg)).unwrap();
        assert_eq!(value["type"], msg.kind(), "{msg:?}");
    }
}

#[test]
fn client_frames_in_any_field_order_with_unknown_fields() {
    assert_eq!(
        client(r#"{"id":"m1","text":"hi","room":"lobby","type":"send","v":2,"x":[1,{}]}"#),
        ClientMsg::Send {
            reply_to: None,
            room: "lobby".into(),
            text: "hi".into(),
            id: "m1".into(),
        }
    );
    assert_eq!(
        client(r#"{"limit":5,"room":"r","type":"history","before":null}"#),
        ClientMsg::History {
            room: "r".into(),
            before: None,
            limit: Some(5),
        }
    );
    assert_eq!(
        client(r#"{"type":"hello","nick":"bob","session":null}"#),
        ClientMsg::Hello {
            nick: Some("bob".into()),
            session: None,
            token: None,
        }
    );
    // Large offsets survive: `since` is a u64.
    assert_eq!(
        client(r#"{"type":"join","room":"r","since":18446744073709551615}"#),
        ClientMsg::Join {
            room: "r".into(),
            since: Some(u64::MAX),
            epoch: None,
        }
    );
}

// ---------------------------------------------------------------- server → client

#[test]
fn server_welcome() {
    let json = format!(
        r#"{{"type":"welcome","nick":"alice","session":"s_7Gq","server":"huddle/0.1.0","limits":{DEFAULT_LIMITS_JSON},"user":"guest:1f2e","rooms":[],"inbox":{{"head":0,"unread":0}}}}"#
    );
    golden_server(
        &ServerMsg::Welcome {
            nick: "alice".into(),
            session: "s_7Gq".into(),
            server: "huddle/0.1.0".into(),
            limits: Limits::default(),
            user: "guest:1f2e".into(),
            rooms: Vec::new(),
            inbox: InboxState::default(),
            quiet: None,
        },
        &json,
    );
    // v2: the rooms the user is a member of.
    let json = format!(
        r#"{{"type":"welcome","nick":"bob","session":"","server":"huddle/0.1.0","limits":{DEFAULT_LIMITS_JSON},"user":"bob","rooms":[{{"room":"dm--3f","head":7,"epoch":"e1","read":5,"unread":2,"mentions":1,"private":true,"dm":"alice","dm_nick":"alice","notify":"all"}},{{"room":"lobby","head":0,"epoch":"e1","read":0,"unread":0,"mentions":0,"private":false,"notify":"mentions"}}],"inbox":{{"head":9,"unread":2}},"quiet":{{"from":1320,"to":420,"tz":60}}}}"#
    );
    golden_server(
        &ServerMsg::Welcome {
            nick: "bob".into(),
            session: String::new(),
            server: "huddle/0.1.0".into(),
            limits: Limits::default(),
            user: "bob".into(),
            rooms: vec![
                MemberRoom {
                    owner: None,
                    room: "dm--3f".into(),
                    head: 7,
                    epoch: "e1".into(),
                    read: 5,
                    unread: 2,
                    mentions: 1,
                    private: true,
                    dm: Some("alice".into()),
                    dm_nick: Some("alice".into()),
                    notify: NotifyLevel::All,
                },
                MemberRoom {
                    owner: None,
                    room: "lobby".into(),
                    head: 0,
                    epoch: "e1".into(),
                    read: 0,
                    unread: 0,
                    mentions: 0,
                    private: false,
                    dm: None,
                    dm_nick: None,
                    notify: NotifyLevel::Mentions,
                },
            ],
            inbox: InboxState { head: 9, unread: 2 },
            quiet: Some(Quiet {
                from: 1320,
                to: 420,
                tz: 60,
            }),
        },
        &json,
    );
    // A v1 welcome (no user, no rooms) still decodes.
    let v1 = format!(
        r#"{{"type":"welcome","nick":"a","session":"s","server":"x","limits":{DEFAULT_LIMITS_JSON}}}"#
    );
    assert!(
        matches!(server(&v1), ServerMsg::Welcome { user, rooms, .. } if user.is_empty() && rooms.is_empty())
    );
}

#[test]
fn v2_client_frames() {
    // With v2 a `hello` needs neither field to decode: a guest's without a nick is
    // refused by the server (`invalid_nick`), where the token rule is known.
    for json in [r#"{"type":"hello"}"#, r#"{"type":"hello","nick":null}"#] {
        assert_eq!(
            client(json),
            ClientMsg::Hello {
                nick: None,
                session: None,
                token: None
            }
        );
    }
    golden_client(
        &ClientMsg::Hello {
            nick: None,
            session: None,
            token: Some("hk_x".into()),
        },
        r#"{"type":"hello","token":"hk_x"}"#,
    );
    golden_client(
        &ClientMsg::Read {
            room: "lobby".into(),
            offset: 9,
        },
        r#"{"type":"read","room":"lobby","offset":9}"#,
    );
    golden_client(
        &ClientMsg::CreateRoom {
            room: "ops".into(),
            private: true,
        },
        r#"{"type":"create_room","room":"ops","private":true}"#,
    );
    assert_eq!(
        client(r#"{"type":"create_room","room":"ops"}"#),
        ClientMsg::CreateRoom {
            room: "ops".into(),
            private: false
        }
    );
    golden_client(
        &ClientMsg::Invite {
            room: "ops".into(),
            user: "bob".into(),
        },
        r#"{"type":"invite","room":"ops","user":"bob"}"#,
    );
    golden_client(
        &ClientMsg::Remove {
            room: "ops".into(),
            user: "bob".into(),
        },
        r#"{"type":"remove","room":"ops","user":"bob"}"#,
    );
    golden_client(
        &ClientMsg::OpenDm { user: "bob".into() },
        r#"{"type":"open_dm","user":"bob"}"#,
    );
}

#[test]
fn v2_server_frames() {
    golden_server(
        &ServerMsg::Read {
            room: "lobby".into(),
            offset: 9,
        },
        r#"{"type":"read","room":"lobby","offset":9}"#,
    );
    golden_server(
        &ServerMsg::RoomCreated {
            room: "ops".into(),
            private: true,
        },
        r#"{"type":"room_created","room":"ops","private":true}"#,
    );
    golden_server(
        &ServerMsg::Invited {
            room: "ops".into(),
            user: "bob".into(),
            by: Some("alice".into()),
        },
        r#"{"type":"invited","room":"ops","user":"bob","by":"alice"}"#,
    );
    golden_server(
        &ServerMsg::Dm {
            room: "dm--3f".into(),
            user: "alice".into(),
            nick: Some("alice".into()),
        },
        r#"{"type":"dm","room":"dm--3f","user":"alice","nick":"alice"}"#,
    );
    let mut m = chat(3, "m1", "hi");
    m.user = Some("alice".into());
    golden_server(
        &ServerMsg::Message(m),
        r#"{"type":"message","room":"lobby","offset":3,"id":"m1","nick":"alice","text":"hi","ts":1764097200000,"user":"alice"}"#,
    );
}

#[test]
fn v2_notification_frames() {
    golden_client(&ClientMsg::Inbox { since: None }, r#"{"type":"inbox"}"#);
    golden_client(
        &ClientMsg::Inbox { since: Some(4) },
        r#"{"type":"inbox","since":4}"#,
    );
    golden_client(
        &ClientMsg::AlertRead { seq: 7 },
        r#"{"type":"alert_read","seq":7}"#,
    );
    // The browser's PushSubscription JSON, with its `expirationTime`, decodes as is.
    assert_eq!(
        client(
            r#"{"type":"push_subscribe","endpoint":"https://push.example/x","expirationTime":null,"keys":{"p256dh":"BP","auth":"au"}}"#
        ),
        ClientMsg::PushSubscribe {
            endpoint: "https://push.example/x".into(),
            keys: PushKeys {
                p256dh: "BP".into(),
                auth: "au".into()
            }
        }
    );
    golden_client(
        &ClientMsg::RoomNotify {
            room: "lobby".into(),
            level: NotifyLevel::Nothing,
        },
        r#"{"type":"room_notify","room":"lobby","level":"nothing"}"#,
    );
    golden_client(
        &ClientMsg::QuietHours {
            quiet: Some(Quiet {
                from: 1320,
                to: 420,
                tz: -300,
            }),
        },
        r#"{"type":"quiet_hours","quiet":{"from":1320,"to":420,"tz":-300}}"#,
    );
    let alert = Alert {
        seq: 3,
        kind: AlertKind::Mention,
        title: "bob in #lobby".into(),
        body: "@alice look".into(),
        room: Some("lobby".into()),
        offset: Some(12),
        url: None,
        ts: 5,
        read: false,
    };
    golden_server(
        &ServerMsg::Alert(alert.clone()),
        r#"{"type":"alert","seq":3,"kind":"mention","title":"bob in #lobby","body":"@alice look","room":"lobby","offset":12,"ts":5,"read":false}"#,
    );
    golden_server(
        &ServerMsg::Inbox {
            alerts: vec![alert],
            head: 3,
            unread: 1,
        },
        r#"{"type":"inbox","alerts":[{"seq":3,"kind":"mention","title":"bob in #lobby","body":"@alice look","room":"lobby","offset":12,"ts":5,"read":false}],"head":3,"unread":1}"#,
    );
    golden_server(
        &ServerMsg::AlertRead { seq: 3 },
        r#"{"type":"alert_read","seq":3}"#,
    );
    golden_server(
        &ServerMsg::PushSubscribed {
            endpoint: "https://push.example/x".into(),
        },
        r#"{"type":"push_subscribed","endpoint":"https://push.example/x"}"#,
    );
    golden_server(
        &ServerMsg::Notification {
            room: "lobby".into(),
            kind: NotificationKind::Info,
            text: "deploy at 5".into(),
            nick: None,
            ts: 3,
            offset: Some(8),
        },
        r#"{"type":"notification","room":"lobby","kind":"info","text":"deploy at 5","ts":3,"offset":8}"#,
    );
    for kind in [
        AlertKind::Mention,
        AlertKind::Dm,
        AlertKind::Invite,
        AlertKind::App,
        AlertKind::Message,
        AlertKind::Reply,
    ] {
        assert_eq!(enc(&kind), format!("\"{}\"", kind.as_str()));
        assert_eq!(AlertKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(
        refused(r#"{"type":"push_subscribe","keys":{"p256dh":"a","auth":"b"}}"#).code,
        ErrorCode::InvalidSubscription
    );
}

#[test]
fn quiet_hours_wrap_past_midnight() {
    // 22:00 to 07:00 at UTC+1.
    let q = Quiet {
        from: 22 * 60,
        to: 7 * 60,
        tz: 60,
    };
    let at = |h: u64, m: u64| (h * 60 + m) * 60_000;
    assert!(q.covers(at(21, 30))); // 22:30 local
    assert!(q.covers(at(5, 59))); // 06:59 local
    assert!(!q.covers(at(6, 0))); // 07:00 local
    assert!(!q.covers(at(12, 0)));
    assert!(q.is_valid());
    assert!(!Quiet {
        from: 1440,
        to: 0,
        tz: 0
    }
    .is_valid());
    assert!(!Quiet {
        from: 0,
        to: 1,
        tz: 15 * 60
    }
    .is_valid());
    // From 09:00 to 17:00, no wrap.
    let day = Quiet {
        from: 9 * 60,
        to: 17 * 60,
        tz: 0,
    };
    assert!(day.covers(at(9, 0)) && !day.covers(at(17, 0)) && !day.covers(at(8, 59)));
}

#[test]
fn server_joined_recovered_only_when_set() {
    golden_server(
        &ServerMsg::Joined {
            room: "lobby".into(),
            head: 41,
            epoch: "e1".into(),
            nicks: vec!["alice".into(), "bob".into()],
            recovered: None,
            members: None,
            next: None,
        },
        r#"{"type":"joined","room":"lobby","head":41,"epoch":"e1","nicks":["alice","bob"]}"#,
    );
    golden_server(
        &ServerMsg::Joined {
            room: "lobby".into(),
            head: 0,
            epoch: "e1".into(),
            nicks: vec![],
            recovered: Some(true),
            members: None,
            next: None,
        },
        r#"{"type":"joined","room":"lobby","head":0,"epoch":"e1","nicks":[],"recovered":true}"#,
    );
    golden_server(
        &ServerMsg::Joined {
            room: "lobby".into(),
            head: 7,
            epoch: "e2".into(),
            nicks: vec!["alice".into()],
            recovered: Some(false),
            members: None,
            next: None,
        },
        r#"{"type":"joined","room":"lobby","head":7,"epoch":"e2","nicks":["alice"],"recovered":false}"#,
    );
}

#[test]
fn server_left_message_ack() {
    golden_server(
        &ServerMsg::Left {
            room: "lobby".into(),
        },
        r#"{"type":"left","room":"lobby"}"#,
    );
    golden_server(
        &ServerMsg::Message(chat(42, "m1", "hi all")),
        r#"{"type":"message","room":"lobby","offset":42,"id":"m1","nick":"alice","text":"hi all","ts":1764097200000}"#,
    );
    golden_server(
        &ServerMsg::Ack {
            id: "m1".into(),
            room: "lobby".into(),
            offset: 42,
        },
        r#"{"type":"ack","id":"m1","room":"lobby","offset":42}"#,
    );
}

#[test]
fn server_notification_kinds_and_optional_nick() {
    golden_server(
        &ServerMsg::Notification {
            room: "lobby".into(),
            kind: NotificationKind::Joined,
            text: "bob joined".into(),
            nick: Some("bob".into()),
            ts: 1,
            offset: None,
        },
        r#"{"type":"notification","room":"lobby","kind":"joined","text":"bob joined","nick":"bob","ts":1}"#,
    );
    golden_server(
        &ServerMsg::Notification {
            room: "lobby".into(),
            kind: NotificationKind::Left,
            text: "bob left".into(),
            nick: Some("bob".into()),
            ts: 2,
            offset: None,
        },
        r#"{"type":"notification","room":"lobby","kind":"left","text":"bob left","nick":"bob","ts":2}"#,
    );
    // `info` from the server carries no nick: the field is absent, not null.
    golden_server(
        &ServerMsg::Notification {
            room: "lobby".into(),
            kind: NotificationKind::Info,
            text: "server restarting".into(),
            nick: None,
            ts: 3,
            offset: None,
        },
        r#"{"type":"notification","room":"lobby","kind":"info","text":"server restarting","ts":3}"#,
    );
    for (kind, wire) in [
        (NotificationKind::Joined, "\"joined\""),
        (NotificationKind::Left, "\"left\""),
        (NotificationKind::Info, "\"info\""),
    ] {
        assert_eq!(enc(&kind), wire);
    }
}

#[test]
fn server_presence_typing() {
    golden_server(
        &ServerMsg::Presence {
            room: "lobby".into(),
            nicks: vec!["alice".into(), "bob".into()],
        },
        r#"{"type":"presence","room":"lobby","nicks":["alice","bob"]}"#,
    );
    golden_server(
        &ServerMsg::Presence {
            room: "lobby".into(),
            nicks: vec![],
        },
        r#"{"type":"presence","room":"lobby","nicks":[]}"#,
    );
    golden_server(
        &ServerMsg::Typing {
            room: "lobby".into(),
            nick: "bob".into(),
        },
        r#"{"type":"typing","room":"lobby","nick":"bob"}"#,
    );
}

#[test]
fn server_history_messages_have_no_type() {
    golden_server(
        &ServerMsg::History {
            nicks: Default::default(),
            room: "lobby".into(),
            messages: vec![chat(1, "a", "first"), chat(2, "b", "second")],
            has_more: true,
        },
        concat!(
            r#"{"type":"history","room":"lobby","messages":["#,
            r#"{"room":"lobby","offset":1,"id":"a","nick":"alice","text":"first","ts":1764097200000},"#,
            r#"{"room":"lobby","offset":2,"id":"b","nick":"alice","text":"second","ts":1764097200000}"#,
            r#"],"has_more":true}"#
        ),
    );
    golden_server(
        &ServerMsg::History {
            nicks: Default::default(),
            room: "empty".into(),
            messages: vec![],
            has_more: false,
        },
        r#"{"type":"history","room":"empty","messages":[],"has_more":false}"#,
    );
}

#[test]
fn server_rooms() {
    golden_server(
        &ServerMsg::Rooms {
            rooms: vec![
                RoomInfo {
                    room: "lobby".into(),
                    members: 2,
                    head: 42,
                },
                RoomInfo {
                    room: "quiet".into(),
                    members: 0,
                    head: 3,
                },
            ],
            total: 7,
            next: Some("2".into()),
        },
        r#"{"type":"rooms","rooms":[{"room":"lobby","members":2,"head":42},{"room":"quiet","members":0,"head":3}],"total":7,"next":"2"}"#,
    );
    golden_server(
        &ServerMsg::Rooms {
            rooms: vec![],
            total: 0,
            next: None,
        },
        r#"{"type":"rooms","rooms":[],"total":0}"#,
    );
}

/// `members` (an addition): a page of a crowd's members, its answer, and the first
/// page as `joined` carries it.
#[test]
fn members_pages() {
    golden_client(
        &ClientMsg::Members {
            room: "hall".into(),
            after: None,
            limit: None,
        },
        r#"{"type":"members","room":"hall"}"#,
    );
    golden_client(
        &ClientMsg::Members {
            room: "hall".into(),
            after: Some("bob".into()),
            limit: Some(50),
        },
        r#"{"type":"members","room":"hall","after":"bob","limit":50}"#,
    );
    golden_server(
        &ServerMsg::Members {
            room: "hall".into(),
            nicks: vec!["carol".into(), "dave".into()],
            total: 5000,
            next: Some("dave".into()),
        },
        r#"{"type":"members","room":"hall","nicks":["carol","dave"],"total":5000,"next":"dave"}"#,
    );
    golden_server(
        &ServerMsg::Members {
            room: "hall".into(),
            nicks: vec![],
            total: 2,
            next: None,
        },
        r#"{"type":"members","room":"hall","nicks":[],"total":2}"#,
    );
    golden_server(
        &ServerMsg::Joined {
            room: "hall".into(),
            head: 3,
            epoch: "e1".into(),
            nicks: vec!["alice".into(), "bob".into()],
            recovered: None,
            members: Some(5000),
            next: Some("bob".into()),
        },
        r#"{"type":"joined","room":"hall","head":3,"epoch":"e1","nicks":["alice","bob"],"members":5000,"next":"bob"}"#,
    );
    // A wrong type for an optional field is `bad_json` about `members`, a missing room
    // `invalid_room`.
    for (frame, code) in [
        (r#"{"type":"members"}"#, ErrorCode::InvalidRoom),
        (
            r#"{"type":"members","room":"hall","after":7}"#,
            ErrorCode::BadJson,
        ),
        (
            r#"{"type":"members","room":"hall","limit":-1}"#,
            ErrorCode::BadJson,
        ),
        (
            r#"{"type":"members","room":"hall","limit":"9"}"#,
            ErrorCode::BadJson,
        ),
    ] {
        let e = decode_client(frame).unwrap_err();
        assert_eq!(
            (e.code, e.reference.as_deref()),
            (code, Some("members")),
            "{frame}"
        );
    }
}

#[test]
fn server_error_with_every_code() {
    let wire = [
        (ErrorCode::BadJson, "bad_json"),
        (ErrorCode::UnknownType, "unknown_type"),
        (ErrorCode::HelloRequired, "hello_required"),
        (ErrorCode::InvalidNick, "invalid_nick"),
        (ErrorCode::NickTaken, "nick_taken"),
        (ErrorCode::InvalidRoom, "invalid_room"),
        (ErrorCode::NotJoined, "not_joined"),
        (ErrorCode::InvalidText, "invalid_text"),
        (ErrorCode::InvalidId, "invalid_id"),
        (ErrorCode::RateLimited, "rate_limited"),
        (ErrorCode::Internal, "internal"),
        (ErrorCode::RoomLimit, "room_limit"),
        (ErrorCode::Unavailable, "unavailable"),
        (ErrorCode::InvalidToken, "invalid_token"),
        (ErrorCode::GuestsDisabled, "guests_disabled"),
        (ErrorCode::Forbidden, "forbidden"),
        (ErrorCode::RoomExists, "room_exists"),
        (ErrorCode::UnknownUser, "unknown_user"),
        (ErrorCode::InvalidSubscription, "invalid_subscription"),
        (ErrorCode::InvalidSetting, "invalid_setting"),
        (ErrorCode::UnknownMessage, "unknown_message"),
        (ErrorCode::EditExpired, "edit_expired"),
        (ErrorCode::InvalidEmoji, "invalid_emoji"),
        (ErrorCode::NoStream, "no_stream"),
        (ErrorCode::TooLarge, "too_large"),
    ];
    assert_eq!(wire.len(), ErrorCode::ALL.len());
    for ((code, name), listed) in wire.into_iter().zip(ErrorCode::ALL) {
        assert_eq!(code, listed, "ErrorCode::ALL is in contract order");
        assert_eq!(code.as_str(), name);
        assert_eq!(code.to_string(), name);
        assert_eq!(enc(&code), format!("\"{name}\""));
        assert_eq!(
            serde_json::from_str::<ErrorCode>(&format!("\"{name}\"")).unwrap(),
            code
        );

        golden_server(
            &ServerMsg::error(code, "why", Some("m1".into())),
            &format!(r#"{{"type":"error","code":"{name}","message":"why","ref":"m1"}}"#),
        );
        golden_server(
            &ServerMsg::error(code, "why", None),
            &format!(r#"{{"type":"error","code":"{name}","message":"why"}}"#),
        );
    }
}

#[test]
fn server_error_built_by_hand_matches_constructor() {
    assert_eq!(
        ServerMsg::error(ErrorCode::NotJoined, "join first", Some("typing".into())),
        ServerMsg::Error {
            code: ErrorCode::NotJoined,
            message: "join first".into(),
            reference: Some("typing".into()),
        }
    );
}

// ---------------------------------------------------------------- the contract's example

#[test]
fn contract_example_frames_decode() {
    // C: hello
    assert_eq!(
        client(r#"{"type":"hello","nick":"alice"}"#),
        ClientMsg::Hello {
            nick: Some("alice".into()),
            session: None,
            token: None,
        }
    );
    // S: welcome (the example elides the session and the limits; a real one has both)
    let welcome = format!(
        r#"{{"type":"welcome","nick":"alice","session":"s_7Gq…","server":"huddle/0.1.0","limits":{DEFAULT_LIMITS_JSON}}}"#
    );
    assert_eq!(
        server(&welcome),
        ServerMsg::Welcome {
            nick: "alice".into(),
            session: "s_7Gq…".into(),
            server: "huddle/0.1.0".into(),
            limits: Limits::default(),
            user: String::new(),
            rooms: Vec::new(),
            inbox: InboxState::default(),
            quiet: None,
        }
    );
    // C: join
    assert_eq!(
        client(r#"{"type":"join","room":"lobby"}"#),
        ClientMsg::Join {
            room: "lobby".into(),
            since: None,
            epoch: None,
        }
    );
    // S: joined (no `since` in the join, so no `recovered`)
    assert_eq!(
        server(
            r#"{"type":"joined","room":"lobby","head":41,"epoch":"e1","nicks":["alice","bob"]}"#
        ),
        ServerMsg::Joined {
            room: "lobby".into(),
            head: 41,
            epoch: "e1".into(),
            nicks: vec!["alice".into(), "bob".into()],
            recovered: None,
            members: None,
            next: None
        }
    );
    // C: send
    assert_eq!(
        client(r#"{"type":"send","room":"lobby","text":"hi all","id":"m1"}"#),
        ClientMsg::Send {
            reply_to: None,
            room: "lobby".into(),
            text: "hi all".into(),
            id: "m1".into(),
        }
    );
    // S: ack
    assert_eq!(
        server(r#"{"type":"ack","id":"m1","room":"lobby","offset":42}"#),
        ServerMsg::Ack {
            id: "m1".into(),
            room: "lobby".into(),
            offset: 42,
        }
    );
    // S: message
    assert_eq!(
        server(
            r#"{"type":"message","room":"lobby","offset":42,"id":"m1","nick":"alice","text":"hi all","ts":1764097200000}"#
        ),
        ServerMsg::Message(chat(42, "m1", "hi all"))
    );
}

#[test]
fn server_frames_decode_with_optional_fields_absent_or_present() {
    let ServerMsg::Joined { recovered, .. } =
        server(r#"{"type":"joined","room":"r","head":0,"epoch":"e","nicks":[],"recovered":false}"#)
    else {
        panic!("not joined")
    };
    assert_eq!(recovered, Some(false));

    let ServerMsg::Notification { nick, kind, .. } =
        server(r#"{"type":"notification","room":"r","kind":"info","text":"x","ts":5}"#)
    else {
        panic!("not a notification")
    };
    assert_eq!((nick, kind), (None, NotificationKind::Info));

    let ServerMsg::Notification { nick, kind, .. } = server(
        r#"{"ts":5,"nick":"bob","text":"x","kind":"left","room":"r","type":"notification"}"#,
    ) else {
        panic!("not a notification")
    };
    assert_eq!(
        (nick.as_deref(), kind),
        (Some("bob"), NotificationKind::Left)
    );

    let ServerMsg::Error { reference, .. } =
        server(r#"{"type":"error","code":"invalid_id","message":"m","ref":"m7"}"#)
    else {
        panic!("not an error")
    };
    assert_eq!(reference.as_deref(), Some("m7"));

    let ServerMsg::Error {
        reference, code, ..
    } = server(r#"{"type":"error","code":"internal","message":"m"}"#)
    else {
        panic!("not an error")
    };
    assert_eq!((reference, code), (None, ErrorCode::Internal));

    // `reference` is only the Rust name: the wire field is `ref`, and nothing else.
    let ServerMsg::Error { reference, .. } =
        server(r#"{"type":"error","code":"internal","message":"m","reference":"x"}"#)
    else {
        panic!("not an error")
    };
    assert_eq!(reference, None);
}

// ---------------------------------------------------------------- limits, constants, close codes

#[test]
fn default_limits_match_the_contract() {
    let l = Limits::default();
    assert_eq!(l.nick_max_chars, 32);
    assert_eq!(l.room_max_chars, 64);
    assert_eq!(l.text_max_chars, 4000);
    assert_eq!(l.id_max_chars, 64);
    assert_eq!(l.history_max, 100);
    assert_eq!(l.history_default, 50);
    assert_eq!(l.rate_per_sec, 20);
    assert_eq!(l.rate_burst, 40);
    assert_eq!(l.max_frame_bytes, 64 * 1024);
    assert_eq!(l.typing_interval_ms, 2000);
    assert_eq!(enc(&l), DEFAULT_LIMITS_JSON);
    assert_eq!(
        serde_json::from_str::<Limits>(DEFAULT_LIMITS_JSON).unwrap(),
        l
    );
}

#[test]
fn transport_constants_and_close_codes() {
    assert_eq!(SUBPROTOCOL, "huddle.v2");
    assert_eq!(common::SUBPROTOCOLS, ["huddle.v2", "huddle.v1"]);
    assert_eq!(WS_PATH, "/ws");
    let expected = [
        (CloseCode::GoingAway, 1001, true),
        (CloseCode::Unsupported, 1003, true),
        (CloseCode::Policy, 1008, true),
        (CloseCode::TooBig, 1009, true),
        (CloseCode::SessionTaken, 4001, false),
        (CloseCode::SignedOut, 4003, false),
        (CloseCode::SlowConsumer, 4008, true),
    ];
    for (close, number, reconnect) in expected {
        assert_eq!(close.code(), number);
        assert_eq!(CloseCode::from_code(number), Some(close));
        assert_eq!(close.should_reconnect(), reconnect, "{close:?}");
        assert!(close.reason().len() <= 123);
    }
}

// ---------------------------------------------------------------- decode errors

fn refused(json: &str) -> common::DecodeError {
    decode_client(json).expect_err(json)
}

#[test]
fn decode_errors_follow_the_documented_choices() {
    // Not JSON, not an object, no string `type`: bad_json, no ref.
    for json in [
        "",
        "not json",
        "{",
        "[]",
        "null",
        "42",
        r#""hello""#,
        r#"{}"#,
        r#"{"nick":"a"}"#,
        r#"{"type":null}"#,
        r#"{"type":7,"nick":"a"}"#,
        r#"{"type":["hello"]}"#,
    ] {
        let e = refused(json);
        assert_eq!(e.code, ErrorCode::BadJson, "{json}");
        assert_eq!(e.reference, None, "{json}");
        assert_eq!(e.frame_type, None, "{json}");
    }

    // An unknown string `type`: unknown_type, ref = the type.
    for kind in [
        "dance",
        "Hello",
        "HELLO",
        "message",
        "welcome",
        "",
        "list-rooms",
    ] {
        let json = format!(r#"{{"type":{kind:?}}}"#);
        let e = refused(&json);
        assert_eq!(e.code, ErrorCode::UnknownType, "{json}");
        assert_eq!(e.reference.as_deref(), Some(kind));
        assert_eq!(e.frame_type.as_deref(), Some(kind));
    }

    // A missing or non-string required field: that field's code.
    for (json, code) in [
        (r#"{"type":"hello","nick":1}"#, ErrorCode::InvalidNick),
        (r#"{"type":"join"}"#, ErrorCode::InvalidRoom),
        (r#"{"type":"leave","room":["a"]}"#, ErrorCode::InvalidRoom),
        (r#"{"type":"typing","room":false}"#, ErrorCode::InvalidRoom),
        (r#"{"type":"history","room":{}}"#, ErrorCode::InvalidRoom),
        (
            r#"{"type":"send","text":"x","id":"m"}"#,
            ErrorCode::InvalidRoom,
        ),
        (
            r#"{"type":"send","room":"r","id":"m"}"#,
            ErrorCode::InvalidText,
        ),
        (
            r#"{"type":"send","room":"r","text":2,"id":"m"}"#,
            ErrorCode::InvalidText,
        ),
        (
            r#"{"type":"send","room":"r","text":"x"}"#,
            ErrorCode::InvalidId,
        ),
        (
            r#"{"type":"send","room":"r","text":"x","id":3}"#,
            ErrorCode::InvalidId,
        ),
    ] {
        assert_eq!(refused(json).code, code, "{json}");
    }

    // A mistyped optional field: bad_json (ref = the type).
    for json in [
        r#"{"type":"hello","nick":"a","session":5}"#,
        r#"{"type":"join","room":"r","since":"3"}"#,
        r#"{"type":"join","room":"r","since":-1}"#,
        r#"{"type":"join","room":"r","since":1.5}"#,
        r#"{"type":"join","room":"r","epoch":1}"#,
        r#"{"type":"history","room":"r","before":"x"}"#,
        r#"{"type":"history","room":"r","limit":-1}"#,
        r#"{"type":"history","room":"r","limit":true}"#,
    ] {
        let e = refused(json);
        assert_eq!(e.code, ErrorCode::BadJson, "{json}");
        assert!(e.frame_type.is_some(), "{json}");
        assert_eq!(e.reference, e.frame_type, "{json}");
    }

    // `ref` of a send error is its id; otherwise the frame's type.
    let e = refused(r#"{"type":"send","room":7,"text":"x","id":"m9"}"#);
    assert_eq!(
        (e.code, e.reference.as_deref()),
        (ErrorCode::InvalidRoom, Some("m9"))
    );
    let e = refused(r#"{"type":"send","room":"r","text":"x"}"#);
    assert_eq!(e.reference.as_deref(), Some("send"));
    let e = refused(r#"{"type":"join","room":7}"#);
    assert_eq!(e.reference.as_deref(), Some("join"));
}

#[test]
fn v2_conversation_frames() {
    golden_client(
        &ClientMsg::Send {
            room: "lobby".into(),
            text: "yes".into(),
            id: "m2".into(),
            reply_to: Some(1),
        },
        r#"{"type":"send","room":"lobby","text":"yes","id":"m2","reply_to":1}"#,
    );
    golden_client(
        &ClientMsg::Edit {
            room: "lobby".into(),
            offset: 4,
            text: "fixed".into(),
            id: "e1".into(),
        },
        r#"{"type":"edit","room":"lobby","offset":4,"text":"fixed","id":"e1"}"#,
    );
    golden_client(
        &ClientMsg::Delete {
            room: "lobby".into(),
            offset: 4,
            id: "d1".into(),
        },
        r#"{"type":"delete","room":"lobby","offset":4,"id":"d1"}"#,
    );
    golden_client(
        &ClientMsg::React {
            room: "lobby".into(),
            offset: 4,
            emoji: "👍".into(),
            on: true,
            id: "r1".into(),
        },
        r#"{"type":"react","room":"lobby","offset":4,"emoji":"👍","on":true,"id":"r1"}"#,
    );
    golden_server(
        &ServerMsg::Edited(Edited {
            room: "lobby".into(),
            offset: 5,
            target: 4,
            text: "fixed".into(),
            user: "u1".into(),
            ts: 7,
        }),
        r#"{"type":"edited","room":"lobby","offset":5,"target":4,"text":"fixed","user":"u1","ts":7}"#,
    );
    golden_server(
        &ServerMsg::Deleted(Deleted {
            room: "lobby".into(),
            offset: 6,
            target: 4,
            user: "u1".into(),
            ts: 8,
        }),
        r#"{"type":"deleted","room":"lobby","offset":6,"target":4,"user":"u1","ts":8}"#,
    );
    golden_server(
        &ServerMsg::Reacted(Reacted {
            room: "lobby".into(),
            offset: 7,
            target: 4,
            emoji: "👍".into(),
            user: "u2".into(),
            on: false,
            ts: 9,
            nick: "bob".into(),
        }),
        r#"{"type":"reacted","room":"lobby","offset":7,"target":4,"emoji":"👍","user":"u2","on":false,"ts":9,"nick":"bob"}"#,
    );
    // History items in their current state: a reply, an edited message with its
    // reactions in the order first used, and a deleted one without text.
    let mut edited = chat(4, "m4", "fixed");
    edited.edited_ts = Some(9);
    edited.reply_to = Some(2);
    edited.reactions.apply("🎉", "u2", true);
    edited.reactions.apply("👍", "u3", true);
    edited.reactions.apply("🎉", "u3", true);
    edited.reactions.apply("👍", "u3", false);
    let mut gone = chat(5, "m5", "");
    gone.deleted = true;
    golden_server(
        &ServerMsg::History {
            room: "lobby".into(),
            messages: vec![edited, gone],
            has_more: false,
            nicks: [("u2".to_owned(), "bob".to_owned())].into_iter().collect(),
        },
        concat!(
            r#"{"type":"history","room":"lobby","messages":["#,
            r#"{"room":"lobby","offset":4,"id":"m4","nick":"alice","text":"fixed","ts":1764097200000,"reply_to":2,"edited_ts":9,"reactions":{"🎉":["u2","u3"]}},"#,
            r#"{"room":"lobby","offset":5,"id":"m5","nick":"alice","ts":1764097200000,"deleted":true}"#,
            r#"],"has_more":false,"nicks":{"u2":"bob"}}"#
        ),
    );
}
