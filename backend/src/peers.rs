//! Per-address accounting: who the client is (its IP, or the one a trusted proxy
//! forwards), how many WebSockets each address has open (`--max-connections-per-ip`),
//! and the `hello`/`join` token bucket that an address's connections share
//! (`--ip-join-rate`, `--ip-join-burst`), so one address cannot churn nicks or rooms by
//! opening new connections.
//!
//! The table is bounded: an address is kept while it has a connection open or while its
//! bucket is still refilling. Past [`Peers`]' capacity, entries that carry no
//! information (no connection, full bucket) are swept, then, if still needed, the
//! refilling ones (which only makes those addresses' limits more lenient). Live entries
//! are at most `--max-connections`, so the capacity is always reachable again. The lock
//! is a `std::sync::Mutex` taken only in the sync methods here.
//!
//! [`Tally`] counts what an address holds open before it is a WebSocket (TCP
//! connections, TLS handshakes), so one address cannot take every place.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::HeaderMap;

use crate::locks;
use crate::rate::TokenBucket;

/// Entries kept beyond `--max-connections` before the table is swept.
const SPARE_ENTRIES: usize = 4096;

/// A network in `--trusted-proxies`: an address with a prefix length (`10.0.0.0/8`,
/// `::1/128`; a bare address is the one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a `--trusted-proxies` entry is not a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or network; write e.g. 10.0.0.1, 10.0.0.0/8 or ::1/128")]
pub struct BadNet(String);

impl FromStr for IpNet {
    type Err = BadNet;

    fn from_str(raw: &str) -> Result<Self, BadNet> {
        let raw = raw.trim();
        let bad = || BadNet(raw.to_owned());
        let (addr, prefix) = match raw.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        // An IPv4-mapped network (`::ffff:10.0.0.0/104`) is the IPv4 network it maps
        // (10.0.0.0/8), as clients' mapped addresses are compared as IPv4. One wider
        // than the mapped range stays IPv6.
        if let IpAddr::V6(v6) = addr {
            if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix >= 96) {
                return Ok(IpNet {
                    addr: IpAddr::V4(v4),
                    prefix: prefix - 96,
                });
            }
        }
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl IpNet {
    /// Whether `ip` is in this network.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(net.to_bits(), ip.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, width: u8, prefix: u8) -> bool {
    let shift = u32::from(width - prefix.min(width));
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy, in which case
/// the rightmost `X-Forwarded-For` entry that is not itself a trusted proxy.
///
/// Only the right end of the header can be believed: each proxy appends the address it
/// saw, while everything to the left came from the client and may be forged.
pub(crate) fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.ip().to_canonical();
    if !is_trusted(client) {
        return client;
    }
    // Several headers count as one comma-separated list, in order.
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in forwarded.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Not an address: forged or mangled; keep the last hop we could trust.
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an IP, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// What the limits are keyed by: an IPv4 address, or the IPv6 network of its first
/// `v6_bits` bits (one subscriber gets a whole network, so counting single IPv6
/// addresses would limit nothing).
fn key(ip: IpAddr, v6_bits: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mask = (!0u128)
                .checked_shl(128 - u32::from(v6_bits.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask))
        }
        v4 => v4,
    }
}

/// Counts of something each address holds open (TCP connections not yet upgraded, TLS
/// handshakes under way), each capped. An entry lives only while its count is above
/// zero, so the table is never larger than what is open. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Tally(Arc<TallyShared>);

struct TallyShared {
    counts: Mutex<HashMap<IpAddr, usize>>,
    /// Most per address; 0: no limit.
    max: usize,
    ipv6_prefix: u8,
}

/// One place in a [`Tally`]; dropping it frees the place.
pub(crate) struct TallySlot {
    tally: Tally,
    key: IpAddr,
}

impl Tally {
    pub(crate) fn new(max: usize, ipv6_prefix: u8) -> Self {
        Tally(Arc::new(TallyShared {
            counts: Mutex::new(HashMap::new()),
            max,
            ipv6_prefix,
        }))
    }

    /// Takes a place for `ip`, or `None` if its address (or IPv6 network) holds `max`.
    pub(crate) fn try_take(&self, ip: IpAddr) -> Option<TallySlot> {
        let key = key(ip, self.0.ipv6_prefix);
        let mut counts = locks::lock(&self.0.counts);
        let count = counts.entry(key).or_insert(0);
        if self.0.max > 0 && *count >= self.0.max {
            return None;
        }
        *count += 1;
        Some(TallySlot {
            tally: self.clone(),
            key,
        })
    }

    /// Addresses holding at least one place.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        locks::lock(&self.0.counts).len()
    }
}

impl Drop for TallySlot {
    fn drop(&mut self) {
        let mut counts = locks::lock(&self.tally.0.counts);
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The per-address limits and their table. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Peers(Arc<Shared>);

struct Shared {
    table: Mutex<HashMap<IpAddr, Entry>>,
    /// `--max-connections-per-ip`; 0 means no limit.
    max_conns: usize,
    /// `hello`/`join` tokens per second per address; 0 means no limit.
    join_rate: f64,
    join_burst: f64,
    /// Entries kept before sweeping.
    capacity: usize,
    ipv6_prefix: u8,
}

#[derive(Debug)]
struct Entry {
    conns: usize,
    joins: TokenBucket,
    /// Wrong or missing API credentials from this address.
    api_failures: TokenBucket,
}

impl Entry {
    /// Whether forgetting this entry loses nothing: no connection, full buckets.
    fn is_idle(&self) -> bool {
        self.conns == 0 && self.joins.is_full() && self.api_failures.is_full()
    }
}

/// Failed API authentications allowed per address: a burst for a misconfigured caller
/// to notice, then one every 6 s, so guessing a token is hopeless even before its length.
const API_FAILURE_BURST: f64 = 20.0;
const API_FAILURES_PER_SEC: f64 = 10.0 / 60.0;

/// An open connection counted against its address; dropping it frees the place.
pub(crate) struct PeerSlot {
    peers: Peers,
    key: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let shared = &self.peers.0;
        let mut table = shared.lock();
        if let Some(entry) = table.get_mut(&self.key) {
            entry.conns = entry.conns.saturating_sub(1);
            if entry.is_idle() {
                table.remove(&self.key);
            }
        }
    }
}

/// The per-address limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerLimits {
    /// Connections per address; 0: none.
    pub(crate) max_conns: usize,
    /// `hello`/`join` frames per minute per address; 0: none.
    pub(crate) per_minute: u32,
    /// Their burst.
    pub(crate) burst: u32,
    /// The server's total connections, which bounds the live entries.
    pub(crate) max_connections: usize,
    /// The bits of an IPv6 address that make one client.
    pub(crate) ipv6_prefix: u8,
}

impl Peers {
    pub(crate) fn new(limits: PeerLimits) -> Self {
        Peers(Arc::new(Shared {
            table: Mutex::new(HashMap::new()),
            max_conns: limits.max_conns,
            join_rate: f64::from(limits.per_minute) / 60.0,
            join_burst: f64::from(limits.burst.max(1)),
            capacity: limits.max_connections.saturating_add(SPARE_ENTRIES),
            ipv6_prefix: limits.ipv6_prefix,
        }))
    }

    /// Counts a new connection from `ip`, or `None` if that address has as many as
    /// allowed.
    pub(crate) fn try_connect(&self, ip: IpAddr) -> Option<PeerSlot> {
        let max = self.0.max_conns;
        let admitted = self.with_entry(ip, |entry| {
            let full = max > 0 && entry.conns >= max;
            if !full {
                entry.conns += 1;
            }
            !full
        });
        admitted.then(|| PeerSlot {
            peers: self.clone(),
            key: key(ip, self.0.ipv6_prefix),
        })
    }

    /// Takes one `hello`/`join` token from `ip`'s bucket; `false` if it is empty.
    pub(crate) fn try_join(&self, ip: IpAddr) -> bool {
        if self.0.join_rate <= 0.0 {
            return true;
        }
        self.with_entry(ip, |e| e.joins.try_take())
    }

    /// Whether `ip` has used up its failed API authentications for now.
    pub(crate) fn api_locked_out(&self, ip: IpAddr) -> bool {
        self.with_entry(ip, |e| !e.api_failures.has_token())
    }

    /// Counts a failed API authentication from `ip`.
    pub(crate) fn api_failed(&self, ip: IpAddr) {
        self.with_entry(ip, |e| {
            e.api_failures.try_take();
        });
    }

    fn with_entry<T>(&self, ip: IpAddr, f: impl FnOnce(&mut Entry) -> T) -> T {
        let shared = &self.0;
        let key = key(ip, shared.ipv6_prefix);
        let mut table = shared.lock();
        if !table.contains_key(&key) && table.len() >= shared.capacity {
            shared.sweep(&mut table);
        }
        f(table.entry(key).or_insert_with(|| shared.fresh()))
    }

    /// Addresses in the table.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.0.lock().len()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Entry>> {
        locks::lock(&self.table)
    }

    fn fresh(&self) -> Entry {
        Entry {
            conns: 0,
            joins: TokenBucket::new(self.join_rate, self.join_burst),
            api_failures: TokenBucket::new(API_FAILURES_PER_SEC, API_FAILURE_BURST),
        }
    }

    /// Makes room: first drops entries that carry nothing, then, if the table is still
    /// full, every entry without a connection.
    fn sweep(&self, table: &mut HashMap<IpAddr, Entry>) {
        table.retain(|_, e| !e.is_idle());
        if table.len() >= self.capacity / 2 {
            table.retain(|_, e| e.conns > 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_conns: usize, per_minute: u32, burst: u32, max_connections: usize) -> PeerLimits {
        PeerLimits {
            max_conns,
            per_minute,
            burst,
            max_connections,
            ipv6_prefix: 56,
        }
    }

    #[test]
    fn an_ipv4_mapped_network_is_its_ipv4_network() {
        let net: IpNet = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(ip("10.200.0.1")) && net.contains(ip("::ffff:10.9.9.9")));
        assert!(!net.contains(ip("11.0.0.1")));
        let one: IpNet = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.1/32");
        assert_eq!(
            one.to_string().parse::<IpNet>(),
            Ok(one),
            "prints as what it parsed to"
        );
    }

    #[test]
    fn a_tally_caps_each_network_and_forgets_it_when_empty() {
        let tally = Tally::new(2, 56);
        let a = tally.try_take(ip("192.0.2.1")).unwrap();
        let b = tally.try_take(ip("192.0.2.1")).unwrap();
        assert!(tally.try_take(ip("192.0.2.1")).is_none(), "a third place");
        let other = tally.try_take(ip("192.0.2.2")).unwrap();
        let v6 = tally.try_take(ip("2001:db8:0:1::1")).unwrap();
        let _v6b = tally.try_take(ip("2001:db8:0:2::1")).unwrap();
        assert!(tally.try_take(ip("2001:db8:0:3::1")).is_none(), "same /56");
        drop((a, other, v6));
        assert!(
            tally.try_take(ip("192.0.2.1")).is_some(),
            "a place came back"
        );
        drop(b);
        assert_eq!(tally.tracked(), 1, "only the /56 still holds a place");
        assert!(
            Tally::new(0, 56).try_take(ip("192.0.2.1")).is_some(),
            "0: no limit"
        );
    }

    #[test]
    fn an_ipv6_client_is_its_network_of_the_configured_size() {
        let a = ip("2001:db8:0:1::1");
        assert_eq!(key(a, 56), key(ip("2001:db8:0:ff::9"), 56), "one /56");
        assert_ne!(key(a, 56), key(ip("2001:db8:0:100::1"), 56), "the next /56");
        assert_ne!(key(a, 64), key(ip("2001:db8:0:2::1"), 64));
        assert_eq!(key(a, 48), key(ip("2001:db8:0:ffff::1"), 48));
        assert_eq!(key(a, 128), a);
        // IPv4, also when mapped into IPv6, is one address.
        assert_eq!(key(ip("::ffff:192.0.2.1"), 16), ip("192.0.2.1"));
        let peers = Peers::new(limits(1, 0, 1, 100));
        let _held = peers.try_connect(ip("2001:db8:0:1::1")).unwrap();
        assert!(
            peers.try_connect(ip("2001:db8:0:7::1")).is_none(),
            "same /56"
        );
        assert!(
            peers.try_connect(ip("2001:db8:1::1")).is_some(),
            "another /56"
        );
    }
    use axum::http::HeaderValue;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn networks_parse_and_contain() {
        let n: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains(ip("10.200.3.4")));
        assert!(!n.contains(ip("11.0.0.1")));
        assert!(n.contains(ip("::ffff:10.1.2.3")), "mapped IPv4");
        let one: IpNet = "192.168.1.7".parse().unwrap();
        assert!(one.contains(ip("192.168.1.7")) && !one.contains(ip("192.168.1.8")));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "host",
            "10.0.0.0/x",
            "10.0.0/8",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = nets(&["127.0.0.0/8", "10.0.0.0/8"]);
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        let h = forwarded(&["198.51.100.7"]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("198.51.100.7"));
        assert_eq!(client_ip(stranger, &h, &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(proxy, &h, &[]), ip("127.0.0.1"));
        // No header: the proxy itself.
        assert_eq!(
            client_ip(proxy, &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["127.0.0.0/8", "10.0.0.0/8"]);
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        // The client forged the first entry; the chain of proxies added the rest.
        let h = forwarded(&["1.1.1.1, 198.51.100.7", "10.0.0.2"]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("198.51.100.7"));
        let h = forwarded(&["[2001:db8::1]:443, 203.0.113.5:80"]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("203.0.113.5"));
        // Garbage stops the walk at the last address a trusted hop vouched for.
        let h = forwarded(&["198.51.100.7, junk, 10.0.0.3"]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("10.0.0.3"));
    }

    #[test]
    fn connections_per_address_are_capped_and_freed() {
        let peers = Peers::new(limits(2, 0, 1, 100));
        let a1 = peers.try_connect(ip("192.0.2.1")).unwrap();
        let _a2 = peers.try_connect(ip("192.0.2.1")).unwrap();
        assert!(peers.try_connect(ip("192.0.2.1")).is_none());
        assert!(
            peers.try_connect(ip("::ffff:192.0.2.1")).is_none(),
            "mapped"
        );
        let _b = peers.try_connect(ip("192.0.2.2")).unwrap();
        drop(a1);
        assert!(peers.try_connect(ip("192.0.2.1")).is_some());
        // An IPv6 /56 (the default) counts as one address.
        let _c1 = peers.try_connect(ip("2001:db8::1")).unwrap();
        let _c2 = peers.try_connect(ip("2001:db8:0:1::2")).unwrap();
        assert!(peers.try_connect(ip("2001:db8::3")).is_none());
        assert!(peers.try_connect(ip("2001:db8:0:100::1")).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn joins_share_one_bucket_per_address() {
        let peers = Peers::new(limits(0, 30, 3, 100));
        let a = ip("192.0.2.1");
        assert_eq!((0..10).filter(|_| peers.try_join(a)).count(), 3);
        assert!(
            peers.try_join(ip("192.0.2.2")),
            "other addresses are unaffected"
        );
        // 30 per minute: one token every 2 s.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!((0..10).filter(|_| peers.try_join(a)).count(), 1);
        let unlimited = Peers::new(limits(0, 0, 1, 100));
        assert!((0..1000).all(|_| unlimited.try_join(a)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_forgets_idle_addresses_and_stays_bounded() {
        let peers = Peers::new(limits(0, 60, 2, 10));
        // A closed connection with a full bucket is forgotten at once.
        drop(peers.try_connect(ip("192.0.2.1")));
        assert_eq!(peers.tracked(), 0);
        // One that used its bucket is kept until the bucket refills.
        let slot = peers.try_connect(ip("192.0.2.1")).unwrap();
        assert!(peers.try_join(ip("192.0.2.1")));
        drop(slot);
        assert_eq!(peers.tracked(), 1);
        // Many addresses that each joined once: the table never grows past capacity,
        // and live connections are never forgotten.
        let live = peers.try_connect(ip("198.51.100.1")).unwrap();
        let capacity = 10 + SPARE_ENTRIES;
        for i in 0..(3 * capacity as u32) {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from_bits(0x0a00_0000 + i));
            assert!(peers.try_join(addr));
            assert!(peers.tracked() <= capacity);
        }
        assert!(peers
            .0
            .lock()
            .get(&ip("198.51.100.1"))
            .is_some_and(|e| e.conns == 1));
        drop(live);
        // After the buckets refill, everything idle goes at the next sweep.
        tokio::time::advance(Duration::from_secs(10)).await;
        let _ = peers.try_join(ip("203.0.113.1"));
        assert!(peers.tracked() <= capacity);
    }
}
