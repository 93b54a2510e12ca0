use super::*;

/// The time frames arrive at in these tests.
const NOW: u64 = 50_000;

/// Applies a frame at [`NOW`]; the frames to send in reply.
fn step(s: &mut ChatState, m: ServerMsg) -> Vec<ClientMsg> {
    s.apply(m, NOW).replies
}

fn msg(room: &str, offset: u64, nick: &str, id: &str) -> ChatMessage {
    ChatMessage {
        reply_to: None,
        edited_ts: None,
        deleted: false,
        reactions: Default::default(),
        reaction_counts: Default::default(),
        room: room.to_owned(),
        offset,
        id: id.to_owned(),
        nick: nick.to_owned(),
        text: format!("text {offset}"),
        ts: 1_764_097_200_000 + offset,
        user: None,
    }
}

fn live(s: &mut ChatState, room: &str, offset: u64, nick: &str) -> Vec<ClientMsg> {
    step(
        s,
        ServerMsg::Message(msg(room, offset, nick, &format!("{nick}{offset}"))),
    )
}

/// The server's answer to alice's `hello`.
fn welcome(session: &str) -> ServerMsg {
    ServerMsg::Welcome {
        nick: "alice".to_owned(),
        session: session.to_owned(),
        server: "huddle/test".to_owned(),
        limits: Limits::default(),
        user: "guest:1".to_owned(),
        rooms: Vec::new(),
        inbox: Default::default(),
        quiet: None,
    }
}

fn joined_frame(room: &str, head: u64, epoch: &str, recovered: Option<bool>) -> ServerMsg {
    ServerMsg::Joined {
        room: room.to_owned(),
        head,
        epoch: epoch.to_owned(),
        nicks: vec!["alice".to_owned(), "bob".to_owned()],
        recovered,
        members: None,
        next: None,
    }
}

fn join(room: &str, since: Option<u64>, epoch: Option<&str>) -> ClientMsg {
    ClientMsg::Join {
        room: room.to_owned(),
        since,
        epoch: epoch.map(str::to_owned),
    }
}

/// What the first `welcome` of a page asks for last: the newest alerts.
fn newest_alerts() -> ClientMsg {
    ClientMsg::Inbox { since: None }
}

fn first_page(room: &str) -> ClientMsg {
    ClientMsg::History {
        room: room.to_owned(),
        before: None,
        limit: Some(HISTORY_PAGE),
    }
}

/// A state that has been welcomed as alice and has joined the lobby at `head`.
fn joined(head: u64) -> ChatState {
    let mut s = ChatState::new(None, &[], "p".to_owned());
    s.choose_nick("alice");
    let out = step(&mut s, welcome("s1"));
    assert_eq!(
        out,
        vec![join("lobby", None, None), rooms_page(), newest_alerts()]
    );
    let out = step(&mut s, joined_frame("lobby", head, "e1", None));
    assert_eq!(out, vec![first_page("lobby"), rooms_page()]);
    s
}

fn lobby(s: &ChatState) -> &Room {
    &s.rooms["lobby"]
}

fn offsets(s: &ChatState, room: &str) -> Vec<u64> {
    s.rooms[room].messages.keys().copied().collect()
}

fn sends(out: &[ClientMsg]) -> Vec<(&str, &str)> {
    out.iter()
        .filter_map(|m| match m {
            ClientMsg::Send { text, id, .. } => Some((text.as_str(), id.as_str())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_burst_of_1000_frames_in_one_tick_loses_nothing() {
    let mut s = joined(0);
    for offset in 1..=1000 {
        live(&mut s, "lobby", offset, "bob");
    }
    assert_eq!(offsets(&s, "lobby"), (1..=1000).collect::<Vec<_>>());
    assert_eq!(lobby(&s).known_head, 1000);
}

#[test]
fn a_replay_overlapping_live_messages_shows_each_offset_once() {
    let mut s = joined(50);
    // Live messages arrive before the history answer ...
    for offset in 51..=55 {
        live(&mut s, "lobby", offset, "bob");
    }
    // ... which overlaps them.
    step(
        &mut s,
        ServerMsg::History {
            nicks: Default::default(),
            room: "lobby".to_owned(),
            messages: (6..=53)
                .map(|o| msg("lobby", o, "bob", &format!("bob{o}")))
                .collect(),
            has_more: true,
        },
    );
    // The connection drops; the resume asks for everything after 55.
    s.disconnected();
    let out = step(&mut s, welcome("s1"));
    assert_eq!(out[0], join("lobby", Some(55), Some("e1")));
    let out = step(&mut s, joined_frame("lobby", 60, "e1", Some(true)));
    assert_eq!(out, vec![rooms_page()], "a recovered join needs no history");
    // A replay that overlaps what we hold changes nothing.
    for offset in 54..=60 {
        live(&mut s, "lobby", offset, "bob");
    }
    assert_eq!(offsets(&s, "lobby"), (6..=60).collect::<Vec<_>>());
    let rows = lobby(&s).rows();
    assert_eq!(rows.len(), 55, "each offset rendered once");
    assert!(lobby(&s).has_more);
}

#[test]
fn ack_moves_a_pending_message_to_sent_and_its_echo_is_not_duplicated() {
    let mut s = joined(3);
    let frame = s
        .queue_send("hi all", 1000)
        .expect("joined, so it goes out now");
    let ClientMsg::Send { id, text, room, .. } = frame else {
        panic!("expected a send frame, got {frame:?}");
    };
    assert_eq!((text.as_str(), room.as_str()), ("hi all", "lobby"));
    assert!(lobby(&s).pending.contains_key(&id));

    step(
        &mut s,
        ServerMsg::Ack {
            id: id.clone(),
            room: "lobby".to_owned(),
            offset: 4,
        },
    );
    assert!(lobby(&s).pending.is_empty());
    assert_eq!(lobby(&s).messages[&4].text, "hi all");
    assert_eq!(lobby(&s).messages[&4].nick, "alice");

    step(
        &mut s,
        ServerMsg::Message(ChatMessage {
            text: "hi all".to_owned(),
            ..msg("lobby", 4, "alice", &id)
        }),
    );
    assert_eq!(offsets(&s, "lobby"), [4]);
    assert_eq!(lobby(&s).unread, 0, "our own message is not unread");
}

#[test]
fn echo_before_ack_also_clears_pending() {
    let mut s = joined(0);
    let Some(ClientMsg::Send { id, .. }) = s.queue_send("yo", 1) else {
        panic!("expected a send frame");
    };
    step(&mut s, ServerMsg::Message(msg("lobby", 1, "alice", &id)));
    assert!(lobby(&s).pending.is_empty());
    step(
        &mut s,
        ServerMsg::Ack {
            id,
            room: "lobby".to_owned(),
            offset: 1,
        },
    );
    assert_eq!(offsets(&s, "lobby"), [1]);
}

#[test]
fn sends_while_disconnected_go_out_after_the_join_with_their_ids() {
    let mut s = joined(0);
    let Some(ClientMsg::Send { id: first, .. }) = s.queue_send("zero", 1) else {
        panic!("expected a send frame");
    };
    // The connection drops before the ack: that message is resent too, same id.
    s.disconnected();
    assert_eq!(s.queue_send("one", 1), None);
    assert_eq!(s.queue_send("two", 2), None);
    step(&mut s, welcome("s2"));
    let out = step(&mut s, joined_frame("lobby", 0, "e1", Some(true)));
    let resent = sends(&out);
    assert_eq!(
        resent.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        ["zero", "one", "two"]
    );
    assert_eq!(resent[0].1, first);
    let ids: std::collections::HashSet<_> = resent.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), 3);
}

#[test]
fn a_new_epoch_discards_what_we_hold_and_reloads_history() {
    let mut s = joined(0);
    live(&mut s, "lobby", 1, "bob");
    s.disconnected();
    step(&mut s, welcome("s1"));
    let out = step(&mut s, joined_frame("lobby", 0, "e2", Some(false)));
    assert!(lobby(&s).messages.is_empty());
    assert_eq!(out[0], first_page("lobby"));
}

#[test]
fn errors_reach_their_target() {
    let mut s = joined(0);
    let Some(ClientMsg::Send { id, .. }) = s.queue_send("spam", 1) else {
        panic!("expected a send frame");
    };
    step(
        &mut s,
        ServerMsg::error(ErrorCode::RateLimited, "slow down", Some(id.clone())),
    );
    assert_eq!(lobby(&s).pending[&id].error.as_deref(), Some("slow down"));
    // A refused message is not resent by itself, only when the person retries.
    s.disconnected();
    step(&mut s, welcome("s1"));
    assert!(sends(&step(&mut s, joined_frame("lobby", 0, "e1", Some(true)))).is_empty());
    assert!(s.retry("lobby", &id).is_some());

    step(
        &mut s,
        ServerMsg::error(ErrorCode::Internal, "disk full", None),
    );
    assert_eq!(
        lobby(&s).notices.last().map(|n| n.kind),
        Some(NoticeKind::Error)
    );

    step(
        &mut s,
        ServerMsg::error(
            ErrorCode::NickTaken,
            "nick is taken",
            Some("hello".to_owned()),
        ),
    );
    assert_eq!(s.me, None);
    assert_eq!(s.nick_error.as_deref(), Some("nick is taken"));
}

#[test]
fn the_session_is_offered_only_for_its_own_nick() {
    let saved = Some(("alice".to_owned(), "s9".to_owned()));
    let mut s = ChatState::new(saved, &[], "p".to_owned());
    assert_eq!(s.hello(), None);
    s.choose_nick("alice");
    assert_eq!(
        s.hello(),
        Some(ClientMsg::Hello {
            nick: Some("alice".to_owned()),
            session: Some("s9".to_owned()),
            token: None,
        })
    );
    s.choose_nick("bob");
    assert_eq!(
        s.hello(),
        Some(ClientMsg::Hello {
            nick: Some("bob".to_owned()),
            session: None,
            token: None,
        })
    );
}

#[test]
fn every_room_resumes_from_its_own_offset() {
    let mut s = ChatState::new(
        None,
        &["dev".to_owned(), "lobby".to_owned()],
        "p".to_owned(),
    );
    assert_eq!(s.current.as_deref(), Some("dev"));
    s.choose_nick("alice");
    let out = step(&mut s, welcome("s1"));
    assert_eq!(
        out,
        vec![
            join("dev", None, None),
            join("lobby", None, None),
            rooms_page(),
            newest_alerts(),
        ]
    );
    step(&mut s, joined_frame("dev", 10, "d", None));
    step(&mut s, joined_frame("lobby", 3, "l", None));
    live(&mut s, "dev", 11, "bob");
    live(&mut s, "lobby", 4, "bob");
    live(&mut s, "lobby", 5, "bob");
    s.disconnected();
    let out = step(&mut s, welcome("s1"));
    assert_eq!(
        out,
        vec![
            join("dev", Some(11), Some("d")),
            join("lobby", Some(5), Some("l")),
            rooms_page(),
            newest_alerts(),
        ]
    );
}

#[test]
fn rooms_are_opened_validated_and_left() {
    let mut s = joined(0);
    assert!(s.open_room("   ").is_err());
    assert_eq!(s.open_room("dev"), Ok(vec![join("dev", None, None)]));
    assert_eq!(s.current.as_deref(), Some("dev"));
    // Opening it again only shows it.
    assert_eq!(s.open_room("dev"), Ok(vec![]));
    // Joins are answered in order: a refusal belongs to the oldest one in flight.
    assert_eq!(s.open_room("nope"), Ok(vec![join("nope", None, None)]));
    step(&mut s, joined_frame("dev", 0, "d", None));
    step(
        &mut s,
        ServerMsg::error(
            ErrorCode::InvalidRoom,
            "too many rooms",
            Some("join".to_owned()),
        ),
    );
    assert!(
        !s.rooms.contains_key("nope"),
        "a refused join removes the room"
    );
    assert!(s.rooms["dev"].joined);
    assert_eq!(s.current.as_deref(), Some("dev"));
    assert_eq!(s.room_error.as_deref(), Some("too many rooms"));
    assert_eq!(
        s.leave_room("dev"),
        vec![ClientMsg::Leave {
            room: "dev".to_owned()
        }]
    );
    assert_eq!(s.current.as_deref(), Some("lobby"));
    // Messages for a room we left are ignored.
    live(&mut s, "dev", 1, "bob");
    assert!(!s.rooms.contains_key("dev"));
}

#[test]
fn unread_counts_title_and_mentions() {
    let mut s = joined(0);
    s.open_room("dev").unwrap();
    step(&mut s, joined_frame("dev", 0, "d", None));
    s.open_room("lobby").unwrap();
    // Another room: unread, and a mention counted.
    live(&mut s, "dev", 1, "bob");
    let mention = s.apply(
        ServerMsg::Message(ChatMessage {
            text: "@Alice look".to_owned(),
            ..msg("dev", 2, "bob", "b2")
        }),
        NOW,
    );
    assert_eq!(s.rooms["dev"].unread, 2);
    assert_eq!(s.unread_elsewhere(), 2);
    assert_eq!(s.rooms["dev"].mentions, 1);
    // Desktop notifications come from the server's `alert` frames only (tests_inbox).
    assert!(mention.alerts.is_empty());
    // The room on screen while visible: read, no alert, announced.
    let seen = s.apply(
        ServerMsg::Message(ChatMessage {
            text: "alice: hi".to_owned(),
            ..msg("lobby", 1, "bob", "b3")
        }),
        NOW,
    );
    assert_eq!(lobby(&s).unread, 0);
    assert!(seen.alerts.is_empty());
    assert_eq!(s.announcement, "bob: alice: hi");
    assert_eq!(s.title(), "#lobby · Huddle");
    // Hidden tab: counted in the title, then cleared when shown again.
    s.set_hidden(true);
    live(&mut s, "lobby", 2, "bob");
    live(&mut s, "lobby", 3, "bob");
    assert_eq!(s.title(), "(2) Huddle");
    s.set_hidden(false);
    assert_eq!(s.title(), "#lobby · Huddle");
    assert_eq!(lobby(&s).unread, 0);
    s.open_room("dev").unwrap();
    assert_eq!(s.rooms["dev"].unread, 0);
}

#[test]
fn typing_is_throttled_and_shown_for_a_while() {
    let mut s = joined(0);
    assert!(s.typing(10_000).is_some());
    assert!(s.typing(11_000).is_none());
    assert!(s.typing(12_000).is_some());
    step(
        &mut s,
        ServerMsg::Typing {
            room: "lobby".to_owned(),
            nick: "bob".to_owned(),
        },
    );
    assert_eq!(lobby(&s).typists(51_000, s.me.as_deref()), ["bob"]);
    assert!(lobby(&s).typists(50_000 + TYPING_SHOWN_MS, None).is_empty());
}

#[test]
fn notices_sit_where_they_happened() {
    let mut s = joined(0);
    live(&mut s, "lobby", 1, "bob");
    step(
        &mut s,
        ServerMsg::Notification {
            room: "lobby".to_owned(),
            kind: NotificationKind::Left,
            text: String::new(),
            nick: Some("bob".to_owned()),
            ts: 5,
            offset: None,
        },
    );
    live(&mut s, "lobby", 2, "carol");
    assert_eq!(
        lobby(&s).rows(),
        vec![
            Row::Message {
                offset: 1,
                continued: false
            },
            Row::Notice(1),
            Row::Message {
                offset: 2,
                continued: false
            }
        ]
    );
    assert_eq!(lobby(&s).notices[0].text, "bob left");
}

#[test]
fn scrolling_up_asks_for_older_pages_once() {
    let mut s = joined(100);
    step(
        &mut s,
        ServerMsg::History {
            nicks: Default::default(),
            room: "lobby".to_owned(),
            messages: (51..=100)
                .map(|o| msg("lobby", o, "bob", &format!("b{o}")))
                .collect(),
            has_more: true,
        },
    );
    let Some(ClientMsg::History { before, .. }) = s.load_older() else {
        panic!("expected a history request");
    };
    assert_eq!(before, Some(51));
    assert_eq!(s.load_older(), None, "one page at a time");
    step(
        &mut s,
        ServerMsg::History {
            nicks: Default::default(),
            room: "lobby".to_owned(),
            messages: (1..=50)
                .map(|o| msg("lobby", o, "bob", &format!("b{o}")))
                .collect(),
            has_more: false,
        },
    );
    assert_eq!(offsets(&s, "lobby"), (1..=100).collect::<Vec<_>>());
    assert_eq!(s.load_older(), None, "nothing older on the server");
}

#[test]
fn presence_keeps_the_directory_count_current() {
    let mut s = joined(0);
    step(
        &mut s,
        ServerMsg::Rooms {
            rooms: vec![RoomInfo {
                room: "lobby".to_owned(),
                members: 1,
                head: 0,
            }],
            total: 1,
            next: None,
        },
    );
    step(
        &mut s,
        ServerMsg::Presence {
            room: "lobby".to_owned(),
            nicks: vec!["alice".to_owned(), "bob".to_owned(), "carol".to_owned()],
        },
    );
    assert_eq!(s.directory[0].members, 3);
}

#[test]
fn a_typing_frame_changes_only_the_typing_line() {
    let mut s = joined(0);
    let typing = s.apply(
        ServerMsg::Typing {
            room: "lobby".to_owned(),
            nick: "bob".to_owned(),
        },
        NOW,
    );
    assert_eq!(typing.changed, Parts::TYPING);
    assert!(typing.replies.is_empty() && typing.alerts.is_empty());
    // A message touches the conversation, the sidebar, the tab, and stops its author
    // typing; never the directory or the member list.
    let message = s.apply(ServerMsg::Message(msg("lobby", 1, "bob", "b1")), NOW);
    for part in [Parts::MESSAGES, Parts::ROOMS, Parts::PAGE, Parts::TYPING] {
        assert_eq!(message.changed | part, message.changed);
    }
    for part in [Parts::DIRECTORY, Parts::MEMBERS, Parts::SESSION] {
        assert_ne!(message.changed | part, message.changed);
    }
    assert!(lobby(&s).typists(NOW, None).is_empty());
    let presence = ServerMsg::Presence {
        room: "lobby".to_owned(),
        nicks: vec!["alice".to_owned()],
    };
    assert_eq!(
        s.apply(presence, NOW).changed,
        Parts::MEMBERS | Parts::DIRECTORY
    );
}

fn rooms_page() -> ClientMsg {
    ClientMsg::ListRooms {
        cursor: None,
        limit: Some(ROOMS_PAGE),
    }
}

fn info(room: &str, head: u64) -> RoomInfo {
    RoomInfo {
        room: room.into(),
        members: 0,
        head,
    }
}

#[test]
fn the_room_list_comes_by_page() {
    let mut s = ChatState::new(None, &[], "p".to_owned());
    assert_eq!(s.more_rooms(), None, "nothing to continue yet");
    let first = ServerMsg::Rooms {
        rooms: vec![info("big", 9), info("mid", 5)],
        total: 3,
        next: Some("2".into()),
    };
    s.apply(first.clone(), 0);
    assert_eq!(s.directory.len(), 2);
    assert_eq!(
        s.more_rooms(),
        Some(ClientMsg::ListRooms {
            cursor: Some("2".into()),
            limit: Some(ROOMS_PAGE)
        })
    );
    // "mid" gained messages and moved onto the second page too: shown once.
    s.apply(
        ServerMsg::Rooms {
            rooms: vec![info("mid", 5), info("small", 1)],
            total: 3,
            next: None,
        },
        0,
    );
    let names: Vec<&str> = s.directory.iter().map(|r| r.room.as_str()).collect();
    assert_eq!(names, ["big", "mid", "small"]);
    assert_eq!(s.more_rooms(), None, "the last page");
    // Asking for the first page again starts the list over.
    assert_eq!(s.first_rooms_page(), rooms_page());
    s.apply(first, 0);
    assert_eq!(s.directory.len(), 2);
    assert_eq!(s.directory_total, 3);
}

#[test]
fn a_refused_history_page_can_be_asked_for_again() {
    let mut s = joined(60);
    let page = (11..=60)
        .map(|o| msg("lobby", o, "bob", &format!("h{o}")))
        .collect();
    step(
        &mut s,
        ServerMsg::History {
            nicks: Default::default(),
            room: "lobby".into(),
            messages: page,
            has_more: true,
        },
    );
    assert!(s.load_older().is_some());
    assert_eq!(s.load_older(), None, "one request at a time");
    step(
        &mut s,
        ServerMsg::error(
            ErrorCode::RateLimited,
            "too much history read",
            Some("history".into()),
        ),
    );
    assert!(s.load_older().is_some(), "asked again after the refusal");
}

#[test]
fn a_stored_notice_takes_its_offset_among_the_messages() {
    let mut s = joined(2);
    live(&mut s, "lobby", 3, "bob");
    step(
        &mut s,
        ServerMsg::Notification {
            room: "lobby".to_owned(),
            kind: NotificationKind::Info,
            text: "deploy at 5".to_owned(),
            nick: None,
            ts: 7,
            offset: Some(4),
        },
    );
    live(&mut s, "lobby", 5, "bob");
    assert_eq!(
        offsets(&s, "lobby"),
        [3, 4, 5],
        "no gap for `since` to trip on"
    );
    let notice = &lobby(&s).messages[&4];
    assert!(notice.is_notice());
    assert_eq!(notice.text, "deploy at 5");
}

/// `joined` of a crowd: the first page of its members, the total and the cursor.
fn crowd_joined(room: &str) -> ServerMsg {
    ServerMsg::Joined {
        room: room.to_owned(),
        head: 0,
        epoch: "e1".to_owned(),
        nicks: vec!["alice".to_owned(), "bob".to_owned()],
        recovered: None,
        members: Some(5),
        next: Some("bob".to_owned()),
    }
}

fn members_page(nicks: &[&str], total: u64, next: Option<&str>) -> ServerMsg {
    ServerMsg::Members {
        room: "lobby".to_owned(),
        nicks: nicks.iter().map(|n| (*n).to_owned()).collect(),
        total,
        next: next.map(str::to_owned),
    }
}

fn more_after(after: &str) -> Option<ClientMsg> {
    Some(ClientMsg::Members {
        room: "lobby".to_owned(),
        after: Some(after.to_owned()),
        limit: Some(common::MAX_MEMBERS_PAGE),
    })
}

#[test]
fn a_small_room_is_listed_whole_with_nothing_more_to_ask() {
    let mut s = joined(0);
    assert_eq!(lobby(&s).members, ["alice", "bob"]);
    assert_eq!(lobby(&s).member_total, None);
    assert_eq!(s.more_members(), None);
}

#[test]
fn a_crowd_is_paged_in_on_request_each_member_once() {
    let mut s = joined(0);
    step(&mut s, crowd_joined("lobby"));
    assert_eq!(lobby(&s).member_total, Some(5));
    assert_eq!(s.more_members(), more_after("bob"));
    assert_eq!(s.more_members(), None, "one page at a time");
    // A page repeating a nick held already (it joined between two pages) shows it once.
    let page = s.apply(
        members_page(&["bob", "carol", "dave"], 5, Some("dave")),
        NOW,
    );
    assert_eq!(page.changed | Parts::MEMBERS, page.changed);
    assert_eq!(lobby(&s).members, ["alice", "bob", "carol", "dave"]);
    assert_eq!(s.more_members(), more_after("dave"));
    step(&mut s, members_page(&["erin"], 6, None));
    assert_eq!(lobby(&s).members.len(), 5);
    assert_eq!(lobby(&s).member_total, Some(6), "the latest count");
    assert_eq!(s.more_members(), None, "the last page");
}

#[test]
fn a_refused_page_may_be_asked_for_again_and_a_whole_list_ends_the_paging() {
    let mut s = joined(0);
    step(&mut s, crowd_joined("lobby"));
    assert!(s.more_members().is_some());
    step(
        &mut s,
        ServerMsg::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".to_owned(),
            reference: Some("members".to_owned()),
        },
    );
    assert_eq!(s.more_members(), more_after("bob"));
    // Back under the announce limit the server sends whole lists again.
    step(
        &mut s,
        ServerMsg::Presence {
            room: "lobby".to_owned(),
            nicks: vec!["alice".to_owned()],
        },
    );
    assert_eq!(lobby(&s).member_total, None);
    assert_eq!(s.more_members(), None);
    // A rejoin of a small room clears what the crowd left.
    step(&mut s, crowd_joined("lobby"));
    step(&mut s, joined_frame("lobby", 0, "e1", None));
    assert_eq!((lobby(&s).member_total, s.more_members()), (None, None));
}
