//! `RedisStore` against a real `redis-server` (one private server per test, see
//! `crate::support::redis`): the `HistoryStore` contract shared with `SqliteStore`, gap-free
//! offsets under concurrent appends from several instances, de-duplication, the epoch
//! after data loss, trimming, and failing fast while Redis is down.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::redis::{require, RedisServer};
use backend::{
    AppendOutcome, Change, HistoryStore, NewEntry, RedisKeys, RedisStore, Retention, RoomList,
    SqliteStore, StoreError,
};
use common::{ChatMessage, Entry};

fn msg(room: &str, nick: &str, id: &str) -> NewEntry {
    NewEntry::message(room, nick, &nick.to_lowercase(), id, &format!("text {id}"))
}

/// The messages among entries of the log.
fn messages(entries: Vec<Entry>) -> Vec<ChatMessage> {
    entries
        .into_iter()
        .filter_map(|e| match e {
            Entry::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn offsets(out: &[AppendOutcome]) -> Vec<(u64, bool)> {
    out.iter()
        .map(|o| match o {
            AppendOutcome::Stored(m) => (m.offset(), false),
            AppendOutcome::Duplicate { offset } => (*offset, true),
            other => panic!("no room limit or refusal in these tests: {other:?}"),
        })
        .collect()
}

async fn redis_store(server: &RedisServer, history_max: u64) -> RedisStore {
    RedisStore::connect(&server.url(), RedisKeys::default(), history_max)
        .await
        .unwrap()
}

/// The `HistoryStore` contract, run against every implementation on a fresh store.
async fn contract(store: &dyn HistoryStore) {
    let epoch = store.head("a").await.unwrap().epoch;
    assert!(!epoch.is_empty());
    assert_eq!(store.head("a").await.unwrap().head, 0);
    assert_eq!(store.rooms(0, 10).await.unwrap(), RoomList::default());
    assert!(store.append_batch(vec![]).await.unwrap().is_empty());

    // Offsets per room in batch order; duplicates (same room + nick key + id, even within
    // the batch) keep their original offset; the same id in another room is new.
    let out = store
        .append_batch(vec![
            msg("a", "x", "1"),
            msg("b", "x", "1"),
            msg("a", "x", "2"),
            msg("a", "X", "1"),
            msg("a", "y", "1"),
            msg("a", "a:b", "c"),
            msg("a", "a", "b:c"),
        ])
        .await
        .unwrap();
    assert_eq!(
        offsets(&out),
        vec![
            (1, false),
            (1, false),
            (2, false),
            (1, true),
            (3, false),
            (4, false),
            (5, false)
        ]
    );
    let AppendOutcome::Stored(Entry::Message(first)) = &out[0] else {
        unreachable!()
    };
    assert_eq!(
        (
            first.room.as_str(),
            first.nick.as_str(),
            first.id.as_str(),
            first.text.as_str()
        ),
        ("a", "x", "1", "text 1")
    );
    assert!(
        first.ts > 1_600_000_000_000,
        "ts is milliseconds since 1970"
    );

    // A later batch: duplicates of older batches too.
    let out = store
        .append_batch(vec![msg("a", "x", "2"), msg("a", "z", "1")])
        .await
        .unwrap();
    assert_eq!(offsets(&out), vec![(2, true), (6, false)]);

    let head = store.head("a").await.unwrap();
    assert_eq!(head.head, 6);
    assert_eq!(
        head.epoch, epoch,
        "the epoch is stable while the history lives"
    );
    assert_eq!(store.head("b").await.unwrap().head, 1);
    assert_eq!(store.head("none").await.unwrap().head, 0);

    let offs = |ms: &[ChatMessage]| ms.iter().map(|m| m.offset).collect::<Vec<_>>();
    let entry_offs = |es: &[Entry]| es.iter().map(Entry::offset).collect::<Vec<_>>();
    // page: newest first by `before` (exclusive), returned ascending.
    let page = store.page("a", None, 2).await.unwrap();
    assert_eq!((offs(&page.messages), page.has_more), (vec![5, 6], true));
    let page = store.page("a", Some(5), 2).await.unwrap();
    assert_eq!((offs(&page.messages), page.has_more), (vec![3, 4], true));
    let page = store.page("a", Some(3), 10).await.unwrap();
    assert_eq!((offs(&page.messages), page.has_more), (vec![1, 2], false));
    let page = store.page("a", Some(1), 10).await.unwrap();
    assert_eq!(
        (offs(&page.messages), page.has_more),
        (Vec::<u64>::new(), false)
    );
    let page = store.page("a", Some(100), 10).await.unwrap();
    assert_eq!(
        (offs(&page.messages), page.has_more),
        (vec![1, 2, 3, 4, 5, 6], false)
    );
    let page = store.page("a", None, 0).await.unwrap();
    assert_eq!(
        (offs(&page.messages), page.has_more),
        (Vec::<u64>::new(), true)
    );
    let page = store.page("none", None, 10).await.unwrap();
    assert_eq!(
        (offs(&page.messages), page.has_more),
        (Vec::<u64>::new(), false)
    );
    assert!(page.messages.is_empty());
    let all = store.page("a", None, 10).await.unwrap().messages;
    assert_eq!(all[0], *first, "reads return what the append returned");

    // after: ascending, exclusive, bounded.
    assert_eq!(
        entry_offs(&store.after("a", 0, 10).await.unwrap()),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        entry_offs(&store.after("a", 2, 2).await.unwrap()),
        vec![3, 4]
    );
    assert_eq!(
        entry_offs(&store.after("a", 6, 10).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        entry_offs(&store.after("a", 0, 0).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        entry_offs(&store.after("none", 0, 10).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(messages(store.after("a", 0, 10).await.unwrap()), all);

    // count_between: offsets after+1..=up_to that are stored.
    assert_eq!(store.count_between("a", 0, 6).await.unwrap(), 6);
    assert_eq!(store.count_between("a", 2, 4).await.unwrap(), 2);
    assert_eq!(store.count_between("a", 4, 100).await.unwrap(), 2);
    assert_eq!(store.count_between("a", 6, 6).await.unwrap(), 0);
    assert_eq!(store.count_between("a", 5, 2).await.unwrap(), 0);
    assert_eq!(store.count_between("none", 0, 10).await.unwrap(), 0);

    // Rooms by page, most messages first, ties in reverse name order.
    let rooms = |names: &[(&str, u64)]| -> Vec<(String, u64)> {
        names.iter().map(|(n, h)| ((*n).to_owned(), *h)).collect()
    };
    let all = store.rooms(0, 10).await.unwrap();
    assert_eq!(all.rooms, rooms(&[("a", 6), ("b", 1)]));
    assert_eq!(all.total, 2);
    store
        .append_batch(vec![msg("c", "x", "1"), msg("d", "x", "1")])
        .await
        .unwrap();
    let first = store.rooms(0, 2).await.unwrap();
    assert_eq!(first.rooms, rooms(&[("a", 6), ("d", 1)]));
    assert_eq!(first.total, 4);
    let second = store.rooms(2, 2).await.unwrap();
    assert_eq!(second.rooms, rooms(&[("c", 1), ("b", 1)]));
    assert_eq!(store.rooms(4, 2).await.unwrap().rooms, rooms(&[]));
    assert_eq!(store.rooms(u64::MAX, 2).await.unwrap().rooms, rooms(&[]));
    store.check_writable().await.unwrap();
}

/// Retention and the room limit, on a fresh store that refuses a third room.
async fn retention_contract(store: &dyn HistoryStore) {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let batch = |room: &str, ids: std::ops::Range<u32>| -> Vec<NewEntry> {
        ids.map(|i| msg(room, "x", &i.to_string())).collect()
    };
    store.append_batch(batch("a", 1..6)).await.unwrap();
    store.append_batch(batch("b", 1..2)).await.unwrap();

    // The room limit: a third room is refused, existing ones go on.
    let out = store
        .append_batch(vec![msg("c", "x", "1"), msg("a", "x", "6")])
        .await
        .unwrap();
    assert_eq!(out[0], AppendOutcome::RoomLimit);
    assert!(matches!(&out[1], AppendOutcome::Stored(m) if m.offset() == 6));
    assert_eq!(store.head("c").await.unwrap().head, 0, "nothing stored");

    // By count: the newest 2 of each room stay; heads do not move.
    let keep_two = Retention {
        max_age: None,
        max_messages: Some(2),
    };
    let pruned = store.prune(&keep_two, now()).await.unwrap();
    assert_eq!(pruned.messages, 4);
    let page = store.page("a", None, 10).await.unwrap();
    let offsets: Vec<u64> = page.messages.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, [5, 6]);
    assert!(!page.has_more);
    assert_eq!(store.head("a").await.unwrap().head, 6);
    // A client that saw offset 1 cannot be given a gap-free replay any more.
    assert_eq!(store.count_between("a", 1, 6).await.unwrap(), 2);

    // By age: a pass an hour from now with an age of a minute deletes everything, and
    // rooms left empty are forgotten: not listed, not counted against the limit.
    let a_minute = Retention {
        max_age: Some(Duration::from_secs(60)),
        max_messages: None,
    };
    let pruned = store.prune(&a_minute, now() + 3_600_000).await.unwrap();
    assert_eq!((pruned.messages, pruned.rooms), (3, 2));
    assert_eq!(store.rooms(0, 10).await.unwrap(), RoomList::default());
    assert!(store.page("a", None, 10).await.unwrap().messages.is_empty());
    // A forgotten room keeps its head: used again, it continues where it was, so no
    // client can take a new message for one it saw.
    assert_eq!(store.head("a").await.unwrap().head, 6);
    let out = store
        .append_batch(vec![
            msg("a", "x", "again"),
            msg("c", "x", "1"),
            msg("d", "x", "1"),
        ])
        .await
        .unwrap();
    assert!(
        matches!(&out[0], AppendOutcome::Stored(m) if m.offset() == 7),
        "{out:?}"
    );
    assert!(
        matches!(&out[1], AppendOutcome::Stored(m) if m.offset() == 1),
        "{out:?}"
    );
    assert_eq!(
        out[2],
        AppendOutcome::RoomLimit,
        "a and c are the two rooms now"
    );
    assert_eq!(store.rooms(0, 10).await.unwrap().total, 2);
}

#[tokio::test]
async fn retention_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
    store.set_max_rooms(2);
    retention_contract(&store).await;
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test]
async fn retention_redis() {
    require();
    let server = RedisServer::start().await;
    let keys = RedisKeys::new("huddle").unwrap();
    let store = RedisStore::connect(&server.url(), keys, 10_000)
        .await
        .unwrap()
        .limit(2, &Retention::default());
    retention_contract(&store).await;
}

#[tokio::test]
async fn contract_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
    contract(&store).await;
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test]
async fn contract_redis() {
    require();
    let server = RedisServer::start().await;
    let store = redis_store(&server, 10_000).await;
    contract(&store).await;
}

/// Two instances, five writers each, 50 messages per writer in small batches, one room:
/// every offset 1..=500 is used exactly once, each writer sees its own offsets rise, and
/// the stream holds exactly what the appends returned.
#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_from_two_instances_are_gap_free() {
    require();
    let server = RedisServer::start().await;
    let instances = [
        Arc::new(redis_store(&server, 10_000).await),
        Arc::new(redis_store(&server, 10_000).await),
    ];
    let mut tasks = Vec::new();
    for (i, store) in instances.iter().enumerate() {
        for t in 0..5 {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                let nick = format!("n{i}-{t}");
                let mut got = Vec::new();
                for chunk in 0..10 {
                    let batch = (0..5)
                        .map(|k| msg("r", &nick, &format!("{}", chunk * 5 + k)))
                        .collect();
                    for o in store.append_batch(batch).await.unwrap() {
                        let AppendOutcome::Stored(Entry::Message(m)) = o else {
                            panic!("unexpected duplicate")
                        };
                        got.push((m.offset, m.nick, m.id));
                    }
                }
                got
            }));
        }
    }
    let mut all = Vec::new();
    for task in tasks {
        let got = task.await.unwrap();
        assert!(
            got.windows(2).all(|w| w[0].0 < w[1].0),
            "one writer's offsets rise"
        );
        all.extend(got);
    }
    let offsets: BTreeSet<u64> = all.iter().map(|(o, _, _)| *o).collect();
    assert_eq!(all.len(), 500);
    assert_eq!(offsets, (1..=500).collect::<BTreeSet<_>>());

    let stored = messages(instances[1].after("r", 0, 1000).await.unwrap());
    let stored: Vec<_> = stored
        .into_iter()
        .map(|m| (m.offset, m.nick, m.id))
        .collect();
    all.sort();
    assert_eq!(stored, all);
    assert_eq!(instances[0].head("r").await.unwrap().head, 500);
    assert_eq!(
        instances[0].head("r").await.unwrap().epoch,
        instances[1].head("r").await.unwrap().epoch
    );
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test]
async fn a_retry_through_another_instance_is_a_duplicate() {
    require();
    let server = RedisServer::start().await;
    let a = redis_store(&server, 10_000).await;
    let b = redis_store(&server, 10_000).await;
    a.append_batch(vec![msg("r", "x", "0")]).await.unwrap();
    let out = a.append_batch(vec![msg("r", "Ann", "m1")]).await.unwrap();
    assert_eq!(offsets(&out), vec![(2, false)]);
    let out = b
        .append_batch(vec![msg("r", "ANN", "m1"), msg("r", "ann", "m2")])
        .await
        .unwrap();
    assert_eq!(offsets(&out), vec![(2, true), (3, false)]);
    assert_eq!(b.count_between("r", 0, 3).await.unwrap(), 3);
}

/// Redis losing its data (FLUSHALL stands in for a restart without persistence) gives a
/// new epoch, so a client's `since` is not mistaken for a position in the new history.
#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test]
async fn the_epoch_changes_when_redis_loses_its_data() {
    require();
    let server = RedisServer::start().await;
    let store = redis_store(&server, 10_000).await;
    store
        .append_batch(vec![msg("r", "x", "1"), msg("r", "x", "2")])
        .await
        .unwrap();
    let before = store.head("r").await.unwrap();
    assert_eq!(before.head, 2);

    let () = server.cmd(&["FLUSHALL"]).await;
    let after = store.head("r").await.unwrap();
    assert_eq!(after.head, 0);
    assert_ne!(after.epoch, before.epoch);

    // And when the first thing after the loss is an append (not a head read), it too
    // makes the new epoch.
    let () = server.cmd(&["FLUSHALL"]).await;
    let out = store.append_batch(vec![msg("r", "x", "1")]).await.unwrap();
    assert_eq!(
        offsets(&out),
        vec![(1, false)],
        "the old id is not a duplicate"
    );
    let again = store.head("r").await.unwrap();
    assert_eq!(again.head, 1);
    assert_ne!(again.epoch, after.epoch);
    assert_ne!(again.epoch, before.epoch);
}

/// `--history-max` trims old entries; `count_between` then reports fewer messages than the
/// range holds, which is how a join with an old `since` learns it cannot recover.
#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test]
async fn trimming_shows_up_as_a_gap_in_count_between() {
    require();
    let server = RedisServer::start().await;
    let store = redis_store(&server, 10).await;
    for chunk in 0..10 {
        let batch = (0..50)
            .map(|k| msg("r", "x", &format!("{}", chunk * 50 + k)))
            .collect();
        store.append_batch(batch).await.unwrap();
    }
    assert_eq!(store.head("r").await.unwrap().head, 500);
    let len: u64 = server.cmd(&["XLEN", "huddle:room:r:log"]).await;
    // `MAXLEN ~` trims whole stream nodes (100 entries by default), never below 10.
    assert!((10..=200).contains(&len), "stream length {len}");

    let kept = store.count_between("r", 0, 500).await.unwrap();
    assert_eq!(kept, len, "exactly the kept entries are counted");
    assert!(kept < 500, "the gap shows");
    assert_eq!(store.count_between("r", 490, 500).await.unwrap(), 10);

    let oldest = 500 - len + 1;
    let after = store.after("r", 0, 5).await.unwrap();
    assert_eq!(
        after[0].offset(),
        oldest,
        "after starts at the oldest kept entry"
    );
    let page = store.page("r", None, 1000).await.unwrap();
    assert_eq!(page.messages.len() as u64, len);
    assert!(!page.has_more);
    assert_eq!(page.messages[0].offset, oldest);

    // A retry of a trimmed message is still recognised (the dedupe key outlives it).
    let out = store.append_batch(vec![msg("r", "x", "0")]).await.unwrap();
    assert_eq!(offsets(&out), vec![(1, true)]);
}

async fn fails_fast<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) {
    let started = Instant::now();
    let result = call.await;
    let took = started.elapsed();
    eprintln!("{what} with Redis down: {result:?} after {took:?}");
    assert!(
        result.is_err(),
        "{what} succeeded with Redis down: {result:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "{what} took {took:?} to fail with Redis down"
    );
}

/// With Redis gone, every call fails within seconds (so the writer answers `error
/// internal` instead of hanging its queue); after Redis is back, calls work again on
/// their own, and with persistence the history and its epoch survived.
#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test]
async fn redis_down_fails_fast_and_recovers_after_restart() {
    require();
    let mut server = RedisServer::start_persistent().await;
    let store = redis_store(&server, 10_000).await;
    store
        .append_batch(vec![msg("r", "x", "1"), msg("r", "x", "2")])
        .await
        .unwrap();
    let before = store.head("r").await.unwrap();

    server.kill9().await;
    fails_fast("append_batch", store.append_batch(vec![msg("r", "x", "3")])).await;
    fails_fast(
        "append_batch again",
        store.append_batch(vec![msg("r", "x", "3")]),
    )
    .await;
    fails_fast("head", store.head("r")).await;
    fails_fast("check_writable", store.check_writable()).await;

    server.restart().await;
    let started = Instant::now();
    let out = loop {
        match store.append_batch(vec![msg("r", "x", "3")]).await {
            Ok(out) => break out,
            Err(e) => {
                eprintln!("append after the restart failed: {e:?}");
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "still failing {:?} after the restart: {e}",
                    started.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    eprintln!(
        "first append after the restart succeeded after {:?}",
        started.elapsed()
    );
    assert_eq!(offsets(&out), vec![(3, false)]);
    let after = store.head("r").await.unwrap();
    assert_eq!(after.epoch, before.epoch, "persisted data keeps its epoch");
    assert_eq!(after.head, 3);
    store.check_writable().await.unwrap();
}

/// Connecting to a port where no Redis listens fails quickly with an error.
#[tokio::test]
async fn connect_fails_fast_without_redis() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let result = RedisStore::connect(
        &format!("redis://127.0.0.1:{port}/0"),
        RedisKeys::default(),
        100,
    )
    .await;
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A room whose settings say private (written by the directory, here by hand) is stored
/// like any other but never listed: pages stay full and `total` counts public rooms
/// only, while the room limit and retention count both.
#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test]
async fn private_rooms_are_not_listed() {
    require();
    let server = RedisServer::start().await;
    let keys = RedisKeys::default();
    for room in ["p1", "p2"] {
        let _: u64 = server
            .cmd(&["HSET", &keys.room_settings(room), "private", "1"])
            .await;
    }
    let _: u64 = server
        .cmd(&["HSET", &keys.room_settings("open"), "private", "0"])
        .await;
    let store = RedisStore::connect(&server.url(), keys, 10_000)
        .await
        .unwrap()
        .limit(5, &Retention::default());
    let out = store
        .append_batch(vec![
            msg("p1", "x", "1"),
            msg("p1", "x", "2"),
            msg("a", "x", "1"),
            msg("p2", "x", "1"),
            msg("open", "x", "1"),
            msg("b", "x", "1"),
        ])
        .await
        .unwrap();
    assert!(out.iter().all(|o| matches!(o, AppendOutcome::Stored(_))));
    assert_eq!(store.head("p1").await.unwrap().head, 2, "stored as ever");

    fn names(list: &RoomList) -> Vec<&str> {
        list.rooms.iter().map(|(r, _)| r.as_str()).collect()
    }
    let all = store.rooms(0, 10).await.unwrap();
    assert_eq!((names(&all), all.total), (vec!["open", "b", "a"], 3));
    // Pages are full up to the last; nothing lies beyond it.
    let first = store.rooms(0, 2).await.unwrap();
    assert_eq!((names(&first), first.total), (vec!["open", "b"], 3));
    let second = store.rooms(2, 2).await.unwrap();
    assert_eq!((names(&second), second.total), (vec!["a"], 3));
    assert!(store.rooms(3, 2).await.unwrap().rooms.is_empty());
    assert_eq!(store.rooms(0, 0).await.unwrap().total, 3);

    // The limit (5) counts the private rooms: a sixth room is refused.
    let out = store.append_batch(vec![msg("c", "x", "1")]).await.unwrap();
    assert_eq!(out, vec![AppendOutcome::RoomLimit]);

    // Retention forgets private rooms too; used again, they continue their offsets and
    // stay unlisted.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let a_minute = Retention {
        max_age: Some(Duration::from_secs(60)),
        max_messages: None,
    };
    let pruned = store.prune(&a_minute, now + 3_600_000).await.unwrap();
    assert_eq!((pruned.messages, pruned.rooms), (6, 5));
    let out = store
        .append_batch(vec![msg("p1", "x", "3"), msg("c", "x", "1")])
        .await
        .unwrap();
    assert!(
        matches!(&out[..], [AppendOutcome::Stored(p), AppendOutcome::Stored(c)]
            if p.offset() == 3 && c.offset() == 1),
        "{out:?}"
    );
    let all = store.rooms(0, 10).await.unwrap();
    assert_eq!((names(&all), all.total), (vec!["c"], 1));
}

/// An entry of another kind than a message, written by `user`.
fn entry(room: &str, user: &str, id: &str, change: Change) -> NewEntry {
    NewEntry {
        room: room.into(),
        nick: user.into(),
        user: user.into(),
        id: id.into(),
        change,
    }
}

fn edit(target: u64, text: &str) -> Change {
    Change::Edit {
        target,
        text: text.into(),
        not_before: None,
    }
}

fn react(target: u64, emoji: &str, on: bool) -> Change {
    Change::React {
        target,
        emoji: emoji.into(),
        on,
    }
}

/// One outcome, told briefly: the stored entry's offset, a duplicate's, or the refusal.
fn outcome(o: &AppendOutcome) -> String {
    match o {
        AppendOutcome::Stored(e) => format!("stored {}", e.offset()),
        AppendOutcome::Duplicate { offset } => format!("dup {offset}"),
        AppendOutcome::RoomLimit => "room limit".into(),
        AppendOutcome::Refused(why) => format!("{why:?}"),
    }
}

/// The conversation half of the `HistoryStore` contract: edits, deletions, reactions
/// and replies are entries of the log with their own offsets, checked inside the append,
/// replayed by `after` in order (minus what a deletion erased), and `page` shows the
/// messages' current state.
async fn conversation_contract(store: &dyn HistoryStore) {
    let reply = |target: u64| NewEntry {
        change: Change::Message {
            text: "re".into(),
            reply_to: Some(target),
        },
        ..msg("c", "bob", "re")
    };
    let out = store
        .append_batch(vec![
            msg("c", "ann", "1"),                           // 1
            msg("c", "bob", "2"),                           // 2
            entry("c", "ann", "e1", edit(1, "one, fixed")), // 3
            entry("c", "bob", "e2", edit(1, "not mine")),   // refused: not the author
            entry("c", "ann", "e3", edit(3, "an edit")),    // refused: not a message
            entry("c", "ann", "e4", edit(99, "nothing")),   // refused: nothing there
            entry("c", "bob", "r1", react(1, "👍", true)),  // 4
            entry("c", "ann", "r2", react(1, "🎉", true)),  // 5
            entry("c", "ann", "r3", react(1, "👍", true)),  // 6
            entry("c", "bob", "r1", react(1, "👍", true)),  // duplicate of 4
            reply(1),                                       // 7
            entry("c", "ann", "e5", edit(1, "one, again")), // 8
        ])
        .await
        .unwrap();
    let told: Vec<String> = out.iter().map(outcome).collect();
    assert_eq!(
        told,
        [
            "stored 1",
            "stored 2",
            "stored 3",
            "NotAuthor",
            "UnknownMessage",
            "UnknownMessage",
            "stored 4",
            "stored 5",
            "stored 6",
            "dup 4",
            "stored 7",
            "stored 8"
        ]
    );
    let AppendOutcome::Stored(Entry::Edited(e)) = &out[2] else {
        panic!("{:?}", out[2])
    };
    assert_eq!(
        (e.target, e.text.as_str(), e.user.as_str()),
        (1, "one, fixed", "ann")
    );
    let AppendOutcome::Stored(Entry::Reacted(r)) = &out[6] else {
        panic!("{:?}", out[6])
    };
    assert_eq!(
        (r.target, r.emoji.as_str(), r.on, r.nick.as_str()),
        (1, "👍", true, "bob")
    );
    let AppendOutcome::Stored(Entry::Message(m)) = &out[10] else {
        panic!("{:?}", out[10])
    };
    assert_eq!(m.reply_to, Some(1));

    // History: messages only, in their current state, reactions in the order made.
    let page = store.page("c", None, 10).await.unwrap();
    assert!(!page.has_more);
    let offs: Vec<u64> = page.messages.iter().map(|m| m.offset).collect();
    assert_eq!(offs, [1, 2, 7]);
    let first = &page.messages[0];
    assert_eq!(first.text, "one, again");
    assert!(first.edited_ts.is_some_and(|t| t >= first.ts));
    assert_eq!(
        first.reactions.0,
        vec![
            ("👍".to_owned(), vec!["bob".to_owned(), "ann".to_owned()]),
            ("🎉".to_owned(), vec!["ann".to_owned()]),
        ]
    );
    assert_eq!(page.nicks.get("bob").map(String::as_str), Some("bob"));
    assert_eq!(page.messages[1].edited_ts, None);
    assert!(page.messages[1].reactions.is_empty());
    assert_eq!(page.messages[2].reply_to, Some(1));

    // A reaction taken back, and one taken back that was never there.
    let out = store
        .append_batch(vec![
            entry("c", "bob", "r4", react(1, "👍", false)), // 9
            entry("c", "bob", "r5", react(2, "🎉", false)), // 10
        ])
        .await
        .unwrap();
    assert_eq!(
        out.iter().map(outcome).collect::<Vec<_>>(),
        ["stored 9", "stored 10"]
    );
    let page = store.page("c", None, 10).await.unwrap();
    assert_eq!(page.messages[0].reactions.users("👍"), ["ann".to_owned()]);
    assert!(page.messages[1].reactions.is_empty());

    // Deletion: only the author or, with `any`, the owner; then the message and its
    // edits are erased, its reactions dropped, and it can be neither edited, reacted
    // to nor deleted again; a reply to it is still welcome.
    let delete = |target: u64, any: bool| Change::Delete { target, any };
    let out = store
        .append_batch(vec![
            entry("c", "bob", "d1", delete(1, false)),     // refused
            entry("c", "ann", "d2", delete(1, false)),     // 11
            entry("c", "ann", "e6", edit(1, "too late")),  // refused
            entry("c", "bob", "r6", react(1, "👍", true)), // refused
            entry("c", "ann", "d3", delete(1, false)),     // refused
            entry("c", "owner", "d4", delete(2, true)),    // 12
            NewEntry {
                id: "re2".into(),
                ..reply(1)
            }, // 13
        ])
        .await
        .unwrap();
    assert_eq!(
        out.iter().map(outcome).collect::<Vec<_>>(),
        [
            "NotAuthor",
            "stored 11",
            "UnknownMessage",
            "UnknownMessage",
            "UnknownMessage",
            "stored 12",
            "stored 13"
        ]
    );
    let page = store.page("c", None, 10).await.unwrap();
    let state: Vec<(u64, bool, &str)> = page
        .messages
        .iter()
        .map(|m| (m.offset, m.deleted, m.text.as_str()))
        .collect();
    assert_eq!(
        state,
        [
            (1, true, ""),
            (2, true, ""),
            (7, false, "re"),
            (13, false, "re")
        ]
    );
    let gone = &page.messages[0];
    assert_eq!(
        (gone.nick.as_str(), gone.id.as_str(), gone.edited_ts),
        ("ann", "1", None)
    );
    assert!(gone.reactions.is_empty());
    assert!(page.nicks.is_empty(), "{:?}", page.nicks);

    // Replay: every entry in order, but neither the deleted messages nor their edits;
    // the offsets erased still count as accounted for.
    let replay = store.after("c", 0, 100).await.unwrap();
    let kinds: Vec<String> = replay
        .iter()
        .map(|e| match e {
            Entry::Message(m) => format!("{} message {}", m.offset, m.text),
            Entry::Edited(e) => format!("{} edited {}", e.offset, e.target),
            Entry::Deleted(d) => format!("{} deleted {}", d.offset, d.target),
            Entry::Reacted(r) => format!("{} reacted {} {}", r.offset, r.target, r.on),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "4 reacted 1 true",
            "5 reacted 1 true",
            "6 reacted 1 true",
            "7 message re",
            "9 reacted 1 false",
            "10 reacted 2 false",
            "11 deleted 1",
            "12 deleted 2",
            "13 message re"
        ]
    );
    assert_eq!(store.count_between("c", 0, 13).await.unwrap(), 13);
    assert_eq!(store.count_between("c", 2, 13).await.unwrap(), 11);
    // A replay page counts what it returns, so paging never stops at a hole.
    let first_two = store.after("c", 0, 2).await.unwrap();
    assert_eq!(
        first_two.iter().map(Entry::offset).collect::<Vec<_>>(),
        [4, 5]
    );

    // The erased texts are gone from storage, not hidden.
    for gone in ["text 1", "one, fixed", "one, again", "text 2"] {
        assert!(
            !replay.iter().any(|e| format!("{e:?}").contains(gone)),
            "{gone:?} replayed"
        );
    }

    // The edit window: a message stored before `not_before` is too old to edit.
    let out = store
        .append_batch(vec![NewEntry {
            change: Change::Edit {
                target: 7,
                text: "late".into(),
                not_before: Some(u64::MAX / 2),
            },
            ..entry(
                "c",
                "bob",
                "e7",
                Change::Delete {
                    target: 0,
                    any: false,
                },
            )
        }])
        .await
        .unwrap();
    assert_eq!(outcome(&out[0]), "EditExpired");
    // A notice has no author: nobody edits it, only the owner deletes it.
    let out = store
        .append_batch(vec![NewEntry::notice("c", "maintenance at noon")])
        .await
        .unwrap();
    let notice = out[0].clone();
    let AppendOutcome::Stored(n) = notice else {
        panic!("{notice:?}")
    };
    let at = n.offset();
    let out = store
        .append_batch(vec![
            entry("c", "", "e8", edit(at, "x")),
            entry("c", "ann", "d5", delete(at, false)),
            entry("c", "owner", "d6", delete(at, true)),
        ])
        .await
        .unwrap();
    assert_eq!(
        out.iter().map(outcome).collect::<Vec<_>>(),
        [
            "NotAuthor",
            "NotAuthor",
            format!("stored {}", at + 1).as_str()
        ]
    );
}

#[tokio::test]
async fn conversation_contract_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
    conversation_contract(&store).await;
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test]
async fn conversation_contract_redis() {
    require();
    let server = RedisServer::start().await;
    let store = redis_store(&server, 10_000).await;
    conversation_contract(&store).await;
}

/// A page of a room that is mostly reactions still fills with messages, and says
/// whether older ones exist; a deleted message keeps its place in the page.
async fn pages_skip_other_entries(store: &dyn HistoryStore) {
    let mut batch = Vec::new();
    for i in 1..=30u64 {
        batch.push(msg("p", "ann", &format!("m{i}")));
    }
    store.append_batch(batch).await.unwrap();
    let mut batch = Vec::new();
    for i in 0..600u64 {
        let target = 30 - (i % 5);
        let on = (i / 5) % 2 == 0;
        batch.push(entry(
            "p",
            &format!("u{}", i % 7),
            &format!("r{i}"),
            react(target, "🔥", on),
        ));
    }
    batch.push(entry(
        "p",
        "ann",
        "d",
        Change::Delete {
            target: 27,
            any: false,
        },
    ));
    store.append_batch(batch).await.unwrap();
    let page = store.page("p", None, 5).await.unwrap();
    let offs: Vec<u64> = page.messages.iter().map(|m| m.offset).collect();
    assert_eq!((offs, page.has_more), (vec![26, 27, 28, 29, 30], true));
    assert!(page.messages[1].deleted);
    let page = store.page("p", Some(26), 100).await.unwrap();
    assert_eq!(page.messages.len(), 25);
    assert!(!page.has_more);
}

#[tokio::test]
async fn pages_skip_other_entries_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
    pages_skip_other_entries(&store).await;
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test]
async fn pages_skip_other_entries_redis() {
    require();
    let server = RedisServer::start().await;
    let store = redis_store(&server, 10_000).await;
    pages_skip_other_entries(&store).await;
}

/// What the stream's trimming (`--history-max`) leaves of trimmed messages (their
/// edits' texts, reactions, deletions) is dropped by a prune pass, even without a
/// retention policy; the state of messages still stored stays.
#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test]
async fn a_prune_pass_drops_the_state_of_trimmed_messages() {
    require();
    let server = RedisServer::start().await;
    let store = redis_store(&server, 10).await;
    let mut batch = Vec::new();
    for i in 1..=5u64 {
        batch.push(msg("t", "ann", &format!("m{i}")));
    }
    batch.push(entry("t", "ann", "e1", edit(1, "one!"))); // 6
    batch.push(entry("t", "bob", "r1", react(2, "👍", true))); // 7
    batch.push(entry(
        "t",
        "ann",
        "d1",
        Change::Delete {
            target: 3,
            any: false,
        },
    )); // 8
    batch.push(entry("t", "bob", "r2", react(5, "🔥", true))); // 9
    store.append_batch(batch).await.unwrap();
    // 300 more messages: the stream keeps about the newest 10 (MAXLEN ~).
    for chunk in 0..3 {
        let batch = (0..100)
            .map(|i| msg("t", "cy", &format!("n{chunk}-{i}")))
            .collect();
        store.append_batch(batch).await.unwrap();
    }
    let last = store.head("t").await.unwrap().head;
    store
        .append_batch(vec![entry("t", "bob", "r3", react(last, "🎉", true))])
        .await
        .unwrap();
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let state = RedisKeys::default().room_state("t");
    let erased = RedisKeys::default().erased("t");
    let fields = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        let state = state.clone();
        async move {
            let mut f: Vec<String> = redis::cmd("HKEYS")
                .arg(&state)
                .query_async(&mut conn)
                .await
                .unwrap();
            f.sort();
            f
        }
    };
    let mut want = vec![
        "d:3".to_owned(),
        "e:1".into(),
        "r:2".into(),
        "r:5".into(),
        format!("r:{last}"),
    ];
    want.sort();
    assert_eq!(fields(&mut conn).await, want);
    store.prune(&Retention::default(), 0).await.unwrap();
    assert_eq!(fields(&mut conn).await, [format!("r:{last}")]);
    let left: u64 = redis::cmd("ZCARD")
        .arg(&erased)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let page = store.page("t", None, 1).await.unwrap();
    assert_eq!(page.messages[0].reactions.users("🎉"), ["bob".to_owned()]);
}
