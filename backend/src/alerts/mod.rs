//! Who gets an alert, for what, and how it reaches them: the rules of issue 13 written
//! once. A stored message alerts the members it names `@nick` (not its sender, not in a
//! room they muted), the author of the message it replies to (`reply`, unless named:
//! then `mention`), every member who chose `all` for its room, and in a DM room the
//! other user when none of their connections is in the room; an invitation alerts the
//! invitee; the notifications API alerts whom it names. [`Alerts::deliver`] stores an
//! alert in the user's inbox, sends it to every connection of theirs, and schedules
//! its push: at once for a user with no connection, after `--push-delay` otherwise
//! (a read in between cancels it). Sending the pushes is [`pusher`]'s.

pub(crate) mod pusher;
mod targets;

use std::sync::Arc;
use std::time::Duration;

use common::{AlertKind, ChatMessage, NotifyLevel, ServerMsg};
use tokio::sync::{mpsc, Notify};

use crate::broker::Directive;
use crate::clock::now_ms;
use crate::directory::Directory;
use crate::inbox::{Appended, Inbox, MarkedRead, NewAlert};
use crate::logsafe::{Chain, Escaped};
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::nicks::NickRegistry;
use crate::store::{HistoryStore, StoreError};

pub(crate) use targets::Targets;

/// Committed messages waiting for their alerts: a burst larger than this makes the
/// writer wait, so alerts fall behind by a bounded amount, never without bound.
pub(crate) const QUEUE: usize = 4096;

/// Longest alert body, in characters: a preview, not the message.
const BODY_CHARS: usize = 200;

/// Makes and delivers alerts; see the module docs. Shared (`Arc`).
pub(crate) struct Alerts {
    inbox: Arc<dyn Inbox>,
    membership: Arc<Membership>,
    nicks: Arc<dyn NickRegistry>,
    targets: Targets,
    /// Where a reply's original is looked up, for its author.
    store: Arc<dyn HistoryStore>,
    push_delay: Duration,
    /// Wakes the pusher when an alert is due at once.
    due_now: Arc<Notify>,
    /// Tells the pusher to close pushed alerts on the user's devices.
    reads: mpsc::Sender<(String, u64)>,
    metrics: Metrics,
}

/// The stores alerts read and write: the inbox they are kept in, the directory (who is
/// in a room, at what level), and the history (who wrote the message a reply answers).
pub(crate) struct Stores {
    pub(crate) inbox: Arc<dyn Inbox>,
    pub(crate) directory: Arc<dyn Directory>,
    pub(crate) history: Arc<dyn HistoryStore>,
}

impl Alerts {
    pub(crate) fn new(
        stores: Stores,
        membership: Arc<Membership>,
        nicks: Arc<dyn NickRegistry>,
        push_delay: Duration,
        pusher: &pusher::Handle,
        metrics: Metrics,
    ) -> Self {
        let Stores {
            inbox,
            directory,
            history,
        } = stores;
        Alerts {
            targets: Targets::new(directory),
            store: history,
            inbox,
            membership,
            nicks,
            push_delay,
            due_now: pusher.due_now(),
            reads: pusher.reads(),
            metrics,
        }
    }

    pub(crate) fn inbox(&self) -> &Arc<dyn Inbox> {
        &self.inbox
    }

    /// Stores `alert` in `user`'s inbox, tells every connection of theirs, and
    /// schedules its push. With `idempotency`, a key used within a day answers the
    /// first alert and does nothing else.
    pub(crate) async fn deliver(
        &self,
        user: &str,
        alert: &NewAlert,
        idempotency: Option<&str>,
    ) -> Result<Appended, StoreError> {
        let now = now_ms();
        let due = self.push_due(user, now).await;
        let appended = self
            .inbox
            .append(user, alert, now, Some(due), idempotency)
            .await?;
        if let Some(stored) = &appended.alert {
            self.tell(user, stored).await;
            if due <= now {
                self.due_now.notify_one();
            }
        }
        Ok(appended)
    }

    /// Delivers several alerts made at once (one message's) with one append.
    async fn deliver_all(&self, made: Vec<(String, NewAlert)>) -> Result<(), StoreError> {
        if made.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut batch = Vec::with_capacity(made.len());
        let mut due_now = false;
        for (user, alert) in made {
            let due = self.push_due(&user, now).await;
            due_now |= due <= now;
            batch.push((user, alert, Some(due)));
        }
        let stored = self.inbox.append_many(&batch, now).await?;
        for ((user, _, _), alert) in batch.iter().zip(&stored) {
            self.tell(user, alert).await;
        }
        if due_now {
            self.due_now.notify_one();
        }
        Ok(())
    }

    /// When an alert for `user` made at `now` is due to be pushed: at once with no
    /// connection open, otherwise after the push delay (a read first cancels it).
    async fn push_due(&self, user: &str, now: u64) -> u64 {
        if self.nicks.online(user).await {
            now.saturating_add(self.push_delay.as_millis() as u64)
        } else {
            now
        }
    }

    /// Sends a stored alert to every connection of `user`; each records it delivered
    /// once it is written.
    async fn tell(&self, user: &str, alert: &common::Alert) {
        self.metrics.alert(alert.kind);
        let seq = alert.seq;
        let frame = ServerMsg::Alert(alert.clone());
        self.membership
            .tell_user(user, None, Some(&frame), Some(Directive::Alerted { seq }))
            .await;
    }

    /// The alerts a stored message makes (see the module docs). Failures are logged:
    /// the message itself is stored and delivered whatever happens here.
    pub(crate) async fn message(&self, msg: &ChatMessage) {
        let Some(sender) = msg.user.as_deref().filter(|_| !msg.is_notice()) else {
            return;
        };
        let made = match self.recipients(msg, sender).await {
            Ok(made) => made,
            Err(e) => {
                tracing::warn!(error = %Chain(&e), room = %Escaped(&msg.room), offset = msg.offset, "alerts for a message not made");
                return;
            }
        };
        if let Err(e) = self.deliver_all(made).await {
            tracing::warn!(error = %Chain(&e), room = %Escaped(&msg.room), offset = msg.offset, "alerts for a message not stored");
        }
    }

    /// Who a message alerts, and with what.
    async fn recipients(
        &self,
        msg: &ChatMessage,
        sender: &str,
    ) -> Result<Vec<(String, NewAlert)>, StoreError> {
        let room = &msg.room;
        // One look at the cache per message: settings and members from the same entry.
        let targets = self.targets.of(room).await?;
        if let Some(peer) = targets.settings.as_ref().and_then(|s| s.dm_peer(sender)) {
            let level = targets.level(peer);
            if level == NotifyLevel::Nothing || self.membership.user_in(room, peer).await {
                return Ok(Vec::new());
            }
            let alert = NewAlert {
                kind: AlertKind::Dm,
                title: msg.nick.clone(),
                body: preview(&msg.text),
                room: Some(room.clone()),
                offset: Some(msg.offset),
                url: None,
            };
            return Ok(vec![(peer.to_owned(), alert)]);
        }
        let members = &targets.members;
        let answered = match msg.reply_to {
            Some(original) => self.author_of(room, original).await?,
            None => None,
        };
        let mut made = Vec::new();
        for target in members.iter().filter(|t| t.user != sender) {
            let kind = match target.level {
                NotifyLevel::Nothing => continue,
                _ if common::text::names(&msg.text, &target.nick) => AlertKind::Mention,
                _ if answered.as_deref() == Some(&*target.user) => AlertKind::Reply,
                NotifyLevel::All => AlertKind::Message,
                NotifyLevel::Mentions => continue,
            };
            made.push((
                target.user.clone(),
                NewAlert {
                    kind,
                    title: format!("{} in #{room}", msg.nick),
                    body: preview(&msg.text),
                    room: Some(room.clone()),
                    offset: Some(msg.offset),
                    url: None,
                },
            ));
        }
        Ok(made)
    }

    /// Who wrote the message at `offset` of `room`, if it is still stored (a deleted
    /// one's author is not told of replies to it).
    async fn author_of(&self, room: &str, offset: u64) -> Result<Option<String>, StoreError> {
        let found = self.store.after(room, offset.saturating_sub(1), 1).await?;
        Ok(found.into_iter().find_map(|e| match e {
            common::Entry::Message(m) if m.offset == offset && !m.is_notice() => m.user,
            _ => None,
        }))
    }

    /// The alert an invitation makes.
    pub(crate) async fn invited(&self, user: &str, room: &str, by_nick: &str) {
        let alert = NewAlert {
            kind: AlertKind::Invite,
            title: format!("{by_nick} invited you to #{room}"),
            body: String::new(),
            room: Some(room.to_owned()),
            offset: None,
            url: None,
        };
        if let Err(e) = self.deliver(user, &alert, None).await {
            tracing::warn!(error = %Chain(&e), "invitation alert not stored");
        }
    }

    /// After alerts became read: their pushes are cancelled by the inbox; pushed ones
    /// are closed on the user's devices.
    pub(crate) fn were_read(&self, user: &str, marked: &MarkedRead) {
        if marked.pushed_upto > 0 {
            // Best effort: a full queue means the pusher is far behind, and a shown
            // notification of a read alert is only a nuisance.
            let _ = self.reads.try_send((user.to_owned(), marked.pushed_upto));
        }
    }

    /// A member's level for a room changed here: forget what the targets cache holds.
    pub(crate) fn settings_changed(&self, room: &str) {
        self.targets.forget(room);
    }
}

/// A message's text as an alert body: the first [`BODY_CHARS`] characters.
fn preview(text: &str) -> String {
    match text.char_indices().nth(BODY_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Makes the alerts of committed messages, in commit order, until the writer stops.
pub(crate) async fn run(alerts: Arc<Alerts>, mut committed: mpsc::Receiver<ChatMessage>) {
    let mut batch = Vec::with_capacity(64);
    while committed.recv_many(&mut batch, 64).await > 0 {
        for msg in batch.drain(..) {
            alerts.message(&msg).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::preview;

    #[test]
    fn a_preview_is_cut_on_a_character() {
        assert_eq!(preview("hi"), "hi");
        let long = "é".repeat(300);
        let p = preview(&long);
        assert_eq!(p.chars().count(), 201);
        assert!(p.ends_with('…'));
    }
}
