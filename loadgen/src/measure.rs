//! What the clients observe, gathered in one place shared by every connection task:
//! counters (atomics), the latency histogram, per-room ack high-water marks, and the
//! per-connection [`OffsetTracker`] that finds lost and duplicated messages.
//!
//! Per-connection state is kept to a few words (the tracker); everything else is shared,
//! so 250,000 idle connections cost the load generator little.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

/// Latencies above this are recorded as this (microseconds): one minute.
const LATENCY_CEILING_US: u64 = 60_000_000;

/// Wall-clock microseconds, read through a monotonic clock so a clock step during a run
/// cannot bend latencies. Stamps are comparable with other processes on this machine.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    base_us: u64,
}

impl Clock {
    pub fn new() -> Self {
        let base_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Clock {
            base: Instant::now(),
            base_us,
        }
    }

    /// Microseconds since the Unix epoch at `at`.
    pub fn us_at(&self, at: Instant) -> u64 {
        self.base_us + at.saturating_duration_since(self.base).as_micros() as u64
    }

    pub fn now_us(&self) -> u64 {
        self.us_at(Instant::now())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Finds gaps and repeats in one connection's view of one room. The protocol promises
/// every offset above `joined.head` exactly once, in order, so a single "next expected
/// offset" suffices: a jump forward is loss, anything below it is a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetTracker {
    next: u64,
}

/// What one observed offset means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    InOrder,
    /// This many offsets were skipped.
    Gap(u64),
    Duplicate,
}

impl OffsetTracker {
    /// Starts after `head`, the offset `joined` reported.
    pub fn after(head: u64) -> Self {
        OffsetTracker { next: head + 1 }
    }

    pub fn observe(&mut self, offset: u64) -> Seen {
        if offset == self.next {
            self.next += 1;
            Seen::InOrder
        } else if offset > self.next {
            let gap = offset - self.next;
            self.next = offset + 1;
            Seen::Gap(gap)
        } else {
            Seen::Duplicate
        }
    }

    /// The highest offset seen in order (the head when nothing arrived yet).
    pub fn last(&self) -> u64 {
        self.next - 1
    }
}

/// Everything the connection tasks report, shared by all of them.
#[derive(Debug)]
pub struct Shared {
    pub clock: Clock,
    /// True during the measurement window (deliveries then count toward the rate).
    pub in_window: AtomicBool,

    pub connected: AtomicU64,
    pub ready: AtomicU64,
    pub setup_failed: AtomicU64,
    /// Connections that ended before the run told them to (close frame, reset, EOF).
    pub disconnected: AtomicU64,

    pub sent: AtomicU64,
    pub acked: AtomicU64,
    /// Sends the server refused with an `error` frame.
    pub refused: AtomicU64,
    /// `message` frames received, for the run's rooms.
    pub delivered: AtomicU64,
    pub delivered_in_window: AtomicU64,
    /// Deliveries the acks so far promise: each acked message × the room's members.
    pub expected_deliveries: AtomicU64,
    pub lost: AtomicU64,
    pub duplicated: AtomicU64,
    /// Acked messages that a connected member had not received when the run ended.
    pub undelivered: AtomicU64,
    /// Frames that are not messages, acks or errors (presence, notifications, typing).
    pub events: AtomicU64,

    /// Highest acked offset per room.
    room_acked: Vec<AtomicU64>,
    /// Members per room that completed `join` and are still connected.
    room_members: Vec<AtomicU32>,

    latency: Mutex<Histogram<u64>>,
    /// Error codes from `error` frames, set-up failures and disconnects, by reason.
    reasons: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    pub fn new(rooms: usize) -> Self {
        let latency = Histogram::new_with_bounds(1, LATENCY_CEILING_US, 3)
            .expect("static histogram bounds are valid");
        Shared {
            clock: Clock::new(),
            in_window: AtomicBool::new(false),
            connected: AtomicU64::new(0),
            ready: AtomicU64::new(0),
            setup_failed: AtomicU64::new(0),
            disconnected: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            delivered_in_window: AtomicU64::new(0),
            expected_deliveries: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            duplicated: AtomicU64::new(0),
            undelivered: AtomicU64::new(0),
            events: AtomicU64::new(0),
            room_acked: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
            room_members: (0..rooms).map(|_| AtomicU32::new(0)).collect(),
            latency: Mutex::new(latency),
            reasons: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts one occurrence of `reason` (an error code, a close code, a set-up failure).
    pub fn reason(&self, reason: impl Into<String>) {
        let mut reasons = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        *reasons.entry(reason.into()).or_default() += 1;
    }

    pub fn reasons(&self) -> BTreeMap<String, u64> {
        self.reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A message arrived: checks its offset and records its latency (if it carries a stamp).
    pub fn delivered(&self, tracker: &mut OffsetTracker, offset: u64, sent_us: Option<u64>) {
        self.delivered.fetch_add(1, Relaxed);
        if self.in_window.load(Relaxed) {
            self.delivered_in_window.fetch_add(1, Relaxed);
        }
        match tracker.observe(offset) {
            Seen::InOrder => {}
            Seen::Gap(n) => {
                self.lost.fetch_add(n, Relaxed);
            }
            Seen::Duplicate => {
                self.duplicated.fetch_add(1, Relaxed);
            }
        }
        if let Some(sent) = sent_us {
            let us = self.clock.now_us().saturating_sub(sent).max(1);
            let mut h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
            h.saturating_record(us.min(LATENCY_CEILING_US));
        }
    }

    /// One of our sends was acked at `offset` in `room`.
    pub fn acked(&self, room: usize, offset: u64) {
        self.acked.fetch_add(1, Relaxed);
        self.room_acked[room].fetch_max(offset, Relaxed);
        let members = u64::from(self.room_members[room].load(Relaxed));
        self.expected_deliveries.fetch_add(members, Relaxed);
    }

    pub fn room_acked(&self, room: usize) -> u64 {
        self.room_acked[room].load(Relaxed)
    }

    pub fn member_joined(&self, room: usize) {
        self.room_members[room].fetch_add(1, Relaxed);
    }

    pub fn member_gone(&self, room: usize) {
        self.room_members[room].fetch_sub(1, Relaxed);
    }

    /// At the end: acked messages this member never got (it stayed connected).
    pub fn tail(&self, room: usize, tracker: &OffsetTracker) {
        let missing = self.room_acked(room).saturating_sub(tracker.last());
        self.undelivered.fetch_add(missing, Relaxed);
    }

    /// Latency percentiles, in microseconds.
    pub fn latency(&self) -> Latency {
        Latency::of(&self.latency.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Clears the histogram (set-up traffic must not count).
    pub fn reset_latency(&self) {
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reset();
    }

    /// True when every send was answered and every promised delivery arrived.
    pub fn settled(&self) -> bool {
        let sent = self.sent.load(Relaxed);
        let answered = self.acked.load(Relaxed) + self.refused.load(Relaxed);
        // Repeats are not deliveries: counting them would end the drain one frame early.
        let delivered = self
            .delivered
            .load(Relaxed)
            .saturating_sub(self.duplicated.load(Relaxed));
        answered >= sent && delivered >= self.expected_deliveries.load(Relaxed)
    }
}

/// Latency summary (microseconds), from the HdrHistogram (3 significant digits).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    /// The summary of a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }

    /// An empty histogram of microseconds, 1 µs to 10 min, 3 significant digits.
    pub fn histogram() -> Histogram<u64> {
        // Fixed, valid bounds: cannot fail.
        Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
    }

    pub fn p99(&self) -> Duration {
        Duration::from_micros(self.p99_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_finds_gaps_and_duplicates() {
        let mut t = OffsetTracker::after(10);
        assert_eq!(t.last(), 10);
        assert_eq!(t.observe(11), Seen::InOrder);
        assert_eq!(t.observe(12), Seen::InOrder);
        assert_eq!(t.observe(15), Seen::Gap(2));
        assert_eq!(t.observe(15), Seen::Duplicate);
        assert_eq!(t.observe(13), Seen::Duplicate);
        assert_eq!(t.observe(16), Seen::InOrder);
        assert_eq!(t.last(), 16);
    }

    #[test]
    fn shared_counts_loss_duplicates_and_the_missing_tail() {
        let s = Shared::new(2);
        s.member_joined(0);
        s.member_joined(0);
        let mut a = OffsetTracker::after(0);
        let mut b = OffsetTracker::after(0);
        for offset in 1..=5 {
            s.acked(0, offset);
        }
        assert_eq!(s.expected_deliveries.load(Relaxed), 10);
        // `a` gets everything, once; `b` misses 3, sees 4 twice and never gets 5.
        for offset in 1..=5 {
            s.delivered(&mut a, offset, Some(s.clock.now_us()));
        }
        for offset in [1, 2, 4, 4] {
            s.delivered(&mut b, offset, None);
        }
        s.tail(0, &a);
        s.tail(0, &b);
        assert_eq!(s.lost.load(Relaxed), 1);
        assert_eq!(s.duplicated.load(Relaxed), 1);
        assert_eq!(s.undelivered.load(Relaxed), 1);
        assert_eq!(s.latency().count, 5);
        s.sent.store(5, Relaxed);
        // 9 frames arrived for 10 promised deliveries.
        assert!(!s.settled());
        s.reason("nick_taken");
        s.reason("nick_taken");
        assert_eq!(s.reasons().get("nick_taken"), Some(&2));
    }
}
