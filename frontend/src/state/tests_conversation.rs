//! The reducer and the conversation (issue 14): edits, deletions and reactions as
//! entries of the log (they move the resume point, make no rows, count as no unread),
//! our own changes shown at once and settled by the server's entries, replies and the
//! search for a reply's original through older pages.

use std::collections::BTreeMap;

use common::{Deleted, Edited, Reacted, Reactions};

use super::room::MAX_RENDERED;
use super::*;

const NOW: u64 = 50_000;
const ME: &str = "u:alice";
const THUMBS: &str = "\u{1f44d}";
const EYES: &str = "\u{1f440}";

fn step(s: &mut ChatState, m: ServerMsg) -> Applied {
    s.apply(m, NOW)
}

fn chat(room: &str, offset: u64, nick: &str) -> ChatMessage {
    ChatMessage {
        reply_to: None,
        edited_ts: None,
        deleted: false,
        reactions: Default::default(),
        reaction_counts: Default::default(),
        room: room.to_owned(),
        offset,
        id: format!("{nick}{offset}"),
        nick: nick.to_owned(),
        text: format!("text {offset}"),
        ts: 1_764_097_200_000 + offset,
        user: Some(format!("u:{nick}")),
    }
}

fn history(room: &str, messages: Vec<ChatMessage>, has_more: bool) -> ServerMsg {
    ServerMsg::History {
        room: room.to_owned(),
        messages,
        has_more,
        nicks: BTreeMap::new(),
    }
}

fn edited(offset: u64, target: u64, text: &str) -> ServerMsg {
    ServerMsg::Edited(Edited {
        room: "lobby".to_owned(),
        offset,
        target,
        text: text.to_owned(),
        user: "u:bob".to_owned(),
        ts: 1_764_097_300_000,
    })
}

fn deleted(offset: u64, target: u64) -> ServerMsg {
    ServerMsg::Deleted(Deleted {
        room: "lobby".to_owned(),
        offset,
        target,
        user: "u:bob".to_owned(),
        ts: 1_764_097_300_000,
    })
}

fn reacted(offset: u64, target: u64, user: &str, emoji: &str, on: bool) -> ServerMsg {
    ServerMsg::Reacted(Reacted {
        room: "lobby".to_owned(),
        offset,
        target,
        emoji: emoji.to_owned(),
        user: format!("u:{user}"),
        on,
        ts: 1_764_097_300_000,
        nick: user.to_owned(),
    })
}

fn joined_frame(head: u64, recovered: Option<bool>) -> ServerMsg {
    ServerMsg::Joined {
        room: "lobby".to_owned(),
        head,
        epoch: "e1".to_owned(),
        nicks: vec!["alice".to_owned(), "bob".to_owned()],
        recovered,
        members: None,
        next: None,
    }
}

/// Alice (user `u:alice`), welcomed and in the lobby, which holds `count` messages
/// of bob's (offsets 1..=count, the newest page loaded).
fn lobby_with(count: u64) -> ChatState {
    let mut s = ChatState::new(None, &[], "p".to_owned());
    s.choose_nick("alice");
    step(
        &mut s,
        ServerMsg::Welcome {
            nick: "alice".to_owned(),
            session: "s1".to_owned(),
            server: "huddle/test".to_owned(),
            limits: Limits::default(),
            user: ME.to_owned(),
            rooms: Vec::new(),
            inbox: Default::default(),
            quiet: None,
        },
    );
    step(&mut s, joined_frame(count, None));
    let first = count.saturating_sub(HISTORY_PAGE - 1).max(1);
    let page = (first..=count).map(|o| chat("lobby", o, "bob")).collect();
    step(&mut s, history("lobby", page, first > 1));
    s
}

fn shown(s: &ChatState, offset: u64) -> Shown {
    s.rooms["lobby"]
        .shown(offset, Some(ME))
        .expect("the message is held")
}

fn chips(s: &ChatState, offset: u64) -> Vec<(String, u64, bool)> {
    shown(s, offset)
        .reactions
        .into_iter()
        .map(|c| (c.emoji, c.count, c.mine))
        .collect()
}

/// The id of the frame, for its ack.
fn id_of(frame: &ClientMsg) -> String {
    match frame {
        ClientMsg::Edit { id, .. }
        | ClientMsg::Delete { id, .. }
        | ClientMsg::React { id, .. }
        | ClientMsg::Send { id, .. } => id.clone(),
        other => panic!("no id in {other:?}"),
    }
}

fn ack(id: &str, offset: u64) -> ServerMsg {
    ServerMsg::Ack {
        id: id.to_owned(),
        room: "lobby".to_owned(),
        offset,
    }
}

#[test]
fn entries_move_the_resume_point_but_make_no_rows_unread_counts_or_alerts() {
    let mut s = lobby_with(3);
    s.open_room("elsewhere").unwrap();
    let rows = s.rooms["lobby"].rows();
    let announcement = s.announcement.clone();
    s.set_hidden(true);
    for frame in [
        edited(4, 1, "fixed"),
        reacted(5, 2, "bob", THUMBS, true),
        deleted(6, 3),
    ] {
        let applied = step(&mut s, frame);
        assert!(applied.replies.is_empty() && applied.alerts.is_empty());
        assert_eq!(applied.changed, Parts::NONE, "rows change in place");
    }
    let lobby = &s.rooms["lobby"];
    assert_eq!(lobby.known_head, 6);
    assert_eq!(lobby.rows(), rows, "no row was added");
    assert_eq!((lobby.unread, lobby.mentions, s.hidden_unread), (0, 0, 0));
    assert_eq!(s.announcement, announcement);
    assert_eq!(s.title(), "#elsewhere · Huddle");
    // A reconnect resumes after the last entry, so none is replayed.
    s.disconnected();
    let out = step(
        &mut s,
        ServerMsg::Welcome {
            nick: "alice".to_owned(),
            session: "s1".to_owned(),
            server: "huddle/test".to_owned(),
            limits: Limits::default(),
            user: ME.to_owned(),
            rooms: Vec::new(),
            inbox: Default::default(),
            quiet: None,
        },
    )
    .replies;
    assert!(out.contains(&ClientMsg::Join {
        room: "lobby".to_owned(),
        since: Some(6),
        epoch: Some("e1".to_owned()),
    }));
}

#[test]
fn entries_change_the_message_they_name_once_and_wake_only_its_row() {
    let mut s = lobby_with(3);
    s.take_touched();
    step(&mut s, edited(4, 2, "better"));
    assert_eq!(s.take_touched(), vec![("lobby".to_owned(), 2)]);
    let two = shown(&s, 2);
    assert_eq!((two.text.as_str(), two.edited), ("better", true));
    step(&mut s, reacted(5, 2, "bob", THUMBS, true));
    step(&mut s, reacted(6, 2, "carol", THUMBS, true));
    step(&mut s, reacted(7, 2, "bob", EYES, true));
    step(&mut s, reacted(8, 2, "bob", EYES, false));
    let chip = &shown(&s, 2).reactions[0];
    assert_eq!(chip.names, ["bob", "carol"], "nicks from the entries");
    assert_eq!(
        (chip.count, chip.mine, chip.who()),
        (2, false, "bob, carol".to_owned())
    );
    assert_eq!(chips(&s, 2).len(), 1, "an emoji nobody uses any more goes");
    // A replay of entries we have seen (at or below the resume point) changes nothing:
    // an older edit must not undo a newer one.
    step(&mut s, edited(4, 2, "worse"));
    step(&mut s, reacted(6, 2, "carol", THUMBS, true));
    assert_eq!(shown(&s, 2).text, "better");
    assert_eq!(chips(&s, 2), vec![(THUMBS.to_owned(), 2, false)]);
    // Deleted: no text, no reactions; an entry naming a message we never loaded is
    // skipped (history shows it deleted), but still moves the resume point.
    step(&mut s, deleted(9, 2));
    let two = shown(&s, 2);
    assert!(two.deleted && two.text.is_empty() && two.reactions.is_empty());
    step(&mut s, deleted(10, 999));
    assert_eq!(s.rooms["lobby"].known_head, 10);
    assert_eq!(s.rooms["lobby"].messages.len(), 3);
}

#[test]
fn history_is_current_state_and_a_late_live_frame_does_not_undo_it() {
    let mut s = lobby_with(0);
    let mut m = chat("lobby", 1, "bob");
    m.text = "edited text".to_owned();
    m.edited_ts = Some(5);
    m.reactions = Reactions(vec![(THUMBS.to_owned(), vec!["u:carol".to_owned()])]);
    m.reaction_counts = BTreeMap::from([(THUMBS.to_owned(), 30)]);
    let gone = ChatMessage {
        deleted: true,
        text: String::new(),
        ..chat("lobby", 2, "bob")
    };
    let mut page = history("lobby", vec![m, gone], false);
    if let ServerMsg::History { nicks, .. } = &mut page {
        nicks.insert("u:carol".to_owned(), "carol".to_owned());
    }
    step(&mut s, page);
    let one = shown(&s, 1);
    assert_eq!((one.text.as_str(), one.edited), ("edited text", true));
    assert_eq!(one.reactions[0].who(), "carol and 29 more");
    assert!(shown(&s, 2).deleted);
    // The live frame of message 1, sent before its edit, arrives after the page.
    step(&mut s, ServerMsg::Message(chat("lobby", 1, "bob")));
    assert_eq!(shown(&s, 1).text, "edited text");
    assert_eq!(chips(&s, 1), vec![(THUMBS.to_owned(), 30, false)]);
    // Someone else reacts: the total follows.
    step(&mut s, reacted(3, 1, "dan", THUMBS, true));
    assert_eq!(chips(&s, 1), vec![(THUMBS.to_owned(), 31, false)]);
}

#[test]
fn our_reaction_shows_at_once_and_settles_on_the_servers_entry_without_flicker() {
    let mut s = lobby_with(3);
    let frame = s.toggle_reaction(2, THUMBS).expect("joined: goes out now");
    assert_eq!(
        frame,
        ClientMsg::React {
            room: "lobby".to_owned(),
            offset: 2,
            emoji: THUMBS.to_owned(),
            on: true,
            id: id_of(&frame),
        }
    );
    assert_eq!(chips(&s, 2), vec![(THUMBS.to_owned(), 1, true)]);
    // The ack comes before the entry: still shown (not taken back and put again).
    step(&mut s, ack(&id_of(&frame), 5));
    assert_eq!(chips(&s, 2), vec![(THUMBS.to_owned(), 1, true)]);
    assert_eq!(s.rooms["lobby"].ops.len(), 1);
    step(&mut s, reacted(4, 2, "carol", THUMBS, true));
    assert_eq!(chips(&s, 2), vec![(THUMBS.to_owned(), 2, true)]);
    step(&mut s, reacted(5, 2, "alice", THUMBS, true));
    assert!(s.rooms["lobby"].ops.is_empty(), "settled by its entry");
    assert_eq!(chips(&s, 2), vec![(THUMBS.to_owned(), 2, true)]);
    // Clicking our chip again takes it back; here the entry comes before the ack.
    let off = s.toggle_reaction(2, THUMBS).expect("a frame");
    assert!(matches!(off, ClientMsg::React { on: false, .. }));
    assert_eq!(chips(&s, 2), vec![(THUMBS.to_owned(), 1, false)]);
    step(&mut s, reacted(6, 2, "alice", THUMBS, false));
    assert_eq!(chips(&s, 2), vec![(THUMBS.to_owned(), 1, false)]);
    step(&mut s, ack(&id_of(&off), 6));
    assert!(s.rooms["lobby"].ops.is_empty());
    assert_eq!(chips(&s, 2), vec![(THUMBS.to_owned(), 1, false)]);
    // Not one of the fixed set: nothing is sent.
    assert_eq!(s.toggle_reaction(2, "x"), None);
}

#[test]
fn a_refused_change_is_undone_with_a_notice_and_unacked_ones_are_resent_once_joined() {
    let mut s = lobby_with(3);
    let mut mine = chat("lobby", 4, "alice");
    mine.text = "typo".to_owned();
    step(&mut s, ServerMsg::Message(mine));
    assert!(s.start_edit(4, NOW));
    let edit = s.save_edit(4, "fixed").expect("an edit frame");
    assert_eq!(shown(&s, 4).text, "fixed");
    step(
        &mut s,
        ServerMsg::Error {
            code: ErrorCode::EditExpired,
            message: "too late to edit".to_owned(),
            reference: Some(id_of(&edit)),
        },
    );
    let four = shown(&s, 4);
    assert_eq!((four.text.as_str(), four.edited), ("typo", false));
    let notice = s.rooms["lobby"].notices.last().expect("a notice");
    assert_eq!(notice.kind, NoticeKind::Error);
    assert!(notice.text.contains("too late to edit"), "{}", notice.text);
    // Offline changes wait for the join; one acked before the drop is not resent.
    let acked = s.toggle_reaction(1, THUMBS).expect("a frame");
    step(&mut s, ack(&id_of(&acked), 6));
    s.disconnected();
    assert_eq!(s.toggle_reaction(2, EYES), None, "waits for the join");
    assert_eq!(s.delete_message(4), None, "waits for the join");
    assert!(shown(&s, 4).deleted, "shown deleted meanwhile");
    let out = step(&mut s, joined_frame(6, Some(true))).replies;
    let changes: Vec<&ClientMsg> = out
        .iter()
        .filter(|m| matches!(m, ClientMsg::React { .. } | ClientMsg::Delete { .. }))
        .collect();
    assert_eq!(changes.len(), 2, "{out:?}");
    assert!(matches!(
        changes[0],
        ClientMsg::React {
            offset: 2,
            on: true,
            ..
        }
    ));
    assert!(matches!(changes[1], ClientMsg::Delete { offset: 4, .. }));
}

#[test]
fn up_edits_our_newest_message_and_only_ours() {
    let mut s = lobby_with(3);
    assert!(!s.edit_last(NOW), "nothing of ours");
    for (offset, nick) in [(4, "alice"), (5, "alice"), (6, "bob")] {
        step(&mut s, ServerMsg::Message(chat("lobby", offset, nick)));
    }
    step(&mut s, deleted(7, 5));
    assert!(s.edit_last(NOW));
    assert_eq!(s.rooms["lobby"].editing, Some(4), "the newest not deleted");
    assert!(shown(&s, 4).editing);
    assert!(!s.start_edit(6, NOW), "bob's");
    assert!(!s.may_delete(6) && s.may_delete(4));
    // Saving the same text only closes the editor; Esc closes it too.
    assert_eq!(s.save_edit(4, "text 4"), None);
    assert_eq!(s.rooms["lobby"].editing, None);
    assert!(s.start_edit(4, NOW));
    s.cancel_edit();
    assert!(!shown(&s, 4).editing);
    // Deleting the message being edited ends the editing.
    assert!(s.start_edit(4, NOW));
    step(&mut s, deleted(8, 4));
    assert_eq!(s.rooms["lobby"].editing, None);
}

#[test]
fn in_a_room_we_created_we_may_delete_anyones_message() {
    let mut s = lobby_with(0);
    step(
        &mut s,
        ServerMsg::RoomCreated {
            room: "plans".to_owned(),
            private: false,
        },
    );
    step(
        &mut s,
        ServerMsg::Joined {
            room: "plans".to_owned(),
            head: 0,
            epoch: "e".to_owned(),
            nicks: vec![],
            recovered: None,
            members: None,
            next: None,
        },
    );
    step(&mut s, ServerMsg::Message(chat("plans", 1, "bob")));
    assert!(s.may_delete(1));
    assert!(!s.may_edit(1, NOW));
}

#[test]
fn a_reply_names_its_original_until_acked_and_quotes_it() {
    let mut s = lobby_with(3);
    s.reply_to(2);
    let frame = s.queue_send("agreed", NOW).expect("a send");
    assert!(matches!(
        &frame,
        ClientMsg::Send {
            reply_to: Some(2),
            ..
        }
    ));
    assert_eq!(s.rooms["lobby"].replying_to, None, "one message answers it");
    // After a drop, it is resent still answering 2.
    s.disconnected();
    let out = step(&mut s, joined_frame(3, Some(true))).replies;
    assert!(out
        .iter()
        .any(|m| matches!(m, ClientMsg::Send { reply_to: Some(2), text, .. } if text == "agreed")));
    step(&mut s, ack(&id_of(&frame), 4));
    assert_eq!(s.rooms["lobby"].messages[&4].reply_to, Some(2));
    let quote = s.rooms["lobby"].quote(2).expect("held");
    assert_eq!(
        (quote.nick.as_str(), quote.snippet.as_str()),
        ("bob", "text 2")
    );
    step(&mut s, deleted(5, 2));
    assert!(s.rooms["lobby"].quote(2).is_some_and(|q| q.deleted));
    assert_eq!(conversation::snippet(&"x".repeat(100)).chars().count(), 81);
    assert_eq!(conversation::snippet("first line\nsecond"), "first line…");
}

#[test]
fn a_reply_to_a_message_not_loaded_pages_back_to_it_and_shows_it_highlighted() {
    let mut s = lobby_with(400);
    assert_eq!(s.rooms["lobby"].messages.keys().next(), Some(&351));
    // Something quotes message 120, 230 messages before the oldest held.
    let first = s.jump_to(120).expect("a history request");
    assert_eq!(
        first,
        ClientMsg::History {
            room: "lobby".to_owned(),
            before: Some(351),
            limit: Some(100),
        }
    );
    assert_eq!(s.jump_to(120), None, "one page at a time");
    let (mut before, mut limit) = (351, 100);
    let mut pages = 0;
    loop {
        let page: Vec<ChatMessage> = (before - limit..before)
            .map(|o| chat("lobby", o, "bob"))
            .collect();
        let out = step(&mut s, history("lobby", page, true)).replies;
        pages += 1;
        match out.as_slice() {
            [] => break,
            [ClientMsg::History {
                before: Some(b),
                limit: Some(l),
                ..
            }] => (before, limit) = (*b, *l),
            other => panic!("{other:?}"),
        }
        assert!(pages < 5);
    }
    // 251..350, 151..250, then the 50 down to 101 (120 with ten above it, at least a
    // page).
    assert_eq!((pages, before, limit), (3, 151, 50));
    let lobby = &s.rooms["lobby"];
    assert_eq!(lobby.seeking, None);
    assert_eq!(s.highlight, Some(("lobby".to_owned(), 120)));
    let shown_rows: Vec<u64> = lobby
        .rows()
        .into_iter()
        .filter_map(|r| match r {
            Row::Message { offset, .. } => Some(offset),
            Row::Notice(_) => None,
        })
        .collect();
    assert!(shown_rows.contains(&120));
    assert!(shown_rows.len() <= MAX_RENDERED, "{}", shown_rows.len());
    assert!(lobby.is_frozen(), "the view stays at the original");
    // Held now: jumping again asks for nothing.
    let seq = s.highlight_seq;
    assert_eq!(s.jump_to(120), None);
    assert_eq!(s.highlight_seq, seq + 1, "the view scrolls to it again");
}

#[test]
fn a_reply_whose_original_is_gone_says_so() {
    let mut s = lobby_with(60);
    let out = s.jump_to(3).expect("a request");
    assert!(matches!(
        out,
        ClientMsg::History {
            before: Some(11),
            ..
        }
    ));
    // Retention removed it: the oldest page starts after it.
    let page = (5..11).map(|o| chat("lobby", o, "bob")).collect();
    assert!(step(&mut s, history("lobby", page, false))
        .replies
        .is_empty());
    assert_eq!(s.rooms["lobby"].seeking, None);
    assert_eq!(s.highlight, None);
    let notice = s.rooms["lobby"].notices.last().expect("a notice");
    assert!(notice.text.contains("no longer"), "{}", notice.text);
}

#[test]
fn welcome_says_which_rooms_we_own_and_how_long_we_may_edit() {
    let mut s = ChatState::new(None, &[], "p".to_owned());
    s.choose_nick("alice");
    let room = |name: &str, owner: Option<&str>| MemberRoom {
        room: name.to_owned(),
        head: 0,
        epoch: "e".to_owned(),
        read: 0,
        unread: 0,
        mentions: 0,
        private: false,
        dm: None,
        dm_nick: None,
        notify: Default::default(),
        owner: owner.map(str::to_owned),
    };
    step(
        &mut s,
        ServerMsg::Welcome {
            nick: "alice".to_owned(),
            session: "s1".to_owned(),
            server: "huddle/test".to_owned(),
            limits: Limits {
                edit_window_ms: Some(60_000),
                ..Limits::default()
            },
            user: ME.to_owned(),
            rooms: vec![room("lobby", Some(ME)), room("dev", Some("u:bob"))],
            inbox: Default::default(),
            quiet: None,
        },
    );
    assert!(s.rooms["lobby"].owned);
    assert!(!s.rooms["dev"].owned);
    step(&mut s, joined_frame(0, None));
    step(&mut s, ServerMsg::Message(chat("lobby", 1, "bob")));
    let mut mine = chat("lobby", 2, "alice");
    mine.ts = NOW - 1_000;
    step(&mut s, ServerMsg::Message(mine));
    // The owner deletes anyone's message; only the author edits, within the window.
    assert!(s.may_delete(1));
    assert!(!s.may_edit(1, NOW));
    assert!(s.may_edit(2, NOW));
    assert!(s.may_edit(2, NOW + 59_000));
    assert!(!s.may_edit(2, NOW + 60_000));
    assert!(
        !s.edit_last(NOW + 60_000),
        "nothing of ours is young enough"
    );
    assert!(s.edit_last(NOW));
}
