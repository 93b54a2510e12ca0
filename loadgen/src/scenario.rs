//! The shape of one run: which server each client talks to, from which source address,
//! which room it joins, whether it sends and how fast, and for how long. Everything is a
//! pure function of the client's index, so no per-client table is kept (250,000 clients
//! cost nothing here). Also the hard caps every run stays within, and the text format
//! that carries the send timestamp.

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs as _};
use std::time::Duration;

use common::ClientMsg;

/// Most clients one run may open (the `idle` scenario needs 250,000).
pub const MAX_CLIENTS: usize = 300_000;
/// Longest measurement window: a run always ends by itself.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Longest wait for the last messages after the senders stop.
pub const MAX_DRAIN: Duration = Duration::from_secs(60);
/// Highest total send rate, in messages per second.
pub const MAX_RATE: f64 = 5_000_000.0;
/// Most unacknowledged sends one closed-loop sender may have.
pub const MAX_IN_FLIGHT: usize = 10_000;
/// Longest the connect, hello and join phase may take before the run gives up.
pub const MAX_SETUP: Duration = Duration::from_secs(600);
/// Source addresses: 127.0.0.1 ..= 127.0.0.255. Each gives its own ~28k ephemeral ports,
/// so more than one address is what lets a run go beyond ~28k connections.
pub const MAX_SOURCE_IPS: u8 = 255;

/// How the senders send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Nobody sends: connections are held open (the `idle` scenario).
    Idle,
    /// Open loop: this many messages per second in total, spread evenly over the senders,
    /// whatever the server does (so a slow server shows as latency, not as less load).
    Rate(f64),
    /// Closed loop: each sender keeps this many sends unacknowledged, sending the next as
    /// soon as one is acked (the `durable` scenario: as fast as acks allow).
    InFlight(usize),
}

/// How a client carries the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Transport {
    /// A WebSocket (`/ws`).
    #[default]
    #[value(name = "ws")]
    WebSocket,
    /// The fallback over plain HTTP: `GET /sse` carries the server's frames as
    /// Server-Sent Events, `POST /sse/send` the client's (docs/protocol.md).
    #[value(name = "sse")]
    Sse,
}

impl Transport {
    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Transport::WebSocket => "ws",
            Transport::Sse => "sse",
        }
    }
}

/// One run's parameters. Build it, then [`Scenario::validate`] before use.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// WebSocket URLs (`ws://127.0.0.1:PORT/ws`); client `i` uses `urls[i % len]` (an
    /// SSE client the same address's `/sse`).
    pub urls: Vec<String>,
    /// Connections to open.
    pub clients: usize,
    /// Rooms; client `i` joins room `i % rooms`, so members are spread evenly.
    pub rooms: usize,
    /// Clients that send: `0..senders`, so senders are spread over the rooms too.
    pub senders: usize,
    pub load: Load,
    /// The measurement window.
    pub duration: Duration,
    /// After the window, how long to wait at most for outstanding acks and deliveries.
    pub drain: Duration,
    /// Size of each `send` frame in bytes (the text is padded to reach it).
    pub msg_bytes: usize,
    /// Spread clients over 127.0.0.1 ..= 127.0.0.<source_ips>.
    pub source_ips: u8,
    /// Connections being set up (connect, hello, join) at once.
    pub connect_concurrency: usize,
    /// Open the clients in this many equal batches, sampling the server after each.
    pub ramp_steps: usize,
    /// Upper bound on the whole set-up phase.
    pub setup_timeout: Duration,
    /// Room names are `<room_prefix><index>`.
    pub room_prefix: String,
    /// Nicks are `<nick_prefix><index>`; unique per run so runs never collide.
    pub nick_prefix: String,
    /// How the clients that do not send connect (at the address of `urls`).
    pub transport: Transport,
    /// How the senders connect.
    pub sender_transport: Transport,
}

/// A scenario that cannot run, with what to change.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScenarioError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot use {url:?}: {why}")]
    Url { url: String, why: String },
}

impl Scenario {
    /// A small scenario with sensible defaults for one server URL.
    pub fn new(url: impl Into<String>) -> Self {
        Scenario {
            urls: vec![url.into()],
            clients: 100,
            rooms: 1,
            senders: 10,
            load: Load::Rate(100.0),
            duration: Duration::from_secs(10),
            drain: Duration::from_secs(5),
            msg_bytes: 100,
            source_ips: MAX_SOURCE_IPS,
            connect_concurrency: 256,
            ramp_steps: 1,
            setup_timeout: Duration::from_secs(120),
            room_prefix: "bench-".to_owned(),
            nick_prefix: default_nick_prefix(),
            transport: Transport::WebSocket,
            sender_transport: Transport::WebSocket,
        }
    }

    /// Checks every bound; the error says which flag to change.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |msg: String| Err(ScenarioError::Invalid(msg));
        if self.urls.is_empty() {
            return bad("give at least one --url".to_owned());
        }
        if self.clients == 0 || self.clients > MAX_CLIENTS {
            return bad(format!(
                "--clients must be 1..={MAX_CLIENTS} (got {})",
                self.clients
            ));
        }
        if self.rooms == 0 || self.rooms > self.clients {
            return bad(format!(
                "--rooms must be 1..=clients ({}) (got {})",
                self.clients, self.rooms
            ));
        }
        if self.senders > self.clients {
            return bad(format!(
                "--senders must be at most --clients ({}) (got {})",
                self.clients, self.senders
            ));
        }
        match self.load {
            Load::Idle => {}
            Load::Rate(rate) if !(rate > 0.0 && rate <= MAX_RATE) => {
                return bad(format!("--rate must be in (0, {MAX_RATE}] (got {rate})"));
            }
            Load::InFlight(n) if n == 0 || n > MAX_IN_FLIGHT => {
                return bad(format!("--in-flight must be 1..={MAX_IN_FLIGHT} (got {n})"));
            }
            Load::Rate(_) | Load::InFlight(_) if self.senders == 0 => {
                return bad("--senders must be at least 1 when there is traffic".to_owned());
            }
            _ => {}
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return bad(format!(
                "--duration must be more than 0 and at most {}s",
                MAX_DURATION.as_secs()
            ));
        }
        if self.drain > MAX_DRAIN {
            return bad(format!("--drain must be at most {}s", MAX_DRAIN.as_secs()));
        }
        if self.setup_timeout.is_zero() || self.setup_timeout > MAX_SETUP {
            return bad(format!(
                "--setup-timeout must be more than 0 and at most {}s",
                MAX_SETUP.as_secs()
            ));
        }
        if !(64..=4000).contains(&self.msg_bytes) {
            return bad(format!(
                "--msg-bytes must be 64..=4000 (got {})",
                self.msg_bytes
            ));
        }
        if self.source_ips == 0 {
            return bad("--source-ips must be 1..=255".to_owned());
        }
        if self.connect_concurrency == 0 || self.connect_concurrency > 10_000 {
            return bad("--connect-concurrency must be 1..=10000".to_owned());
        }
        if self.ramp_steps == 0 || self.ramp_steps > 100 || self.ramp_steps > self.clients {
            return bad("--ramp-steps must be 1..=100 and at most --clients".to_owned());
        }
        // The server's rules: room names are [a-z0-9_-], at most 64 chars; nicks at most 32.
        let longest_room = format!("{}{}", self.room_prefix, self.rooms - 1);
        if longest_room.len() > 64
            || !longest_room
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return bad(format!(
                "room names like {longest_room:?} break the server's rule ([a-z0-9_-], 1-64 chars): change --room-prefix"
            ));
        }
        if format!("{}{}", self.nick_prefix, self.clients - 1).len() > 32 {
            return bad("--nick-prefix is too long: nicks are at most 32 characters".to_owned());
        }
        for url in &self.urls {
            parse_ws_url(url)?;
        }
        Ok(())
    }

    /// The server addresses, in the order of `urls`.
    pub fn server_addrs(&self) -> Result<Vec<SocketAddr>, ScenarioError> {
        self.urls.iter().map(|u| parse_ws_url(u)).collect()
    }

    /// The room index client `i` joins.
    pub fn room_of(&self, client: usize) -> usize {
        client % self.rooms
    }

    /// The room's name on the wire.
    pub fn room_name(&self, room: usize) -> String {
        format!("{}{room}", self.room_prefix)
    }

    /// How many clients join `room`.
    pub fn members(&self, room: usize) -> usize {
        self.clients / self.rooms + usize::from(room < self.clients % self.rooms)
    }

    /// Whether client `i` sends.
    pub fn is_sender(&self, client: usize) -> bool {
        client < self.senders && self.load != Load::Idle
    }

    /// How client `i` connects.
    pub fn transport_of(&self, client: usize) -> Transport {
        if self.is_sender(client) {
            self.sender_transport
        } else {
            self.transport
        }
    }

    /// Messages per second for each sender (open loop only).
    pub fn rate_per_sender(&self) -> f64 {
        match self.load {
            Load::Rate(rate) => rate / self.senders.max(1) as f64,
            _ => 0.0,
        }
    }

    /// Client `i`'s source address: 127.0.0.1, .2, … .source_ips, then around again.
    pub fn source_ip(&self, client: usize) -> Ipv4Addr {
        let last = (client % usize::from(self.source_ips)) as u8 + 1;
        Ipv4Addr::new(127, 0, 0, last)
    }

    /// Which of `urls` client `i` uses.
    pub fn server_of(&self, client: usize) -> usize {
        client % self.urls.len()
    }

    pub fn nick(&self, client: usize) -> String {
        format!("{}{client}", self.nick_prefix)
    }

    /// Deliveries per second the senders offer: each message goes to every member of its
    /// room (its author included). Open loop only; 0 otherwise.
    pub fn offered_deliveries_per_sec(&self) -> f64 {
        if !matches!(self.load, Load::Rate(_)) {
            // (A sum of no floats is -0.0, which would print as such.)
            return 0.0;
        }
        let per_sender = self.rate_per_sender();
        (0..self.senders)
            .map(|s| per_sender * self.members(self.room_of(s)) as f64)
            .sum()
    }

    /// Connections the run needs file descriptors for, plus a margin for everything else.
    /// An SSE client has a second connection for its POSTs: a sender keeps it, the
    /// others close it once joined.
    pub fn needed_fds(&self) -> u64 {
        let sse = [self.transport, self.sender_transport].contains(&Transport::Sse);
        let posting = if sse {
            self.senders + self.connect_concurrency
        } else {
            0
        };
        (self.clients + posting) as u64 + 64
    }
}

/// Nick prefix unique to this process: `lg<pid in base 36>-`.
fn default_nick_prefix() -> String {
    let mut pid = std::process::id();
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit(pid % 36, 36).unwrap_or('0'));
        pid /= 36;
        if pid == 0 {
            break;
        }
    }
    digits.reverse();
    format!("lg{}-", digits.into_iter().collect::<String>())
}

/// `ws://host:port/path` to a socket address. Only plain `ws://` on an IPv4 loopback
/// address: the load must stay on this machine, and source addresses are 127.0.0.x.
pub fn parse_ws_url(url: &str) -> Result<SocketAddr, ScenarioError> {
    let err = |why: &str| ScenarioError::Url {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| err("only ws:// URLs are supported, e.g. ws://127.0.0.1:3000/ws"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| err(&format!("bad host:port ({e})")))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| err("the host has no IPv4 address"))?;
    if !addr.ip().is_loopback() {
        return Err(err(
            "the load generator only targets this machine (127.0.0.0/8)",
        ));
    }
    Ok(addr)
}

/// Builds the `send` frame for message `seq` of `sender`, stamped with `ts_us`
/// (microseconds since the Unix epoch) and padded so the whole frame is `bytes` long.
/// The text is `<ts_us> <sender>:<seq> xxxx…`: the receiver reads the timestamp back.
pub fn send_frame(room: &str, sender: usize, seq: u64, ts_us: u64, bytes: usize) -> String {
    let id = seq.to_string();
    let head = format!("{ts_us} {sender}:{seq} ");
    let encode = |text: String| {
        serde_json::to_string(&ClientMsg::Send {
            reply_to: None,
            room: room.to_owned(),
            text,
            id: id.clone(),
        })
        .unwrap_or_default()
    };
    let bare = encode(head.clone());
    let pad = bytes.saturating_sub(bare.len());
    if pad == 0 {
        return bare;
    }
    let mut text = head;
    text.extend(std::iter::repeat_n('x', pad));
    encode(text)
}

/// The send timestamp in a message text made by [`send_frame`], if it is one.
pub fn parse_stamp(text: &str) -> Option<u64> {
    let digits = text.split(' ').next()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        Scenario::new("ws://127.0.0.1:3000/ws")
    }

    #[test]
    fn members_are_spread_evenly() {
        let mut s = scenario();
        s.clients = 23;
        s.rooms = 5;
        let sizes: Vec<usize> = (0..5).map(|r| s.members(r)).collect();
        assert_eq!(sizes, vec![5, 5, 5, 4, 4]);
        assert_eq!(sizes.iter().sum::<usize>(), 23);
        for r in 0..5 {
            assert_eq!((0..23).filter(|&i| s.room_of(i) == r).count(), s.members(r));
        }
    }

    #[test]
    fn source_addresses_cycle_over_the_loopback_range() {
        let s = scenario();
        assert_eq!(s.source_ip(0), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(s.source_ip(254), Ipv4Addr::new(127, 0, 0, 255));
        assert_eq!(s.source_ip(255), Ipv4Addr::new(127, 0, 0, 1));
    }

    #[test]
    fn frames_have_the_requested_size_and_carry_the_stamp() {
        let frame = send_frame("bench-0", 3, 17, 1_764_000_000_123_456, 100);
        assert_eq!(frame.len(), 100, "{frame}");
        let msg = common::decode_client(&frame).unwrap();
        let ClientMsg::Send { text, id, room, .. } = msg else {
            panic!("not a send: {frame}")
        };
        assert_eq!((room.as_str(), id.as_str()), ("bench-0", "17"));
        assert_eq!(parse_stamp(&text), Some(1_764_000_000_123_456));
        assert_eq!(parse_stamp("hello there"), None);
        assert_eq!(parse_stamp(""), None);
    }

    #[test]
    fn bounds_are_enforced() {
        let mut s = scenario();
        assert_eq!(s.validate(), Ok(()));
        s.clients = MAX_CLIENTS + 1;
        assert!(s.validate().is_err());
        let mut s = scenario();
        s.duration = Duration::from_secs(3600);
        assert!(s.validate().is_err());
        let mut s = scenario();
        s.load = Load::Rate(0.0);
        assert!(s.validate().is_err());
        let mut s = scenario();
        s.rooms = 0;
        assert!(s.validate().is_err());
        let mut s = scenario();
        s.urls = vec!["ws://10.0.0.1:3000/ws".to_owned()];
        assert!(matches!(s.validate(), Err(ScenarioError::Url { .. })));
        let mut s = scenario();
        s.room_prefix = "Bench ".to_owned();
        assert!(s.validate().is_err());
    }

    #[test]
    fn offered_load_counts_every_member() {
        let mut s = scenario();
        s.clients = 1000;
        s.rooms = 1;
        s.senders = 10;
        s.load = Load::Rate(50.0);
        assert!((s.offered_deliveries_per_sec() - 50_000.0).abs() < 1e-6);
    }
}
