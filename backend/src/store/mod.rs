//! Message history: the [`HistoryStore`] trait, its SQLite implementation (one instance)
//! and its Redis implementation (several instances sharing one history).
//!
//! The store knows rooms, offsets and messages; it knows nothing of WebSockets, JSON or
//! sessions.

pub(crate) mod redis;
mod sqlite;

pub use self::redis::RedisStore;
pub(crate) use sqlite::SideConn;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use std::collections::BTreeMap;

use common::{ChatMessage, Deleted, Edited, Entry, Reacted};

/// An entry to append to a room's log, already validated: who writes it, the id that
/// de-duplicates its retries, and what it does.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub room: String,
    pub nick: String,
    /// The writer's user id: stored with the entry, and together with `room` and `id`
    /// it de-duplicates retries.
    pub user: String,
    pub id: String,
    pub change: Change,
}

/// What an entry does. Every check that depends on what the log holds (the target is a
/// message of the room, its author, its age) is the store's, made inside the append,
/// so two instances cannot both pass it on a state one of them changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A message (or, with an empty nick, a stored notice), optionally answering the
    /// message at `reply_to`, which must be a message of the room (deleted or not).
    Message { text: String, reply_to: Option<u64> },
    /// Replaces the text of the writer's own message at `target`, if it was stored at
    /// or after `not_before` (ms; the edit window).
    Edit {
        target: u64,
        text: String,
        not_before: Option<u64>,
    },
    /// Takes back the message at `target`: its text (and its edits' texts) are erased
    /// and its reactions dropped. Only its author's, unless `any` (the room's owner).
    Delete { target: u64, any: bool },
    /// Adds (`on`) or takes back the writer's `emoji` on the message at `target`.
    React {
        target: u64,
        emoji: String,
        on: bool,
    },
}

impl NewEntry {
    /// A message.
    pub fn message(room: &str, nick: &str, user: &str, id: &str, text: &str) -> Self {
        NewEntry {
            room: room.to_owned(),
            nick: nick.to_owned(),
            user: user.to_owned(),
            id: id.to_owned(),
            change: Change::Message {
                text: text.to_owned(),
                reply_to: None,
            },
        }
    }

    /// A notice stored in a room's log (the notifications API with `persist`): no
    /// sender, so an empty nick and user, which no person can have; a random id.
    pub fn notice(room: &str, text: &str) -> Self {
        use rand::distr::{Alphanumeric, SampleString as _};
        let id = format!(
            "notice-{}",
            Alphanumeric.sample_string(&mut rand::rng(), 16)
        );
        NewEntry::message(room, "", "", &id, text)
    }

    /// The entry as stored at `offset`, at server time `ts`.
    pub fn stored(self, offset: u64, ts: u64) -> Entry {
        let NewEntry {
            room,
            nick,
            user,
            id,
            change,
        } = self;
        match change {
            Change::Message { text, reply_to } => Entry::Message(ChatMessage {
                room,
                offset,
                id,
                nick,
                text,
                ts,
                user: Some(user),
                reply_to,
                ..ChatMessage::default()
            }),
            Change::Edit { target, text, .. } => Entry::Edited(Edited {
                room,
                offset,
                target,
                text,
                user,
                ts,
            }),
            Change::Delete { target, .. } => Entry::Deleted(Deleted {
                room,
                offset,
                target,
                user,
                ts,
            }),
            Change::React { target, emoji, on } => Entry::Reacted(Reacted {
                room,
                offset,
                target,
                emoji,
                user,
                on,
                ts,
                nick,
            }),
        }
    }
}

/// What became of one appended entry. `S` is what a stored one carries: the entry
/// itself from the store; in the writer's answer to its sender only where it was stored
/// (`writer::Stored`), since the entry itself moves on to the broker and the alerts.
///
/// `Stored(Entry)` is much larger than the other variants; it is not boxed, since one
/// per appended entry is moved once to the writer and a box would cost an allocation
/// per message on the hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome<S = Entry> {
    /// Stored at the next offset of its room.
    Stored(S),
    /// The same room + user + id was stored before, at this offset; nothing was written.
    Duplicate { offset: u64 },
    /// The message would have created a room while the store holds as many as it may
    /// (`--max-rooms`); nothing was written.
    RoomLimit,
    /// The log refuses the change; nothing was written.
    Refused(Refusal),
}

/// Why the log refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The target (or `reply_to`) is no message of the room: never stored, an entry of
    /// another kind, removed by retention, or (except for a reply) deleted.
    UnknownMessage,
    /// Someone else's message: only its author edits it, and only its author or the
    /// room's owner deletes it.
    NotAuthor,
    /// An edit after the edit window.
    EditExpired,
}

/// How much history is kept (`--retention`): messages older than `max_age`, and
/// beyond the newest `max_messages` of a room, are deleted in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    pub max_age: Option<std::time::Duration>,
    pub max_messages: Option<u64>,
}

/// Why a `--retention` value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a retention; write an age (30d, 12h), a number of messages per room (10000), or both (30d,10000)")]
pub struct BadRetention(String);

impl std::str::FromStr for Retention {
    type Err = BadRetention;

    fn from_str(raw: &str) -> Result<Self, BadRetention> {
        let bad = || BadRetention(raw.to_owned());
        let mut retention = Retention::default();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.bytes().all(|b| b.is_ascii_digit()) {
                let n: u64 = part.parse().map_err(|_| bad())?;
                if n == 0 || retention.max_messages.replace(n).is_some() {
                    return Err(bad());
                }
            } else {
                let age = common::parse_duration(part).map_err(|_| bad())?;
                if age.is_zero() || retention.max_age.replace(age).is_some() {
                    return Err(bad());
                }
            }
        }
        Ok(retention)
    }
}

impl Retention {
    /// Whether anything is ever deleted.
    pub fn is_unbounded(&self) -> bool {
        self.max_age.is_none() && self.max_messages.is_none()
    }
}

/// What one pass of [`HistoryStore::prune`] deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    pub messages: u64,
    /// Rooms left without messages, and so no longer listed or counted.
    pub rooms: u64,
}

/// A room's position: where its history ends and which history it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomHead {
    /// Latest offset (0 when the room has no messages).
    pub head: u64,
    /// Names this room's history; changes when the history is lost or reset.
    pub epoch: String,
}

/// One page of history: messages ascending by offset, in their current state (edited
/// text, deleted ones without text, reactions).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub messages: Vec<ChatMessage>,
    /// True when older messages exist before the first one returned.
    pub has_more: bool,
    /// The display name of each user who reacted to one of the messages.
    pub nicks: BTreeMap<String, String>,
}

/// A page of rooms, and how many there are in all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoomList {
    /// Each room's name and head.
    pub rooms: Vec<(String, u64)>,
    /// Rooms with stored messages.
    pub total: u64,
}

/// A failure of the storage itself (never of the caller's input).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database at {path}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("storage task failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("redis error")]
    Redis(#[from] ::redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("unexpected data in the history store: {0}")]
    Corrupt(String),
    /// The storage refuses writes: the disk or Redis' memory is full, or it is
    /// read-only. Reads still work; writes will again once space is freed.
    #[error("the history store refuses writes (full or read-only)")]
    Full(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Durable, ordered message history per room.
///
/// Contract:
/// - `append_batch` is called by one writer at a time (see `writer`); it stores the whole
///   batch in one transaction or nothing, and assigns each room's next offsets (1, 2, 3, …
///   with no gaps) in batch order, to every kind of entry alike. When it returns `Ok`,
///   the batch is durable.
/// - An entry whose room + user + id was stored before is not stored again; its
///   outcome is [`AppendOutcome::Duplicate`] with the original offset.
/// - An edit, deletion, reaction or reply is checked against the log as it stands
///   after the entries before it (in the batch too), and refused
///   ([`AppendOutcome::Refused`]) when its target is not a message it may change.
/// - A deletion erases the text of the message and of its edits from storage.
/// - Reads see every batch whose `append_batch` has returned.
/// - A message that would create a room beyond the store's room limit is not stored:
///   its outcome is [`AppendOutcome::RoomLimit`].
#[async_trait]
pub trait HistoryStore: Send + Sync + 'static {
    /// Appends entries in order; see the trait's contract.
    async fn append_batch(&self, batch: Vec<NewEntry>) -> Result<Vec<AppendOutcome>, StoreError>;

    /// The room's latest offset and epoch (a room with no messages has head 0).
    async fn head(&self, room: &str) -> Result<RoomHead, StoreError>;

    /// Up to `limit` messages before offset `before` (exclusive; `None` = newest), in
    /// their current state; the log's other entries are not history items.
    async fn page(&self, room: &str, before: Option<u64>, limit: u32) -> Result<Page, StoreError>;

    /// Up to `limit` entries of the log with offset > `after`, ascending, each as it was
    /// appended, except what a deletion erased: the deleted message and its edits are
    /// left out (the `deleted` entry that follows them stands for them).
    async fn after(&self, room: &str, after: u64, limit: u32) -> Result<Vec<Entry>, StoreError>;

    /// How many entries with offsets in `after+1..=up_to` are still stored (those a
    /// deletion erased count: they are accounted for, not lost).
    async fn count_between(&self, room: &str, after: u64, up_to: u64) -> Result<u64, StoreError>;

    /// One page of the rooms with stored messages, each with its head: most messages
    /// first, rooms with as many in reverse name order; `offset` rooms skipped.
    async fn rooms(&self, offset: u64, limit: u32) -> Result<RoomList, StoreError>;

    /// Deletes what `policy` no longer keeps, in bounded steps, and forgets rooms left
    /// without messages: they leave `rooms` and stop counting against the room limit,
    /// but their offsets continue where they were if they are used again, so no client
    /// can mistake new messages for ones it has seen.
    async fn prune(&self, policy: &Retention, now_ms: u64) -> Result<Pruned, StoreError>;

    /// Proves the store can durably write now (for `GET /readyz`): a tiny committed
    /// write that changes no history. `Err` means appends would fail too.
    async fn check_writable(&self) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retention_parses_an_age_a_count_or_both() {
        let r: Retention = "30d,10000".parse().unwrap();
        assert_eq!(r.max_age, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(r.max_messages, Some(10_000));
        assert_eq!("12h".parse::<Retention>().unwrap().max_messages, None);
        assert_eq!("500".parse::<Retention>().unwrap().max_age, None);
        assert!("".parse::<Retention>().unwrap().is_unbounded());
        for bad in ["0", "0s", "30d,1d", "5,6", "forever", "-3", "30x"] {
            let err = bad.parse::<Retention>().unwrap_err().to_string();
            assert!(err.contains("30d,10000"), "{bad}: {err}");
        }
    }
}
