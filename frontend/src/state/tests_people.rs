//! The reducer and people (protocol v2): sign-in by token, `welcome.rooms`, read sync,
//! private rooms, invites, direct messages, removal, signing out.

use super::people::READ_THROTTLE_MS;
use super::*;

const NOW: u64 = 50_000;

fn step(s: &mut ChatState, m: ServerMsg) -> Vec<ClientMsg> {
    s.apply(m, NOW).replies
}

fn member(room: &str, head: u64, read: u64, unread: u64, mentions: u64) -> MemberRoom {
    MemberRoom {
        owner: None,
        room: room.to_owned(),
        head,
        epoch: "e1".to_owned(),
        read,
        unread,
        mentions,
        private: false,
        dm: None,
        dm_nick: None,
        notify: Default::default(),
    }
}

fn welcome(rooms: Vec<MemberRoom>) -> ServerMsg {
    ServerMsg::Welcome {
        nick: "alice".to_owned(),
        session: "s1".to_owned(),
        server: "huddle/test".to_owned(),
        limits: Limits::default(),
        user: "alice".to_owned(),
        rooms,
        inbox: Default::default(),
        quiet: None,
    }
}

fn joined_frame(room: &str, head: u64) -> ServerMsg {
    ServerMsg::Joined {
        room: room.to_owned(),
        head,
        epoch: "e1".to_owned(),
        nicks: vec!["alice".to_owned()],
        recovered: None,
        members: None,
        next: None,
    }
}

fn message(room: &str, offset: u64, nick: &str, text: &str) -> ServerMsg {
    ServerMsg::Message(ChatMessage {
        reply_to: None,
        edited_ts: None,
        deleted: false,
        reactions: Default::default(),
        reaction_counts: Default::default(),
        room: room.to_owned(),
        offset,
        id: format!("{nick}{offset}"),
        nick: nick.to_owned(),
        text: text.to_owned(),
        ts: 1_764_097_200_000 + offset,
        user: Some(format!("u:{nick}")),
    })
}

fn joins(out: &[ClientMsg]) -> Vec<&str> {
    out.iter()
        .filter_map(|m| match m {
            ClientMsg::Join { room, .. } => Some(room.as_str()),
            _ => None,
        })
        .collect()
}

fn reads(out: &[ClientMsg]) -> Vec<(&str, u64)> {
    out.iter()
        .filter_map(|m| match m {
            ClientMsg::Read { room, offset } => Some((room.as_str(), *offset)),
            _ => None,
        })
        .collect()
}

fn error(code: ErrorCode, reference: &str) -> ServerMsg {
    ServerMsg::error(code, format!("{code:?}"), Some(reference.to_owned()))
}

/// Signed in with a token, welcomed with `rooms`, and every room joined at its head.
fn signed_in(rooms: Vec<MemberRoom>) -> ChatState {
    let mut s = ChatState::new(None, &[], "p".to_owned());
    s.use_token("tok");
    let heads: Vec<(String, u64)> = rooms.iter().map(|r| (r.room.clone(), r.head)).collect();
    step(&mut s, welcome(rooms));
    for (room, head) in heads {
        step(&mut s, joined_frame(&room, head));
    }
    step(&mut s, joined_frame("lobby", 0));
    s
}

#[test]
fn a_token_says_hello_and_shows_the_rooms_while_it_is_checked() {
    let mut s = ChatState::new(Some(("bob".into(), "old".into())), &[], "p".to_owned());
    s.use_token("tok");
    assert_eq!(
        s.hello(),
        Some(ClientMsg::Hello {
            nick: None,
            session: None,
            token: Some("tok".to_owned()),
        })
    );
    assert!(s.in_chat(), "a returning person is not asked who they are");
    step(&mut s, welcome(Vec::new()));
    assert_eq!(s.user.as_deref(), Some("alice"));
    // The guest session of an earlier visit is not replaced by the account's.
    assert_eq!(s.session, Some(("bob".into(), "old".into())));
    // Choosing a nick makes this a guest again.
    s.choose_nick("carol");
    assert!(matches!(
        s.hello(),
        Some(ClientMsg::Hello { nick: Some(n), token: None, .. }) if n == "carol"
    ));
}

#[test]
fn welcome_rooms_are_joined_with_their_counts_and_dms_listed_apart() {
    let mut s = ChatState::new(None, &[], "p".to_owned());
    s.use_token("tok");
    let mut secret = member("secret", 7, 7, 0, 0);
    secret.private = true;
    let mut dm = member("dm-1", 3, 1, 2, 1);
    dm.private = true;
    dm.dm = Some("u:bob".to_owned());
    dm.dm_nick = Some("bob".to_owned());
    let out = step(
        &mut s,
        welcome(vec![member("dev", 40, 30, 10, 2), secret, dm]),
    );
    let mut joined = joins(&out);
    joined.sort_unstable();
    assert_eq!(joined, ["dev", "dm-1", "lobby", "secret"]);
    // Never joined on this page: no `since`, so history loads.
    assert!(out
        .iter()
        .all(|m| !matches!(m, ClientMsg::Join { since: Some(_), .. })));
    assert_eq!((s.rooms["dev"].unread, s.rooms["dev"].mentions), (10, 2));
    assert!(s.rooms["secret"].private);
    assert_eq!(s.group_rooms(), ["dev", "lobby", "secret"]);
    assert_eq!(s.dm_rooms(), ["dm-1"]);
    assert_eq!(s.rooms["dm-1"].label(), "bob");
    assert_eq!(
        s.rooms["dm-1"].dm.as_ref().map(|p| p.user.as_str()),
        Some("u:bob")
    );
}

#[test]
fn a_welcome_on_reconnect_resumes_with_since_and_a_replay_is_not_counted_twice() {
    let mut s = signed_in(vec![member("dev", 40, 30, 10, 0)]);
    step(&mut s, message("dev", 41, "bob", "hi"));
    assert_eq!(s.rooms["dev"].unread, 11);
    s.disconnected();
    // The server counted 41 and one more while we were away.
    let out = step(&mut s, welcome(vec![member("dev", 42, 30, 12, 0)]));
    assert!(out.contains(&ClientMsg::Join {
        room: "dev".to_owned(),
        since: Some(41),
        epoch: Some("e1".to_owned()),
    }));
    assert_eq!(s.rooms["dev"].unread, 12);
    // The replay of 42 is in the server's count already; 43 is new.
    step(&mut s, message("dev", 42, "bob", "replayed"));
    assert_eq!(s.rooms["dev"].unread, 12);
    step(&mut s, message("dev", 43, "bob", "new"));
    assert_eq!(s.rooms["dev"].unread, 13);
}

#[test]
fn a_read_from_another_tab_lowers_the_unread_count_and_is_not_echoed() {
    let mut s = signed_in(vec![member("dev", 0, 0, 0, 0)]);
    for o in 1..=5 {
        step(&mut s, message("dev", o, "bob", &format!("@alice {o}")));
    }
    assert_eq!((s.rooms["dev"].unread, s.rooms["dev"].mentions), (5, 5));
    step(
        &mut s,
        ServerMsg::Read {
            room: "dev".to_owned(),
            offset: 3,
        },
    );
    assert_eq!((s.rooms["dev"].unread, s.rooms["dev"].mentions), (2, 2));
    // Backwards changes nothing.
    step(
        &mut s,
        ServerMsg::Read {
            room: "dev".to_owned(),
            offset: 1,
        },
    );
    assert_eq!(s.rooms["dev"].unread, 2);
    step(
        &mut s,
        ServerMsg::Read {
            room: "dev".to_owned(),
            offset: 5,
        },
    );
    assert_eq!((s.rooms["dev"].unread, s.rooms["dev"].mentions), (0, 0));
    assert!(s.flush_reads(NOW + 10_000).is_empty(), "not sent back");
}

#[test]
fn a_read_short_of_messages_we_do_not_hold_lowers_the_count_to_what_can_be_left() {
    let mut s = signed_in(vec![member("dev", 100, 10, 90, 4)]);
    step(
        &mut s,
        ServerMsg::Read {
            room: "dev".to_owned(),
            offset: 97,
        },
    );
    assert_eq!((s.rooms["dev"].unread, s.rooms["dev"].mentions), (3, 3));
}

#[test]
fn viewing_a_room_sends_read_forward_only_and_throttled() {
    let mut s = signed_in(vec![member("dev", 0, 0, 0, 0)]);
    s.open_room("dev").unwrap();
    assert!(s.flush_reads(NOW).is_empty(), "nothing shown yet");
    step(&mut s, message("dev", 1, "bob", "one"));
    assert_eq!(reads(&s.flush_reads(NOW)), [("dev", 1)]);
    // More arrive within the throttle: held back, then the newest goes out once.
    step(&mut s, message("dev", 2, "bob", "two"));
    step(&mut s, message("dev", 3, "bob", "three"));
    assert!(s.flush_reads(NOW + READ_THROTTLE_MS - 1).is_empty());
    assert_eq!(reads(&s.flush_reads(NOW + READ_THROTTLE_MS)), [("dev", 3)]);
    assert!(s.flush_reads(NOW + 10_000).is_empty(), "nothing new");
    // A hidden tab reads nothing; showing it again does.
    s.set_hidden(true);
    step(&mut s, message("dev", 4, "bob", "four"));
    assert!(s.flush_reads(NOW + 20_000).is_empty());
    assert_eq!(s.rooms["dev"].unread, 1);
    s.set_hidden(false);
    assert_eq!(s.rooms["dev"].unread, 0);
    assert_eq!(reads(&s.flush_reads(NOW + 30_000)), [("dev", 4)]);
    // A room we are not joined to on this connection waits for the join.
    s.disconnected();
    step(&mut s, message("dev", 5, "bob", "five"));
    assert!(s.flush_reads(NOW + 40_000).is_empty());
}

#[test]
fn an_invite_for_me_adds_and_joins_the_room() {
    let mut s = signed_in(Vec::new());
    let out = step(
        &mut s,
        ServerMsg::Invited {
            room: "plans".to_owned(),
            user: "alice".to_owned(),
            by: Some("bob".to_owned()),
        },
    );
    assert_eq!(joins(&out), ["plans"]);
    assert!(s.rooms["plans"].private);
    assert_eq!(
        s.people_notice.as_deref(),
        Some("bob invited you to #plans.")
    );
    assert_ne!(s.current.as_deref(), Some("plans"), "not pulled away");
    // Twice (another tab of the inviter's, a resend) joins once.
    let out = step(
        &mut s,
        ServerMsg::Invited {
            room: "plans".to_owned(),
            user: "alice".to_owned(),
            by: Some("bob".to_owned()),
        },
    );
    assert!(joins(&out).is_empty());
}

#[test]
fn inviting_someone_shows_the_answer_or_the_reason() {
    let mut s = signed_in(Vec::new());
    let out = s.invite("lobby", "carol");
    assert_eq!(
        out,
        [ClientMsg::Invite {
            room: "lobby".to_owned(),
            user: "carol".to_owned(),
        }]
    );
    step(
        &mut s,
        ServerMsg::Invited {
            room: "lobby".to_owned(),
            user: "carol".to_owned(),
            by: None,
        },
    );
    assert!(matches!(&s.invite_outcome, Some(InviteOutcome::Invited(t)) if t.contains("carol")));
    s.invite("lobby", "nobody");
    step(&mut s, error(ErrorCode::UnknownUser, "invite"));
    assert_eq!(
        s.invite_outcome,
        Some(InviteOutcome::Refused("No user has that id.".to_owned()))
    );
    step(&mut s, error(ErrorCode::Forbidden, "invite"));
    assert!(matches!(&s.invite_outcome, Some(InviteOutcome::Refused(t)) if t.contains("owner")));
}

#[test]
fn creating_a_room_joins_and_shows_it_or_says_it_exists() {
    let mut s = signed_in(Vec::new());
    s.open_new_room();
    let out = s.create_room("plans", true);
    assert_eq!(
        out,
        [ClientMsg::CreateRoom {
            room: "plans".to_owned(),
            private: true,
        }]
    );
    step(&mut s, error(ErrorCode::RoomExists, "create_room"));
    let dialog = s.new_room.clone().expect("the dialog stays open");
    assert!(dialog.error.unwrap().contains("exists"));
    assert_eq!(dialog.waiting, None);

    s.create_room("plans2", true);
    let out = step(
        &mut s,
        ServerMsg::RoomCreated {
            room: "plans2".to_owned(),
            private: true,
        },
    );
    assert_eq!(joins(&out), ["plans2"]);
    assert_eq!(s.new_room, None, "the dialog closes");
    assert_eq!(s.current.as_deref(), Some("plans2"));
    assert!(s.rooms["plans2"].private);
}

#[test]
fn a_dm_i_asked_for_is_shown_and_one_opened_with_me_is_listed() {
    let mut s = signed_in(Vec::new());
    assert_eq!(
        s.open_dm("u:bob"),
        [ClientMsg::OpenDm {
            user: "u:bob".to_owned(),
        }]
    );
    let out = step(
        &mut s,
        ServerMsg::Dm {
            room: "dm-ab".to_owned(),
            user: "u:bob".to_owned(),
            nick: Some("bob".to_owned()),
        },
    );
    assert_eq!(joins(&out), ["dm-ab"]);
    assert_eq!(s.current.as_deref(), Some("dm-ab"));
    assert_eq!(s.rooms["dm-ab"].label(), "bob");

    s.open_room("lobby").unwrap();
    let out = step(
        &mut s,
        ServerMsg::Dm {
            room: "dm-ac".to_owned(),
            user: "u:carol".to_owned(),
            nick: None,
        },
    );
    assert_eq!(joins(&out), ["dm-ac"]);
    assert_eq!(s.current.as_deref(), Some("lobby"), "not pulled away");
    assert_eq!(s.dm_rooms(), ["dm-ab", "dm-ac"]);
    assert_eq!(s.rooms["dm-ac"].label(), "u:carol");
    assert!(!s.group_rooms().contains(&"dm-ac".to_owned()));

    // Opening one we have shows it without joining again.
    s.open_dm("u:carol");
    let out = step(
        &mut s,
        ServerMsg::Dm {
            room: "dm-ac".to_owned(),
            user: "u:carol".to_owned(),
            nick: Some("carol".to_owned()),
        },
    );
    assert!(joins(&out).is_empty());
    assert_eq!(s.current.as_deref(), Some("dm-ac"));
    assert_eq!(s.rooms["dm-ac"].label(), "carol");
}

#[test]
fn a_room_left_without_our_asking_leaves_the_sidebar() {
    let mut s = signed_in(vec![member("dev", 0, 0, 0, 0)]);
    s.open_room("dev").unwrap();
    step(
        &mut s,
        ServerMsg::Left {
            room: "dev".to_owned(),
        },
    );
    assert!(!s.rooms.contains_key("dev"));
    assert_eq!(s.current.as_deref(), Some("lobby"));
    assert_eq!(
        s.people_notice.as_deref(),
        Some("You are no longer in #dev.")
    );
}

#[test]
fn the_answer_to_our_leave_does_not_drop_a_room_opened_again() {
    let mut s = signed_in(vec![member("dev", 0, 0, 0, 0)]);
    assert_eq!(
        s.leave_room("dev"),
        [ClientMsg::Leave {
            room: "dev".to_owned(),
        }]
    );
    let out = s.open_room("dev").unwrap();
    assert_eq!(joins(&out), ["dev"]);
    step(
        &mut s,
        ServerMsg::Left {
            room: "dev".to_owned(),
        },
    );
    assert!(s.rooms.contains_key("dev"));
    assert_eq!(s.people_notice, None);
}

#[test]
fn an_invalid_token_goes_back_to_the_sign_in_screen_and_is_forgotten() {
    let mut s = ChatState::new(None, &[], "p".to_owned());
    s.use_token("expired");
    assert!(s.in_chat());
    let applied = s.apply(error(ErrorCode::InvalidToken, "hello"), NOW);
    assert!(applied.forget_token);
    assert!(!s.in_chat());
    assert!(s.refused(), "no reconnecting with it");
    assert_eq!(
        s.sign_in_error.as_deref(),
        Some("Your sign-in expired, sign in again.")
    );
    assert_eq!(s.hello(), None);
    // Signing in again clears the sentence.
    s.use_token("fresh");
    assert_eq!(s.sign_in_error, None);
    assert!(s.in_chat());
}

#[test]
fn guests_disabled_turns_the_guest_tab_off() {
    let mut s = ChatState::new(None, &[], "p".to_owned());
    s.choose_nick("alice");
    let applied = s.apply(error(ErrorCode::GuestsDisabled, "hello"), NOW);
    assert!(!applied.forget_token);
    assert!(s.guests_disabled);
    assert!(!s.in_chat());
    assert!(s.refused());
    s.use_token("tok");
    assert!(!s.refused());
}

#[test]
fn signed_out_by_the_server_forgets_the_person_and_goes_back_to_sign_in() {
    let mut s = signed_in(vec![member("secret", 3, 0, 3, 0)]);
    s.queue_send("hello", NOW);
    s.signed_out();
    assert!(!s.in_chat());
    assert_eq!(s.hello(), None);
    assert_eq!(s.user, None);
    assert!(
        !s.rooms.contains_key("secret"),
        "their rooms are not left on screen"
    );
    assert!(s.sign_in_error.as_deref().unwrap().contains("signed out"));
    // Message ids keep counting across people on one page.
    s.choose_nick("bob");
    step(
        &mut s,
        ServerMsg::Welcome {
            nick: "bob".to_owned(),
            session: "s2".to_owned(),
            server: "t".to_owned(),
            limits: Limits::default(),
            user: "guest:2".to_owned(),
            rooms: Vec::new(),
            inbox: Default::default(),
            quiet: None,
        },
    );
    step(&mut s, joined_frame("lobby", 0));
    let Some(ClientMsg::Send { id, .. }) = s.queue_send("hi", NOW) else {
        panic!("lobby is joined");
    };
    assert_eq!(id, "p-000002");
}

#[test]
fn signing_out_here_leaves_an_empty_sign_in_screen() {
    let mut s = signed_in(vec![member("dev", 0, 0, 0, 0)]);
    s.sign_out();
    assert!(!s.in_chat());
    assert_eq!(s.sign_in_error, None);
    assert_eq!(s.me, None);
    assert_eq!(s.group_rooms(), [DEFAULT_ROOM]);
}

#[test]
fn my_messages_from_another_tab_are_mine_by_user_id() {
    let mut s = signed_in(vec![member("dev", 0, 0, 0, 0)]);
    // Another device of alice's, under another nick: still not unread.
    let mut m = ChatMessage {
        reply_to: None,
        edited_ts: None,
        deleted: false,
        reactions: Default::default(),
        reaction_counts: Default::default(),
        room: "dev".to_owned(),
        offset: 1,
        id: "x1".to_owned(),
        nick: "alice-phone".to_owned(),
        text: "from my phone".to_owned(),
        ts: 1,
        user: Some("alice".to_owned()),
    };
    step(&mut s, ServerMsg::Message(m.clone()));
    assert_eq!(s.rooms["dev"].unread, 0);
    m.offset = 2;
    m.user = Some("u:alice2".to_owned());
    step(&mut s, ServerMsg::Message(m));
    assert_eq!(s.rooms["dev"].unread, 1, "a lookalike is someone else");
    assert_eq!(
        s.rooms["dev"].users.get("alice-phone").map(String::as_str),
        Some("u:alice2")
    );
}

#[test]
fn a_dm_opened_by_someone_else_counts_what_they_wrote_before_it_was_joined() {
    let mut s = signed_in(Vec::new());
    let out = step(
        &mut s,
        ServerMsg::Dm {
            room: "dm--ab".to_owned(),
            user: "u:bob".to_owned(),
            nick: Some("bob".to_owned()),
        },
    );
    assert_eq!(joins(&out), ["dm--ab"]);
    // Bob wrote twice before the join reached the server.
    step(&mut s, joined_frame("dm--ab", 2));
    assert_eq!(s.rooms["dm--ab"].unread, 2);
    // The history page of those two does not count them again; a third live one does.
    step(&mut s, message("dm--ab", 3, "bob", "and now"));
    assert_eq!(s.rooms["dm--ab"].unread, 3);
}
