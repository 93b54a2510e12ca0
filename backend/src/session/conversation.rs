//! The frames that write to a room's log: `send` (with its `reply_to`), `edit`,
//! `delete` and `react`. Each is checked here for what the frame alone shows (joined,
//! text, id, emoji, who may delete any message), then queued to the writer like a
//! message; what depends on the log itself (the target, its author, its age) is the
//! store's to check inside the append. The ack or refusal comes back through
//! [`Session::on_appended`](super::Session).

use std::sync::Arc;

use common::{validate, ErrorCode};
use futures_util::FutureExt;

use super::{End, PendingSend, Session};
use crate::clock::now_ms;
use crate::identity::Identity;
use crate::logsafe::{Chain, Escaped};
use crate::rooms;
use crate::store::{Change, NewEntry};
use crate::writer::WriteError;

impl Session {
    pub(super) async fn send(
        &mut self,
        who: &Identity,
        room: Arc<str>,
        raw_text: String,
        id: String,
        reply_to: Option<u64>,
    ) -> Result<(), End> {
        if !self.writable(who, &room, "send", &id).await? {
            return Ok(());
        }
        let Some(text) = self.checked_text(raw_text, &id).await? else {
            return Ok(());
        };
        self.append(who, room, id, Change::Message { text, reply_to })
            .await
    }

    pub(super) async fn edit(
        &mut self,
        who: &Identity,
        room: Arc<str>,
        target: u64,
        raw_text: String,
        id: String,
    ) -> Result<(), End> {
        if !self.writable(who, &room, "edit", &id).await? {
            return Ok(());
        }
        let Some(text) = self.checked_text(raw_text, &id).await? else {
            return Ok(());
        };
        let not_before = self
            .state
            .config
            .edit_window
            .map(|w| now_ms().saturating_sub(w.as_millis() as u64));
        let change = Change::Edit {
            target,
            text,
            not_before,
        };
        self.append(who, room, id, change).await
    }

    pub(super) async fn delete(
        &mut self,
        who: &Identity,
        room: Arc<str>,
        target: u64,
        id: String,
    ) -> Result<(), End> {
        if !self.writable(who, &room, "delete", &id).await? {
            return Ok(());
        }
        let settings = match self.state.directory.settings(&room).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(room = %Escaped(&room), error = %Chain(&e), "room settings not read");
                return self.internal_error(&id).await;
            }
        };
        let any = rooms::may_delete_any(settings.as_ref(), &who.user);
        self.append(who, room, id, Change::Delete { target, any })
            .await
    }

    pub(super) async fn react(
        &mut self,
        who: &Identity,
        room: Arc<str>,
        target: u64,
        raw_emoji: &str,
        on: bool,
        id: String,
    ) -> Result<(), End> {
        if !self.writable(who, &room, "react", &id).await? {
            return Ok(());
        }
        let emoji = match validate::emoji(raw_emoji) {
            Ok(e) => e.to_owned(),
            Err(e) => return self.reply_error(e.code(), e.to_string(), Some(id)).await,
        };
        self.append(who, room, id, Change::React { target, emoji, on })
            .await
    }

    /// Whether this connection may write to `room`'s log: it joined the room (which a
    /// private room's outsider cannot have done: they get `forbidden`), and `id` is a
    /// valid id. Answers the peer when not.
    async fn writable(
        &mut self,
        who: &Identity,
        room: &str,
        kind: &str,
        id: &str,
    ) -> Result<bool, End> {
        // The reference is copied only for an answer, never for a valid send.
        if !self.rooms.contains_key(room) {
            self.not_joined_or_forbidden(who, room, kind, Some(id.to_owned()))
                .await?;
            return Ok(false);
        }
        if let Err(e) = validate::id(id, &self.state.limits) {
            self.reply_error(e.code(), e.to_string(), Some(id.to_owned()))
                .await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// The text trimmed as it will be stored, or `None` once the peer was told why not.
    /// Text with nothing to trim is stored as it came, not copied.
    async fn checked_text(&mut self, raw: String, id: &str) -> Result<Option<String>, End> {
        let checked = validate::text(&raw, &self.state.limits)
            .map(|t| (t.len() < raw.len()).then(|| t.to_owned()));
        match checked {
            Ok(trimmed) => Ok(Some(trimmed.unwrap_or(raw))),
            Err(e) => {
                self.reply_error(e.code(), e.to_string(), Some(id.to_owned()))
                    .await?;
                Ok(None)
            }
        }
    }

    /// Queues the entry to the writer; its outcome arrives as an ack or an error.
    async fn append(
        &mut self,
        who: &Identity,
        room: Arc<str>,
        id: String,
        change: Change,
    ) -> Result<(), End> {
        let is_message = matches!(change, Change::Message { .. });
        let entry = NewEntry {
            room: room.to_string(),
            nick: who.nick.to_string(),
            user: who.user.to_string(),
            id: id.clone(),
            change,
        };
        let ctx = PendingSend {
            id,
            room: room.to_string(),
        };
        // Awaiting the queue here (not inside the pending future) keeps one connection's
        // entries in the order it sent them.
        let answer = self.state.writer.append(entry).await;
        if is_message {
            self.state.metrics.messages_in.inc();
        }
        self.pending.push(
            answer
                .map(|r| (ctx, r.unwrap_or(Err(WriteError::Stopped))))
                .boxed(),
        );
        Ok(())
    }
}

/// The error a refusal of the log earns, and what it tells the person.
pub(super) fn refusal_error(why: crate::store::Refusal) -> (ErrorCode, &'static str) {
    use crate::store::Refusal;
    match why {
        Refusal::UnknownMessage => (
            ErrorCode::UnknownMessage,
            "no message at that offset in this room (it may have been deleted or removed by retention); nothing was stored",
        ),
        Refusal::NotAuthor => (
            ErrorCode::Forbidden,
            "only its author may edit a message, and only its author or the room's owner delete it",
        ),
        Refusal::EditExpired => (
            ErrorCode::EditExpired,
            "this message is too old to edit on this server (--edit-window); delete it or post a new one",
        ),
    }
}
