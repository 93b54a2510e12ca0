//! Every knob of the server in one place: parsed from flags and `HUDDLE_*` environment
//! variables by clap, with each default documented on its field.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use common::Limits;

/// Huddle: a real-time chat server (WebSocket protocol v1, durable history, web app).
///
/// Every flag can also be set through the environment variable named in its help.
#[derive(Debug, Clone, Parser)]
#[command(name = "huddle", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on (HTTP, the web app, and the WebSocket at /ws).
    #[arg(long, env = "HUDDLE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// SQLite database file holding the message history (created if missing).
    #[arg(long, env = "HUDDLE_DB", default_value = "huddle.db")]
    pub db: PathBuf,

    /// Log filter, in `RUST_LOG` syntax (for example `info` or `backend=debug`).
    #[arg(long, env = "HUDDLE_LOG", default_value = "info")]
    pub log: String,

    /// Largest WebSocket frame accepted from a client, in bytes; larger closes with 1009.
    #[arg(long, env = "HUDDLE_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: u32,

    /// Sustained `send`s per second allowed per connection.
    #[arg(long, env = "HUDDLE_RATE_PER_SEC", default_value_t = 20)]
    pub rate_per_sec: u32,

    /// Burst of `send`s allowed per connection above the sustained rate.
    #[arg(long, env = "HUDDLE_RATE_BURST", default_value_t = 40)]
    pub rate_burst: u32,

    /// Frames queued for one connection before it counts as a slow consumer (closed with
    /// 4008). Keep it above --max-batch: one commit batch can land in a room at once.
    #[arg(long, env = "HUDDLE_OUTBOX", default_value_t = 1024)]
    pub outbox: usize,

    /// Interval between WebSocket pings sent to each client (e.g. `30s`, `500ms`).
    #[arg(long, env = "HUDDLE_PING_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub ping_interval: Duration,

    /// A client that sends nothing (no pong, no frame) for this long is closed.
    #[arg(long, env = "HUDDLE_IDLE_TIMEOUT", default_value = "90s", value_parser = parse_duration)]
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

    /// Most rooms one connection may be in at once.
    #[arg(long, env = "HUDDLE_MAX_ROOMS_PER_CONN", default_value_t = 100)]
    pub max_rooms_per_conn: usize,
}

impl Config {
    /// The defaults, with the database at `db`: what tests and embedders start from.
    pub fn with_db(db: impl Into<PathBuf>) -> Self {
        let mut config = Config::parse_from(["huddle"]);
        config.db = db.into();
        config
    }

    /// The limits advertised to clients in `welcome`, derived from this configuration.
    pub fn limits(&self) -> Limits {
        Limits {
            rate_per_sec: self.rate_per_sec,
            rate_burst: self.rate_burst,
            max_frame_bytes: self.max_frame_bytes,
            ..Limits::default()
        }
    }
}

/// Parses `250ms`, `30s`, `5m` or a bare number of seconds.
fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (number, unit) = match raw.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => raw.split_at(i),
        None => (raw, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration; write e.g. 30s, 500ms or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("unknown unit in {raw:?}; use ms, s or m")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::with_db("x.db");
        assert_eq!(c.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.limits(), Limits::default());
        assert_eq!(c.ping_interval, Duration::from_secs(30));
        assert_eq!(c.idle_timeout, Duration::from_secs(90));
    }
}
