//! The result of a run: one JSON object with stable field names (printed as one line,
//! appended to `results.jsonl` by `cargo xtask bench`), and a short summary for people.
//!
//! Field names are a contract with whoever reads the results: add fields, never rename
//! or remove one without bumping [`SCHEMA`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::measure::Latency;

/// Version of the report's layout.
pub const SCHEMA: u32 = 1;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub schema: u32,
    /// Free text naming the run (`--label`), e.g. `fanout n=5000 rate=100`.
    pub label: String,
    pub params: Params,
    pub connect: Connect,
    /// Length of the measurement window, in seconds (as measured).
    pub window_s: f64,
    pub sent: u64,
    pub acked: u64,
    /// Sends the server refused with an `error` frame (e.g. `rate_limited`).
    pub refused: u64,
    /// Sends with neither ack nor refusal when the run ended.
    pub unanswered: u64,
    /// Acked messages per second over the window.
    pub acked_per_s: f64,
    /// Deliveries the senders offered per second (rate × room members); 0 without a rate.
    pub offered_per_s: f64,
    /// `message` frames received, in total (window and drain).
    pub delivered: u64,
    /// `message` frames received during the window, per second of it.
    pub delivered_per_s: f64,
    /// Offsets skipped: a member saw a later message but never this one.
    pub lost: u64,
    /// Offsets a member saw twice (or out of order).
    pub duplicated: u64,
    /// Acked messages a connected member had not received when the run ended (still on
    /// their way after the drain period, or lost at the tail).
    pub undelivered: u64,
    /// Presence, notification and typing frames received (counted, not checked).
    pub events: u64,
    /// Send-to-receive latency of every delivery (including the drain).
    pub latency: Latency,
    /// Connections that ended before the run told them to.
    pub disconnected: u64,
    /// Error codes, set-up failures and disconnects, by reason.
    pub reasons: BTreeMap<String, u64>,
    /// The server process(es), when `--server-pid` was given.
    pub server: Option<Server>,
    /// The load generator's own CPU use over the window, in % of one core: near 100 %
    /// means the instrument, not the server, may be the limit.
    pub loadgen_cpu_pct: f64,
    pub loadgen_rss_bytes: u64,
    /// Server memory after each ramp step (`--ramp-steps`).
    pub ramp: Vec<RampPoint>,
    /// True when every client connected and joined, nothing was lost, duplicated or left
    /// undelivered, and no connection dropped (unless the run killed the server itself).
    pub ok: bool,
}

/// The run's shape, echoed so a result line stands on its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Params {
    pub urls: Vec<String>,
    pub clients: usize,
    pub rooms: usize,
    pub senders: usize,
    /// Total send rate (messages/s), when open loop.
    pub rate: Option<f64>,
    /// Unacked sends per sender, when closed loop.
    pub in_flight: Option<usize>,
    pub duration_s: f64,
    pub drain_s: f64,
    pub msg_bytes: usize,
    pub source_ips: u8,
    /// How the clients that do not send connected: `ws` or `sse` (lines from before
    /// the SSE transport have none: `ws`).
    #[serde(default = "ws")]
    pub transport: String,
    /// How the senders connected.
    #[serde(default = "ws")]
    pub sender_transport: String,
}

fn ws() -> String {
    "ws".to_owned()
}

/// The set-up phase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Connect {
    pub attempted: u64,
    /// WebSocket handshakes completed.
    pub connected: u64,
    /// Connections that completed `hello` and `join`.
    pub ready: u64,
    pub failed: u64,
    /// Seconds spent connecting and joining (ramp pauses excluded).
    pub seconds: f64,
    /// Ready connections per second of that.
    pub per_s: f64,
}

/// The server's cost over the window, summed over its processes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Server {
    pub pids: Vec<u32>,
    /// CPU over the window, in % of one core (utime + stime).
    pub cpu_pct: f64,
    /// Resident memory before the first connection.
    pub rss_bytes_before: u64,
    /// Resident memory at the end of the window.
    pub rss_bytes_end: u64,
    /// Highest resident memory sampled during the window.
    pub rss_bytes_max: u64,
    /// (RSS at the end of the set-up − RSS before) / ready connections.
    pub rss_per_conn_bytes: f64,
}

/// Server memory after a ramp step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RampPoint {
    pub connections: u64,
    pub server_rss_bytes: u64,
}

/// What every mode's report gives the command line: one JSON line (what `cargo xtask
/// bench` collects), a few lines for people, and whether the run passed.
pub trait RunReport: Serialize {
    /// A few lines for people.
    fn human(&self) -> String;

    /// Whether the run met its checks (no loss, no mismatch, …).
    fn passed(&self) -> bool;

    /// The one JSON line.
    fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl RunReport for Report {
    fn passed(&self) -> bool {
        self.ok
    }

    fn human(&self) -> String {
        let mut out = String::new();
        let p = &self.params;
        let c = &self.connect;
        let _ = writeln!(
            out,
            "loadgen {}: {} clients in {} room(s), {} sender(s), {:.0}s window",
            self.label, p.clients, p.rooms, p.senders, self.window_s
        );
        if p.transport != "ws" || p.sender_transport != "ws" {
            let _ = writeln!(
                out,
                "  transport: {} (senders: {})",
                p.transport, p.sender_transport
            );
        }
        let _ = writeln!(
            out,
            "  connect: {} ready of {} ({} failed) in {:.1}s = {:.0} conn/s",
            c.ready, c.attempted, c.failed, c.seconds, c.per_s
        );
        if self.sent > 0 {
            let _ = writeln!(
                out,
                "  sent {} / acked {} ({:.0}/s) / refused {} / unanswered {}",
                self.sent, self.acked, self.acked_per_s, self.refused, self.unanswered
            );
            let _ = writeln!(
                out,
                "  delivered {:.0} msg/s (offered {:.0}); {} in total",
                self.delivered_per_s, self.offered_per_s, self.delivered
            );
            let l = &self.latency;
            let _ = writeln!(
                out,
                "  latency p50 {} / p99 {} / p99.9 {} / max {}",
                ms(l.p50_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.max_us)
            );
            let _ = writeln!(
                out,
                "  lost {} / duplicated {} / undelivered at end {}",
                self.lost, self.duplicated, self.undelivered
            );
        }
        if let Some(s) = &self.server {
            let _ = writeln!(
                out,
                "  server: CPU {:.1}% of a core, RSS {} → {} (max {}), {:.0} B per connection",
                s.cpu_pct,
                mib(s.rss_bytes_before),
                mib(s.rss_bytes_end),
                mib(s.rss_bytes_max),
                s.rss_per_conn_bytes
            );
        }
        let _ = writeln!(
            out,
            "  loadgen: CPU {:.1}% of a core, RSS {}",
            self.loadgen_cpu_pct,
            mib(self.loadgen_rss_bytes)
        );
        if self.disconnected > 0 || !self.reasons.is_empty() {
            let reasons: Vec<String> = self
                .reasons
                .iter()
                .map(|(k, v)| format!("{k} ×{v}"))
                .collect();
            let _ = writeln!(
                out,
                "  disconnected {}; {}",
                self.disconnected,
                reasons.join(", ")
            );
        }
        let _ = write!(out, "  result: {}", if self.ok { "OK" } else { "NOT OK" });
        out
    }
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
