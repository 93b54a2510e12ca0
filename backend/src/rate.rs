//! The token bucket behind every rate limit: frames and `send`s per connection, and
//! `hello`/`join` per address (`peers`); and [`ReadBudget`], what one connection may
//! read from history per second.

use tokio::time::Instant;

/// Allows `rate` events per second on average and bursts of `burst`.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket earning `rate` tokens per second, holding at most `burst` (at
    /// least 1).
    pub(crate) fn new(rate: f64, burst: f64) -> Self {
        let burst = burst.max(1.0);
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self) -> bool {
        self.refill(Instant::now());
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes `n` tokens even if fewer are there: a cost known only after the work (the
    /// bytes of an answer) is paid off before the next request is allowed.
    pub(crate) fn charge(&mut self, n: f64) {
        self.refill(Instant::now());
        self.tokens -= n;
    }

    /// The whole tokens there now.
    pub(crate) fn available(&mut self) -> f64 {
        self.refill(Instant::now());
        self.tokens.max(0.0).floor()
    }

    /// Whether a token is there now, without taking it.
    pub(crate) fn has_token(&mut self) -> bool {
        self.refill(Instant::now());
        self.tokens >= 1.0
    }

    /// Whether the bucket would be full now: forgetting it loses nothing.
    pub(crate) fn is_full(&self) -> bool {
        self.tokens + self.earned(Instant::now()) >= self.burst
    }

    fn earned(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.last).as_secs_f64() * self.rate
    }

    fn refill(&mut self, now: Instant) {
        self.tokens = (self.tokens + self.earned(now)).min(self.burst);
        self.last = now;
    }
}

/// What one connection may read from stored history: messages and bytes per second,
/// each with a burst of a few seconds' worth. `history` pages and `join {since}` replays
/// draw on it, so reading costs the server at most this much per connection however
/// large the rooms are.
#[derive(Debug, Clone)]
pub(crate) struct ReadBudget {
    messages: TokenBucket,
    bytes: TokenBucket,
}

/// Seconds of the sustained rate a reader may use at once.
const READ_BURST_SECS: f64 = 5.0;

impl ReadBudget {
    pub(crate) fn new(messages_per_sec: u32, bytes_per_sec: u32) -> Self {
        let (m, b) = (f64::from(messages_per_sec), f64::from(bytes_per_sec));
        ReadBudget {
            messages: TokenBucket::new(m, m * READ_BURST_SECS),
            bytes: TokenBucket::new(b, b * READ_BURST_SECS),
        }
    }

    /// Whether a read may start now: both budgets are out of debt.
    pub(crate) fn may_read(&mut self) -> bool {
        self.messages.has_token() && self.bytes.has_token()
    }

    /// Whether `n` messages may be read at once now (nothing always may).
    pub(crate) fn covers(&mut self, n: u64) -> bool {
        n == 0 || (self.bytes.has_token() && self.messages.available() >= n as f64)
    }

    /// How long until the bytes read so far are paid off (zero when they are).
    pub(crate) fn debt_delay(&mut self) -> std::time::Duration {
        self.bytes.refill(Instant::now());
        let missing = 1.0 - self.bytes.tokens;
        if missing <= 0.0 || self.bytes.rate <= 0.0 {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::from_secs_f64(missing / self.bytes.rate)
    }

    /// Pays for what was read.
    pub(crate) fn charge(&mut self, messages: usize, bytes: usize) {
        self.messages.charge(messages as f64);
        self.bytes.charge(bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn burst_then_sustained_rate() {
        let mut bucket = TokenBucket::new(20.0, 40.0);
        assert_eq!((0..100).filter(|_| bucket.try_take()).count(), 40);
        assert!(!bucket.is_full());
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!((0..100).filter(|_| bucket.try_take()).count(), 10);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(bucket.is_full());
        assert_eq!((0..100).filter(|_| bucket.try_take()).count(), 40);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_run_into_debt_and_wait_until_it_is_paid() {
        let mut budget = ReadBudget::new(100, 10_000);
        assert!(budget.covers(500) && !budget.covers(501), "a burst of 5 s");
        budget.charge(100, 40_000);
        assert!(budget.may_read());
        assert!(budget.covers(400) && !budget.covers(401));
        budget.charge(0, 70_000);
        assert!(!budget.may_read(), "110 KB read of a 50 KB burst");
        assert!(!budget.covers(1), "nothing while in debt");
        assert!(budget.covers(0), "an empty gap needs no budget");
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(!budget.may_read(), "the debt is just paid off");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(budget.may_read());
        assert!(budget.covers(500), "the messages refilled to their burst");
        assert_eq!(budget.debt_delay(), Duration::ZERO);
        budget.charge(0, 70_000);
        assert_eq!(budget.debt_delay(), Duration::from_secs_f64(6.0001));
    }
}
