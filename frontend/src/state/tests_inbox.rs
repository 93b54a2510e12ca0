//! The reducer and the inbox (issue 13): asking for alerts on welcome and after a
//! reconnect, alerts added once, reads from every direction, settings, and which
//! alerts become desktop notifications.

use common::{AlertKind, InboxState, NotifyLevel, Quiet};

use super::inbox::{format_time, parse_time, MAX_ALERTS};
use super::*;

const NOW: u64 = 50_000;

fn welcome(head: u64, unread: u64, rooms: Vec<MemberRoom>) -> ServerMsg {
    ServerMsg::Welcome {
        nick: "alice".to_owned(),
        session: "s1".to_owned(),
        server: "huddle/test".to_owned(),
        limits: Limits::default(),
        user: "alice".to_owned(),
        rooms,
        inbox: InboxState { head, unread },
        quiet: None,
    }
}

fn member(room: &str, notify: NotifyLevel) -> MemberRoom {
    MemberRoom {
        owner: None,
        room: room.to_owned(),
        head: 0,
        epoch: "e1".to_owned(),
        read: 0,
        unread: 0,
        mentions: 0,
        private: false,
        dm: None,
        dm_nick: None,
        notify,
    }
}

fn alert(seq: u64, room: &str, offset: u64) -> Alert {
    Alert {
        seq,
        kind: AlertKind::Mention,
        title: format!("bob in #{room}"),
        body: format!("@alice look {seq}"),
        room: Some(room.to_owned()),
        offset: Some(offset),
        url: None,
        ts: 1_764_097_200_000 + seq,
        read: false,
    }
}

fn inbox_request(out: &[ClientMsg]) -> Option<Option<u64>> {
    out.iter().find_map(|m| match m {
        ClientMsg::Inbox { since } => Some(*since),
        _ => None,
    })
}

fn signed_in() -> ChatState {
    let mut s = ChatState::new(None, &["lobby".to_owned()], "t".to_owned());
    s.choose_nick("alice");
    s
}

fn inbox(alerts: Vec<Alert>, head: u64, unread: u64) -> ServerMsg {
    ServerMsg::Inbox {
        alerts,
        head,
        unread,
    }
}

#[test]
fn the_first_welcome_asks_for_the_newest_alerts_and_a_reconnect_for_what_came_after() {
    let mut s = signed_in();
    let out = s.apply(welcome(9, 3, Vec::new()), NOW);
    assert_eq!(inbox_request(&out.replies), Some(None));
    // Until the alerts come, the bell shows the server's count.
    assert_eq!(s.unread_alerts(), 3);
    assert_eq!(Parts::of(&inbox(vec![], 0, 0)), Parts::INBOX);
    s.apply(
        inbox(vec![alert(8, "lobby", 4), alert(9, "lobby", 5)], 9, 3),
        NOW,
    );
    // Two held and unread, one older than those.
    assert_eq!(s.unread_alerts(), 3);
    s.disconnected();
    let out = s.apply(welcome(11, 5, Vec::new()), NOW);
    assert_eq!(inbox_request(&out.replies), Some(Some(9)));
    s.apply(
        inbox(vec![alert(10, "lobby", 6), alert(11, "lobby", 7)], 11, 5),
        NOW,
    );
    assert_eq!(s.unread_alerts(), 5);
    assert_eq!(
        s.inbox.alerts.keys().copied().collect::<Vec<_>>(),
        [8, 9, 10, 11]
    );
}

#[test]
fn alerts_read_elsewhere_while_away_are_read_here_after_the_reconnect() {
    let mut s = signed_in();
    s.apply(welcome(2, 2, Vec::new()), NOW);
    s.apply(
        inbox(vec![alert(1, "dev", 1), alert(2, "dev", 2)], 2, 2),
        NOW,
    );
    s.disconnected();
    s.apply(welcome(3, 1, Vec::new()), NOW);
    // Only the new one is unread on the server: 1 and 2 were read meanwhile.
    s.apply(inbox(vec![alert(3, "dev", 3)], 3, 1), NOW);
    assert_eq!(s.unread_alerts(), 1);
    assert!(s.inbox.alerts[&1].read && s.inbox.alerts[&2].read);
    assert!(!s.inbox.alerts[&3].read);
}

#[test]
fn an_alert_is_added_once_and_counted_until_read() {
    let mut s = signed_in();
    s.apply(welcome(0, 0, Vec::new()), NOW);
    s.apply(inbox(vec![], 0, 0), NOW);
    assert_eq!(s.unread_alerts(), 0);
    let a = s.apply(ServerMsg::Alert(alert(1, "dev", 4)), NOW);
    assert_eq!(a.changed, Parts::INBOX);
    // The tab is visible: the bell shows it, no desktop notification.
    assert!(a.alerts.is_empty());
    assert_eq!(s.unread_alerts(), 1);
    // The same alert again (an `inbox` answer overlapping it, a repeat): still one.
    s.apply(ServerMsg::Alert(alert(1, "dev", 4)), NOW);
    s.apply(inbox(vec![alert(1, "dev", 4)], 1, 1), NOW);
    assert_eq!(s.inbox.alerts.len(), 1);
    assert_eq!(s.unread_alerts(), 1);
    assert_eq!(s.inbox.head, 1);
}

#[test]
fn a_hidden_tab_raises_each_new_alert_once_as_a_desktop_notification() {
    let mut s = signed_in();
    s.apply(welcome(0, 0, Vec::new()), NOW);
    s.set_hidden(true);
    let first = s.apply(ServerMsg::Alert(alert(1, "dev", 4)), NOW);
    assert_eq!(first.alerts, [alert(1, "dev", 4)]);
    let again = s.apply(ServerMsg::Alert(alert(1, "dev", 4)), NOW);
    assert!(again.alerts.is_empty());
    // Already read (on another device, before it reached us): nothing to raise.
    let read = s.apply(
        ServerMsg::Alert(Alert {
            read: true,
            ..alert(2, "dev", 5)
        }),
        NOW,
    );
    assert!(read.alerts.is_empty());
}

#[test]
fn alert_read_marks_everything_up_to_its_seq() {
    let mut s = signed_in();
    s.apply(welcome(3, 3, Vec::new()), NOW);
    s.apply(
        inbox(
            vec![alert(1, "a", 1), alert(2, "a", 2), alert(3, "a", 3)],
            3,
            3,
        ),
        NOW,
    );
    // Another tab read up to 2.
    let read = s.apply(ServerMsg::AlertRead { seq: 2 }, NOW);
    assert_eq!(read.changed, Parts::INBOX);
    assert_eq!(s.unread_alerts(), 1);
    // Clicking alert 3 here reads it and sends `alert_read`.
    assert_eq!(s.read_alerts_upto(3), [ClientMsg::AlertRead { seq: 3 }]);
    assert_eq!(s.unread_alerts(), 0);
    // A late `inbox` answer with stale flags does not bring them back.
    s.apply(inbox(vec![alert(3, "a", 3)], 3, 0), NOW);
    assert_eq!(s.unread_alerts(), 0);
}

#[test]
fn mark_all_read_covers_alerts_older_than_those_held() {
    let mut s = signed_in();
    s.apply(welcome(60, 12, Vec::new()), NOW);
    // The newest 50 hold 10 unread; 2 more are older.
    let alerts = (11..=60)
        .map(|seq| Alert {
            read: seq <= 50,
            ..alert(seq, "a", seq)
        })
        .collect();
    s.apply(inbox(alerts, 60, 12), NOW);
    assert_eq!(s.unread_alerts(), 12);
    assert_eq!(s.read_all_alerts(), [ClientMsg::AlertRead { seq: 60 }]);
    assert_eq!(s.unread_alerts(), 0);
    // Nothing to mark: no frame.
    let mut empty = signed_in();
    assert!(empty.read_all_alerts().is_empty());
}

#[test]
fn reading_a_room_past_an_alerts_message_reads_the_alert_here() {
    let mut s = signed_in();
    s.apply(
        welcome(2, 2, vec![member("dev", NotifyLevel::Mentions)]),
        NOW,
    );
    s.apply(
        inbox(vec![alert(1, "dev", 3), alert(2, "dev", 9)], 2, 2),
        NOW,
    );
    assert_eq!(s.unread_alerts(), 2);
    // Another device read #dev up to 5 (the server sends `read`, not `alert_read`).
    s.apply(
        ServerMsg::Read {
            room: "dev".to_owned(),
            offset: 5,
        },
        NOW,
    );
    assert_eq!(s.unread_alerts(), 1);
    let listed: Vec<(u64, bool)> = s
        .inbox
        .alerts
        .values()
        .map(|a| (a.seq, s.alert_is_read(a)))
        .collect();
    assert_eq!(listed, [(1, true), (2, false)]);
}

#[test]
fn older_alerts_drop_out_past_the_limit_and_stay_counted() {
    let mut s = signed_in();
    s.apply(welcome(0, 0, Vec::new()), NOW);
    s.apply(inbox(vec![], 0, 0), NOW);
    for seq in 1..=(MAX_ALERTS as u64 + 5) {
        s.apply(ServerMsg::Alert(alert(seq, "a", seq)), NOW);
    }
    assert_eq!(s.inbox.alerts.len(), MAX_ALERTS);
    assert_eq!(s.unread_alerts(), MAX_ALERTS as u64 + 5);
    s.read_all_alerts();
    assert_eq!(s.unread_alerts(), 0);
}

#[test]
fn room_levels_and_quiet_hours_come_from_welcome_and_follow_changes() {
    let mut s = signed_in();
    let quiet = Quiet {
        from: 22 * 60,
        to: 7 * 60,
        tz: 60,
    };
    let mut w = welcome(0, 0, vec![member("dev", NotifyLevel::All)]);
    if let ServerMsg::Welcome { quiet: q, .. } = &mut w {
        *q = Some(quiet);
    }
    s.apply(w, NOW);
    assert_eq!(s.rooms["dev"].notify, NotifyLevel::All);
    assert_eq!(s.rooms["lobby"].notify, NotifyLevel::Mentions);
    assert_eq!(s.settings.quiet, Some(quiet));

    // Set here: shown at once, and sent.
    assert_eq!(
        s.set_room_notify("dev", NotifyLevel::Nothing),
        [ClientMsg::RoomNotify {
            room: "dev".to_owned(),
            level: NotifyLevel::Nothing
        }]
    );
    assert_eq!(s.rooms["dev"].notify, NotifyLevel::Nothing);
    assert!(s.set_room_notify("nowhere", NotifyLevel::All).is_empty());
    // Set in another tab.
    let changed = s.apply(
        ServerMsg::RoomNotify {
            room: "lobby".to_owned(),
            level: NotifyLevel::All,
        },
        NOW,
    );
    assert_eq!(changed.changed, Parts::INBOX);
    assert_eq!(s.rooms["lobby"].notify, NotifyLevel::All);

    assert_eq!(s.set_quiet(None), [ClientMsg::QuietHours { quiet: None }]);
    assert_eq!(s.settings.quiet, None);
    s.apply(ServerMsg::QuietHours { quiet: Some(quiet) }, NOW);
    assert_eq!(s.settings.quiet, Some(quiet));

    s.apply(
        ServerMsg::PushSubscribed {
            endpoint: "https://push.example/1".to_owned(),
        },
        NOW,
    );
    assert_eq!(
        s.settings.push_endpoint.as_deref(),
        Some("https://push.example/1")
    );
    s.apply(
        ServerMsg::PushUnsubscribed {
            endpoint: "https://push.example/1".to_owned(),
        },
        NOW,
    );
    assert_eq!(s.settings.push_endpoint, None);
}

#[test]
fn signing_out_forgets_the_inbox() {
    let mut s = signed_in();
    s.apply(welcome(1, 1, Vec::new()), NOW);
    s.apply(inbox(vec![alert(1, "a", 1)], 1, 1), NOW);
    s.sign_out();
    assert_eq!(s.unread_alerts(), 0);
    assert!(s.inbox.alerts.is_empty());
    // The next person's first welcome asks for their newest alerts.
    s.choose_nick("bob");
    let out = s.apply(welcome(4, 0, Vec::new()), NOW);
    assert_eq!(inbox_request(&out.replies), Some(None));
}

#[test]
fn an_alert_opens_its_room_at_its_message() {
    let mut s = signed_in();
    s.apply(welcome(0, 0, Vec::new()), NOW);
    let out = s.open_message("dev", 3).unwrap();
    assert!(matches!(&out[..], [ClientMsg::Join { room, .. }] if room == "dev"));
    assert_eq!(s.current.as_deref(), Some("dev"));
    assert_eq!(s.highlight, Some(("dev".to_owned(), 3)));
    // Another room on screen: the highlight goes.
    s.open_room("lobby").unwrap();
    assert_eq!(s.highlight, None);
}

#[test]
fn times_of_day_read_and_print_as_the_time_field_has_them() {
    assert_eq!(parse_time("22:30"), Some(1350));
    assert_eq!(parse_time("07:05:00"), Some(425));
    assert_eq!(parse_time("24:00"), None);
    assert_eq!(parse_time(""), None);
    assert_eq!(format_time(1350), "22:30");
    assert_eq!(format_time(5), "00:05");
}

#[test]
fn a_refused_inbox_request_or_push_subscription_says_nothing_in_the_room() {
    let mut s = signed_in();
    s.apply(welcome(0, 0, Vec::new()), NOW);
    for frame in ["inbox", "alert_read", "push_subscribe"] {
        s.apply(
            ServerMsg::error(
                common::ErrorCode::HelloRequired,
                "send hello first",
                Some(frame.to_owned()),
            ),
            NOW,
        );
    }
    assert!(s.rooms["lobby"].notices.is_empty());
}
