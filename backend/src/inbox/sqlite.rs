//! The inbox in the history's SQLite file (tables from the store's migrations), on a
//! connection of its own used on the blocking pool, as the directory's. Transactions
//! that read before they write start immediate: three connections write to this file.

use async_trait::async_trait;
use common::{Alert, AlertKind, InboxState};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::{
    Appended, DuePush, Inbox, MarkedRead, NewAlert, Receipt, Subscription, IDEMPOTENCY_MS,
    KEEP_PER_USER, MAX_SUBSCRIPTIONS,
};
use crate::store::SideConn;
use crate::store::StoreError;

/// SQLite-backed [`Inbox`]. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SqliteInbox {
    conn: SideConn,
}

impl SqliteInbox {
    /// Uses `conn`, opened on a database whose schema is current
    /// ([`crate::store::SqliteStore::inbox`]).
    pub(crate) fn new(conn: SideConn) -> Self {
        SqliteInbox { conn }
    }
}

const ALERT_COLUMNS: &str = "seq, kind, title, body, room, msg_offset, url, ts, read";

fn alert_row(r: &Row<'_>) -> rusqlite::Result<Alert> {
    let kind: String = r.get(1)?;
    Ok(Alert {
        seq: r.get(0)?,
        kind: AlertKind::parse(&kind).unwrap_or(AlertKind::App),
        title: r.get(2)?,
        body: r.get(3)?,
        room: r.get(4)?,
        offset: r.get(5)?,
        url: r.get(6)?,
        ts: r.get(7)?,
        read: r.get::<_, Option<u64>>(8)?.is_some(),
    })
}

fn state(c: &Connection, user: &str) -> rusqlite::Result<InboxState> {
    let head = c
        .query_row(
            "SELECT head FROM inbox_heads WHERE user = ?1",
            [user],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let unread = c.query_row(
        "SELECT COUNT(*) FROM alerts WHERE user = ?1 AND read IS NULL",
        [user],
        |r| r.get(0),
    )?;
    Ok(InboxState { head, unread })
}

/// Stores one alert as `user`'s next (and drops their oldest beyond
/// [`KEEP_PER_USER`]): its id and seq.
fn insert(
    tx: &rusqlite::Transaction<'_>,
    user: &str,
    new: &NewAlert,
    now_ms: u64,
    push_due: Option<u64>,
) -> rusqlite::Result<(String, u64)> {
    let seq: u64 = tx
        .prepare_cached(
            "INSERT INTO inbox_heads (user, head) VALUES (?1, 1)
             ON CONFLICT (user) DO UPDATE SET head = head + 1 RETURNING head",
        )?
        .query_row([user], |r| r.get(0))?;
    let id = super::new_id();
    tx.prepare_cached(
        "INSERT INTO alerts (user, seq, id, kind, title, body, room, msg_offset, url, ts, push_due)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        user,
        seq,
        id,
        new.kind.as_str(),
        new.title,
        new.body,
        new.room,
        new.offset,
        new.url,
        now_ms,
        push_due
    ])?;
    if seq > KEEP_PER_USER {
        tx.prepare_cached("DELETE FROM alerts WHERE user = ?1 AND seq <= ?2")?
            .execute(params![user, seq - KEEP_PER_USER])?;
    }
    Ok((id, seq))
}

/// Marks the alerts `filter` picks (with `?1` the user, `?2` the time) read, clearing
/// their pushes.
fn mark_read(
    c: &mut Connection,
    filter: &str,
    args: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<MarkedRead> {
    let sql = format!(
        "UPDATE alerts SET read = ?2, push_due = NULL
         WHERE user = ?1 AND read IS NULL AND {filter} RETURNING seq, pushed"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let mut marked = MarkedRead::default();
    let mut rows = stmt.query(args)?;
    while let Some(r) = rows.next()? {
        let seq: u64 = r.get(0)?;
        marked.upto = marked.upto.max(seq);
        if r.get::<_, Option<u64>>(1)?.is_some() {
            marked.pushed_upto = marked.pushed_upto.max(seq);
        }
    }
    Ok(marked)
}

#[async_trait]
impl Inbox for SqliteInbox {
    async fn append(
        &self,
        user: &str,
        alert: &NewAlert,
        now_ms: u64,
        push_due: Option<u64>,
        idempotency: Option<&str>,
    ) -> Result<Appended, StoreError> {
        let (user, new, key) = (
            user.to_owned(),
            alert.clone(),
            idempotency.map(str::to_owned),
        );
        self.conn
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if let Some(key) = &key {
                    let before: Option<(String, u64)> = tx
                        .query_row(
                            "SELECT id, created FROM alert_keys WHERE user = ?1 AND key = ?2",
                            params![user, key],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .optional()?;
                    if let Some((id, created)) = before {
                        if now_ms.saturating_sub(created) < IDEMPOTENCY_MS {
                            return Ok(Appended { id, alert: None });
                        }
                    }
                }
                let (id, seq) = insert(&tx, &user, &new, now_ms, push_due)?;
                if let Some(key) = &key {
                    tx.execute(
                        "INSERT INTO alert_keys (user, key, id, created) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (user, key) DO UPDATE SET id = excluded.id,
                                                           created = excluded.created",
                        params![user, key, id, now_ms],
                    )?;
                    // Keys are only needed for a day; forget the user's stale ones as they
                    // add new ones, so the table does not grow without bound.
                    tx.execute(
                        "DELETE FROM alert_keys WHERE user = ?1 AND created < ?2",
                        params![user, now_ms.saturating_sub(IDEMPOTENCY_MS)],
                    )?;
                }
                tx.commit()?;
                Ok(Appended {
                    id,
                    alert: Some(super::alert(seq, &new, now_ms)),
                })
            })
            .await
    }

    async fn append_many(
        &self,
        batch: &[(String, NewAlert, Option<u64>)],
        now_ms: u64,
    ) -> Result<Vec<Alert>, StoreError> {
        let batch = batch.to_vec();
        self.conn
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut stored = Vec::with_capacity(batch.len());
                for (user, new, due) in &batch {
                    let (_, seq) = insert(&tx, user, new, now_ms, *due)?;
                    stored.push(super::alert(seq, new, now_ms));
                }
                tx.commit()?;
                Ok(stored)
            })
            .await
    }

    async fn state(&self, user: &str) -> Result<InboxState, StoreError> {
        let user = user.to_owned();
        self.conn.run(move |c| state(c, &user)).await
    }

    async fn since(
        &self,
        user: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Alert>, InboxState), StoreError> {
        let user = user.to_owned();
        self.conn
            .run(move |c| {
                let tx = c.transaction()?;
                let mut alerts: Vec<Alert> = match since {
                    Some(since) => {
                        let mut stmt = tx.prepare_cached(&format!(
                            "SELECT {ALERT_COLUMNS} FROM alerts WHERE user = ?1 AND seq > ?2
                         ORDER BY seq LIMIT ?3"
                        ))?;
                        let rows = stmt
                            .query_map(params![user, since, limit as i64], alert_row)?
                            .collect::<Result<_, _>>()?;
                        rows
                    }
                    None => {
                        let mut stmt = tx.prepare_cached(&format!(
                            "SELECT {ALERT_COLUMNS} FROM alerts WHERE user = ?1
                         ORDER BY seq DESC LIMIT ?2"
                        ))?;
                        let rows = stmt
                            .query_map(params![user, limit as i64], alert_row)?
                            .collect::<Result<_, _>>()?;
                        rows
                    }
                };
                alerts.sort_by_key(|a| a.seq);
                let state = state(&tx, &user)?;
                Ok((alerts, state))
            })
            .await
    }

    async fn read_upto(&self, user: &str, seq: u64, now_ms: u64) -> Result<MarkedRead, StoreError> {
        let user = user.to_owned();
        self.conn
            .run(move |c| mark_read(c, "seq <= ?3", params![user, now_ms, seq]))
            .await
    }

    async fn read_room(
        &self,
        user: &str,
        room: &str,
        offset: u64,
        now_ms: u64,
    ) -> Result<MarkedRead, StoreError> {
        let (user, room) = (user.to_owned(), room.to_owned());
        self.conn
            .run(move |c| {
                mark_read(
                    c,
                    "room = ?3 AND msg_offset <= ?4",
                    params![user, now_ms, room, offset],
                )
            })
            .await
    }

    async fn delivered(&self, user: &str, seq: u64, now_ms: u64) -> Result<(), StoreError> {
        let user = user.to_owned();
        self.conn
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE alerts SET delivered = ?3
                 WHERE user = ?1 AND seq <= ?2 AND delivered IS NULL",
                )?
                .execute(params![user, seq, now_ms])?;
                Ok(())
            })
            .await
    }

    async fn receipt(&self, id: &str) -> Result<Option<Receipt>, StoreError> {
        let id = id.to_owned();
        self.conn
            .run(move |c| {
                c.query_row(
                    "SELECT id, user, ts, delivered, read, pushed FROM alerts WHERE id = ?1",
                    [id],
                    |r| {
                        Ok(Receipt {
                            id: r.get(0)?,
                            user: r.get(1)?,
                            created: r.get(2)?,
                            delivered: r.get(3)?,
                            read: r.get(4)?,
                            pushed: r.get(5)?,
                        })
                    },
                )
                .optional()
            })
            .await
    }

    async fn claim_due(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<DuePush>, StoreError> {
        self.conn
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let claimed = {
                    let mut stmt = tx.prepare_cached(&format!(
                        "UPDATE alerts SET push_due = ?2
                     WHERE (user, seq) IN (SELECT user, seq FROM alerts
                                           WHERE push_due <= ?1 ORDER BY push_due LIMIT ?3)
                     RETURNING user, {ALERT_COLUMNS}"
                    ))?;
                    let rows = stmt
                        .query_map(
                            params![now_ms, now_ms.saturating_add(lease_ms), limit as i64],
                            |r| {
                                let user: String = r.get(0)?;
                                let kind: String = r.get(2)?;
                                Ok(DuePush {
                                    user,
                                    alert: Alert {
                                        seq: r.get(1)?,
                                        kind: AlertKind::parse(&kind).unwrap_or(AlertKind::App),
                                        title: r.get(3)?,
                                        body: r.get(4)?,
                                        room: r.get(5)?,
                                        offset: r.get(6)?,
                                        url: r.get(7)?,
                                        ts: r.get(8)?,
                                        read: r.get::<_, Option<u64>>(9)?.is_some(),
                                    },
                                })
                            },
                        )?
                        .collect::<Result<Vec<_>, _>>()?;
                    rows
                };
                tx.commit()?;
                Ok(claimed)
            })
            .await
    }

    async fn finish_push(
        &self,
        user: &str,
        seq: u64,
        pushed: Option<u64>,
    ) -> Result<(), StoreError> {
        let user = user.to_owned();
        self.conn
            .run(move |c| {
                c.execute(
                    "UPDATE alerts SET push_due = NULL, pushed = COALESCE(?3, pushed)
                 WHERE user = ?1 AND seq = ?2",
                    params![user, seq, pushed],
                )?;
                Ok(())
            })
            .await
    }

    async fn defer_push(&self, user: &str, seq: u64, due: u64) -> Result<(), StoreError> {
        let user = user.to_owned();
        self.conn
            .run(move |c| {
                c.execute(
                    "UPDATE alerts SET push_due = ?3
                 WHERE user = ?1 AND seq = ?2 AND read IS NULL",
                    params![user, seq, due],
                )?;
                Ok(())
            })
            .await
    }

    async fn subscribe(
        &self,
        user: &str,
        sub: &Subscription,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let (user, sub) = (user.to_owned(), sub.clone());
        self.conn
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                // An endpoint is one browser: if another user subscribed it before (a
                // shared computer), the pushes are now this user's alone.
                tx.execute(
                    "DELETE FROM push_subs WHERE endpoint = ?1 AND user != ?2",
                    params![sub.endpoint, user],
                )?;
                tx.execute(
                    "INSERT INTO push_subs (user, endpoint, p256dh, auth, created)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (user, endpoint) DO UPDATE SET p256dh = excluded.p256dh,
                     auth = excluded.auth, created = excluded.created",
                    params![user, sub.endpoint, sub.p256dh, sub.auth, now_ms],
                )?;
                tx.execute(
                    "DELETE FROM push_subs WHERE user = ?1 AND endpoint NOT IN
                   (SELECT endpoint FROM push_subs WHERE user = ?1
                    ORDER BY created DESC LIMIT ?2)",
                    params![user, MAX_SUBSCRIPTIONS as i64],
                )?;
                tx.commit()
            })
            .await
    }

    async fn unsubscribe(&self, user: &str, endpoint: &str) -> Result<bool, StoreError> {
        let (user, endpoint) = (user.to_owned(), endpoint.to_owned());
        self.conn
            .run(move |c| {
                let n = c.execute(
                    "DELETE FROM push_subs WHERE user = ?1 AND endpoint = ?2",
                    params![user, endpoint],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn subscriptions(&self, user: &str) -> Result<Vec<Subscription>, StoreError> {
        let user = user.to_owned();
        self.conn
            .run(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT endpoint, p256dh, auth FROM push_subs WHERE user = ?1
                 ORDER BY created DESC",
                )?;
                let rows = stmt
                    .query_map([user], |r| {
                        Ok(Subscription {
                            endpoint: r.get(0)?,
                            p256dh: r.get(1)?,
                            auth: r.get(2)?,
                        })
                    })?
                    .collect();
                rows
            })
            .await
    }

    async fn vapid_key(&self, candidate: &str) -> Result<String, StoreError> {
        let candidate = candidate.to_owned();
        self.conn
            .run(move |c| {
                c.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('vapid', ?1)",
                    [candidate],
                )?;
                c.query_row("SELECT value FROM meta WHERE key = 'vapid'", [], |r| {
                    r.get(0)
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::conformance;
    use crate::store::SqliteStore;

    fn open() -> (tempfile::TempDir, SqliteInbox) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
        let inbox = store.inbox().unwrap();
        (dir, inbox)
    }

    #[tokio::test]
    async fn alerts_are_numbered_read_and_resumed() {
        let (_tmp, i) = open();
        conformance::alerts_numbered_read_and_resumed(&i).await;
    }

    #[tokio::test]
    async fn idempotency_keys_answer_the_first_alert() {
        let (_tmp, i) = open();
        conformance::idempotency(&i).await;
    }

    #[tokio::test]
    async fn pushes_are_claimed_once_per_lease() {
        let (_tmp, i) = open();
        conformance::push_schedule(&i).await;
    }

    #[tokio::test]
    async fn subscriptions_and_the_vapid_key() {
        let (_tmp, i) = open();
        conformance::subscriptions_and_vapid(&i).await;
    }

    #[tokio::test]
    async fn old_alerts_are_dropped_but_seq_is_never_reused() {
        let (_tmp, i) = open();
        conformance::old_alerts_dropped(&i).await;
    }
}
