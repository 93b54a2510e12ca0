//! The directory in the history's SQLite file (tables from the store's migrations):
//! one connection of its own, used on the blocking pool. Directory calls are few and
//! short (a sign-in, a join, a read offset), so one connection is plenty, and the WAL
//! lets them run beside the history writer. Transactions that read before they write
//! start immediate, as the writer's do: several connections write to this file.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use common::{NotifyLevel, Quiet};

use super::{
    quiet_from_str, quiet_to_string, AlertTarget, Directory, RoomSettings, UserKind, UserRecord,
};
use crate::store::SideConn;
use crate::store::StoreError;

/// How stale `users.seen` may be before a sign-in updates it.
const SEEN_RESOLUTION_MS: u64 = 3_600_000;

/// SQLite-backed [`Directory`]. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SqliteDirectory {
    conn: SideConn,
}

impl SqliteDirectory {
    /// Uses `conn`, opened on a database whose schema is current
    /// ([`crate::store::SqliteStore::directory`]).
    pub(crate) fn new(conn: SideConn) -> Self {
        SqliteDirectory { conn }
    }
}

fn dm_key(settings: &RoomSettings) -> Option<String> {
    settings.dm.as_ref().map(|(a, b)| format!("{a}\n{b}"))
}

#[async_trait]
impl Directory for SqliteDirectory {
    async fn create_account(
        &self,
        user: &str,
        key: &str,
        password_hash: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let (user, key, hash) = (user.to_owned(), key.to_owned(), password_hash.to_owned());
        self.conn
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let taken: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE user = ?1)
                     OR EXISTS (SELECT 1 FROM users WHERE key = ?2 AND kind = 'account')",
                    params![user, key],
                    |r| r.get(0),
                )?;
                if taken {
                    return Ok(false);
                }
                tx.execute(
                    "INSERT INTO users (user, nick, key, kind, password, seen)
                 VALUES (?1, ?1, ?2, 'account', ?3, ?4)",
                    params![user, key, hash, now_ms],
                )?;
                tx.commit()?;
                Ok(true)
            })
            .await
    }

    async fn password_hash(&self, user: &str) -> Result<Option<String>, StoreError> {
        let user = user.to_owned();
        self.conn
            .run(move |c| {
                c.query_row(
                    "SELECT password FROM users WHERE user = ?1 AND kind = 'account'",
                    [user],
                    |r| r.get(0),
                )
                .optional()
            })
            .await
    }

    async fn account_with_key(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.conn
            .run(move |c| {
                c.query_row(
                    "SELECT user FROM users WHERE key = ?1 AND kind = 'account' LIMIT 1",
                    [key],
                    |r| r.get(0),
                )
                .optional()
            })
            .await
    }

    async fn seen(&self, record: &UserRecord, key: &str, now_ms: u64) -> Result<(), StoreError> {
        let (user, nick, key) = (record.user.clone(), record.nick.clone(), key.to_owned());
        let kind = record.kind.as_str();
        self.conn
            .run(move |c| {
                // An account's name and kind never change here; its nick is its name. A
                // user seen within the hour with the same nick is left as it is: then
                // nothing is written, so a sign-in costs no commit (and no fsync), and
                // `seen` is only needed to the day (guests are forgotten after 30).
                c.execute(
                    "INSERT INTO users (user, nick, key, kind, seen) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (user) DO UPDATE SET
                   seen = excluded.seen,
                   nick = CASE WHEN users.kind = 'account' THEN users.nick ELSE excluded.nick END,
                   key = CASE WHEN users.kind = 'account' THEN users.key ELSE excluded.key END
                 WHERE users.seen < excluded.seen - ?6
                    OR (users.kind != 'account' AND users.nick != excluded.nick)",
                    params![user, nick, key, kind, now_ms, SEEN_RESOLUTION_MS],
                )?;
                Ok(())
            })
            .await
    }

    async fn user(&self, user: &str) -> Result<Option<UserRecord>, StoreError> {
        let user = user.to_owned();
        self.conn
            .run(move |c| {
                c.query_row(
                    "SELECT user, nick, kind FROM users WHERE user = ?1",
                    [user],
                    |r| {
                        let kind: String = r.get(2)?;
                        Ok(UserRecord {
                            user: r.get(0)?,
                            nick: r.get(1)?,
                            kind: UserKind::parse(&kind).unwrap_or(UserKind::Guest),
                        })
                    },
                )
                .optional()
            })
            .await
    }

    async fn add_token(&self, hash: &str, user: &str, now_ms: u64) -> Result<(), StoreError> {
        let (hash, user) = (hash.to_owned(), user.to_owned());
        self.conn
            .run(move |c| {
                c.execute(
                    "INSERT INTO tokens (hash, user, created) VALUES (?1, ?2, ?3)",
                    params![hash, user, now_ms],
                )?;
                Ok(())
            })
            .await
    }

    async fn token_user(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let hash = hash.to_owned();
        self.conn
            .run(move |c| {
                c.query_row("SELECT user FROM tokens WHERE hash = ?1", [hash], |r| {
                    r.get(0)
                })
                .optional()
            })
            .await
    }

    async fn revoke_token(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let hash = hash.to_owned();
        self.conn
            .run(move |c| {
                c.query_row(
                    "DELETE FROM tokens WHERE hash = ?1 RETURNING user",
                    [hash],
                    |r| r.get(0),
                )
                .optional()
            })
            .await
    }

    async fn settings(&self, room: &str) -> Result<Option<RoomSettings>, StoreError> {
        let room = room.to_owned();
        self.conn
            .run(move |c| {
                c.query_row(
                    "SELECT private, owner, dm FROM room_settings WHERE room = ?1",
                    [room],
                    |r| {
                        let dm: Option<String> = r.get(2)?;
                        Ok(RoomSettings {
                            private: r.get(0)?,
                            owner: r.get(1)?,
                            dm: dm.and_then(|d| {
                                d.split_once('\n')
                                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                            }),
                        })
                    },
                )
                .optional()
            })
            .await
    }

    async fn create_room(&self, room: &str, settings: &RoomSettings) -> Result<bool, StoreError> {
        let room = room.to_owned();
        let (private, owner, dm) = (settings.private, settings.owner.clone(), dm_key(settings));
        self.conn
            .run(move |c| {
                let n = c.execute(
                    "INSERT OR IGNORE INTO room_settings (room, private, owner, dm)
                 VALUES (?1, ?2, ?3, ?4)",
                    params![room, private, owner, dm],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn is_member(&self, room: &str, user: &str) -> Result<bool, StoreError> {
        let (room, user) = (room.to_owned(), user.to_owned());
        self.conn
            .run(move |c| {
                c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM members WHERE user = ?1 AND room = ?2)",
                    params![user, room],
                    |r| r.get(0),
                )
            })
            .await
    }

    async fn add_member(&self, room: &str, user: &str, read: u64) -> Result<bool, StoreError> {
        let (room, user) = (room.to_owned(), user.to_owned());
        self.conn
            .run(move |c| {
                let n = c.execute(
                    "INSERT OR IGNORE INTO members (user, room, read) VALUES (?1, ?2, ?3)",
                    params![user, room, read],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn remove_member(&self, room: &str, user: &str) -> Result<bool, StoreError> {
        let (room, user) = (room.to_owned(), user.to_owned());
        self.conn
            .run(move |c| {
                let n = c.execute(
                    "DELETE FROM members WHERE user = ?1 AND room = ?2",
                    params![user, room],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn memberships(
        &self,
        user: &str,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let user = user.to_owned();
        self.conn
            .run(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT room, read FROM members WHERE user = ?1 ORDER BY room LIMIT ?2",
                )?;
                let rows = stmt
                    .query_map(params![user, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect();
                rows
            })
            .await
    }

    async fn set_read(
        &self,
        user: &str,
        room: &str,
        offset: u64,
    ) -> Result<Option<u64>, StoreError> {
        let (room, user) = (room.to_owned(), user.to_owned());
        self.conn
            .run(move |c| {
                let n = c.execute(
                    "UPDATE members SET read = ?3 WHERE user = ?1 AND room = ?2 AND read < ?3",
                    params![user, room, offset],
                )?;
                Ok((n == 1).then_some(offset))
            })
            .await
    }

    async fn forget_guests(&self, before_ms: u64) -> Result<u64, StoreError> {
        self.conn
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                // With their memberships go their inboxes and push subscriptions (the
                // inbox's tables, in the same file): nobody can sign in as them again.
                for table in [
                    "members",
                    "alerts",
                    "inbox_heads",
                    "alert_keys",
                    "push_subs",
                ] {
                    tx.execute(
                        &format!(
                            "DELETE FROM {table} WHERE user IN
                           (SELECT user FROM users WHERE kind = 'guest' AND seen < ?1)"
                        ),
                        [before_ms],
                    )?;
                }
                let n = tx.execute(
                    "DELETE FROM users WHERE kind = 'guest' AND seen < ?1",
                    [before_ms],
                )?;
                tx.commit()?;
                Ok(n as u64)
            })
            .await
    }

    async fn set_notify(
        &self,
        user: &str,
        room: &str,
        level: NotifyLevel,
    ) -> Result<bool, StoreError> {
        let (user, room) = (user.to_owned(), room.to_owned());
        self.conn
            .run(move |c| {
                let n = c.execute(
                    "UPDATE members SET notify = ?3 WHERE user = ?1 AND room = ?2",
                    params![user, room, level.as_str()],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn notify_levels(&self, user: &str) -> Result<Vec<(String, NotifyLevel)>, StoreError> {
        let user = user.to_owned();
        self.conn
            .run(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT room, notify FROM members WHERE user = ?1 AND notify != 'mentions'",
                )?;
                let rows = stmt
                    .query_map([user], |r| {
                        let level: String = r.get(1)?;
                        Ok((r.get(0)?, NotifyLevel::parse(&level).unwrap_or_default()))
                    })?
                    .collect();
                rows
            })
            .await
    }

    async fn alert_targets(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Vec<AlertTarget>, StoreError> {
        let room = room.to_owned();
        self.conn
            .run(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT m.user, u.nick, m.notify FROM members m JOIN users u ON u.user = m.user
                 WHERE m.room = ?1 LIMIT ?2",
                )?;
                let rows = stmt
                    .query_map(params![room, limit as i64], |r| {
                        let level: String = r.get(2)?;
                        Ok(AlertTarget {
                            user: r.get(0)?,
                            nick: r.get(1)?,
                            level: NotifyLevel::parse(&level).unwrap_or_default(),
                        })
                    })?
                    .collect();
                rows
            })
            .await
    }

    async fn set_quiet(&self, user: &str, quiet: Option<Quiet>) -> Result<(), StoreError> {
        let (user, quiet) = (user.to_owned(), quiet.as_ref().map(quiet_to_string));
        self.conn
            .run(move |c| {
                c.execute(
                    "UPDATE users SET quiet = ?2 WHERE user = ?1",
                    params![user, quiet],
                )?;
                Ok(())
            })
            .await
    }

    async fn quiet(&self, user: &str) -> Result<Option<Quiet>, StoreError> {
        let user = user.to_owned();
        self.conn
            .run(move |c| {
                let q: Option<Option<String>> = c
                    .query_row("SELECT quiet FROM users WHERE user = ?1", [user], |r| {
                        r.get(0)
                    })
                    .optional()?;
                Ok(q.flatten().as_deref().and_then(quiet_from_str))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::conformance;
    use crate::store::SqliteStore;

    fn open() -> (tempfile::TempDir, SqliteDirectory) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
        let directory = store.directory().unwrap();
        (dir, directory)
    }

    #[tokio::test]
    async fn accounts_and_tokens() {
        let (_tmp, d) = open();
        conformance::accounts_and_tokens(&d).await;
    }

    #[tokio::test]
    async fn memberships_and_read_offsets_only_move_forward() {
        let (_tmp, d) = open();
        conformance::memberships_and_read_offsets(&d).await;
    }

    #[tokio::test]
    async fn rooms_get_settings_once() {
        let (_tmp, d) = open();
        conformance::room_settings(&d).await;
    }

    #[tokio::test]
    async fn idle_guests_are_forgotten() {
        let (_tmp, d) = open();
        conformance::idle_guests_are_forgotten(&d).await;
    }

    #[tokio::test]
    async fn a_forgotten_guest_takes_their_inbox_along() {
        use crate::inbox::{Inbox as _, NewAlert};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
        let (d, inbox) = (store.directory().unwrap(), store.inbox().unwrap());
        d.seen(
            &UserRecord {
                user: "guest:old".into(),
                nick: "old".into(),
                kind: UserKind::Guest,
            },
            "old",
            10,
        )
        .await
        .unwrap();
        let alert = NewAlert {
            kind: common::AlertKind::App,
            title: "t".into(),
            body: String::new(),
            room: None,
            offset: None,
            url: None,
        };
        inbox
            .append("guest:old", &alert, 10, Some(20), Some("k"))
            .await
            .unwrap();
        assert_eq!(d.forget_guests(500).await.unwrap(), 1);
        assert_eq!(inbox.state("guest:old").await.unwrap().head, 0);
        assert!(inbox.claim_due(1000, 10, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn alert_levels_and_quiet_hours() {
        let (_tmp, d) = open();
        conformance::alert_levels_and_quiet_hours(&d).await;
    }

    #[tokio::test]
    async fn races_leave_one_winner() {
        let (_tmp, d) = open();
        conformance::races_leave_one_winner(&d).await;
    }
}
