//! The behaviour every [`Inbox`] shares, written once and run against each
//! implementation (SQLite in its unit tests, Redis in ignored ones that start a
//! `redis-server`). Each function wants a fresh, empty inbox.

use common::AlertKind;
use futures_util::future::join_all;

use super::{Inbox, MarkedRead, NewAlert, Subscription, IDEMPOTENCY_MS, KEEP_PER_USER};

fn mention(room: &str, offset: u64) -> NewAlert {
    NewAlert {
        kind: AlertKind::Mention,
        title: format!("bob in #{room}"),
        body: "@ann look".into(),
        room: Some(room.into()),
        offset: Some(offset),
        url: None,
    }
}

fn app(title: &str) -> NewAlert {
    NewAlert {
        kind: AlertKind::App,
        title: title.into(),
        body: String::new(),
        room: None,
        offset: None,
        url: Some("https://example.com/x".into()),
    }
}

/// Seqs count 1, 2, 3 per user; `since` resumes; reading moves forward only, by seq or
/// by a room read past the message; receipts follow.
pub(crate) async fn alerts_numbered_read_and_resumed(i: &dyn Inbox) {
    let a = i
        .append("ann", &mention("r", 5), 10, None, None)
        .await
        .unwrap();
    let first = a.alert.unwrap();
    assert_eq!((first.seq, first.ts, first.read), (1, 10, false));
    assert_eq!(first.room.as_deref(), Some("r"));
    let b = i
        .append("ann", &app("deploy"), 11, Some(99), None)
        .await
        .unwrap();
    assert_eq!(b.alert.as_ref().unwrap().seq, 2);
    assert_eq!(
        b.alert.as_ref().unwrap().url.as_deref(),
        Some("https://example.com/x")
    );
    let other = i.append("bob", &app("x"), 12, None, None).await.unwrap();
    assert_eq!(other.alert.unwrap().seq, 1, "each user counts from 1");
    i.append("ann", &mention("s", 7), 13, None, None)
        .await
        .unwrap();

    let st = i.state("ann").await.unwrap();
    assert_eq!((st.head, st.unread), (3, 3));
    assert_eq!(i.state("nobody").await.unwrap().head, 0);
    let (all, _) = i.since("ann", None, 50).await.unwrap();
    assert_eq!(all.iter().map(|a| a.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let (newest, _) = i.since("ann", None, 2).await.unwrap();
    assert_eq!(newest.iter().map(|a| a.seq).collect::<Vec<_>>(), [2, 3]);
    let (after, st) = i.since("ann", Some(1), 50).await.unwrap();
    assert_eq!(after.iter().map(|a| a.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(st.head, 3);

    // Receipts: null until it happens.
    let r = i.receipt(&a.id).await.unwrap().unwrap();
    assert_eq!((r.user.as_str(), r.created), ("ann", 10));
    assert_eq!((r.delivered, r.read, r.pushed), (None, None, None));
    assert!(i.receipt("al_nope").await.unwrap().is_none());
    i.delivered("ann", 2, 20).await.unwrap();
    i.delivered("ann", 2, 21).await.unwrap();
    assert_eq!(i.receipt(&a.id).await.unwrap().unwrap().delivered, Some(20));
    assert_eq!(i.receipt(&b.id).await.unwrap().unwrap().delivered, Some(20));

    // Reading room `r` past offset 5 reads the mention there, not the one in `s`.
    assert_eq!(
        i.read_room("ann", "r", 4, 30).await.unwrap(),
        MarkedRead::default()
    );
    assert_eq!(i.read_room("ann", "r", 6, 30).await.unwrap().upto, 1);
    assert_eq!(i.receipt(&a.id).await.unwrap().unwrap().read, Some(30));
    assert_eq!(i.state("ann").await.unwrap().unread, 2);
    assert_eq!(i.read_upto("ann", 2, 31).await.unwrap().upto, 2);
    assert_eq!(
        i.read_upto("ann", 2, 32).await.unwrap(),
        MarkedRead::default(),
        "read only moves forward"
    );
    let (after, st) = i.since("ann", Some(0), 50).await.unwrap();
    assert_eq!(
        after.iter().map(|a| a.read).collect::<Vec<_>>(),
        [true, true, false]
    );
    assert_eq!(st.unread, 1);
    assert_eq!(i.receipt(&a.id).await.unwrap().unwrap().read, Some(30));
    // Reading cancels the push that was due.
    assert!(i.claim_due(1000, 100, 10).await.unwrap().is_empty());
    assert_eq!(i.state("bob").await.unwrap().unread, 1);

    // Several at once: each user's next seq, in order.
    let batch = vec![
        ("ann".to_owned(), mention("r", 9), Some(50)),
        ("cat".to_owned(), mention("r", 9), None),
        ("ann".to_owned(), app("again"), None),
    ];
    let stored = i.append_many(&batch, 40).await.unwrap();
    let seqs: Vec<_> = stored.iter().map(|a| (a.seq, a.ts)).collect();
    assert_eq!(seqs, [(4, 40), (1, 40), (5, 40)]);
    assert_eq!(i.state("ann").await.unwrap().head, 5);
    let due = i.claim_due(60, 10, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].user.as_str(), due[0].alert.seq), ("ann", 4));
}

/// The same key within a day is the same alert; after a day, or for another user, a
/// new one.
pub(crate) async fn idempotency(i: &dyn Inbox) {
    let first = i
        .append("ann", &app("a"), 100, None, Some("k1"))
        .await
        .unwrap();
    assert!(first.alert.is_some());
    let again = i
        .append("ann", &app("a"), 200, None, Some("k1"))
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    assert!(again.alert.is_none());
    assert_eq!(i.state("ann").await.unwrap().head, 1);
    let bob = i
        .append("bob", &app("a"), 200, None, Some("k1"))
        .await
        .unwrap();
    assert_ne!(bob.id, first.id);
    let later = i
        .append("ann", &app("a"), 100 + IDEMPOTENCY_MS, None, Some("k1"))
        .await
        .unwrap();
    assert_ne!(later.id, first.id);
    assert_eq!(later.alert.unwrap().seq, 2);
    // Racing requests with one key store one alert.
    let c = app("c");
    let racers = (0..8).map(|_| i.append("cat", &c, 300, None, Some("k2")));
    let results = join_all(racers).await;
    let ids: std::collections::HashSet<_> = results
        .iter()
        .map(|r| r.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(i.state("cat").await.unwrap().head, 1);
}

/// A due push is claimed once per lease, again after the lease (its claimer died), and
/// never after it is finished or read; deferring moves it.
pub(crate) async fn push_schedule(i: &dyn Inbox) {
    i.append("ann", &app("a"), 1, Some(100), None)
        .await
        .unwrap();
    i.append("ann", &app("b"), 1, Some(200), None)
        .await
        .unwrap();
    i.append("bob", &app("c"), 1, Some(150), None)
        .await
        .unwrap();
    i.append("bob", &app("d"), 1, None, None).await.unwrap();
    assert!(i.claim_due(99, 1000, 10).await.unwrap().is_empty());
    let due = i.claim_due(160, 1000, 10).await.unwrap();
    let mut got: Vec<_> = due.iter().map(|d| (d.user.as_str(), d.alert.seq)).collect();
    got.sort_unstable();
    assert_eq!(got, [("ann", 1), ("bob", 1)]);
    assert_eq!(
        due.iter().find(|d| d.user == "ann").unwrap().alert.title,
        "a"
    );
    assert!(
        i.claim_due(170, 1000, 10).await.unwrap().is_empty(),
        "claimed alerts wait for their lease"
    );
    i.finish_push("ann", 1, Some(175)).await.unwrap();
    // bob's claimer died: after the lease it is handed out again.
    let again = i.claim_due(1200, 1000, 10).await.unwrap();
    let mut got: Vec<_> = again
        .iter()
        .map(|d| (d.user.as_str(), d.alert.seq))
        .collect();
    got.sort_unstable();
    assert_eq!(got, [("ann", 2), ("bob", 1)]);
    i.finish_push("bob", 1, None).await.unwrap();
    i.defer_push("ann", 2, 5000).await.unwrap();
    assert!(i.claim_due(3000, 1000, 10).await.unwrap().is_empty());
    assert_eq!(i.claim_due(5000, 1000, 10).await.unwrap().len(), 1);
    let ann1 = i.since("ann", Some(0), 10).await.unwrap().0;
    assert_eq!(ann1.len(), 2);
    // A pushed alert that is read reports it, so devices can close it.
    let read = i.read_upto("ann", 2, 6000).await.unwrap();
    assert_eq!(
        read,
        MarkedRead {
            upto: 2,
            pushed_upto: 1
        }
    );
    i.defer_push("ann", 2, 7000).await.unwrap();
    assert!(
        i.claim_due(9000, 1000, 10).await.unwrap().is_empty(),
        "a read alert is not pushed"
    );
    // Claims never overlap, however many instances ask at once.
    for n in 0..20 {
        i.append("dan", &app("x"), 1, Some(10_000 + n), None)
            .await
            .unwrap();
    }
    let claims = join_all((0..4).map(|_| i.claim_due(20_000, 5000, 20))).await;
    let mut seqs: Vec<u64> = claims
        .into_iter()
        .flat_map(|c| c.unwrap())
        .filter(|d| d.user == "dan")
        .map(|d| d.alert.seq)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
}

/// Subscriptions: renewed in place, one browser belongs to one user, capped per user;
/// the VAPID key is the first one stored.
pub(crate) async fn subscriptions_and_vapid(i: &dyn Inbox) {
    let sub = |n: u32, key: &str| Subscription {
        endpoint: format!("https://push.example/{n}"),
        p256dh: key.into(),
        auth: "au".into(),
    };
    i.subscribe("ann", &sub(1, "k1"), 1).await.unwrap();
    i.subscribe("ann", &sub(1, "k2"), 2).await.unwrap();
    assert_eq!(i.subscriptions("ann").await.unwrap(), [sub(1, "k2")]);
    i.subscribe("bob", &sub(1, "k3"), 3).await.unwrap();
    assert!(
        i.subscriptions("ann").await.unwrap().is_empty(),
        "a browser signed in as bob now gets bob's pushes only"
    );
    assert!(!i.unsubscribe("ann", &sub(1, "").endpoint).await.unwrap());
    assert!(i.unsubscribe("bob", &sub(1, "").endpoint).await.unwrap());
    for n in 0..(super::MAX_SUBSCRIPTIONS as u32 + 2) {
        i.subscribe("cat", &sub(100 + n, "k"), 10 + u64::from(n))
            .await
            .unwrap();
    }
    let subs = i.subscriptions("cat").await.unwrap();
    assert_eq!(subs.len(), super::MAX_SUBSCRIPTIONS);
    assert!(
        !subs.iter().any(|s| s.endpoint.ends_with("/100")),
        "the oldest goes first"
    );
    assert_eq!(i.vapid_key("first").await.unwrap(), "first");
    assert_eq!(i.vapid_key("second").await.unwrap(), "first");
}

/// An inbox keeps the newest alerts; seqs go on from the head.
pub(crate) async fn old_alerts_dropped(i: &dyn Inbox) {
    for n in 0..KEEP_PER_USER + 5 {
        i.append("ann", &app("x"), n, None, None).await.unwrap();
    }
    let st = i.state("ann").await.unwrap();
    assert_eq!((st.head, st.unread), (KEEP_PER_USER + 5, KEEP_PER_USER));
    let (oldest, _) = i.since("ann", Some(0), 1).await.unwrap();
    assert_eq!(oldest[0].seq, 6);
}
