//! Slowing down password guessing, per client address and per account.
//!
//! Each address and each account name has a token bucket of attempts:
//! - an address: 10 attempts at once, then one every 6 s (600 an hour);
//! - an account: 5 attempts at once, then one every 12 s (300 an hour), whatever the
//!   addresses they come from.
//!
//! A quiet bucket refills, so the limits forgive on their own: an account untouched for
//! a minute has its 5 attempts back.
//!
//! [`LoginThrottle::check`] takes an attempt from both buckets before the password is
//! verified, so concurrent guesses cannot all pass on the same last token; a success
//! gives the address its attempt back and resets the account, so only failures cost.
//! Success does not reset the address: a guesser holding one real account could
//! otherwise clear its address's count between guesses at others.
//!
//! An IPv6 client counts by its /64 network (one subscriber gets a whole one), an
//! IPv4-mapped address as the IPv4 address. Accounts are keyed by a keyed hash of the
//! name, so a long name costs no memory and the table's keys cannot be chosen to collide.
//!
//! Memory is bounded: each table holds at most [`MAX_ENTRIES`]. When one is full, the
//! entries that carry nothing (buckets full again) go first, then the least recently
//! used sixteenth. Evicting a draining bucket only makes that key's limit more lenient;
//! to flush one, a guesser needs tens of thousands of failures, which the per-address
//! limit spreads over as many addresses.
//!
//! All of it is behind one `std::sync::Mutex` taken in these synchronous methods only,
//! never across an `.await`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::locks;

/// The most entries each table (addresses, accounts) holds.
pub(crate) const MAX_ENTRIES: usize = 65_536;

/// One address's attempts: a burst, then one per interval.
const PER_ADDRESS: Limit = Limit {
    burst: 10,
    interval: Duration::from_secs(6),
};
/// One account's attempts: a burst, then one per interval.
const PER_ACCOUNT: Limit = Limit {
    burst: 5,
    interval: Duration::from_secs(12),
};

/// The bits of an IPv6 address that make one client.
const IPV6_PREFIX_BITS: u32 = 64;

/// A refusal: too many failed attempts; try again in `retry_after_secs` (for the
/// `Retry-After` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed sign-in attempts; try again in {retry_after_secs} s")]
pub(crate) struct Throttled {
    pub(crate) retry_after_secs: u64,
}

/// The login attempt limits of one server.
#[derive(Debug)]
pub(crate) struct LoginThrottle {
    tables: Mutex<Tables>,
    /// Keys account names (random per process).
    hasher: RandomState,
}

#[derive(Debug)]
struct Tables {
    addresses: Table<IpAddr>,
    accounts: Table<u64>,
}

impl LoginThrottle {
    /// The limits in the module docs, at most [`MAX_ENTRIES`] per table.
    pub(crate) fn new() -> Self {
        Self::with_capacity(MAX_ENTRIES)
    }

    fn with_capacity(capacity: usize) -> Self {
        LoginThrottle {
            tables: Mutex::new(Tables {
                addresses: Table::new(PER_ADDRESS, capacity),
                accounts: Table::new(PER_ACCOUNT, capacity),
            }),
            hasher: RandomState::new(),
        }
    }

    /// Takes one attempt for `user` from `ip`, or says how long to wait. Call it just
    /// before verifying the password, then [`failed`](Self::failed) or
    /// [`succeeded`](Self::succeeded). `user` is the account name as the directory
    /// keys it (after any case folding), so spellings of one name share a limit.
    pub(crate) fn check(&self, ip: IpAddr, user: &str) -> Result<(), Throttled> {
        self.check_at(ip, user, Instant::now())
    }

    /// The attempt failed: its token stays spent.
    pub(crate) fn failed(&self, ip: IpAddr, user: &str) {
        self.failed_at(ip, user, Instant::now());
    }

    /// The attempt succeeded: the address gets its attempt back and the account starts
    /// afresh.
    pub(crate) fn succeeded(&self, ip: IpAddr, user: &str) {
        self.succeeded_at(ip, user, Instant::now());
    }

    fn check_at(&self, ip: IpAddr, user: &str, now: Instant) -> Result<(), Throttled> {
        let (address, account) = (address_key(ip), self.account_key(user));
        let mut tables = locks::lock(&self.tables);
        let wait = tables
            .addresses
            .wait(&address, now)
            .max(tables.accounts.wait(&account, now));
        if wait > Duration::ZERO {
            // Round up, so a client that waits as told finds a token.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(Throttled {
                retry_after_secs: secs.max(1),
            });
        }
        tables.addresses.take(address, now);
        tables.accounts.take(account, now);
        Ok(())
    }

    fn failed_at(&self, ip: IpAddr, user: &str, now: Instant) {
        let (address, account) = (address_key(ip), self.account_key(user));
        let mut tables = locks::lock(&self.tables);
        // Recently failing keys are the last to be evicted.
        tables.addresses.touch(&address, now);
        tables.accounts.touch(&account, now);
    }

    fn succeeded_at(&self, ip: IpAddr, user: &str, now: Instant) {
        let (address, account) = (address_key(ip), self.account_key(user));
        let mut tables = locks::lock(&self.tables);
        tables.addresses.refund(&address, now);
        tables.accounts.forget(&account);
    }

    fn account_key(&self, user: &str) -> u64 {
        self.hasher.hash_one(user)
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new()
    }
}

/// The client an address counts as.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mask = !0u128 << (128 - IPV6_PREFIX_BITS);
            IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask))
        }
        v4 => v4,
    }
}

#[derive(Debug, Clone, Copy)]
struct Limit {
    burst: u32,
    interval: Duration,
}

impl Limit {
    /// The tokens `bucket` has at `now`, refilled since it was last touched.
    fn tokens(self, bucket: &Bucket, now: Instant) -> f64 {
        let earned =
            now.saturating_duration_since(bucket.at).as_secs_f64() / self.interval.as_secs_f64();
        (bucket.tokens + earned).min(self.full())
    }

    fn full(self) -> f64 {
        f64::from(self.burst)
    }
}

/// Attempts left at `at`; a key without a bucket has a full one.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct Table<K> {
    buckets: HashMap<K, Bucket>,
    limit: Limit,
    capacity: usize,
}

impl<K: Hash + Eq + Copy> Table<K> {
    fn new(limit: Limit, capacity: usize) -> Self {
        Table {
            buckets: HashMap::new(),
            limit,
            capacity: capacity.max(16),
        }
    }

    fn tokens(&self, bucket: &Bucket, now: Instant) -> f64 {
        self.limit.tokens(bucket, now)
    }

    /// How long until `key` has an attempt (zero: it has one now).
    fn wait(&self, key: &K, now: Instant) -> Duration {
        let Some(bucket) = self.buckets.get(key) else {
            return Duration::ZERO;
        };
        let missing = 1.0 - self.tokens(bucket, now);
        if missing <= 0.0 {
            return Duration::ZERO;
        }
        self.limit.interval.mul_f64(missing)
    }

    /// Spends one of `key`'s attempts.
    fn take(&mut self, key: K, now: Instant) {
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.capacity {
            self.make_room(now);
        }
        let tokens = match self.buckets.get(&key) {
            Some(bucket) => self.tokens(bucket, now),
            None => self.limit.full(),
        };
        self.buckets.insert(
            key,
            Bucket {
                tokens: tokens - 1.0,
                at: now,
            },
        );
    }

    /// Marks `key` as just used, keeping its tokens.
    fn touch(&mut self, key: &K, now: Instant) {
        let Some(bucket) = self.buckets.get(key).copied() else {
            return;
        };
        let tokens = self.tokens(&bucket, now);
        self.buckets.insert(*key, Bucket { tokens, at: now });
    }

    /// Gives `key` back one attempt.
    fn refund(&mut self, key: &K, now: Instant) {
        let Some(bucket) = self.buckets.get(key).copied() else {
            return;
        };
        let tokens = (self.tokens(&bucket, now) + 1.0).min(self.limit.full());
        self.buckets.insert(*key, Bucket { tokens, at: now });
    }

    /// Gives `key` a full bucket, which is the same as no entry.
    fn forget(&mut self, key: &K) {
        self.buckets.remove(key);
    }

    /// Frees at least one place: drops the buckets that have refilled, then, if that was
    /// not enough, the least recently used sixteenth (one sweep pays for many inserts).
    fn make_room(&mut self, now: Instant) {
        let limit = self.limit;
        self.buckets
            .retain(|_, b| limit.tokens(b, now) < limit.full());
        if self.buckets.len() < self.capacity {
            return;
        }
        let evict = (self.capacity / 16).max(1);
        let mut ages: Vec<Instant> = self.buckets.values().map(|b| b.at).collect();
        let cutoff = *ages.select_nth_unstable(evict - 1).1;
        // Ties at the cutoff could be many: count, so no more than `evict` go.
        let mut left = evict;
        self.buckets.retain(|_, b| {
            let stale = left > 0 && b.at <= cutoff;
            left -= usize::from(stale);
            !stale
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn an_account_is_slowed_after_five_failures() {
        let throttle = LoginThrottle::new();
        let t0 = Instant::now();
        // Five addresses, so only the account's limit is in play.
        for i in 0..5 {
            let from = ip(&format!("192.0.2.{i}"));
            assert_eq!(throttle.check_at(from, "alice", t0), Ok(()));
            throttle.failed_at(from, "alice", t0);
        }
        let other = ip("198.51.100.1");
        assert_eq!(
            throttle.check_at(other, "alice", t0),
            Err(Throttled {
                retry_after_secs: 12
            })
        );
        assert_eq!(
            throttle.check_at(other, "bob", t0),
            Ok(()),
            "others unaffected"
        );
        let refused = throttle.check_at(other, "alice", t0 + secs(5));
        assert_eq!(
            refused,
            Err(Throttled {
                retry_after_secs: 7
            })
        );
        // Then one attempt per 12 s.
        assert_eq!(throttle.check_at(other, "alice", t0 + secs(12)), Ok(()));
        throttle.failed_at(other, "alice", t0 + secs(12));
        assert!(throttle.check_at(other, "alice", t0 + secs(13)).is_err());
        assert_eq!(throttle.check_at(other, "alice", t0 + secs(24)), Ok(()));
        // A quiet minute gives the burst back.
        for _ in 0..5 {
            assert_eq!(throttle.check_at(other, "alice", t0 + secs(90)), Ok(()));
        }
        assert!(throttle.check_at(other, "alice", t0 + secs(90)).is_err());
    }

    #[test]
    fn an_address_is_slowed_after_ten_failures() {
        let throttle = LoginThrottle::new();
        let t0 = Instant::now();
        let from = ip("203.0.113.7");
        for i in 0..10 {
            let user = format!("user{i}");
            assert_eq!(throttle.check_at(from, &user, t0), Ok(()));
            throttle.failed_at(from, &user, t0);
        }
        let refused = throttle.check_at(from, "fresh", t0);
        assert_eq!(
            refused,
            Err(Throttled {
                retry_after_secs: 6
            })
        );
        assert_eq!(throttle.check_at(ip("203.0.113.8"), "fresh", t0), Ok(()));
        assert_eq!(throttle.check_at(from, "fresh", t0 + secs(6)), Ok(()));
        assert!(throttle.check_at(from, "fresh2", t0 + secs(7)).is_err());
    }

    #[test]
    fn an_ipv6_network_counts_as_one_client() {
        let throttle = LoginThrottle::new();
        let t0 = Instant::now();
        for i in 0..10 {
            let from = ip(&format!("2001:db8:1:2::{i:x}"));
            assert_eq!(throttle.check_at(from, &format!("u{i}"), t0), Ok(()));
        }
        assert!(throttle
            .check_at(ip("2001:db8:1:2:ffff::1"), "x", t0)
            .is_err());
        assert!(throttle.check_at(ip("2001:db8:1:3::1"), "x", t0).is_ok());
        // An IPv4-mapped address is its IPv4 address.
        for i in 0..10 {
            assert!(throttle
                .check_at(ip("192.0.2.9"), &format!("v{i}"), t0)
                .is_ok());
        }
        assert!(throttle.check_at(ip("::ffff:192.0.2.9"), "y", t0).is_err());
    }

    #[test]
    fn success_resets_the_account_and_refunds_the_address() {
        let throttle = LoginThrottle::new();
        let t0 = Instant::now();
        let from = ip("192.0.2.1");
        for _ in 0..4 {
            throttle.check_at(from, "alice", t0).unwrap();
            throttle.failed_at(from, "alice", t0);
        }
        throttle.check_at(from, "alice", t0).unwrap();
        throttle.succeeded_at(from, "alice", t0);
        // The account has its five again; the address has spent 4 of its 10.
        for _ in 0..5 {
            throttle.check_at(from, "alice", t0).unwrap();
            throttle.failed_at(from, "alice", t0);
        }
        assert!(throttle.check_at(from, "alice", t0).is_err());
        throttle.check_at(from, "bob", t0).unwrap();
        assert!(
            throttle.check_at(from, "carol", t0).is_err(),
            "4 + 5 + 1 failures"
        );
    }

    #[test]
    fn many_successes_from_one_address_are_not_throttled() {
        // Everyone behind one NAT signing in correctly.
        let throttle = LoginThrottle::new();
        let t0 = Instant::now();
        let from = ip("192.0.2.1");
        for i in 0..100 {
            let user = format!("user{i}");
            throttle.check_at(from, &user, t0).unwrap();
            throttle.succeeded_at(from, &user, t0);
        }
    }

    #[test]
    fn concurrent_attempts_cannot_share_the_last_token() {
        let throttle = LoginThrottle::new();
        let t0 = Instant::now();
        let from = ip("192.0.2.1");
        // Five checks in flight at once, none answered yet.
        for _ in 0..5 {
            throttle.check_at(from, "alice", t0).unwrap();
        }
        assert!(throttle.check_at(from, "alice", t0).is_err());
    }

    #[test]
    fn the_tables_stay_bounded() {
        let capacity = 256;
        let throttle = LoginThrottle::with_capacity(capacity);
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            let from = IpAddr::from(i.to_be_bytes());
            let now = t0 + Duration::from_millis(u64::from(i));
            throttle.check_at(from, &format!("user{i}"), now).unwrap();
            throttle.failed_at(from, &format!("user{i}"), now);
            let tables = locks::lock(&throttle.tables);
            assert!(tables.addresses.buckets.len() <= capacity);
            assert!(tables.accounts.buckets.len() <= capacity);
        }
        // The stalest went: the most recent keys are still held.
        let tables = locks::lock(&throttle.tables);
        let last = IpAddr::from(9_999u32.to_be_bytes());
        assert!(tables.addresses.buckets.contains_key(&last));
        assert!(!tables
            .addresses
            .buckets
            .contains_key(&IpAddr::from(0u32.to_be_bytes())));
    }

    #[test]
    fn refilled_buckets_are_dropped_before_draining_ones() {
        let t0 = Instant::now();
        let mut table = Table::new(PER_ACCOUNT, 32);
        for _ in 0..5 {
            table.take(0u64, t0);
        }
        for key in 1..32u64 {
            table.take(key, t0 + secs(1));
        }
        // At 14 s the one-offs have refilled (1 s + 12 s) but the drained key has not,
        // though it is the least recently used.
        table.take(1000, t0 + secs(14));
        assert!(table.buckets.contains_key(&0));
        assert_eq!(table.buckets.len(), 2);
    }

    #[test]
    fn the_public_methods_use_the_clock() {
        let throttle = LoginThrottle::default();
        let from = ip("192.0.2.1");
        for _ in 0..5 {
            throttle.check(from, "alice").unwrap();
            throttle.failed(from, "alice");
        }
        let refused = throttle.check(from, "alice").unwrap_err();
        assert!((11..=12).contains(&refused.retry_after_secs), "{refused:?}");
        assert!(refused.to_string().contains("try again in"));
        throttle.succeeded(from, "alice");
        assert!(throttle.check(from, "alice").is_ok());
    }
}
