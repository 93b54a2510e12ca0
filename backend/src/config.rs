//! Every knob of the server in one place: parsed from flags and `HUDDLE_*` environment
//! variables by clap, with each default documented on its field.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use common::{parse_duration, Limits};

/// The longest any of the server's timers may be set to. Far beyond any sensible
/// setting, and far below where adding it to a clock reading could overflow.
const MAX_TIMER: Duration = Duration::from_secs(24 * 60 * 60);

/// Huddle: a real-time chat server (WebSocket protocol v1, durable history, web app).
///
/// Every flag can also be set through the environment variable named in its help.
#[derive(Debug, Clone, Parser)]
#[command(name = "huddle", version, about, long_about = None)]
pub struct Config {
    /// What to do instead of serving (none: serve).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on (HTTP, the web app, and the WebSocket at /ws).
    #[arg(long, env = "HUDDLE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// SQLite database file holding the message history (created if missing).
    #[arg(long, env = "HUDDLE_DB", default_value = "huddle.db")]
    pub db: PathBuf,

    /// Log filter, in `RUST_LOG` syntax (for example `info` or `backend=debug`).
    #[arg(long, env = "HUDDLE_LOG", default_value = "info")]
    pub log: String,

    /// Log line format: `pretty` (human-readable text) or `json` (one JSON object per
    /// line, for log collectors).
    #[arg(long, env = "HUDDLE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Largest WebSocket frame accepted from a client, in bytes; larger closes with 1009.
    #[arg(long, env = "HUDDLE_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: u32,

    /// Sustained `send`s per second allowed per connection.
    #[arg(long, env = "HUDDLE_RATE_PER_SEC", default_value_t = 20)]
    pub rate_per_sec: u32,

    /// Burst of `send`s allowed per connection above the sustained rate.
    #[arg(long, env = "HUDDLE_RATE_BURST", default_value_t = 40)]
    pub rate_burst: u32,

    /// Sustained frames of every type per second per connection (bursts of twice as
    /// many), raised to --rate-per-sec if that is higher; beyond it a frame gets
    /// `rate_limited` and is not executed.
    #[arg(long, env = "HUDDLE_FRAME_RATE", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub frame_rate: u32,

    /// Stored messages one connection may read per second through `history` and
    /// `join {since}` replays (bursts of 5 seconds' worth). A `history` beyond it gets
    /// `rate_limited`; a replay beyond it gets `recovered: false`.
    #[arg(long, env = "HUDDLE_READ_RATE", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub read_rate: u32,

    /// Bytes of stored messages one connection may read per second (bursts of 5
    /// seconds' worth), as --read-rate.
    #[arg(long, env = "HUDDLE_READ_BYTES", default_value_t = 256 * 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub read_bytes: u32,

    /// Frames queued for one connection before it counts as a slow consumer (closed with
    /// 4008). Keep it above --max-batch: one commit batch can land in a room at once.
    #[arg(long, env = "HUDDLE_OUTBOX", default_value_t = 1024)]
    pub outbox: usize,

    /// Interval between WebSocket pings sent to each client (e.g. `30s`, `500ms`).
    #[arg(long, env = "HUDDLE_PING_INTERVAL", default_value = "30s", value_parser = timer)]
    pub ping_interval: Duration,

    /// A client that sends nothing (no pong, no frame) for this long is closed, and so is
    /// one that takes no frame from the server for this long (a full socket).
    #[arg(long, env = "HUDDLE_IDLE_TIMEOUT", default_value = "90s", value_parser = timer)]
    pub idle_timeout: Duration,

    /// Most messages written to the database in one transaction (group commit).
    #[arg(long, env = "HUDDLE_MAX_BATCH", default_value_t = 256)]
    pub max_batch: usize,

    /// Appends waiting for the history writer before senders wait.
    #[arg(long, env = "HUDDLE_WRITE_QUEUE", default_value_t = 8192)]
    pub write_queue: usize,

    /// Most WebSocket connections at once; more are closed with 1008 right after the upgrade.
    #[arg(long, env = "HUDDLE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Rooms with more members than this (across instances) get no `joined`/`left`
    /// notifications and no `presence` lists when someone comes or goes: each would be
    /// sent to every member, so a crowd arriving would cost members² frames, and a list
    /// of thousands of nicks per change. The joiner gets the first page of the list in
    /// `joined` (this many nicks, at most 100) with the total, and may page through the
    /// rest with `members`.
    #[arg(long, env = "HUDDLE_ANNOUNCE_LIMIT", default_value_t = 200)]
    pub announce_limit: u64,

    /// Most rooms one connection may be in at once.
    #[arg(long, env = "HUDDLE_MAX_ROOMS_PER_CONN", default_value_t = 100)]
    pub max_rooms_per_conn: usize,

    /// Most WebSocket connections from one client address (an IPv6 network of
    /// --ipv6-prefix bits counts as one); more are closed with 1008 right after the
    /// upgrade. 0: no limit.
    #[arg(long, env = "HUDDLE_MAX_CONNECTIONS_PER_IP", default_value_t = 64)]
    pub max_connections_per_ip: usize,

    /// Time a client has to send a request's headers, and the longest an idle keep-alive
    /// HTTP connection stays open; slower ones are dropped.
    #[arg(long, env = "HUDDLE_HEADER_TIMEOUT", default_value = "10s", value_parser = timer)]
    pub header_timeout: Duration,

    /// Most open TCP connections that are not WebSockets (yet): pages, API calls, TLS
    /// handshakes and requests still being read. Beyond it new ones get 503 and are
    /// closed. WebSockets count against --max-connections instead.
    #[arg(long, env = "HUDDLE_MAX_HTTP_CONNECTIONS", default_value_t = 4096, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_http_connections: usize,

    /// The same per client address (an IPv6 network of --ipv6-prefix bits counts as
    /// one); --trusted-proxies are exempt, since every client behind them shares their
    /// address. 0: no limit.
    #[arg(long, env = "HUDDLE_MAX_HTTP_CONNECTIONS_PER_IP", default_value_t = 32)]
    pub max_http_connections_per_ip: usize,

    /// After a user's last connection ends, their nick stays theirs this long (nobody
    /// else can take it between a reload and the reconnect) and the others hear that
    /// they left only then, so a reload shows neither a `left` nor a `joined` (`0s`: at
    /// once).
    #[arg(long, env = "HUDDLE_PRESENCE_GRACE", default_value = "5s", value_parser = grace)]
    pub presence_grace: Duration,

    /// How long after posting a message its author may still edit it (`10m`, `2h`,
    /// `1d`); unset: always. Deleting is not limited.
    #[arg(long, env = "HUDDLE_EDIT_WINDOW", value_parser = edit_window)]
    pub edit_window: Option<Duration>,

    /// Most connections one user may hold at once (tabs, devices); opening one more
    /// closes their oldest with 4001. 0: no limit.
    #[arg(long, env = "HUDDLE_MAX_CONNECTIONS_PER_USER", default_value_t = 10)]
    pub max_connections_per_user: usize,

    /// Whether people may sign in as guests (`hello {nick}`); `off` admits only
    /// accounts and host-app tokens (a guest `hello` gets `guests_disabled`).
    #[arg(long, env = "HUDDLE_GUESTS", default_value = "on", value_parser = on_off)]
    pub guests: bool,

    /// Whether anyone may create an account over HTTP (`POST /api/auth/register`);
    /// `closed`: accounts are made with `huddle user add NAME` only.
    #[arg(long, env = "HUDDLE_REGISTRATION", value_enum, default_value_t = Registration::Open)]
    pub registration: Registration,

    /// The host application's shared secret for HS256 sign-in tokens (`hello {token}`
    /// with a JWT), at least 32 bytes. Prefer the environment variable over the flag, so
    /// the secret stays out of process listings.
    #[arg(
        long,
        env = "HUDDLE_JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "jwt_public_key"
    )]
    pub jwt_secret: Option<String>,

    /// A PEM file with the host application's public key (RSA for RS256, EC P-256 for
    /// ES256) that verifies its sign-in tokens.
    #[arg(long, env = "HUDDLE_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,

    /// How long after an SSE stream dropped an EventSource reconnecting with its
    /// `Last-Event-ID` may resume its session, on any instance (`0s`: never).
    #[arg(long, env = "HUDDLE_SSE_RESUME", default_value = "2m", value_parser = grace)]
    pub sse_resume: Duration,

    /// A connection that has not completed a `hello` this long after opening is closed
    /// with 1008 ("hello timeout").
    #[arg(long, env = "HUDDLE_HELLO_TIMEOUT", default_value = "10s", value_parser = timer)]
    pub hello_timeout: Duration,

    /// Sustained `hello` and `join` frames per minute allowed per client address, shared
    /// by all its connections; beyond it they get `rate_limited`. 0: no limit.
    #[arg(long, env = "HUDDLE_IP_JOIN_RATE", default_value_t = 30)]
    pub ip_join_rate: u32,

    /// Burst of `hello` and `join` frames allowed per client address above the rate.
    #[arg(long, env = "HUDDLE_IP_JOIN_BURST", default_value_t = 60)]
    pub ip_join_burst: u32,

    /// How many leading bits of an IPv6 address make one client for the per-address
    /// limits (16 to 128). Subscribers commonly get a /56 or a /48, so counting smaller
    /// networks would let one of them take many places.
    #[arg(long, env = "HUDDLE_IPV6_PREFIX", default_value_t = 56, value_parser = clap::value_parser!(u8).range(16..=128))]
    pub ipv6_prefix: u8,

    /// Proxies whose `X-Forwarded-For` names the client address used by the per-address
    /// limits (comma-separated IPs or networks; empty: trust none). Behind a proxy on
    /// another machine, add its address.
    // `::std::vec::Vec` makes clap parse the whole list as one value, so "" is the empty
    // list rather than an invalid entry.
    #[arg(
        long,
        env = "HUDDLE_TRUSTED_PROXIES",
        default_value = "127.0.0.0/8,::1",
        value_parser = parse_list::<crate::peers::IpNet>
    )]
    pub trusted_proxies: ::std::vec::Vec<crate::peers::IpNet>,

    /// Origins whose pages may open a WebSocket, comma-separated: `scheme://host[:port]`,
    /// port `*` for any, or `*` for every origin. The server's own host (Origin = Host)
    /// is always allowed; unset or empty, on a loopback address, adds http(s)://127.0.0.1,
    /// localhost and `[::1]` on any port (local development). Others get HTTP 403.
    #[arg(
        long,
        env = "HUDDLE_ALLOWED_ORIGINS",
        default_value = "",
        hide_default_value = true,
        value_parser = parse_list::<crate::http::origin::OriginPattern>
    )]
    pub allowed_origins: ::std::vec::Vec<crate::http::origin::OriginPattern>,

    /// Host names (with an optional port) clients use to reach this server,
    /// comma-separated, e.g. `chat.example.com`. Requests naming another `Host` get 421
    /// on /ws, the API and /metrics, which stops DNS-rebinding pages. Unset: on a
    /// loopback address only loopback names (or what a trusted proxy forwards);
    /// elsewhere any host (with a warning).
    #[arg(
        long,
        env = "HUDDLE_PUBLIC_HOST",
        default_value = "",
        hide_default_value = true,
        value_parser = parse_list::<crate::http::origin::PublicHost>
    )]
    pub public_host: ::std::vec::Vec<crate::http::origin::PublicHost>,

    /// PEM certificate chain: with --tls-key, serve HTTPS and wss:// instead of plain HTTP.
    #[arg(long, env = "HUDDLE_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for --tls-cert.
    #[arg(long, env = "HUDDLE_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,

    /// Bearer token for `POST /api/rooms/{room}/notifications`; unset (the default)
    /// disables the notifications API. Visible ASCII, no spaces. Prefer the environment
    /// variable: command lines are visible to other local users.
    #[arg(long, env = "HUDDLE_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<crate::http::api::ApiToken>,

    /// A file of API keys for deployments with several callers: one key per line, then
    /// its scopes separated by spaces or commas (`rooms:notify`, `users:notify`,
    /// `read`); `#` starts a comment. Keys are compared in constant time and never
    /// logged. Works beside --api-token (which has every scope).
    #[arg(long, env = "HUDDLE_API_KEYS", value_name = "FILE")]
    pub api_keys: Option<PathBuf>,

    /// How long an alert waits for one of its user's open connections to read it
    /// before it is sent as a Web Push (an alert for a user with no connection is
    /// pushed at once).
    #[arg(long, env = "HUDDLE_PUSH_DELAY", default_value = "60s", value_parser = grace)]
    pub push_delay: Duration,

    /// The VAPID private key (base64url, 32 bytes) that signs Web Pushes. Unset: one is
    /// generated on first start and stored with the data, so browsers' subscriptions
    /// keep working across restarts and every instance of a cluster signs alike.
    #[arg(long, env = "HUDDLE_VAPID_PRIVATE_KEY", hide_env_values = true)]
    pub vapid_private_key: Option<String>,

    /// Who push services may contact about this server's pushes (RFC 8292 `sub`): a
    /// `mailto:` or `https:` URL.
    #[arg(
        long,
        env = "HUDDLE_VAPID_SUBJECT",
        default_value = "mailto:admin@localhost"
    )]
    pub vapid_subject: String,

    /// The push services browsers' subscriptions may point at (a host, or a domain
    /// whose subdomains count too), comma-separated: those of Chrome, Firefox, Safari and
    /// Edge by default. A subscription elsewhere is refused, so nobody can make the
    /// server send requests to a host of their choosing.
    #[arg(
        long,
        env = "HUDDLE_PUSH_HOSTS",
        value_delimiter = ',',
        default_value = "fcm.googleapis.com,push.services.mozilla.com,web.push.apple.com,notify.windows.com"
    )]
    pub push_hosts: Vec<String>,

    /// Most Web Pushes one user gets per minute; alerts beyond it stay in the inbox
    /// without a push.
    #[arg(long, env = "HUDDLE_PUSH_RATE", default_value_t = 10)]
    pub push_rate: u32,

    /// Redis for several instances sharing one chat (`redis://host:port/db`): history in
    /// Redis Streams, fan-out, member lists and nick ownership across every instance
    /// pointing at it, instead of SQLite and one process. Unset (the default): one
    /// instance with SQLite (--db).
    #[arg(
        long,
        env = "HUDDLE_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub redis: Option<String>,

    /// How much history to keep: an age (`30d`, `12h`), a number of messages per room
    /// (`10000`), or both (`30d,10000`); older messages are deleted in the background,
    /// and rooms left empty stop being listed. Unset: keep everything (with --redis,
    /// --history-max still applies).
    #[arg(
        long,
        env = "HUDDLE_RETENTION",
        default_value = "",
        hide_default_value = true
    )]
    pub retention: crate::store::Retention,

    /// How often retention runs (for tests; not worth tuning otherwise).
    #[arg(long, env = "HUDDLE_PRUNE_INTERVAL", default_value = "60s", value_parser = timer, hide = true)]
    pub prune_interval: Duration,

    /// Most rooms with stored messages, server-wide; a `send` that would create another
    /// gets `room_limit`. 0: no limit.
    #[arg(long, env = "HUDDLE_MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: u64,

    /// With --redis: entries kept per room (messages, edits, deletions, reactions;
    /// approximately: streams are trimmed with `MAXLEN ~`); older ones are gone from
    /// history and `since` recovery.
    #[arg(long, env = "HUDDLE_HISTORY_MAX", default_value_t = 10_000)]
    pub history_max: u64,

    /// With --redis: the prefix of every Redis key and channel, so several deployments
    /// can share one Redis (1 to 64 of A-Z a-z 0-9 _ . : -).
    #[arg(
        long,
        env = "HUDDLE_REDIS_PREFIX",
        value_name = "PREFIX",
        default_value = crate::cluster::keys::DEFAULT_PREFIX,
        value_parser = parse_redis_prefix
    )]
    pub redis_prefix: String,
}

fn parse_redis_prefix(raw: &str) -> Result<String, String> {
    crate::cluster::keys::Keys::new(raw)
        .map(|_| raw.to_owned())
        .map_err(|e| e.to_string())
}

impl Config {
    /// The defaults, with the database at `db`: what tests and embedders start from.
    pub fn with_db(db: impl Into<PathBuf>) -> Self {
        let mut config = Config::parse_from(["huddle"]);
        config.db = db.into();
        config
    }

    /// The per-connection frame bucket: (sustained per second, burst). Never below the
    /// `send` limit, so raising that (as benchmarks do) does not trip this one first.
    pub(crate) fn frame_bucket(&self) -> (f64, f64) {
        let rate = self.frame_rate.max(self.rate_per_sec);
        let burst = self.frame_rate.saturating_mul(2).max(self.rate_burst);
        (f64::from(rate), f64::from(burst))
    }

    /// The limits advertised to clients in `welcome`, derived from this configuration.
    pub fn limits(&self) -> Limits {
        Limits {
            rate_per_sec: self.rate_per_sec,
            rate_burst: self.rate_burst,
            max_frame_bytes: self.max_frame_bytes,
            edit_window_ms: self.edit_window.map(|w| w.as_millis() as u64),
            ..Limits::default()
        }
    }
}

/// The commands besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Manage built-in accounts (in the store the flags name: --db or --redis).
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
}

/// `huddle user ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum UserCommand {
    /// Create an account NAME; its password is read from the first line of standard
    /// input (`printf '%s\n' "$PASSWORD" | huddle user add alice`).
    Add {
        /// 1 to 32 of a-z, 0-9, '-', '_' and '.'.
        name: String,
    },
}

/// Who may create accounts (`--registration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Registration {
    /// Anyone, over HTTP.
    Open,
    /// Only an operator, on the command line.
    Closed,
}

/// `on` or `off`.
fn on_off(raw: &str) -> Result<bool, String> {
    match raw {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("{raw:?} is neither on nor off")),
    }
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text for people: time, level, the connection's span, message, fields.
    Pretty,
    /// One JSON object per line; span fields (the connection id) included.
    Json,
}

/// Parses a comma-separated list, skipping empty entries.
fn parse_list<T: std::str::FromStr>(raw: &str) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| item.parse().map_err(|e: T::Err| e.to_string()))
        .collect()
}

/// A duration for one of the server's timers: not zero (a zero ping interval or timeout
/// would fire at once, forever) and at most a day.
fn timer(raw: &str) -> Result<Duration, String> {
    let d = parse_duration(raw)?;
    if d.is_zero() {
        return Err(format!("{raw:?} is zero; it must be at least 1ms"));
    }
    if d > MAX_TIMER {
        return Err(format!("{raw:?} is longer than a day (24h)"));
    }
    Ok(d)
}

/// A grace period: zero (none) up to an hour.
fn edit_window(raw: &str) -> Result<Duration, String> {
    let d = parse_duration(raw)?;
    if d.is_zero() {
        return Err(format!(
            "{raw:?} would forbid every edit; leave --edit-window unset to allow edits at any time"
        ));
    }
    Ok(d)
}

fn grace(raw: &str) -> Result<Duration, String> {
    let d = parse_duration(raw)?;
    if d > Duration::from_secs(60 * 60) {
        return Err(format!("{raw:?} is longer than an hour (60m)"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        let nets: Vec<crate::peers::IpNet> = parse_list(" 10.0.0.0/8 ,, ::1 ").unwrap();
        assert_eq!(nets.len(), 2);
        assert_eq!(parse_list::<crate::peers::IpNet>("").unwrap(), vec![]);
        assert!(parse_list::<crate::peers::IpNet>("10.0.0.1,bogus").is_err());
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::with_db("x.db");
        assert_eq!(c.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.limits(), Limits::default());
        assert_eq!(c.ping_interval, Duration::from_secs(30));
        assert_eq!(c.idle_timeout, Duration::from_secs(90));
        assert_eq!(c.hello_timeout, Duration::from_secs(10));
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(c.allowed_origins.is_empty() && c.tls_cert.is_none() && c.tls_key.is_none());
        assert!(c.redis.is_none());
        assert_eq!(c.history_max, 10_000);
    }

    #[test]
    fn the_edit_window_is_a_positive_duration_advertised_in_the_limits() {
        for bad in ["0s", "0", "soon", "5 parsecs"] {
            let err = Config::try_parse_from(["huddle", "--edit-window", bad])
                .expect_err(bad)
                .to_string();
            assert!(err.contains("--edit-window"), "{bad}: {err}");
        }
        let c = Config::try_parse_from(["huddle", "--edit-window", "15m"]).unwrap();
        assert_eq!(c.edit_window, Some(Duration::from_secs(900)));
        assert_eq!(c.limits().edit_window_ms, Some(900_000));
        assert_eq!(Config::with_db("x.db").limits().edit_window_ms, None);
    }

    #[test]
    fn the_sse_resume_window_is_at_most_an_hour_and_zero_turns_it_off() {
        for bad in ["61m", "2h", "soon", "5 parsecs"] {
            let err = Config::try_parse_from(["huddle", "--sse-resume", bad])
                .expect_err(bad)
                .to_string();
            assert!(err.contains("--sse-resume"), "{bad}: {err}");
        }
        assert_eq!(Config::with_db("x.db").sse_resume, Duration::from_secs(120));
        let off = Config::try_parse_from(["huddle", "--sse-resume", "0s"]).unwrap();
        assert!(off.sse_resume.is_zero());
    }

    #[test]
    fn timers_refuse_zero_and_overflow_with_one_line() {
        for bad in ["0ms", "0", "999999999999999999m", "25h", "1441m"] {
            let err = Config::try_parse_from(["huddle", "--ping-interval", bad])
                .expect_err(bad)
                .to_string();
            let first = err.lines().next().unwrap_or_default();
            assert!(first.contains("--ping-interval"), "{bad}: {err}");
        }
        let c = Config::try_parse_from([
            "huddle",
            "--idle-timeout",
            "1ms",
            "--hello-timeout",
            "1440m",
        ])
        .unwrap();
        assert_eq!(c.idle_timeout, Duration::from_millis(1));
        assert_eq!(c.hello_timeout, MAX_TIMER);
    }
}
