//! The token bucket behind every rate limit: `send` per connection, and `hello`/`join`
//! per address (`peers`).

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
}
