//! Sends the pushes the inbox schedules: claims due alerts (a lease, so that of several
//! instances one sends each, and another only if that one died), holds them through
//! the user's quiet hours, caps each user's pushes per minute, sends each to every
//! subscription of the user ([`crate::push`] encrypts and signs), forgets
//! subscriptions the push service says are gone, and records when it was pushed. A
//! pushed alert read later is closed on the devices with a `read` push.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Alert, AlertKind};
use futures_util::stream::{self, StreamExt as _};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::directory::Directory;
use crate::inbox::{DuePush, Inbox};
use crate::locks;
use crate::logsafe::Chain;
use crate::metrics::{Metrics, PushOutcome};
use crate::push::{Outcome, PushSender, Subscription, Urgency};
use crate::rate::TokenBucket;

/// How often the schedule is looked at when nothing wakes the pusher.
const POLL: Duration = Duration::from_secs(1);

/// How long a claim is this instance's before another may take the alert.
const LEASE_MS: u64 = 60_000;

/// Alerts claimed at once.
const CLAIM: usize = 100;

/// Alerts being pushed at once (each to all of its user's subscriptions).
const CONCURRENT: usize = 32;

/// How long a push service keeps an alert for an offline device.
const TTL_SECS: u32 = 24 * 3600;

/// `read` pushes waiting to be sent.
const READS_QUEUE: usize = 1024;

/// Users whose push rate is tracked; beyond it the table starts over.
const MAX_TRACKED: usize = 100_000;

/// What the rest of the server holds to wake the pusher.
pub(crate) struct Handle {
    due_now: Arc<Notify>,
    reads: mpsc::Sender<(String, u64)>,
}

/// The pusher's ends of the [`Handle`].
pub(crate) struct Wakers {
    due_now: Arc<Notify>,
    reads: mpsc::Receiver<(String, u64)>,
}

pub(crate) fn channel() -> (Handle, Wakers) {
    let due_now = Arc::new(Notify::new());
    let (tx, rx) = mpsc::channel(READS_QUEUE);
    (
        Handle {
            due_now: Arc::clone(&due_now),
            reads: tx,
        },
        Wakers { due_now, reads: rx },
    )
}

impl Handle {
    pub(crate) fn due_now(&self) -> Arc<Notify> {
        Arc::clone(&self.due_now)
    }

    pub(crate) fn reads(&self) -> mpsc::Sender<(String, u64)> {
        self.reads.clone()
    }
}

/// Sends scheduled pushes; see the module docs.
pub(crate) struct Pusher {
    inbox: Arc<dyn Inbox>,
    directory: Arc<dyn Directory>,
    sender: PushSender,
    /// `--push-rate` per user per minute.
    per_minute: u32,
    rates: Mutex<HashMap<String, TokenBucket>>,
    metrics: Metrics,
}

impl Pusher {
    pub(crate) fn new(
        inbox: Arc<dyn Inbox>,
        directory: Arc<dyn Directory>,
        sender: PushSender,
        per_minute: u32,
        metrics: Metrics,
    ) -> Self {
        Pusher {
            inbox,
            directory,
            sender,
            per_minute,
            rates: Mutex::default(),
            metrics,
        }
    }

    /// Whether `user` may get one more push now.
    fn allowed(&self, user: &str) -> bool {
        let mut rates = locks::lock(&self.rates);
        if rates.len() >= MAX_TRACKED && !rates.contains_key(user) {
            rates.clear();
        }
        let per_minute = f64::from(self.per_minute);
        rates
            .entry(user.to_owned())
            .or_insert_with(|| TokenBucket::new(per_minute / 60.0, per_minute))
            .try_take()
    }

    /// Claims what is due and pushes it; how many were claimed.
    async fn round(&self) -> usize {
        let due = match self.inbox.claim_due(now_ms(), LEASE_MS, CLAIM).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "push schedule not read");
                return 0;
            }
        };
        let claimed = due.len();
        stream::iter(due)
            .for_each_concurrent(CONCURRENT, |d| self.push(d))
            .await;
        claimed
    }

    async fn push(&self, due: DuePush) {
        let DuePush { user, alert } = due;
        let now = now_ms();
        match self.directory.quiet(&user).await {
            Ok(Some(quiet)) if quiet.covers(now) => {
                self.metrics.push(PushOutcome::Quiet);
                let until = quiet_ends(&quiet, now);
                if let Err(e) = self.inbox.defer_push(&user, alert.seq, until).await {
                    tracing::warn!(error = %Chain(&e), "push not deferred past quiet hours");
                }
                return;
            }
            Ok(_) => {}
            // Pushed anyway: quiet hours unknown for a moment are a smaller harm than
            // an alert that never reaches its user.
            Err(e) => tracing::warn!(error = %Chain(&e), "quiet hours not read"),
        }
        let pushed = if alert.read {
            None
        } else if !self.allowed(&user) {
            self.metrics.push(PushOutcome::Capped);
            None
        } else {
            self.send_alert(&user, &alert).await.then(now_ms)
        };
        if let Err(e) = self.inbox.finish_push(&user, alert.seq, pushed).await {
            // The lease runs out and the alert is claimed again: a second push of the
            // same tag replaces the first on the device.
            tracing::warn!(error = %Chain(&e), "push not recorded");
        }
    }

    /// Sends `alert` to every subscription of `user`; whether any took it.
    async fn send_alert(&self, user: &str, alert: &Alert) -> bool {
        let payload = alert_payload(alert);
        let urgency = match alert.kind {
            AlertKind::Mention | AlertKind::Dm | AlertKind::Reply => Urgency::High,
            AlertKind::Invite | AlertKind::App | AlertKind::Message => Urgency::Normal,
        };
        self.send_all(user, &payload, urgency).await
    }

    async fn send_all(&self, user: &str, payload: &[u8], urgency: Urgency) -> bool {
        let subs = match self.inbox.subscriptions(user).await {
            Ok(subs) => subs,
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "push subscriptions not read");
                return false;
            }
        };
        let mut any = false;
        for sub in subs {
            let to = Subscription {
                endpoint: sub.endpoint,
                p256dh: sub.p256dh,
                auth: sub.auth,
            };
            let outcome = self
                .sender
                .send(&to, payload, TTL_SECS, urgency, None)
                .await;
            self.metrics.push(match &outcome {
                Ok(Outcome::Sent) => PushOutcome::Sent,
                Ok(Outcome::Gone) => PushOutcome::Gone,
                Ok(Outcome::Rejected(_)) => PushOutcome::Rejected,
                Ok(Outcome::Failed(_)) | Err(_) => PushOutcome::Failed,
            });
            match outcome {
                Ok(Outcome::Sent) => any = true,
                Ok(Outcome::Gone) => {
                    if let Err(e) = self.inbox.unsubscribe(user, &to.endpoint).await {
                        tracing::warn!(error = %Chain(&e), "gone subscription not removed");
                    }
                }
                Ok(Outcome::Rejected(status)) => {
                    tracing::warn!(status, "push refused by the push service");
                }
                Ok(Outcome::Failed(why)) => tracing::warn!(why, "push not sent"),
                // A stored subscription that no longer checks out (or a payload too
                // big): nothing a retry would change.
                Err(e) => tracing::warn!(error = %e, "push not sent"),
            }
        }
        any
    }

    /// Tells `user`'s devices that alerts up to `seq` were read.
    async fn send_read(&self, user: &str, seq: u64) {
        let payload = serde_json::json!({ "kind": "read", "seq": seq }).to_string();
        self.send_all(user, payload.as_bytes(), Urgency::Normal)
            .await;
    }
}

/// What a service worker receives for an alert (see docs/protocol.md).
fn alert_payload(alert: &Alert) -> Vec<u8> {
    serde_json::json!({
        "kind": "alert",
        "seq": alert.seq,
        "alert": alert.kind,
        "title": alert.title,
        "body": alert.body,
        "room": alert.room,
        "offset": alert.offset,
        "url": alert.url,
        "tag": format!("huddle-alert-{}", alert.seq),
    })
    .to_string()
    .into_bytes()
}

/// When quiet hours that cover `now_ms` end (to the minute).
fn quiet_ends(quiet: &common::Quiet, now_ms: u64) -> u64 {
    let minute_utc = (now_ms / 60_000 % 1440) as i64;
    let local = (minute_utc + i64::from(quiet.tz)).rem_euclid(1440);
    let left = (i64::from(quiet.to) - local).rem_euclid(1440).max(1) as u64;
    (now_ms / 60_000 + left) * 60_000
}

/// Pushes what is due until `cancel`: every [`POLL`], at once when woken, and again
/// straight away while claims come back full. A stop does not wait for pushes in
/// flight (their retries can take a while): what was claimed and not finished is
/// claimed again when its lease ends, by another instance or after the restart.
pub(crate) async fn run(pusher: Arc<Pusher>, wakers: Wakers, cancel: CancellationToken) {
    let Wakers { due_now, mut reads } = wakers;
    let work = async {
        loop {
            while pusher.round().await == CLAIM {}
            tokio::select! {
                () = due_now.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                Some((user, seq)) = reads.recv() => pusher.send_read(&user, seq).await,
            }
        }
    };
    tokio::select! {
        () = cancel.cancelled() => {}
        () = work => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_end_at_their_end() {
        // 22:00 to 07:00 UTC; at 23:30 the next push may go at 07:00.
        let q = common::Quiet {
            from: 22 * 60,
            to: 7 * 60,
            tz: 0,
        };
        let at = |h: u64, m: u64| (h * 60 + m) * 60_000;
        assert_eq!(quiet_ends(&q, at(23, 30)), at(24 + 7, 0));
        assert_eq!(quiet_ends(&q, at(6, 59) + 5), at(7, 0));
        // At UTC+2, 05:00 local is 03:00 UTC: two hours to go.
        let east = common::Quiet { tz: 120, ..q };
        assert_eq!(quiet_ends(&east, at(3, 0)), at(5, 0));
    }

    #[test]
    fn the_payload_names_the_alert_and_its_tag() {
        let alert = Alert {
            seq: 4,
            kind: AlertKind::Mention,
            title: "t".into(),
            body: "b".into(),
            room: Some("r".into()),
            offset: Some(9),
            url: None,
            ts: 1,
            read: false,
        };
        let v: serde_json::Value = serde_json::from_slice(&alert_payload(&alert)).unwrap();
        assert_eq!(v["kind"], "alert");
        assert_eq!(v["tag"], "huddle-alert-4");
        assert_eq!(v["room"], "r");
        assert_eq!(v["offset"], 9);
    }
}
