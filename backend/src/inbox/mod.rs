//! Each user's stored alerts: the [`Inbox`] seam. It owns the inbox (alerts with a
//! gap-free `seq` per user, read and delivery state, the receipts the notifications API
//! reports), the idempotency keys of that API, the Web Push schedule (when each alert is
//! due to be pushed, claimed with a lease so that one instance sends it, once), the
//! users' push subscriptions, and the server's VAPID key.
//!
//! Deciding who gets an alert is `alerts`'; sending a push is `push`'s. [`SqliteInbox`]
//! keeps the inbox in the history's file (one instance), [`RedisInbox`] in the cluster's
//! Redis; both pass the same behaviour tests (`conformance`).

#[cfg(test)]
pub(crate) mod conformance;
mod redis;
mod sqlite;

pub(crate) use self::redis::RedisInbox;
pub(crate) use sqlite::SqliteInbox;

use async_trait::async_trait;
use common::{Alert, AlertKind, InboxState};

use crate::store::StoreError;

/// Alerts kept per user: older ones are dropped as new ones come (an inbox is what is
/// new, not an archive; the messages themselves stay in the rooms).
pub(crate) const KEEP_PER_USER: u64 = 1000;

/// How long an `Idempotency-Key` is remembered.
pub(crate) const IDEMPOTENCY_MS: u64 = 24 * 3600 * 1000;

/// Push subscriptions kept per user (browsers and devices); the oldest goes first.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 10;

/// An alert before it has a place in an inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewAlert {
    pub(crate) kind: AlertKind,
    pub(crate) title: String,
    pub(crate) body: String,
    pub(crate) room: Option<String>,
    pub(crate) offset: Option<u64>,
    pub(crate) url: Option<String>,
}

/// What [`Inbox::append`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Appended {
    /// The alert's id for the notifications API (`GET /api/notifications/{id}`).
    pub(crate) id: String,
    /// The stored alert; `None` when the idempotency key was used before (nothing new
    /// was stored, `id` is the first alert's).
    pub(crate) alert: Option<Alert>,
}

/// An alert's story, for the application that asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Receipt {
    pub(crate) id: String,
    pub(crate) user: String,
    pub(crate) created: u64,
    pub(crate) delivered: Option<u64>,
    pub(crate) read: Option<u64>,
    pub(crate) pushed: Option<u64>,
}

/// Alerts that became read, and whether any of them had been pushed (then the user's
/// devices are told to close it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MarkedRead {
    /// The highest `seq` that became read (0: none did).
    pub(crate) upto: u64,
    /// The highest `seq` among them that had been pushed (0: none).
    pub(crate) pushed_upto: u64,
}

/// A browser's push subscription, as `push_subscribe` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) endpoint: String,
    pub(crate) p256dh: String,
    pub(crate) auth: String,
}

/// An alert due to be pushed, claimed by this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DuePush {
    pub(crate) user: String,
    pub(crate) alert: Alert,
}

/// The inbox store; see the module docs.
///
/// Contract: each method is one atomic step; `seq` is 1, 2, 3, … per user with no gaps
/// and never reused; read state only moves forward; a due push is handed to one claimer
/// per lease.
#[async_trait]
pub(crate) trait Inbox: Send + Sync + 'static {
    /// Stores `alert` as `user`'s next, made at `now_ms`, to be pushed at `push_due`
    /// (none: not pushed). With `idempotency`, a key `user` used within
    /// [`IDEMPOTENCY_MS`] stores nothing and answers the first alert's id.
    async fn append(
        &self,
        user: &str,
        alert: &NewAlert,
        now_ms: u64,
        push_due: Option<u64>,
        idempotency: Option<&str>,
    ) -> Result<Appended, StoreError>;
    /// Stores several alerts made at once (one message's), each `(user, alert,
    /// push_due)`, as [`Inbox::append`] without a key would: the stored alerts, in the
    /// same order. Where the store can, in one step (one transaction, one fsync).
    async fn append_many(
        &self,
        batch: &[(String, NewAlert, Option<u64>)],
        now_ms: u64,
    ) -> Result<Vec<Alert>, StoreError> {
        let mut stored = Vec::with_capacity(batch.len());
        for (user, alert, due) in batch {
            if let Some(alert) = self.append(user, alert, now_ms, *due, None).await?.alert {
                stored.push(alert);
            }
        }
        Ok(stored)
    }
    /// The newest `seq` and how many alerts are unread.
    async fn state(&self, user: &str) -> Result<InboxState, StoreError>;
    /// Alerts after `since`, ascending, at most `limit` (the newest `limit` when
    /// `since` is absent), with the inbox's state.
    async fn since(
        &self,
        user: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Alert>, InboxState), StoreError>;
    /// Marks alerts up to `seq` read (and cancels their pushes).
    async fn read_upto(&self, user: &str, seq: u64, now_ms: u64) -> Result<MarkedRead, StoreError>;
    /// Marks `user`'s alerts about `room` at or before `offset` read: the room was read
    /// past them.
    async fn read_room(
        &self,
        user: &str,
        room: &str,
        offset: u64,
        now_ms: u64,
    ) -> Result<MarkedRead, StoreError>;
    /// Records that a connection of `user` received the alerts up to `seq`.
    async fn delivered(&self, user: &str, seq: u64, now_ms: u64) -> Result<(), StoreError>;
    /// An alert's receipt by its id.
    async fn receipt(&self, id: &str) -> Result<Option<Receipt>, StoreError>;

    /// Claims up to `limit` alerts due at `now_ms`: each is handed out again only if
    /// the claimer does not [`Inbox::finish_push`] within `lease_ms` (it died). Alerts
    /// read by then are skipped and their schedule cleared.
    async fn claim_due(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<DuePush>, StoreError>;
    /// Ends an alert's schedule: pushed at `pushed` (none: not sent).
    async fn finish_push(
        &self,
        user: &str,
        seq: u64,
        pushed: Option<u64>,
    ) -> Result<(), StoreError>;
    /// Moves an unread alert's push to `due` (quiet hours).
    async fn defer_push(&self, user: &str, seq: u64, due: u64) -> Result<(), StoreError>;

    /// Adds (or renews) a push subscription of `user`; beyond
    /// [`MAX_SUBSCRIPTIONS`] the oldest goes.
    async fn subscribe(
        &self,
        user: &str,
        sub: &Subscription,
        now_ms: u64,
    ) -> Result<(), StoreError>;
    /// Forgets one of `user`'s subscriptions; false when it was not theirs.
    async fn unsubscribe(&self, user: &str, endpoint: &str) -> Result<bool, StoreError>;
    async fn subscriptions(&self, user: &str) -> Result<Vec<Subscription>, StoreError>;

    /// The VAPID private key (base64url) stored with the data; stores `candidate` and
    /// answers it when there is none yet, so every instance signs with the same key.
    async fn vapid_key(&self, candidate: &str) -> Result<String, StoreError>;
}

/// The alert id the notifications API hands out: random, so ids tell nothing and
/// cannot be guessed.
pub(crate) fn new_id() -> String {
    use rand::distr::{Alphanumeric, SampleString as _};
    format!("al_{}", Alphanumeric.sample_string(&mut rand::rng(), 22))
}

/// An alert as stored, with its id, for the implementations.
pub(crate) fn alert(seq: u64, new: &NewAlert, ts: u64) -> Alert {
    Alert {
        seq,
        kind: new.kind,
        title: new.title.clone(),
        body: new.body.clone(),
        room: new.room.clone(),
        offset: new.offset,
        url: new.url.clone(),
        ts,
        read: false,
    }
}
