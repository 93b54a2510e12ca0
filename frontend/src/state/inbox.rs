//! The inbox (issue 13) in the reducer: the user's alerts (mentions, DMs, invites, the
//! host application's notices), which of them are read, and the notification settings
//! (each room's level, quiet hours, this browser's Web Push subscription).
//!
//! More methods of [`ChatState`], kept apart like `people`: one concept, synced by the
//! server across the user's tabs and devices. An alert is read when the server says so
//! (`read` in the alert, `alert_read {seq}`) or, here, as soon as its room was read up
//! to its message: the server marks those read when it gets our `read`, but says
//! nothing back, and the bell must not wait for a reload to agree with the room.

use std::collections::BTreeMap;

use common::{Alert, ClientMsg, InboxState, NotifyLevel, Quiet};

use super::ChatState;

/// Alerts kept in memory; older ones drop out (they are still on the server).
pub(crate) const MAX_ALERTS: usize = 200;

/// What the page knows of the user's inbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Inbox {
    /// The alerts held, by `seq` (newest last). `read` is the server's word as last
    /// heard; [`ChatState::alert_is_read`] adds what we know locally.
    pub(crate) alerts: BTreeMap<u64, Alert>,
    /// The newest `seq` the server has told us of (0: none).
    pub(crate) head: u64,
    /// Every alert up to this `seq` is read (from `alert_read`, ours or another tab's).
    read_upto: u64,
    /// Unread alerts older than every alert held (the server's count covers the whole
    /// inbox; an answer without `since` holds only the newest 50).
    unread_older: u64,
    /// Whether an `inbox` answer has arrived since the page loaded: the first welcome
    /// asks for the newest alerts, later ones only for what came after `head`.
    fetched: bool,
}

/// The person's notification settings as the server holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NotifySettings {
    /// When nothing is pushed.
    pub(crate) quiet: Option<Quiet>,
    /// The endpoint of this browser's Web Push subscription, once the server confirmed
    /// it (`push_subscribed`).
    pub(crate) push_endpoint: Option<String>,
}

impl ChatState {
    /// `welcome.inbox`/`welcome.quiet`: where the inbox stands; returns the `inbox`
    /// request that brings the alerts we lack.
    pub(super) fn on_welcome_inbox(
        &mut self,
        state: InboxState,
        quiet: Option<Quiet>,
    ) -> ClientMsg {
        self.settings.quiet = quiet;
        let inbox = &mut self.inbox;
        if !inbox.fetched {
            // Until the alerts arrive, the bell shows the server's count.
            inbox.unread_older = state.unread;
            inbox.head = inbox.head.max(state.head);
            return ClientMsg::Inbox { since: None };
        }
        ClientMsg::Inbox {
            since: Some(inbox.head),
        }
    }

    /// `alert`: a new alert for the user. Returns it when it should also become a
    /// desktop notification: new here, unread, and the tab hidden (a visible tab shows
    /// the bell; the service worker covers closed tabs).
    pub(super) fn on_alert(&mut self, alert: Alert) -> Option<Alert> {
        let seq = alert.seq;
        let fresh = !self.inbox.alerts.contains_key(&seq);
        self.inbox.head = self.inbox.head.max(seq);
        self.inbox.alerts.insert(seq, alert);
        self.trim_alerts();
        let alert = self.inbox.alerts.get(&seq)?;
        (fresh && self.hidden && !self.alert_is_read(alert)).then(|| alert.clone())
    }

    /// `inbox`: the answer to our `inbox` request, merged into what we hold.
    pub(super) fn on_inbox(&mut self, alerts: Vec<Alert>, head: u64, unread: u64) {
        let inbox = &mut self.inbox;
        inbox.fetched = true;
        inbox.head = inbox.head.max(head);
        for alert in alerts {
            inbox.alerts.insert(alert.seq, alert);
        }
        for alert in inbox.alerts.values_mut() {
            if alert.seq <= inbox.read_upto {
                alert.read = true;
            }
        }
        // Alerts held but marked unread that the server no longer counts were read
        // elsewhere while we were away. Reads go oldest first (`alert_read` marks
        // everything up to a seq), so those are the oldest ones.
        let held_unread = inbox.alerts.values().filter(|a| !a.read).count() as u64;
        let mut excess = held_unread.saturating_sub(unread);
        for alert in inbox.alerts.values_mut() {
            if excess == 0 {
                break;
            }
            if !alert.read {
                alert.read = true;
                excess -= 1;
            }
        }
        let held_unread = inbox.alerts.values().filter(|a| !a.read).count() as u64;
        inbox.unread_older = unread.saturating_sub(held_unread);
        self.trim_alerts();
    }

    /// `alert_read {seq}`: everything up to `seq` is read (by us, or in another tab).
    pub(super) fn on_alert_read(&mut self, seq: u64) {
        let inbox = &mut self.inbox;
        inbox.read_upto = inbox.read_upto.max(seq);
        for alert in inbox.alerts.range_mut(..=seq) {
            alert.1.read = true;
        }
        let oldest_held = inbox.alerts.keys().next().copied().unwrap_or(u64::MAX);
        if seq.saturating_add(1) >= oldest_held || inbox.alerts.is_empty() {
            inbox.unread_older = 0;
        }
    }

    /// Marks the alerts up to `seq` read, here at once and on the server.
    pub(crate) fn read_alerts_upto(&mut self, seq: u64) -> Vec<ClientMsg> {
        if seq == 0 {
            return Vec::new();
        }
        self.on_alert_read(seq);
        vec![ClientMsg::AlertRead { seq }]
    }

    /// "Mark all read".
    pub(crate) fn read_all_alerts(&mut self) -> Vec<ClientMsg> {
        self.read_alerts_upto(self.inbox.head)
    }

    /// Whether an alert counts as read: the server said so, or its room has been read
    /// up to its message.
    pub(crate) fn alert_is_read(&self, alert: &Alert) -> bool {
        if alert.read || alert.seq <= self.inbox.read_upto {
            return true;
        }
        match (&alert.room, alert.offset) {
            (Some(room), Some(offset)) => self.rooms.get(room).is_some_and(|r| r.read >= offset),
            _ => false,
        }
    }

    /// Unread alerts: the bell's number.
    pub(crate) fn unread_alerts(&self) -> u64 {
        let held = self
            .inbox
            .alerts
            .values()
            .filter(|a| !self.alert_is_read(a))
            .count() as u64;
        held + self.inbox.unread_older
    }

    /// `room_notify`: a room's level, the answer to ours or set in another tab.
    pub(super) fn on_room_notify(&mut self, room: &str, level: NotifyLevel) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.notify = level;
        }
    }

    /// Chooses which messages of `room` alert the person; shown at once.
    pub(crate) fn set_room_notify(&mut self, room: &str, level: NotifyLevel) -> Vec<ClientMsg> {
        let Some(r) = self.rooms.get_mut(room) else {
            return Vec::new();
        };
        r.notify = level;
        vec![ClientMsg::RoomNotify {
            room: room.to_owned(),
            level,
        }]
    }

    /// Sets (or with `None` clears) the quiet hours; shown at once.
    pub(crate) fn set_quiet(&mut self, quiet: Option<Quiet>) -> Vec<ClientMsg> {
        self.settings.quiet = quiet;
        vec![ClientMsg::QuietHours { quiet }]
    }

    /// Drops the oldest alerts past [`MAX_ALERTS`], counting the unread among them.
    fn trim_alerts(&mut self) {
        while self.inbox.alerts.len() > MAX_ALERTS {
            let dropped = self.inbox.alerts.pop_first().map(|(_, a)| a);
            if let Some(a) = dropped {
                if !self.alert_is_read(&a) {
                    self.inbox.unread_older += 1;
                }
            }
        }
    }
}

/// Minutes after midnight from an `<input type="time">` value (`HH:MM`, maybe with
/// seconds).
pub(crate) fn parse_time(value: &str) -> Option<u16> {
    let mut parts = value.split(':');
    let hours: u16 = parts.next()?.parse().ok()?;
    let minutes: u16 = parts.next()?.parse().ok()?;
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

/// `HH:MM` for minutes after midnight, as `<input type="time">` takes it.
pub(crate) fn format_time(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60 % 24, minutes % 60)
}
