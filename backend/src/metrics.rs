//! Every metric the server exports: its name, help, type and buckets, in one place, and
//! the rendering `GET /metrics` serves (Prometheus text format 0.0.4).
//!
//! The registry belongs to one server ([`crate::AppState`] holds a [`Metrics`]), not to
//! the process. Tests run several servers in one process, and a process-global recorder
//! (the `metrics` crate's model) would add their numbers together, so "live sessions back
//! to 0" could never be asserted on one of them. `prometheus-client` keeps each
//! [`Registry`] a plain value, so every server counts and renders only its own traffic.
//!
//! The code elsewhere only bumps handles (atomics, no locks); the names below are the
//! exact series names an operator sees, so tests and dashboards can use the constants.

use std::sync::Arc;

use common::{CloseCode, ErrorCode};
use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The `Content-Type` of what [`Metrics::render`] returns.
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Every metric's name: the operator's contract, which dashboards and alert rules use.
pub mod names {
    /// Upgraded WebSockets open now (sessions and connections being refused).
    pub const CONNECTIONS_OPEN: &str = "huddle_connections_open";
    /// WebSocket upgrades completed since start.
    pub const CONNECTIONS_ACCEPTED: &str = "huddle_connections_accepted_total";
    /// Session tasks running now; 0 once every client is gone (a leak shows here).
    pub const SESSIONS_LIVE: &str = "huddle_sessions_live";
    /// `send`s accepted and queued for the history writer.
    pub const MESSAGES_IN: &str = "huddle_messages_in_total";
    /// Text frames written to client sockets (replies, room traffic, replays).
    pub const MESSAGES_OUT: &str = "huddle_messages_out_total";
    /// Frames published to the broker, by `kind` (`message` or `event`).
    pub const BROADCASTS: &str = "huddle_broadcasts_total";
    /// Frames not queued because a connection's outbox was full.
    pub const OUTBOX_DROPS: &str = "huddle_outbox_drops_total";
    /// Connections closed with 4008 because they read too slowly.
    pub const SLOW_CONSUMER_CLOSES: &str = "huddle_slow_consumer_closes_total";
    /// Connections the server closed, by close `code` (refusals included).
    pub const CLOSES: &str = "huddle_closes_total";
    /// Connections the peer ended, by `how`: `close` (a close frame) or `gone` (no frame).
    pub const PEER_CLOSES: &str = "huddle_peer_closes_total";
    /// `error` frames sent to clients, by error `code`.
    pub const ERRORS: &str = "huddle_errors_total";
    /// Messages per history transaction (group commit).
    pub const BATCH_SIZE: &str = "huddle_history_batch_size";
    /// Time to store one batch, commit (and fsync) included.
    pub const COMMIT_SECONDS: &str = "huddle_history_commit_seconds";
    /// History transactions that failed (their senders got `error internal`).
    pub const WRITE_FAILURES: &str = "huddle_history_write_failures_total";
    /// Alerts stored in users' inboxes, by `kind` (`mention`, `dm`, `invite`, `app`,
    /// `message`).
    pub const ALERTS: &str = "huddle_alerts_total";
    /// Web Pushes by `outcome`: `sent` (a push service took it), `gone` (its
    /// subscription was removed), `rejected`, `failed` (after retries), `capped` (over
    /// `--push-rate`), `quiet` (held until the user's quiet hours end).
    pub const PUSHES: &str = "huddle_pushes_total";
}

use names::*;

/// What kind of frame a broadcast carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Broadcast {
    /// A stored chat message, published by the writer after its commit.
    Message,
    /// A notification, presence list or typing event.
    Event,
}

/// How a peer ended its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerClose {
    /// It sent a close frame.
    Close,
    /// The transport ended or failed without one.
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// What became of one push (one alert to one subscription, or an alert held back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushOutcome {
    Sent,
    Gone,
    Rejected,
    Failed,
    Capped,
    Quiet,
}

impl PushOutcome {
    const ALL: [PushOutcome; 6] = [
        PushOutcome::Sent,
        PushOutcome::Gone,
        PushOutcome::Rejected,
        PushOutcome::Failed,
        PushOutcome::Capped,
        PushOutcome::Quiet,
    ];

    const fn as_str(self) -> &'static str {
        match self {
            PushOutcome::Sent => "sent",
            PushOutcome::Gone => "gone",
            PushOutcome::Rejected => "rejected",
            PushOutcome::Failed => "failed",
            PushOutcome::Capped => "capped",
            PushOutcome::Quiet => "quiet",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HowLabel {
    how: &'static str,
}

/// One server's metrics. Cheap to clone; every clone updates the same values.
#[derive(Clone, Debug)]
pub(crate) struct Metrics(Arc<Inner>);

/// The handles, public so hot paths bump them directly.
#[derive(Debug)]
pub(crate) struct Inner {
    registry: Registry,
    pub(crate) connections_open: Gauge,
    pub(crate) connections_accepted: Counter,
    pub(crate) sessions_live: Gauge,
    pub(crate) messages_in: Counter,
    pub(crate) messages_out: Counter,
    broadcasts: Family<KindLabel, Counter>,
    /// The two broadcast series, held directly: they are bumped once per message and
    /// event, and a family lookup takes a lock.
    broadcast_message: Counter,
    broadcast_event: Counter,
    pub(crate) outbox_drops: Counter,
    slow_consumer_closes: Counter,
    closes: Family<CodeLabel, Counter>,
    peer_closes: Family<HowLabel, Counter>,
    errors: Family<CodeLabel, Counter>,
    pub(crate) batch_size: Histogram,
    pub(crate) commit_seconds: Histogram,
    pub(crate) write_failures: Counter,
    alerts: Family<KindLabel, Counter>,
    pushes: Family<OutcomeLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub(crate) fn new() -> Self {
        let mut inner = Inner {
            connections_open: Gauge::default(),
            connections_accepted: Counter::default(),
            sessions_live: Gauge::default(),
            messages_in: Counter::default(),
            messages_out: Counter::default(),
            broadcasts: Family::default(),
            broadcast_message: Counter::default(),
            broadcast_event: Counter::default(),
            outbox_drops: Counter::default(),
            slow_consumer_closes: Counter::default(),
            closes: Family::default(),
            peer_closes: Family::default(),
            errors: Family::default(),
            // 1, 2, 4, … 512: --max-batch defaults to 256, so the top buckets show a
            // writer that is saturated.
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            // 0.5 ms … ~4 s: an fsync on a healthy disk is well under 10 ms.
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            write_failures: Counter::default(),
            alerts: Family::default(),
            pushes: Family::default(),
            registry: Registry::default(),
        };
        let counter = |name: &'static str| {
            // The text encoder appends `_total` to counters; the constants carry it so
            // they name the series as scraped.
            name.strip_suffix("_total").unwrap_or(name)
        };
        inner.registry.register(
            CONNECTIONS_OPEN,
            "Upgraded WebSockets open now",
            inner.connections_open.clone(),
        );
        inner.registry.register(
            counter(CONNECTIONS_ACCEPTED),
            "WebSocket upgrades completed",
            inner.connections_accepted.clone(),
        );
        inner.registry.register(
            SESSIONS_LIVE,
            "Session tasks running now",
            inner.sessions_live.clone(),
        );
        inner.registry.register(
            counter(MESSAGES_IN),
            "Sends accepted and queued for the history writer",
            inner.messages_in.clone(),
        );
        inner.registry.register(
            counter(MESSAGES_OUT),
            "Text frames written to client sockets",
            inner.messages_out.clone(),
        );
        inner.registry.register(
            counter(BROADCASTS),
            "Frames published to rooms, by kind",
            inner.broadcasts.clone(),
        );
        inner.registry.register(
            counter(OUTBOX_DROPS),
            "Frames dropped because a connection's outbox was full",
            inner.outbox_drops.clone(),
        );
        inner.registry.register(
            counter(SLOW_CONSUMER_CLOSES),
            "Connections closed with 4008 for reading too slowly",
            inner.slow_consumer_closes.clone(),
        );
        inner.registry.register(
            counter(CLOSES),
            "Connections the server closed, by close code (refusals included)",
            inner.closes.clone(),
        );
        inner.registry.register(
            counter(PEER_CLOSES),
            "Connections ended by the peer, with a close frame or without",
            inner.peer_closes.clone(),
        );
        inner.registry.register(
            counter(ERRORS),
            "Error frames sent to clients, by error code",
            inner.errors.clone(),
        );
        inner.registry.register(
            BATCH_SIZE,
            "Messages per history transaction",
            inner.batch_size.clone(),
        );
        inner.registry.register(
            COMMIT_SECONDS,
            "Seconds to store one history batch, commit included",
            inner.commit_seconds.clone(),
        );
        inner.registry.register(
            counter(WRITE_FAILURES),
            "History transactions that failed",
            inner.write_failures.clone(),
        );
        inner.registry.register(
            counter(ALERTS),
            "Alerts stored in users' inboxes, by kind",
            inner.alerts.clone(),
        );
        inner.registry.register(
            counter(PUSHES),
            "Web Pushes, by outcome",
            inner.pushes.clone(),
        );
        for kind in [
            common::AlertKind::Mention,
            common::AlertKind::Dm,
            common::AlertKind::Invite,
            common::AlertKind::App,
            common::AlertKind::Message,
        ] {
            inner.alerts.get_or_create_owned(&KindLabel {
                kind: kind.as_str(),
            });
        }
        for outcome in PushOutcome::ALL {
            inner.pushes.get_or_create_owned(&OutcomeLabel {
                outcome: outcome.as_str(),
            });
        }
        inner.broadcast_message = inner
            .broadcasts
            .get_or_create_owned(&kind_label(Broadcast::Message));
        inner.broadcast_event = inner
            .broadcasts
            .get_or_create_owned(&kind_label(Broadcast::Event));
        // Every label value exists from the start, so `rate()` and alerts see a 0 rather
        // than a missing series before the first event.
        for code in ErrorCode::ALL {
            inner.errors.get_or_create_owned(&CodeLabel {
                code: code.as_str(),
            });
        }
        for code in CloseCode::ALL {
            inner.closes.get_or_create_owned(&CodeLabel {
                code: close_label(code),
            });
        }
        for how in [PeerClose::Close, PeerClose::Gone] {
            inner.peer_closes.get_or_create_owned(&how_label(how));
        }
        Metrics(Arc::new(inner))
    }

    /// Counts an accepted WebSocket; the guard keeps it counted as open until dropped.
    pub(crate) fn connection_opened(&self) -> Live {
        self.connections_accepted.inc();
        Live::new(&self.connections_open)
    }

    /// Counts a running session until the guard is dropped, however the task ends.
    pub(crate) fn session_started(&self) -> Live {
        Live::new(&self.sessions_live)
    }

    /// Counts a frame published to a room.
    pub(crate) fn broadcast(&self, kind: Broadcast) {
        match kind {
            Broadcast::Message => self.broadcast_message.inc(),
            Broadcast::Event => self.broadcast_event.inc(),
        };
    }

    /// Counts an `error` frame sent to a client.
    pub(crate) fn error_sent(&self, code: ErrorCode) {
        self.errors
            .get_or_create(&CodeLabel {
                code: code.as_str(),
            })
            .inc();
    }

    /// Counts a connection the server closed with `code`.
    pub(crate) fn closed(&self, code: CloseCode) {
        if code == CloseCode::SlowConsumer {
            self.slow_consumer_closes.inc();
        }
        self.closes
            .get_or_create(&CodeLabel {
                code: close_label(code),
            })
            .inc();
    }

    /// Counts an alert stored in an inbox.
    pub(crate) fn alert(&self, kind: common::AlertKind) {
        self.alerts
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .inc();
    }

    /// Counts what became of a push.
    pub(crate) fn push(&self, outcome: PushOutcome) {
        self.pushes
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Counts a connection the peer ended.
    pub(crate) fn peer_closed(&self, how: PeerClose) {
        self.peer_closes.get_or_create(&how_label(how)).inc();
    }

    /// Counts one history transaction: its size, how long it took, whether it failed.
    pub(crate) fn history_batch(&self, size: usize, took: std::time::Duration, ok: bool) {
        self.batch_size.observe(size as f64);
        self.commit_seconds.observe(took.as_secs_f64());
        if !ok {
            self.write_failures.inc();
        }
    }

    /// Every metric in Prometheus text format (version 0.0.4).
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in the
        // library, and an empty scrape is a clearer symptom than a panic.
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot render metrics");
        }
        out
    }
}

impl std::ops::Deref for Metrics {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Holds one unit of a gauge (an open connection, a live session) and gives it back on
/// drop, so a task that ends any way at all, panics and cancellation included, is no
/// longer counted.
#[derive(Debug)]
#[must_use = "the gauge goes back down when this guard is dropped"]
pub(crate) struct Live(Gauge);

impl Live {
    fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Live(gauge.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Close codes as label values; static so labels never allocate.
fn close_label(code: CloseCode) -> &'static str {
    match code.code() {
        1000 => "1000",
        1001 => "1001",
        1003 => "1003",
        1008 => "1008",
        1009 => "1009",
        4001 => "4001",
        4008 => "4008",
        _ => "other",
    }
}

fn kind_label(kind: Broadcast) -> KindLabel {
    KindLabel {
        kind: match kind {
            Broadcast::Message => "message",
            Broadcast::Event => "event",
        },
    }
}

fn how_label(how: PeerClose) -> HowLabel {
    HowLabel {
        how: match how {
            PeerClose::Close => "close",
            PeerClose::Gone => "gone",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of one series in a rendered scrape.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn names_render_as_declared_and_servers_do_not_share_values() {
        let a = Metrics::new();
        let b = Metrics::new();
        let live = a.session_started();
        a.closed(CloseCode::SlowConsumer);
        a.error_sent(ErrorCode::BadJson);
        a.history_batch(3, std::time::Duration::from_millis(2), true);
        let text = a.render();
        assert_eq!(value(&text, SESSIONS_LIVE), Some(1.0), "{text}");
        assert_eq!(value(&text, SLOW_CONSUMER_CLOSES), Some(1.0));
        assert_eq!(
            value(&text, &format!("{CLOSES}{{code=\"4008\"}}")),
            Some(1.0)
        );
        assert_eq!(
            value(&text, &format!("{ERRORS}{{code=\"bad_json\"}}")),
            Some(1.0)
        );
        assert_eq!(
            value(&text, &format!("{ERRORS}{{code=\"internal\"}}")),
            Some(0.0)
        );
        assert_eq!(value(&text, &format!("{BATCH_SIZE}_count")), Some(1.0));
        assert_eq!(value(&b.render(), SESSIONS_LIVE), Some(0.0));
        drop(live);
        assert_eq!(value(&a.render(), SESSIONS_LIVE), Some(0.0));
        for name in [
            CONNECTIONS_OPEN,
            CONNECTIONS_ACCEPTED,
            MESSAGES_IN,
            MESSAGES_OUT,
            OUTBOX_DROPS,
            WRITE_FAILURES,
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
        }
    }
}
