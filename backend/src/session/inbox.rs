//! The handlers of a user's inbox and alert settings: `inbox`, `alert_read`,
//! `push_subscribe`, `push_unsubscribe`, `room_notify` and `quiet_hours`. Who gets an
//! alert is [`crate::alerts`]'; the store is [`crate::inbox`].

use std::sync::Arc;

use common::{ErrorCode, InboxState, NotifyLevel, PushKeys, Quiet, ServerMsg};

use super::{End, Session};
use crate::clock::now_ms;
use crate::identity::Identity;
use crate::inbox::Subscription;
use crate::logsafe::{Chain, Escaped};

/// Alerts in one `inbox` answer.
pub(super) const PAGE: usize = 50;

impl Session {
    /// What `welcome` says about the inbox and quiet hours; a store that fails here
    /// gives an empty inbox rather than a failed sign-in (the client asks `inbox`).
    pub(super) async fn inbox_welcome(&mut self, who: &Identity) -> (InboxState, Option<Quiet>) {
        let inbox = match self.state.alerts.inbox().state(&who.user).await {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "inbox state not read");
                InboxState::default()
            }
        };
        let quiet = match self.state.directory.quiet(&who.user).await {
            Ok(quiet) => quiet,
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "quiet hours not read");
                None
            }
        };
        (inbox, quiet)
    }

    /// `inbox {since?}`: the alerts after `since` (the newest [`PAGE`] when absent).
    /// Those it carries are delivered.
    pub(super) async fn inbox(&mut self, who: &Identity, since: Option<u64>) -> Result<(), End> {
        let inbox = Arc::clone(self.state.alerts.inbox());
        let (alerts, state) = match inbox.since(&who.user, since, PAGE).await {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %Chain(&e), "inbox not read");
                return self.internal_error("inbox").await;
            }
        };
        let newest = alerts.last().map(|a| a.seq);
        self.reply(&ServerMsg::Inbox {
            alerts,
            head: state.head,
            unread: state.unread,
        })
        .await?;
        if let Some(seq) = newest {
            self.alerts_delivered(who, seq).await;
        }
        Ok(())
    }

    /// Records that this connection received the user's alerts up to `seq`.
    pub(super) async fn alerts_delivered(&mut self, who: &Identity, seq: u64) {
        let inbox = self.state.alerts.inbox();
        if let Err(e) = inbox.delivered(&who.user, seq, now_ms()).await {
            tracing::warn!(error = %Chain(&e), "alert delivery not recorded");
        }
    }

    /// `alert_read {seq}`: marks the user's alerts up to `seq` read and tells their
    /// other connections; no answer to the sender, as for `read`.
    pub(super) async fn alert_read(&mut self, who: &Identity, seq: u64) -> Result<(), End> {
        let alerts = Arc::clone(&self.state.alerts);
        match alerts.inbox().read_upto(&who.user, seq, now_ms()).await {
            Ok(marked) if marked.upto > 0 => {
                let msg = ServerMsg::AlertRead { seq: marked.upto };
                self.state
                    .membership
                    .tell_user(&who.user, Some(self.conn), Some(&msg), None)
                    .await;
                alerts.were_read(&who.user, &marked);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(error = %Chain(&e), "alerts not marked read");
                self.internal_error("alert_read").await
            }
        }
    }

    /// After `read {room, offset}`: the room's alerts up to there are read too.
    pub(super) async fn room_alerts_read(&mut self, who: &Identity, room: &str, offset: u64) {
        let alerts = &self.state.alerts;
        match alerts
            .inbox()
            .read_room(&who.user, room, offset, now_ms())
            .await
        {
            Ok(marked) => alerts.were_read(&who.user, &marked),
            Err(e) => {
                tracing::warn!(room = %Escaped(room), error = %Chain(&e), "room's alerts not marked read");
            }
        }
    }

    /// `push_subscribe {endpoint, keys}`: stores this browser's subscription.
    pub(super) async fn push_subscribe(
        &mut self,
        who: &Identity,
        endpoint: String,
        keys: PushKeys,
    ) -> Result<(), End> {
        let reference = Some("push_subscribe".to_owned());
        if let Err(e) = crate::push::check_subscription(&endpoint, &keys.p256dh, &keys.auth) {
            return self
                .reply_error(ErrorCode::InvalidSubscription, e.to_string(), reference)
                .await;
        }
        if !crate::push::allowed_host(&endpoint, &self.state.config.push_hosts) {
            let message =
                "this server sends pushes only to the push services it lists (--push-hosts)";
            return self
                .reply_error(ErrorCode::InvalidSubscription, message, reference)
                .await;
        }
        let sub = Subscription {
            endpoint,
            p256dh: keys.p256dh,
            auth: keys.auth,
        };
        let inbox = Arc::clone(self.state.alerts.inbox());
        match inbox.subscribe(&who.user, &sub, now_ms()).await {
            Ok(()) => {
                self.reply(&ServerMsg::PushSubscribed {
                    endpoint: sub.endpoint,
                })
                .await
            }
            Err(e) => {
                tracing::error!(error = %Chain(&e), "push subscription not stored");
                self.internal_error("push_subscribe").await
            }
        }
    }

    /// `push_unsubscribe {endpoint}`: forgets one of the user's subscriptions.
    pub(super) async fn push_unsubscribe(
        &mut self,
        who: &Identity,
        endpoint: String,
    ) -> Result<(), End> {
        let inbox = Arc::clone(self.state.alerts.inbox());
        match inbox.unsubscribe(&who.user, &endpoint).await {
            Ok(_) => self.reply(&ServerMsg::PushUnsubscribed { endpoint }).await,
            Err(e) => {
                tracing::error!(error = %Chain(&e), "push subscription not removed");
                self.internal_error("push_unsubscribe").await
            }
        }
    }

    /// `room_notify {room, level}`: which of the room's messages alert the user.
    pub(super) async fn room_notify(
        &mut self,
        who: &Identity,
        room: Arc<str>,
        level: NotifyLevel,
    ) -> Result<(), End> {
        let directory = Arc::clone(&self.state.directory);
        match directory.set_notify(&who.user, &room, level).await {
            Ok(true) => {
                self.state.alerts.settings_changed(&room);
                let msg = ServerMsg::RoomNotify {
                    room: room.to_string(),
                    level,
                };
                self.state
                    .membership
                    .tell_user(&who.user, Some(self.conn), Some(&msg), None)
                    .await;
                self.reply(&msg).await
            }
            Ok(false) => {
                let reference = Some("room_notify".to_owned());
                self.not_joined_or_forbidden(who, &room, "room_notify", reference)
                    .await
            }
            Err(e) => {
                tracing::error!(room = %Escaped(&room), error = %Chain(&e), "alert level not stored");
                self.internal_error("room_notify").await
            }
        }
    }

    /// `quiet_hours {quiet?}`: when nothing is pushed to the user.
    pub(super) async fn quiet_hours(
        &mut self,
        who: &Identity,
        quiet: Option<Quiet>,
    ) -> Result<(), End> {
        if quiet.is_some_and(|q| !q.is_valid()) {
            let message = "quiet hours need from and to in 0-1439 (minutes after midnight) and tz within ±840 minutes";
            return self
                .reply_error(
                    ErrorCode::InvalidSetting,
                    message,
                    Some("quiet_hours".to_owned()),
                )
                .await;
        }
        let directory = Arc::clone(&self.state.directory);
        match directory.set_quiet(&who.user, quiet).await {
            Ok(()) => {
                let msg = ServerMsg::QuietHours { quiet };
                self.state
                    .membership
                    .tell_user(&who.user, Some(self.conn), Some(&msg), None)
                    .await;
                self.reply(&msg).await
            }
            Err(e) => {
                tracing::error!(error = %Chain(&e), "quiet hours not stored");
                self.internal_error("quiet_hours").await
            }
        }
    }
}
