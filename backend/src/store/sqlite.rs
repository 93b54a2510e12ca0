//! The embedded default store: one SQLite file in WAL mode.
//!
//! One connection writes (owned by the single history writer, so offsets come from an
//! in-memory head cache without races); a small pool of connections reads. Every call
//! runs on tokio's blocking pool, so no SQLite work ever blocks the async runtime.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{ChatMessage, Deleted, Edited, Entry, Reacted};
use rand::distr::{Alphanumeric, SampleString};
use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::now_ms;
use crate::locks;

use super::{
    AppendOutcome, Change, HistoryStore, NewEntry, Page, Pruned, Refusal, Retention, RoomHead,
    RoomList, StoreError,
};

/// Read connections kept for reuse; more are opened under load and closed afterwards.
const READ_POOL: usize = 4;
/// Reads running at once; more wait. Each holds a connection and a blocking thread, so
/// without a bound a burst of readers would open connections without end.
const MAX_READS: usize = 8;
/// Rows deleted per transaction while pruning, so appends never wait long for the
/// writer's lock.
const PRUNE_BATCH: u32 = 1000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY,
    head INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    room     TEXT    NOT NULL,
    offset   INTEGER NOT NULL,
    id       TEXT    NOT NULL,
    nick     TEXT    NOT NULL,
    nick_key TEXT    NOT NULL,
    text     TEXT    NOT NULL,
    ts       INTEGER NOT NULL,
    PRIMARY KEY (room, offset)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_dedupe ON messages (room, nick_key, id);
-- `list_rooms` pages: most messages first, without sorting every room per page.
CREATE INDEX IF NOT EXISTS rooms_by_head ON rooms (head DESC, room DESC);
-- Retention by age finds old messages without a scan.
CREATE INDEX IF NOT EXISTS messages_ts ON messages (ts);
-- Rooms whose every message was pruned: no longer listed or counted, but their head is
-- kept so that offsets continue if the room is used again.
CREATE TABLE IF NOT EXISTS forgotten (
    room TEXT PRIMARY KEY,
    head INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Schema changes after [`SCHEMA`], in order: migration `i` takes a database from
/// `PRAGMA user_version` `i` to `i + 1`, so a file from any earlier version opens and
/// keeps its history. Never edit one that shipped; add another.
const MIGRATIONS: &[&str] = &[
    // v2, people: the sender of each message (NULL for messages stored before, whose
    // `nick_key` de-duplicated by nick; from now on it holds the user id), accounts and
    // their tokens, room settings, and each user's memberships and read offsets.
    "
    ALTER TABLE messages ADD COLUMN user TEXT;
    CREATE TABLE users (
        user     TEXT    PRIMARY KEY,
        nick     TEXT    NOT NULL,
        key      TEXT    NOT NULL,
        kind     TEXT    NOT NULL,
        password TEXT,
        seen     INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX users_by_key ON users (key, kind);
    CREATE INDEX users_by_seen ON users (kind, seen);
    CREATE TABLE tokens (
        hash    TEXT    PRIMARY KEY,
        user    TEXT    NOT NULL,
        created INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX tokens_by_user ON tokens (user);
    CREATE TABLE room_settings (
        room    TEXT    PRIMARY KEY,
        private INTEGER NOT NULL,
        owner   TEXT,
        dm      TEXT
    ) WITHOUT ROWID;
    CREATE TABLE members (
        user   TEXT    NOT NULL,
        room   TEXT    NOT NULL,
        read   INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user, room)
    ) WITHOUT ROWID;
    CREATE INDEX members_by_room ON members (room, user);
    ",
    // v3, notifications: which messages of a room alert each member, quiet hours, each
    // user's inbox (alerts, with their receipts and push schedule; the head so that a
    // seq is never reused after old alerts are dropped), the notifications API's
    // idempotency keys, and push subscriptions.
    "
    ALTER TABLE members ADD COLUMN notify TEXT NOT NULL DEFAULT 'mentions';
    ALTER TABLE users ADD COLUMN quiet TEXT;
    CREATE TABLE alerts (
        user       TEXT    NOT NULL,
        seq        INTEGER NOT NULL,
        id         TEXT    NOT NULL,
        kind       TEXT    NOT NULL,
        title      TEXT    NOT NULL,
        body       TEXT    NOT NULL,
        room       TEXT,
        msg_offset INTEGER,
        url        TEXT,
        ts         INTEGER NOT NULL,
        read       INTEGER,
        delivered  INTEGER,
        pushed     INTEGER,
        push_due   INTEGER,
        PRIMARY KEY (user, seq)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX alerts_by_id ON alerts (id);
    CREATE INDEX alerts_due ON alerts (push_due) WHERE push_due IS NOT NULL;
    CREATE INDEX alerts_unread ON alerts (user, room) WHERE read IS NULL;
    CREATE TABLE inbox_heads (
        user TEXT    PRIMARY KEY,
        head INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE alert_keys (
        user    TEXT    NOT NULL,
        key     TEXT    NOT NULL,
        id      TEXT    NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY (user, key)
    ) WITHOUT ROWID;
    CREATE TABLE push_subs (
        user     TEXT    NOT NULL,
        endpoint TEXT    NOT NULL,
        p256dh   TEXT    NOT NULL,
        auth     TEXT    NOT NULL,
        created  INTEGER NOT NULL,
        PRIMARY KEY (user, endpoint)
    ) WITHOUT ROWID;
    ",
    // v4, conversation: every row of `messages` is an entry of the room's log, of a
    // `kind` (0 message, 1 edit, 2 deletion, 3 reaction) with its `target`; a message
    // keeps its original `text`, its `current` text and `edited_ts` once edited, its
    // `reply_to`, and `deleted` (when) once deleted, with its text and its edits'
    // texts erased (an erased edit has `deleted` too); `reactions` is what each message
    // carries now, `at` the offset of the entry that added it, which orders them.
    "
    ALTER TABLE messages ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN target INTEGER;
    ALTER TABLE messages ADD COLUMN reply_to INTEGER;
    ALTER TABLE messages ADD COLUMN emoji TEXT;
    ALTER TABLE messages ADD COLUMN react_on INTEGER;
    ALTER TABLE messages ADD COLUMN current TEXT;
    ALTER TABLE messages ADD COLUMN edited_ts INTEGER;
    ALTER TABLE messages ADD COLUMN deleted INTEGER;
    CREATE INDEX messages_edits ON messages (room, target) WHERE kind = 1;
    CREATE TABLE reactions (
        room   TEXT    NOT NULL,
        target INTEGER NOT NULL,
        emoji  TEXT    NOT NULL,
        user   TEXT    NOT NULL,
        nick   TEXT    NOT NULL,
        at     INTEGER NOT NULL,
        PRIMARY KEY (room, target, emoji, user)
    ) WITHOUT ROWID;
    ",
];

/// The `kind` of a row of `messages`.
const KIND_MESSAGE: u8 = 0;
const KIND_EDIT: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_REACT: u8 = 3;

/// Brings the schema up to date: [`SCHEMA`] (idempotent), then every migration the
/// file has not had, each in its own transaction with the version it reaches.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, step) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// A connection of its own to the history's file (the directory's, the inbox's), used
/// on the blocking pool. Their calls are few and short, so one connection each is
/// plenty, and the WAL lets them run beside the history writer. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SideConn(Arc<Mutex<Connection>>);

impl SideConn {
    /// Runs `f` with the connection on the blocking pool.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || f(&mut locks::lock(&conn)).map_err(StoreError::from))
            .await?
    }
}

/// SQLite-backed [`HistoryStore`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: std::path::PathBuf,
    /// The writer's connection and head cache. A std mutex: it is only ever locked inside
    /// a blocking task, never across an `.await`, and only the single writer contends.
    writer: Mutex<WriterConn>,
    /// Idle read connections; locked only to push or pop one.
    readers: Mutex<Vec<Connection>>,
    /// Names this database's history: a new file (lost or reset history) gets a new one.
    epoch: String,
    /// `--max-rooms`; 0: no limit.
    max_rooms: AtomicU64,
    /// Bounds the reads running at once ([`MAX_READS`]).
    read_slots: tokio::sync::Semaphore,
}

struct WriterConn {
    conn: Connection,
    /// Latest committed offset per room, loaded lazily from `rooms`.
    heads: HashMap<String, u64>,
    /// Rows of `rooms`, loaded when first needed and kept current by appends and prunes.
    room_count: Option<u64>,
}

fn open_conn(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, so an
    // acked message survives power loss, not only a process crash. Group commit makes
    // that affordable.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // A deleted message's text must be gone from the file, not left in a page's free
    // space for anyone with the file to read: freed bytes are zeroed where that costs
    // no extra I/O (the page is being written anyway).
    conn.pragma_update(None, "secure_delete", "FAST")?;
    // Checkpoints every ~40 MB of log rather than SQLite's 4 MB: each checkpoint
    // rewrites the pages a busy room keeps touching (its index pages, the rooms row),
    // and doing that ten times less often bought 23–30 % more durable acks/s in
    // alternating runs (BENCHMARKS.md). Durability is the log's, synced every commit.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` and its schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let mut conn = open_conn(path).map_err(open_err)?;
        migrate(&mut conn).map_err(open_err)?;
        let fresh = Alphanumeric.sample_string(&mut rand::rng(), 10);
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?1)",
            [&fresh],
        )
        .map_err(open_err)?;
        let epoch: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
                r.get(0)
            })
            .map_err(open_err)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(WriterConn {
                    conn,
                    heads: HashMap::new(),
                    room_count: None,
                }),
                readers: Mutex::new(Vec::new()),
                epoch,
                max_rooms: AtomicU64::new(0),
                read_slots: tokio::sync::Semaphore::new(MAX_READS),
            }),
        })
    }

    /// The directory kept in the same file (its tables come with this store's schema).
    pub(crate) fn directory(&self) -> Result<crate::directory::SqliteDirectory, StoreError> {
        Ok(crate::directory::SqliteDirectory::new(self.side_conn()?))
    }

    /// The inbox kept in the same file, on a connection of its own.
    pub(crate) fn inbox(&self) -> Result<crate::inbox::SqliteInbox, StoreError> {
        Ok(crate::inbox::SqliteInbox::new(self.side_conn()?))
    }

    /// Another connection to this file, for the tables kept beside the history.
    fn side_conn(&self) -> Result<SideConn, StoreError> {
        let conn = open_conn(&self.inner.path).map_err(|source| StoreError::Open {
            path: self.inner.path.display().to_string(),
            source,
        })?;
        Ok(SideConn(Arc::new(Mutex::new(conn))))
    }

    /// Refuses messages that would create a room beyond `max` rooms (0: no limit).
    pub fn set_max_rooms(&self, max: u64) {
        self.inner.max_rooms.store(max, Ordering::Relaxed);
    }

    /// Runs `f` with the writer's connection on the blocking pool.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriterConn) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut w = locks::lock(&inner.writer);
            f(&mut w).map_err(write_error)
        })
        .await
        .map_err(StoreError::Task)?
    }

    /// Runs `f` with a read connection on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        // Closed never: the semaphore lives as long as the store.
        let _slot = self
            .inner
            .read_slots
            .acquire()
            .await
            .map_err(|_| StoreError::Corrupt("read slots closed".to_owned()))?;
        tokio::task::spawn_blocking(move || {
            let pooled = locks::lock(&inner.readers).pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_conn(&inner.path)?,
            };
            let result = f(&conn);
            let mut pool = locks::lock(&inner.readers);
            if pool.len() < READ_POOL {
                pool.push(conn);
            }
            Ok(result?)
        })
        .await
        .map_err(StoreError::Task)?
    }
}

/// The columns [`row_to_entry`] reads, in its order.
const ENTRY_COLUMNS: &str =
    "offset, kind, id, nick, text, ts, user, reply_to, target, emoji, react_on, edited_ts";

/// An entry as appended (a message with its original text).
fn row_to_entry(room: &str, row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let offset: u64 = row.get(0)?;
    let kind: u8 = row.get(1)?;
    let user =
        || -> rusqlite::Result<String> { Ok(row.get::<_, Option<String>>(6)?.unwrap_or_default()) };
    let target = || -> rusqlite::Result<u64> { Ok(row.get::<_, Option<u64>>(8)?.unwrap_or(0)) };
    let room = room.to_owned();
    let ts = row.get(5)?;
    Ok(match kind {
        KIND_EDIT => Entry::Edited(Edited {
            room,
            offset,
            target: target()?,
            text: row.get(4)?,
            user: user()?,
            ts,
        }),
        KIND_DELETE => Entry::Deleted(Deleted {
            room,
            offset,
            target: target()?,
            user: user()?,
            ts,
        }),
        KIND_REACT => Entry::Reacted(Reacted {
            room,
            offset,
            target: target()?,
            emoji: row.get::<_, Option<String>>(9)?.unwrap_or_default(),
            user: user()?,
            on: row.get::<_, Option<bool>>(10)?.unwrap_or(false),
            ts,
            nick: row.get(3)?,
        }),
        _ => Entry::Message(ChatMessage {
            room,
            offset,
            id: row.get(2)?,
            nick: row.get(3)?,
            text: row.get(4)?,
            ts,
            user: row.get(6)?,
            reply_to: row.get(7)?,
            edited_ts: row.get(11)?,
            ..ChatMessage::default()
        }),
    })
}

/// A message in its current state, from `offset, id, nick, text, ts, user, reply_to,
/// edited_ts, deleted` (`text` being the current text); reactions are added after.
fn row_to_current(room: &str, row: &rusqlite::Row<'_>) -> rusqlite::Result<ChatMessage> {
    let deleted = row.get::<_, Option<u64>>(8)?.is_some();
    Ok(ChatMessage {
        room: room.to_owned(),
        offset: row.get(0)?,
        id: row.get(1)?,
        nick: row.get(2)?,
        text: if deleted { String::new() } else { row.get(3)? },
        ts: row.get(4)?,
        user: row.get(5)?,
        reply_to: row.get(6)?,
        edited_ts: if deleted { None } else { row.get(7)? },
        deleted,
        ..ChatMessage::default()
    })
}

/// What the log holds at a target offset, for the checks of an edit, deletion,
/// reaction or reply.
struct Target {
    kind: u8,
    user: String,
    nick: String,
    ts: u64,
    deleted: bool,
}

/// Whether `entry` may change the log as it stands (`target`: the row at its target).
fn check(entry: &NewEntry, target: Option<&Target>) -> Result<(), Refusal> {
    let message = target.filter(|t| t.kind == KIND_MESSAGE);
    match &entry.change {
        Change::Message { reply_to: None, .. } => Ok(()),
        // A reply may answer a message deleted meanwhile: the person wrote it against
        // what they saw, and it still makes sense beside "message deleted".
        Change::Message { .. } => message.map(|_| ()).ok_or(Refusal::UnknownMessage),
        Change::Edit { not_before, .. } => {
            let t = message
                .filter(|t| !t.deleted)
                .ok_or(Refusal::UnknownMessage)?;
            if t.nick.is_empty() || t.user != entry.user {
                Err(Refusal::NotAuthor)
            } else if not_before.is_some_and(|nb| t.ts < nb) {
                Err(Refusal::EditExpired)
            } else {
                Ok(())
            }
        }
        Change::Delete { any, .. } => {
            let t = message
                .filter(|t| !t.deleted)
                .ok_or(Refusal::UnknownMessage)?;
            if *any || (!t.nick.is_empty() && t.user == entry.user) {
                Ok(())
            } else {
                Err(Refusal::NotAuthor)
            }
        }
        Change::React { .. } => message
            .filter(|t| !t.deleted)
            .map(|_| ())
            .ok_or(Refusal::UnknownMessage),
    }
}

/// The offset an entry's checks look at.
fn target_of(change: &Change) -> Option<u64> {
    match change {
        Change::Message { reply_to, .. } => *reply_to,
        Change::Edit { target, .. }
        | Change::Delete { target, .. }
        | Change::React { target, .. } => Some(*target),
    }
}

/// A write failure, told apart: a full disk or a read-only database refuses writes
/// until an operator acts, which senders are told plainly.
fn write_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{DiskFull, ReadOnly};
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if matches!(f.code, DiskFull | ReadOnly) => {
            StoreError::Full(Box::new(e))
        }
        _ => StoreError::Sqlite(e),
    }
}

fn append_in_tx(
    w: &mut WriterConn,
    batch: Vec<NewEntry>,
    max_rooms: u64,
) -> rusqlite::Result<Vec<AppendOutcome>> {
    if max_rooms > 0 && w.room_count.is_none() {
        w.room_count = Some(
            w.conn
                .query_row("SELECT count(*) FROM rooms", [], |r| r.get(0))?,
        );
    }
    let WriterConn {
        conn,
        heads,
        room_count,
    } = w;
    let mut new_rooms = 0;
    // Immediate: the directory writes to the same file from its own connection, and a
    // deferred transaction that read before another connection's commit could not
    // upgrade to a write (SQLITE_BUSY at once, no waiting).
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // New heads are applied to the cache only after the commit succeeds, so a failed
    // batch leaves no phantom offsets behind. They borrow the rooms' names from the
    // batch: nothing is copied per entry.
    let mut new_heads: HashMap<&str, u64> = HashMap::new();
    // Per entry, its outcome with only the offset of a stored one; the stored entries
    // are built after the commit, when the batch is no longer borrowed.
    let mut placed: Vec<AppendOutcome<u64>> = Vec::with_capacity(batch.len());
    let ts = now_ms();
    {
        let mut find_dup = tx.prepare_cached(
            "SELECT offset FROM messages WHERE room = ?1 AND nick_key = ?2 AND id = ?3",
        )?;
        let mut load_head = tx.prepare_cached("SELECT head FROM rooms WHERE room = ?1")?;
        let mut revive =
            tx.prepare_cached("DELETE FROM forgotten WHERE room = ?1 RETURNING head")?;
        // A retry of a stored entry (same room, user and id) inserts nothing: the
        // dedupe index turns it into no change, which is then looked up.
        let mut insert = tx.prepare_cached(
            "INSERT INTO messages
               (room, offset, id, nick, nick_key, text, ts, user, kind, target, reply_to, emoji, react_on)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?5, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (room, nick_key, id) DO NOTHING",
        )?;
        let mut find_target = tx.prepare_cached(
            "SELECT kind, coalesce(user, ''), nick, ts, deleted IS NOT NULL FROM messages
             WHERE room = ?1 AND offset = ?2",
        )?;
        for m in &batch {
            // A plain message (no reply) is checked against nothing in the log, so its
            // duplicate is found by the insert itself, which saves a lookup per message.
            // Anything else is looked up first: a retry must be answered as a duplicate
            // before its target is checked again.
            let plain = matches!(m.change, Change::Message { reply_to: None, .. });
            if !plain {
                if let Some(offset) = find_dup
                    .query_row(params![m.room, m.user, m.id], |r| r.get::<_, u64>(0))
                    .optional()?
                {
                    placed.push(AppendOutcome::Duplicate { offset });
                    continue;
                }
            }
            if let Some(at) = target_of(&m.change) {
                let target = find_target
                    .query_row(params![m.room, at], |r| {
                        Ok(Target {
                            kind: r.get(0)?,
                            user: r.get(1)?,
                            nick: r.get(2)?,
                            ts: r.get(3)?,
                            deleted: r.get(4)?,
                        })
                    })
                    .optional()?;
                if let Err(refusal) = check(m, target.as_ref()) {
                    placed.push(AppendOutcome::Refused(refusal));
                    continue;
                }
            }
            let head = match new_heads
                .get(m.room.as_str())
                .or_else(|| heads.get(&m.room))
            {
                Some(h) => *h,
                None => match load_head
                    .query_row([&m.room], |r| r.get::<_, u64>(0))
                    .optional()?
                {
                    Some(h) => h,
                    None => {
                        // A new room, or a forgotten one coming back. (A stored message
                        // keeps its room in `rooms`, so no retry lands here; a plain one
                        // is still looked up before the room is counted or revived.)
                        if plain {
                            if let Some(offset) = find_dup
                                .query_row(params![m.room, m.user, m.id], |r| r.get::<_, u64>(0))
                                .optional()?
                            {
                                placed.push(AppendOutcome::Duplicate { offset });
                                continue;
                            }
                        }
                        let count = room_count.unwrap_or(0) + new_rooms;
                        if max_rooms > 0 && count >= max_rooms {
                            placed.push(AppendOutcome::RoomLimit);
                            continue;
                        }
                        new_rooms += 1;
                        revive
                            .query_row([&m.room], |r| r.get::<_, u64>(0))
                            .optional()?
                            .unwrap_or(0)
                    }
                },
            };
            let offset = head + 1;
            let (kind, text, target, reply_to, emoji, on) = match &m.change {
                Change::Message { text, reply_to } => {
                    (KIND_MESSAGE, text.as_str(), None, *reply_to, None, None)
                }
                Change::Edit { target, text, .. } => {
                    (KIND_EDIT, text.as_str(), Some(*target), None, None, None)
                }
                Change::Delete { target, .. } => (KIND_DELETE, "", Some(*target), None, None, None),
                Change::React { target, emoji, on } => (
                    KIND_REACT,
                    "",
                    Some(*target),
                    None,
                    Some(emoji.as_str()),
                    Some(*on),
                ),
            };
            let inserted = insert.execute(params![
                m.room, offset, m.id, m.nick, m.user, text, ts, kind, target, reply_to, emoji, on
            ])?;
            if inserted == 0 {
                let offset =
                    find_dup.query_row(params![m.room, m.user, m.id], |r| r.get::<_, u64>(0))?;
                placed.push(AppendOutcome::Duplicate { offset });
                continue;
            }
            apply_change(&tx, m, offset, ts)?;
            new_heads.insert(&m.room, offset);
            placed.push(AppendOutcome::Stored(offset));
        }
        let mut upsert = tx.prepare_cached(
            "INSERT INTO rooms (room, head) VALUES (?1, ?2)
             ON CONFLICT (room) DO UPDATE SET head = excluded.head",
        )?;
        for (room, head) in &new_heads {
            upsert.execute(params![room, head])?;
        }
    }
    tx.commit()?;
    for (room, head) in new_heads {
        match heads.get_mut(room) {
            Some(cached) => *cached = head,
            None => {
                heads.insert(room.to_owned(), head);
            }
        }
    }
    if let Some(count) = room_count {
        *count += new_rooms;
    }
    Ok(batch
        .into_iter()
        .zip(placed)
        .map(|(m, placed)| match placed {
            AppendOutcome::Stored(offset) => AppendOutcome::Stored(m.stored(offset, ts)),
            AppendOutcome::Duplicate { offset } => AppendOutcome::Duplicate { offset },
            AppendOutcome::RoomLimit => AppendOutcome::RoomLimit,
            AppendOutcome::Refused(why) => AppendOutcome::Refused(why),
        })
        .collect())
}

/// What an edit, deletion or reaction does to the current state of its target.
fn apply_change(
    tx: &rusqlite::Transaction<'_>,
    m: &NewEntry,
    offset: u64,
    ts: u64,
) -> rusqlite::Result<()> {
    match &m.change {
        Change::Message { .. } => {}
        Change::Edit { target, text, .. } => {
            tx.prepare_cached(
                "UPDATE messages SET current = ?3, edited_ts = ?4 WHERE room = ?1 AND offset = ?2",
            )?
            .execute(params![m.room, target, text, ts])?;
        }
        Change::Delete { target, .. } => {
            // Erased, not hidden: the original text, the current one, and each edit's.
            tx.prepare_cached(
                "UPDATE messages SET text = '', current = NULL, edited_ts = NULL, deleted = ?3
                 WHERE room = ?1 AND offset = ?2",
            )?
            .execute(params![m.room, target, ts])?;
            tx.prepare_cached(
                "UPDATE messages SET text = '', deleted = ?3
                 WHERE room = ?1 AND target = ?2 AND kind = 1",
            )?
            .execute(params![m.room, target, ts])?;
            tx.prepare_cached("DELETE FROM reactions WHERE room = ?1 AND target = ?2")?
                .execute(params![m.room, target])?;
        }
        Change::React {
            target,
            emoji,
            on: true,
        } => {
            tx.prepare_cached(
                "INSERT INTO reactions (room, target, emoji, user, nick, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            )?
            .execute(params![m.room, target, emoji, m.user, m.nick, offset])?;
        }
        Change::React {
            target,
            emoji,
            on: false,
        } => {
            tx.prepare_cached(
                "DELETE FROM reactions WHERE room = ?1 AND target = ?2 AND emoji = ?3 AND user = ?4",
            )?
            .execute(params![m.room, target, emoji, m.user])?;
        }
    }
    Ok(())
}

/// Drops up to [`PRUNE_BATCH`] reactions whose message retention deleted.
fn prune_reactions(w: &mut WriterConn) -> rusqlite::Result<u64> {
    let n = w.conn.execute(
        "DELETE FROM reactions WHERE (room, target, emoji, user) IN
           (SELECT room, target, emoji, user FROM reactions r WHERE NOT EXISTS
              (SELECT 1 FROM messages m WHERE m.room = r.room AND m.offset = r.target)
            LIMIT ?1)",
        [PRUNE_BATCH],
    )?;
    Ok(n as u64)
}

/// Deletes up to [`PRUNE_BATCH`] messages older than `cutoff` (ms); how many it deleted.
fn prune_old(w: &mut WriterConn, cutoff: u64) -> rusqlite::Result<u64> {
    let n = w.conn.execute(
        "DELETE FROM messages WHERE (room, offset) IN
           (SELECT room, offset FROM messages WHERE ts < ?1 LIMIT ?2)",
        params![cutoff, PRUNE_BATCH],
    )?;
    Ok(n as u64)
}

/// Deletes up to [`PRUNE_BATCH`] of `room`'s messages at or below `up_to`.
fn prune_room(w: &mut WriterConn, room: &str, up_to: u64) -> rusqlite::Result<u64> {
    let n = w.conn.execute(
        "DELETE FROM messages WHERE (room, offset) IN
           (SELECT room, offset FROM messages WHERE room = ?1 AND offset <= ?2 LIMIT ?3)",
        params![room, up_to, PRUNE_BATCH],
    )?;
    Ok(n as u64)
}

/// Moves up to [`PRUNE_BATCH`] rooms without messages to `forgotten`; how many. The
/// check runs in the same transaction as the move, under the writer's lock, so a
/// message appended meanwhile keeps its room.
fn forget_empty(w: &mut WriterConn) -> rusqlite::Result<u64> {
    let tx = w
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let rooms: Vec<(String, u64)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT room, head FROM rooms r
             WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.room = r.room) LIMIT ?1",
        )?;
        let rows = stmt
            .query_map([PRUNE_BATCH], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        rows
    };
    for (room, head) in &rooms {
        tx.execute(
            "INSERT INTO forgotten (room, head) VALUES (?1, ?2)
             ON CONFLICT (room) DO UPDATE SET head = excluded.head",
            params![room, head],
        )?;
        tx.execute("DELETE FROM rooms WHERE room = ?1", [room])?;
    }
    tx.commit()?;
    for (room, _) in &rooms {
        w.heads.remove(room);
    }
    let forgotten = rooms.len() as u64;
    if let Some(count) = &mut w.room_count {
        *count = count.saturating_sub(forgotten);
    }
    Ok(forgotten)
}

#[async_trait]
impl HistoryStore for SqliteStore {
    async fn append_batch(&self, batch: Vec<NewEntry>) -> Result<Vec<AppendOutcome>, StoreError> {
        let max_rooms = self.inner.max_rooms.load(Ordering::Relaxed);
        self.write(move |w| append_in_tx(w, batch, max_rooms)).await
    }

    async fn prune(&self, policy: &Retention, now_ms: u64) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        // Each step takes the writer's lock for one bounded batch, so appends interleave.
        if let Some(age) = policy.max_age {
            let cutoff = now_ms.saturating_sub(age.as_millis() as u64);
            loop {
                let n = self.write(move |w| prune_old(w, cutoff)).await?;
                pruned.messages += n;
                if n < u64::from(PRUNE_BATCH) {
                    break;
                }
            }
        }
        if let Some(keep) = policy.max_messages {
            let over: Vec<(String, u64)> = self
                .read(move |c| {
                    let mut stmt = c.prepare_cached(
                        "SELECT r.room, r.head FROM rooms r WHERE r.head > ?1 AND EXISTS
                           (SELECT 1 FROM messages m WHERE m.room = r.room AND m.offset <= r.head - ?1)",
                    )?;
                    let rows = stmt
                        .query_map([keep], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect();
                    rows
                })
                .await?;
            for (room, head) in over {
                let up_to = head - keep;
                loop {
                    let room = room.clone();
                    let n = self.write(move |w| prune_room(w, &room, up_to)).await?;
                    pruned.messages += n;
                    if n < u64::from(PRUNE_BATCH) {
                        break;
                    }
                }
            }
        }
        while self.write(prune_reactions).await? >= u64::from(PRUNE_BATCH) {}
        loop {
            let n = self.write(forget_empty).await?;
            pruned.rooms += n;
            if n < u64::from(PRUNE_BATCH) {
                break;
            }
        }
        Ok(pruned)
    }

    async fn head(&self, room: &str) -> Result<RoomHead, StoreError> {
        let room = room.to_owned();
        // A forgotten room keeps its head, so a returning client does not take new
        // offsets for ones it saw.
        let head = self
            .read(move |c| {
                c.query_row(
                    "SELECT head FROM rooms WHERE room = ?1
                     UNION ALL SELECT head FROM forgotten WHERE room = ?1 LIMIT 1",
                    [&room],
                    |r| r.get::<_, u64>(0),
                )
                .optional()
            })
            .await?;
        Ok(RoomHead {
            head: head.unwrap_or(0),
            epoch: self.inner.epoch.clone(),
        })
    }

    async fn page(&self, room: &str, before: Option<u64>, limit: u32) -> Result<Page, StoreError> {
        let room = room.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT offset, id, nick, coalesce(current, text), ts, user, reply_to, edited_ts,
                        deleted
                 FROM messages
                 WHERE room = ?1 AND offset < ?2 AND kind = 0 ORDER BY offset DESC LIMIT ?3",
            )?;
            let before = before.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
            // One extra row tells whether older messages exist.
            let mut messages = stmt
                .query_map(params![room, before, limit + 1], |r| {
                    row_to_current(&room, r)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let has_more = messages.len() > limit as usize;
            messages.truncate(limit as usize);
            messages.reverse();
            let mut nicks = std::collections::BTreeMap::new();
            if let (Some(first), Some(last)) = (messages.first(), messages.last()) {
                let mut stmt = c.prepare_cached(
                    "SELECT target, emoji, user, nick FROM reactions
                     WHERE room = ?1 AND target BETWEEN ?2 AND ?3 ORDER BY at",
                )?;
                let (lo, hi) = (first.offset, last.offset);
                let mut rows = stmt.query(params![room, lo, hi])?;
                while let Some(r) = rows.next()? {
                    let (target, emoji, user, nick): (u64, String, String, String) =
                        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                    if let Ok(i) = messages.binary_search_by_key(&target, |m| m.offset) {
                        messages[i].reactions.apply(&emoji, &user, true);
                        nicks.insert(user, nick);
                    }
                }
            }
            Ok(Page {
                messages,
                has_more,
                nicks,
            })
        })
        .await
    }

    async fn after(&self, room: &str, after: u64, limit: u32) -> Result<Vec<Entry>, StoreError> {
        let room = room.to_owned();
        self.read(move |c| {
            // Erased rows (a deleted message, its edits) are skipped inside the query, so
            // `limit` counts what is returned and a page is empty only at the end.
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {ENTRY_COLUMNS} FROM messages
                 WHERE room = ?1 AND offset > ?2 AND NOT (kind IN (0, 1) AND deleted IS NOT NULL)
                 ORDER BY offset ASC LIMIT ?3"
            ))?;
            let rows = stmt
                .query_map(params![room, after, limit], |r| row_to_entry(&room, r))?
                .collect();
            rows
        })
        .await
    }

    async fn count_between(&self, room: &str, after: u64, up_to: u64) -> Result<u64, StoreError> {
        let room = room.to_owned();
        self.read(move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM messages WHERE room = ?1 AND offset > ?2 AND offset <= ?3",
                params![room, after, up_to],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // Through the writer's own connection, so the probe fails exactly when
            // appends would (read-only file, full disk, broken schema); committed, not
            // rolled back, because only a commit reaches the WAL and its fsync.
            let w = locks::lock(&inner.writer);
            w.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('ready_probe', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [now_ms().to_string()],
            )?;
            Ok(())
        })
        .await
        .map_err(StoreError::Task)?
    }

    async fn rooms(&self, offset: u64, limit: u32) -> Result<RoomList, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT room, head FROM rooms
                 WHERE room NOT IN (SELECT room FROM room_settings WHERE private = 1)
                 ORDER BY head DESC, room DESC LIMIT ?1 OFFSET ?2",
            )?;
            // SQLite integers are signed; an offset beyond them is past every room.
            let offset = i64::try_from(offset).unwrap_or(i64::MAX);
            let rooms = stmt
                .query_map(rusqlite::params![limit, offset], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            // Private rooms do not exist for outsiders, so they are not counted either.
            let total: u64 = c.query_row(
                "SELECT count(*) FROM rooms
                 WHERE room NOT IN (SELECT room FROM room_settings WHERE private = 1)",
                [],
                |r| r.get(0),
            )?;
            Ok(RoomList { rooms, total })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(room: &str, nick: &str, id: &str) -> NewEntry {
        NewEntry::message(room, nick, &nick.to_lowercase(), id, &format!("text {id}"))
    }

    #[tokio::test]
    async fn a_retry_in_a_later_batch_is_a_duplicate_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
        let reply = || NewEntry {
            change: Change::Message {
                text: "re".to_owned(),
                reply_to: Some(1),
            },
            ..msg("a", "x", "2")
        };
        store
            .append_batch(vec![msg("a", "x", "1"), reply()])
            .await
            .unwrap();
        // The plain message is found by its insert, the reply by its look-up first.
        let out = store
            .append_batch(vec![msg("a", "x", "1"), reply(), msg("a", "x", "3")])
            .await
            .unwrap();
        assert_eq!(out[0], AppendOutcome::Duplicate { offset: 1 });
        assert_eq!(out[1], AppendOutcome::Duplicate { offset: 2 });
        assert!(matches!(&out[2], AppendOutcome::Stored(m) if m.offset() == 3));
        assert_eq!(store.head("a").await.unwrap().head, 3);
        assert_eq!(store.after("a", 0, 10).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn offsets_are_gap_free_per_room_and_duplicates_keep_their_offset() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
        let out = store
            .append_batch(vec![
                msg("a", "x", "1"),
                msg("b", "x", "1"),
                msg("a", "x", "2"),
                msg("a", "X", "1"),
            ])
            .await
            .unwrap();
        let offsets: Vec<_> = out
            .iter()
            .map(|o| match o {
                AppendOutcome::Stored(m) => (m.room(), m.offset(), false),
                AppendOutcome::Duplicate { offset } => ("dup", *offset, true),
                other => unreachable!("{other:?}"),
            })
            .collect();
        assert_eq!(
            offsets,
            vec![
                ("a", 1, false),
                ("b", 1, false),
                ("a", 2, false),
                ("dup", 1, true)
            ]
        );
        assert_eq!(store.head("a").await.unwrap().head, 2);
        assert_eq!(store.head("none").await.unwrap().head, 0);
        let page = store.page("a", None, 1).await.unwrap();
        assert_eq!(page.messages[0].offset, 2);
        assert!(page.has_more);
        let page = store.page("a", Some(2), 10).await.unwrap();
        assert_eq!(page.messages.len(), 1);
        assert!(!page.has_more);
        assert_eq!(store.after("a", 0, 10).await.unwrap().len(), 2);
        assert_eq!(store.count_between("a", 0, 2).await.unwrap(), 2);
        assert_eq!(
            store.rooms(0, 10).await.unwrap().rooms,
            vec![("a".into(), 2), ("b".into(), 1)]
        );

        // Reopening keeps heads and the epoch: offsets continue, recovery stays valid.
        let epoch = store.head("a").await.unwrap().epoch;
        drop(store);
        let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
        assert_eq!(store.head("a").await.unwrap().epoch, epoch);
        let out = store.append_batch(vec![msg("a", "y", "1")]).await.unwrap();
        assert!(matches!(&out[0], AppendOutcome::Stored(m) if m.offset() == 3));
    }
}

#[cfg(test)]
mod erasure_tests {
    use super::*;

    /// A deleted message's text, and its edits' texts, are not left in the file's free
    /// space or its write-ahead log: "deleted" means gone from storage, not hidden.
    #[tokio::test]
    async fn a_deleted_text_is_not_left_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let store = SqliteStore::open(&path).unwrap();
        let secret = "the-launch-code-is-0000-and-must-not-survive";
        let edit_secret = "an-edit-that-must-not-survive-either-1111";
        let mut batch = vec![NewEntry::message("r", "ann", "ann", "m1", secret)];
        for i in 0..50 {
            batch.push(NewEntry::message(
                "r",
                "bob",
                "bob",
                &format!("b{i}"),
                "filler",
            ));
        }
        store.append_batch(batch).await.unwrap();
        let edit = NewEntry {
            change: Change::Edit {
                target: 1,
                text: edit_secret.into(),
                not_before: None,
            },
            ..NewEntry::message("r", "ann", "ann", "e1", "")
        };
        store.append_batch(vec![edit]).await.unwrap();
        let delete = NewEntry {
            change: Change::Delete {
                target: 1,
                any: false,
            },
            ..NewEntry::message("r", "ann", "ann", "d1", "")
        };
        let out = store.append_batch(vec![delete]).await.unwrap();
        assert!(matches!(&out[0], AppendOutcome::Stored(_)), "{out:?}");
        drop(store);
        // What is on disk once the write-ahead log is folded into the file (as SQLite
        // does on its own at checkpoints).
        let bytes = |p: &std::path::Path| std::fs::read(p).unwrap_or_default();
        let found =
            |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
        let conn = Connection::open(&path).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        drop(conn);
        let file = bytes(&path);
        assert!(!file.is_empty());
        for gone in [secret, edit_secret] {
            assert!(!found(&file, gone), "{gone} is still in the database file");
        }
    }
}
