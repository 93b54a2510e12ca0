//! The behaviour every [`Directory`] shares, written once and run against each
//! implementation (SQLite in its unit tests, Redis in ignored ones that start a
//! `redis-server`). Each function wants a fresh, empty directory.

use futures_util::future::join_all;

use super::{Directory, RoomSettings, UserKind, UserRecord};

fn record(user: &str, nick: &str, kind: UserKind) -> UserRecord {
    UserRecord {
        user: user.into(),
        nick: nick.into(),
        kind,
    }
}

fn guest(user: &str, nick: &str) -> UserRecord {
    record(user, nick, UserKind::Guest)
}

/// Accounts refuse taken names and lookalikes; tokens sign in until revoked; signing in
/// never renames an account.
pub(crate) async fn accounts_and_tokens(d: &dyn Directory) {
    assert!(d.create_account("ann", "ann", "$h1", 1).await.unwrap());
    assert!(!d.create_account("ann", "ann", "$h2", 2).await.unwrap());
    // A name whose key another account has (a lookalike) is taken too.
    assert!(!d.create_account("ann2", "ann", "$h2", 2).await.unwrap());
    assert_eq!(
        d.password_hash("ann").await.unwrap().as_deref(),
        Some("$h1")
    );
    assert_eq!(d.password_hash("bob").await.unwrap(), None);
    assert_eq!(
        d.account_with_key("ann").await.unwrap().as_deref(),
        Some("ann")
    );
    assert_eq!(
        d.user("ann").await.unwrap(),
        Some(record("ann", "ann", UserKind::Account)),
        "an account's nick is its name"
    );
    d.add_token("th", "ann", 3).await.unwrap();
    assert_eq!(d.token_user("th").await.unwrap().as_deref(), Some("ann"));
    assert!(
        d.add_token("th", "bob", 4).await.is_err(),
        "a token hash is stored once"
    );
    assert_eq!(d.token_user("th").await.unwrap().as_deref(), Some("ann"));
    assert_eq!(d.revoke_token("th").await.unwrap().as_deref(), Some("ann"));
    assert_eq!(d.token_user("th").await.unwrap(), None);
    assert_eq!(d.revoke_token("th").await.unwrap(), None);
    // Signing in again keeps an account's name and key.
    d.seen(&record("ann", "other", UserKind::Account), "other", 9)
        .await
        .unwrap();
    assert_eq!(d.user("ann").await.unwrap().unwrap().nick, "ann");
    assert_eq!(d.account_with_key("other").await.unwrap(), None);
    assert_eq!(
        d.account_with_key("ann").await.unwrap().as_deref(),
        Some("ann")
    );

    // A guest's or host user's key is no account's, and their names are taken.
    d.seen(&guest("guest:1", "cat"), "cat", 5).await.unwrap();
    d.seen(&record("h:dog", "dog", UserKind::Host), "dog", 5)
        .await
        .unwrap();
    assert_eq!(d.account_with_key("cat").await.unwrap(), None);
    assert_eq!(d.password_hash("guest:1").await.unwrap(), None);
    assert!(!d.create_account("guest:1", "g1", "$h", 6).await.unwrap());
    assert!(!d.create_account("h:dog", "hdog", "$h", 6).await.unwrap());
    // But a guest's nick does not keep an account from that name.
    assert!(d.create_account("cat", "cat", "$h3", 7).await.unwrap());
    assert_eq!(
        d.account_with_key("cat").await.unwrap().as_deref(),
        Some("cat")
    );
}

/// Memberships keep their read offsets, which only move forward and only for members.
pub(crate) async fn memberships_and_read_offsets(d: &dyn Directory) {
    assert!(d.add_member("r", "u", 4).await.unwrap());
    assert!(!d.add_member("r", "u", 0).await.unwrap(), "kept");
    assert_eq!(d.memberships("u", 10).await.unwrap(), vec![("r".into(), 4)]);
    assert_eq!(d.set_read("u", "r", 3).await.unwrap(), None);
    assert_eq!(d.set_read("u", "r", 4).await.unwrap(), None);
    assert_eq!(d.set_read("u", "r", 9).await.unwrap(), Some(9));
    assert_eq!(
        d.set_read("x", "r", 99).await.unwrap(),
        None,
        "not a member"
    );
    assert!(!d.is_member("r", "x").await.unwrap());
    assert_eq!(d.memberships("x", 10).await.unwrap(), vec![]);
    assert!(d.is_member("r", "u").await.unwrap());
    assert!(d.remove_member("r", "u").await.unwrap());
    assert!(!d.remove_member("r", "u").await.unwrap());
    assert!(!d.is_member("r", "u").await.unwrap());
    assert!(d.memberships("u", 10).await.unwrap().is_empty());
    assert_eq!(
        d.set_read("u", "r", 10).await.unwrap(),
        None,
        "not any more"
    );
    // Joining again starts afresh.
    assert!(d.add_member("r", "u", 1).await.unwrap());
    assert_eq!(d.memberships("u", 10).await.unwrap(), vec![("r".into(), 1)]);

    // In room order, at most `limit`; each user their own.
    for (room, read) in [("zeta", 3), ("alpha", 1), ("m-1", 2)] {
        assert!(d.add_member(room, "u", read).await.unwrap());
    }
    d.add_member("alpha", "v", 7).await.unwrap();
    let all = d.memberships("u", 10).await.unwrap();
    let expected: Vec<(String, u64)> = [("alpha", 1), ("m-1", 2), ("r", 1), ("zeta", 3)]
        .into_iter()
        .map(|(r, o)| (r.to_owned(), o))
        .collect();
    assert_eq!(all, expected);
    assert_eq!(d.memberships("u", 2).await.unwrap(), expected[..2]);
    assert_eq!(d.memberships("u", 0).await.unwrap(), vec![]);
    assert_eq!(
        d.memberships("v", 10).await.unwrap(),
        vec![("alpha".into(), 7)]
    );
}

/// Settings are given once and read back as given; a room without any has none.
pub(crate) async fn room_settings(d: &dyn Directory) {
    let dm = RoomSettings {
        private: true,
        owner: None,
        dm: Some(("a".into(), "b".into())),
    };
    assert!(d.create_room("dm--x", &dm).await.unwrap());
    assert!(!d.create_room("dm--x", &dm).await.unwrap());
    let got = d.settings("dm--x").await.unwrap().unwrap();
    assert_eq!(got, dm);
    assert_eq!(got.dm_peer("a"), Some("b"));
    assert_eq!(got.dm_peer("b"), Some("a"));
    assert_eq!(d.settings("lobby").await.unwrap(), None);

    let owned = RoomSettings {
        private: false,
        owner: Some("ann".into()),
        dm: None,
    };
    assert!(d.create_room("team", &owned).await.unwrap());
    let other = RoomSettings {
        private: true,
        owner: Some("bob".into()),
        dm: None,
    };
    assert!(
        !d.create_room("team", &other).await.unwrap(),
        "nothing changed"
    );
    assert_eq!(d.settings("team").await.unwrap(), Some(owned));
    let bare = RoomSettings {
        private: true,
        owner: None,
        dm: None,
    };
    assert!(d.create_room("quiet", &bare).await.unwrap());
    assert_eq!(d.settings("quiet").await.unwrap(), Some(bare));
}

/// Guests idle since the cutoff go, with their memberships; nobody else does.
pub(crate) async fn idle_guests_are_forgotten(d: &dyn Directory) {
    d.seen(&guest("guest:old", "old"), "old", 10).await.unwrap();
    d.seen(&guest("guest:new", "new"), "new", 1000)
        .await
        .unwrap();
    // Seen again later, under another nick: not idle.
    d.seen(&guest("guest:back", "back"), "back", 10)
        .await
        .unwrap();
    d.seen(&guest("guest:back", "back2"), "back2", 900)
        .await
        .unwrap();
    assert_eq!(d.user("guest:back").await.unwrap().unwrap().nick, "back2");
    // Old but not guests.
    d.seen(&record("h:old", "hold", UserKind::Host), "hold", 10)
        .await
        .unwrap();
    assert!(d.create_account("acct", "acct", "$h", 10).await.unwrap());
    // The kind a user was first seen with stays.
    d.seen(&guest("h:old", "hold"), "hold", 11).await.unwrap();
    assert_eq!(d.user("h:old").await.unwrap().unwrap().kind, UserKind::Host);

    for room in ["r", "s"] {
        d.add_member(room, "guest:old", 0).await.unwrap();
        d.add_member(room, "h:old", 0).await.unwrap();
    }
    d.add_member("r", "guest:new", 0).await.unwrap();
    assert_eq!(d.forget_guests(500).await.unwrap(), 1);
    assert_eq!(d.user("guest:old").await.unwrap(), None);
    assert!(!d.is_member("r", "guest:old").await.unwrap());
    assert!(d.memberships("guest:old", 10).await.unwrap().is_empty());
    assert_eq!(d.user("guest:new").await.unwrap().unwrap().nick, "new");
    assert!(d.is_member("r", "guest:new").await.unwrap());
    assert!(d.user("guest:back").await.unwrap().is_some());
    assert!(d.user("h:old").await.unwrap().is_some());
    assert!(d.user("acct").await.unwrap().is_some());
    assert_eq!(d.memberships("h:old", 10).await.unwrap().len(), 2);
    assert_eq!(
        d.forget_guests(500).await.unwrap(),
        0,
        "nothing left to forget"
    );

    // The cutoff is exclusive.
    assert_eq!(d.forget_guests(900).await.unwrap(), 0);
    assert_eq!(d.forget_guests(901).await.unwrap(), 1);
    assert_eq!(d.user("guest:back").await.unwrap(), None);
    // A forgotten guest who comes back is a new user.
    d.seen(&guest("guest:old", "again"), "again", 2000)
        .await
        .unwrap();
    assert_eq!(d.user("guest:old").await.unwrap().unwrap().nick, "again");
    assert!(d.memberships("guest:old", 10).await.unwrap().is_empty());
}

/// Racing calls (another instance, another session) leave one winner and the highest
/// read offset.
pub(crate) async fn races_leave_one_winner(d: &dyn Directory) {
    let hashes: Vec<String> = (0..8).map(|i| format!("$h{i}")).collect();
    let won = join_all(hashes.iter().map(|h| d.create_account("zed", "zed", h, 1))).await;
    assert_eq!(won.into_iter().filter(|r| *r.as_ref().unwrap()).count(), 1);
    let won = join_all((0..8).map(|_| d.add_member("r", "zed", 0))).await;
    assert_eq!(won.into_iter().filter(|r| *r.as_ref().unwrap()).count(), 1);
    let moved = join_all([5, 9, 2, 7, 9, 1].map(|o| d.set_read("zed", "r", o))).await;
    assert!(moved.iter().all(Result::is_ok));
    assert_eq!(
        d.memberships("zed", 1).await.unwrap(),
        vec![("r".into(), 9)]
    );
    let settings = RoomSettings {
        private: true,
        owner: None,
        dm: None,
    };
    let won = join_all((0..8).map(|_| d.create_room("x", &settings))).await;
    assert_eq!(won.into_iter().filter(|r| *r.as_ref().unwrap()).count(), 1);
}

/// Alert levels belong to a membership (a non-member has none, leaving forgets it);
/// targets list members with nicks and levels; quiet hours are set and cleared.
pub(crate) async fn alert_levels_and_quiet_hours(d: &dyn Directory) {
    use common::{NotifyLevel, Quiet};
    d.seen(&guest("ann", "Ann"), "ann", 1).await.unwrap();
    d.seen(&guest("bob", "Bob"), "bob", 1).await.unwrap();
    assert!(!d.set_notify("ann", "r", NotifyLevel::All).await.unwrap());
    d.add_member("r", "ann", 0).await.unwrap();
    d.add_member("r", "bob", 0).await.unwrap();
    assert!(d
        .set_notify("ann", "r", NotifyLevel::Nothing)
        .await
        .unwrap());
    assert_eq!(
        d.notify_levels("ann").await.unwrap(),
        [("r".to_owned(), NotifyLevel::Nothing)]
    );
    assert!(d.notify_levels("bob").await.unwrap().is_empty());
    let mut targets = d.alert_targets("r", 100).await.unwrap();
    targets.sort_by(|a, b| a.user.cmp(&b.user));
    let seen: Vec<_> = targets
        .iter()
        .map(|t| (t.user.as_str(), t.nick.as_str(), t.level))
        .collect();
    assert_eq!(
        seen,
        [
            ("ann", "Ann", NotifyLevel::Nothing),
            ("bob", "Bob", NotifyLevel::Mentions)
        ]
    );
    assert!(d
        .set_notify("ann", "r", NotifyLevel::Mentions)
        .await
        .unwrap());
    assert!(d.notify_levels("ann").await.unwrap().is_empty());
    d.set_notify("ann", "r", NotifyLevel::All).await.unwrap();
    d.remove_member("r", "ann").await.unwrap();
    d.add_member("r", "ann", 0).await.unwrap();
    assert!(
        d.notify_levels("ann").await.unwrap().is_empty(),
        "a new membership starts at the default"
    );
    assert_eq!(d.alert_targets("r", 1).await.unwrap().len(), 1);
    assert!(d.alert_targets("empty", 10).await.unwrap().is_empty());

    assert_eq!(d.quiet("ann").await.unwrap(), None);
    let q = Quiet {
        from: 1320,
        to: 420,
        tz: -300,
    };
    d.set_quiet("ann", Some(q)).await.unwrap();
    assert_eq!(d.quiet("ann").await.unwrap(), Some(q));
    d.set_quiet("ann", None).await.unwrap();
    assert_eq!(d.quiet("ann").await.unwrap(), None);
}
