//! `loadgen alerts`: how fast one message's alerts reach the inboxes of a big room.
//!
//! N guests (default 1,000) each `hello` and `join` one room; member 0 is the sender.
//! Two variants:
//!
//! - **mentions**: every member keeps the default level (`mentions`); each message names
//!   K members as `@nick` (a sliding window over members 1..N, so every member is named
//!   about equally often), so it makes K `mention` alerts;
//! - **all**: every member sets `room_notify {level: "all"}` first; each message (short,
//!   naming nobody) makes N − 1 `message` alerts.
//!
//! The sender posts M messages as fast as acks allow with at most `in_flight` unacked.
//! Each text starts with the time it was sent (µs on this process's clock); an alert's
//! body is the text's first 200 characters, so every member reads the stamp back from
//! the alert and records send→alert latency. Every member checks its alerts: `seq`
//! exactly one above the previous one (from `welcome.inbox.head`), the right kind, and
//! at the end exactly the number of alerts expected for it. The rate is alerts received
//! by all members per second, from the first send to the last alert.
//!
//! Members also receive every `message` frame of the room (they are members); those are
//! skipped by their type without decoding the rest, so the instrument spends its time on
//! the alerts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{AlertKind, ClientMsg, NotifyLevel, ServerMsg};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::guest::{Guest, STEP_TIMEOUT};
use crate::measure::Latency;
use crate::procstat::{ticks_per_sec, Proc, Sample};
use crate::report::RunReport;
use crate::scenario::parse_ws_url;
use crate::signins::{cpus_allowed, online_cpus};

/// Most members one run opens.
pub const MAX_MEMBERS: usize = 20_000;
/// Most messages one run sends.
pub const MAX_MESSAGES: usize = 100_000;
/// Longest the set-up (connecting, joining, levels) may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(180);
/// Longest the run may wait for alerts after the last ack.
pub const MAX_DRAIN: Duration = Duration::from_secs(600);
/// After the last expected alert, how long members keep reading for duplicates.
const LINGER: Duration = Duration::from_millis(500);
/// Version of the report's layout.
pub const SCHEMA: u32 = 1;

/// Which alerts a message makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Each message names this many members as `@nick`.
    Mentions { per_message: usize },
    /// Every member chose `all`: each message alerts all but its sender.
    All,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct AlertOptions {
    /// The server's WebSocket URL (`ws://127.0.0.1:PORT/ws`).
    pub url: String,
    /// Members of the room, the sender included.
    pub members: usize,
    /// Messages the sender posts.
    pub messages: usize,
    pub mode: Mode,
    /// Unacked sends at once.
    pub in_flight: usize,
    /// Messages per second (open loop, still within `in_flight`); `None`: as fast as
    /// acks allow.
    pub rate: Option<f64>,
    /// Members' nicks are `<prefix><i>`.
    pub nick_prefix: String,
    pub room: String,
    /// Connections being set up at once.
    pub connect_concurrency: usize,
    /// After the last ack, wait at most this long for the alerts.
    pub drain: Duration,
    /// Server process to measure (CPU, RSS).
    pub server_pid: Option<u32>,
    pub label: String,
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{0}")]
    Options(String),
    #[error("set-up failed: {0}")]
    Setup(String),
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct AlertReport {
    pub schema: u32,
    pub label: String,
    pub mode: Mode,
    pub members: usize,
    pub messages: usize,
    pub in_flight: usize,
    /// Messages per second offered, when paced.
    pub rate: Option<f64>,
    /// Length of the longest message text, in characters.
    pub text_chars: usize,
    pub cpus: usize,
    pub server_cpus: Option<String>,
    pub loadgen_cpus: Option<String>,
    /// Seconds to connect, join (and set levels).
    pub setup_s: f64,
    pub sent: u64,
    pub acked: u64,
    /// Sends refused with an `error` frame, by code.
    pub refused: BTreeMap<String, u64>,
    /// Seconds from the first send to the last ack.
    pub send_s: f64,
    /// Alerts the run should produce (sum over members).
    pub expected: u64,
    /// Alerts the members received (duplicates included).
    pub received: u64,
    /// Seconds from the first send to the last alert received.
    pub window_s: f64,
    /// `received` / `window_s`.
    pub alerts_per_s: f64,
    /// Alerts that repeated or went back on a `seq` already seen.
    pub duplicated: u64,
    /// `seq`s skipped: a member got a later alert but never this one.
    pub missing: u64,
    /// Expected alerts a member had not received when the run ended (still queued when
    /// the drain limit passed, or lost at the tail).
    pub undelivered: u64,
    /// Alerts of another kind than the variant makes (`mention` / `message`).
    pub wrong_kind: u64,
    /// Send → alert.
    pub latency: Latency,
    /// Server CPU from the first send to the last alert, % of one core.
    pub server_cpu_pct: Option<f64>,
    pub server_rss_before: Option<u64>,
    pub server_rss_after: Option<u64>,
    pub loadgen_cpu_pct: f64,
    /// Members whose connection failed during the run, by reason.
    pub failures: BTreeMap<String, u64>,
    pub ok: bool,
}

impl RunReport for AlertReport {
    fn passed(&self) -> bool {
        self.ok
    }

    fn human(&self) -> String {
        let mode = match self.mode {
            Mode::Mentions { per_message } => format!("mentions, {per_message} per message"),
            Mode::All => "all (every member at level all)".to_owned(),
        };
        let ms = |us: u64| us as f64 / 1000.0;
        let mut s = format!(
            "alerts ({}): {mode}; {} members, {} messages ({} chars), {} in flight\n  \
             {:.0} alerts/s: {} of {} received in {:.2} s (sends took {:.2} s, {} acked); \
             send→alert p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n  \
             duplicated {}, missing {}, undelivered {}, wrong kind {}; server CPU {}, RSS {} → {} MiB; \
             loadgen CPU {:.0} %; set-up {:.1} s: {}\n",
            self.label,
            self.members,
            self.messages,
            self.text_chars,
            self.in_flight,
            self.alerts_per_s,
            self.received,
            self.expected,
            self.window_s,
            self.send_s,
            self.acked,
            ms(self.latency.p50_us),
            ms(self.latency.p99_us),
            ms(self.latency.max_us),
            self.duplicated,
            self.missing,
            self.undelivered,
            self.wrong_kind,
            self.server_cpu_pct
                .map_or("?".to_owned(), |c| format!("{c:.0} %")),
            self.server_rss_before
                .map_or("?".to_owned(), |b| format!("{:.1}", b as f64 / 1048576.0)),
            self.server_rss_after
                .map_or("?".to_owned(), |b| format!("{:.1}", b as f64 / 1048576.0)),
            self.loadgen_cpu_pct,
            self.setup_s,
            if self.ok { "OK" } else { "NOT OK" },
        );
        for (why, n) in self.refused.iter().chain(&self.failures) {
            s.push_str(&format!("  {n} × {why}\n"));
        }
        s
    }
}

/// Runs the benchmark; see the module docs.
pub async fn alerts(o: AlertOptions) -> Result<AlertReport, AlertError> {
    let addr = parse_ws_url(&o.url).map_err(|e| AlertError::Options(e.to_string()))?;
    if !(2..=MAX_MEMBERS).contains(&o.members) {
        return Err(AlertError::Options(format!(
            "--members must be 2..={MAX_MEMBERS}"
        )));
    }
    if o.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(AlertError::Options("--rate must be above 0".to_owned()));
    }
    if !(1..=MAX_MESSAGES).contains(&o.messages) || o.in_flight == 0 {
        return Err(AlertError::Options(format!(
            "--messages must be 1..={MAX_MESSAGES} and --in-flight at least 1"
        )));
    }
    if let Mode::Mentions { per_message } = o.mode {
        if !(1..o.members).contains(&per_message) {
            return Err(AlertError::Options(format!(
                "--mentions must be 1..{} (members other than the sender)",
                o.members
            )));
        }
    }
    let drain = o.drain.min(MAX_DRAIN);
    let nicks: Vec<String> = (0..o.members)
        .map(|i| format!("{}{i}", o.nick_prefix))
        .collect();

    let set_up = Instant::now();
    let mut guests = tokio::time::timeout(SETUP_TIMEOUT, set_up_members(addr, &o, &nicks))
        .await
        .map_err(|_| AlertError::Setup(format!("not ready within {SETUP_TIMEOUT:?}")))??;
    let setup_s = set_up.elapsed().as_secs_f64();

    // What each member must receive, and the texts (stamped when sent).
    let targets = o.members - 1;
    let mut expected = vec![0u64; o.members];
    let mut bodies = Vec::with_capacity(o.messages);
    for m in 0..o.messages {
        let mut body = format!("m{m}");
        match o.mode {
            Mode::All => expected.iter_mut().skip(1).for_each(|e| *e += 1),
            Mode::Mentions { per_message } => {
                for j in 0..per_message {
                    let member = 1 + (m * per_message + j) % targets;
                    expected[member] += 1;
                    body.push_str(" @");
                    body.push_str(&nicks[member]);
                }
            }
        }
        bodies.push(body);
    }
    // The stamp in front: at most 20 digits and a space.
    let text_chars = bodies.iter().map(String::len).max().unwrap_or(0) + 21;
    let max_chars = guests[0].limits.text_max_chars as usize;
    if text_chars > max_chars {
        return Err(AlertError::Options(format!(
            "a message would be {text_chars} characters, over the server's {max_chars}: \
             fewer --mentions or a shorter --nick-prefix"
        )));
    }
    let total: u64 = expected.iter().sum();
    let kind = match o.mode {
        Mode::All => AlertKind::Message,
        Mode::Mentions { .. } => AlertKind::Mention,
    };

    // Quiet before the clock: the joins' own traffic is done.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ticks = ticks_per_sec();
    let server_before = o.server_pid.and_then(|p| Proc::Pid(p).sample().ok());
    let self_before = Proc::This.sample().ok();
    let base = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop) = watch::channel(false);
    let mut members = JoinSet::new();
    let sender_guest = guests.remove(0);
    for (i, guest) in guests.into_iter().enumerate() {
        let want = Want {
            kind,
            count: expected[i + 1],
        };
        members.spawn(member(
            guest,
            want,
            base,
            Arc::clone(&received),
            stop.clone(),
        ));
    }
    let sender = tokio::spawn(send_all(
        sender_guest,
        o.room.clone(),
        bodies,
        o.in_flight,
        o.rate,
        base,
    ));

    // Wait for the sender, then for every alert (or the drain limit), then linger.
    let sent = match sender.await {
        Ok(sent) => sent,
        Err(e) => return Err(AlertError::Setup(format!("sender task: {e}"))),
    };
    let deadline = Instant::now() + drain;
    while received.load(Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server_after = o.server_pid.and_then(|p| Proc::Pid(p).sample().ok());
    let self_after = Proc::This.sample().ok();
    tokio::time::sleep(LINGER).await;
    let _ = stop_tx.send(true);

    let mut all = Tally::new();
    let mut last_alert = base;
    while let Some(done) = members.join_next().await {
        match done {
            Ok(t) => {
                last_alert = last_alert.max(t.last.unwrap_or(base));
                all.add(t);
            }
            Err(e) => *all.failures.entry(format!("member task: {e}")).or_default() += 1,
        }
    }
    let window_s = last_alert.saturating_duration_since(base).as_secs_f64();
    let cpu = |before: &Option<Sample>, after: &Option<Sample>| match (before, after) {
        (Some(b), Some(a)) => Some(b.cpu_pct_until(a, ticks)),
        _ => None,
    };
    let ok = all.received == total
        && all.duplicated == 0
        && all.missing == 0
        && all.undelivered == 0
        && all.wrong_kind == 0
        && all.failures.is_empty()
        && sent.refused.is_empty()
        && sent.acked == o.messages as u64;
    Ok(AlertReport {
        schema: SCHEMA,
        label: o.label,
        mode: o.mode,
        members: o.members,
        messages: o.messages,
        in_flight: o.in_flight,
        rate: o.rate,
        text_chars,
        cpus: online_cpus(),
        server_cpus: o
            .server_pid
            .and_then(|pid| cpus_allowed(&format!("/proc/{pid}/status"))),
        loadgen_cpus: cpus_allowed("/proc/self/status"),
        setup_s,
        sent: sent.sent,
        acked: sent.acked,
        refused: sent.refused,
        send_s: sent.last_ack.saturating_duration_since(base).as_secs_f64(),
        expected: total,
        received: all.received,
        window_s,
        alerts_per_s: if window_s > 0.0 {
            all.received as f64 / window_s
        } else {
            0.0
        },
        duplicated: all.duplicated,
        missing: all.missing,
        undelivered: all.undelivered,
        wrong_kind: all.wrong_kind,
        latency: Latency::of(&all.latency),
        server_cpu_pct: cpu(&server_before, &server_after),
        server_rss_before: server_before.map(|s| s.rss_bytes),
        server_rss_after: server_after.map(|s| s.rss_bytes),
        loadgen_cpu_pct: cpu(&self_before, &self_after).unwrap_or(0.0),
        failures: all.failures,
        ok,
    })
}

/// Connects every member, joins the room and (variant `all`) sets the level, at most
/// `connect_concurrency` at once; member `i` is at index `i`.
async fn set_up_members(
    addr: SocketAddr,
    o: &AlertOptions,
    nicks: &[String],
) -> Result<Vec<Guest>, AlertError> {
    let gate = Arc::new(Semaphore::new(o.connect_concurrency.max(1)));
    let mut set = JoinSet::new();
    for (i, nick) in nicks.iter().enumerate() {
        let (gate, url, nick, room) = (
            Arc::clone(&gate),
            o.url.clone(),
            nick.clone(),
            o.room.clone(),
        );
        let level = (o.mode == Mode::All && i > 0).then_some(NotifyLevel::All);
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            let mut g = Guest::sign_in(addr, &url, i, &nick).await?;
            g.send(&ClientMsg::Join {
                room: room.clone(),
                since: None,
                epoch: None,
            })
            .await?;
            g.until(|m| matches!(m, ServerMsg::Joined { .. }).then_some(()))
                .await?;
            if let Some(level) = level {
                g.send(&ClientMsg::RoomNotify {
                    room: room.clone(),
                    level,
                })
                .await?;
                g.until(|m| matches!(m, ServerMsg::RoomNotify { .. }).then_some(()))
                    .await?;
            }
            Ok::<_, String>((i, g))
        });
    }
    let mut guests: Vec<Option<Guest>> = (0..nicks.len()).map(|_| None).collect();
    while let Some(done) = set.join_next().await {
        let (i, g) = done
            .map_err(|e| AlertError::Setup(e.to_string()))?
            .map_err(AlertError::Setup)?;
        guests[i] = Some(g);
    }
    Ok(guests.into_iter().flatten().collect())
}

/// What the sender brings back.
struct Sent {
    sent: u64,
    acked: u64,
    refused: BTreeMap<String, u64>,
    last_ack: Instant,
}

/// Sends every body (stamped) with at most `in_flight` unacked, body `m` not before
/// `m / rate` seconds in when paced; reads acks.
async fn send_all(
    mut g: Guest,
    room: String,
    bodies: Vec<String>,
    in_flight: usize,
    rate: Option<f64>,
    base: Instant,
) -> Sent {
    let mut out = Sent {
        sent: 0,
        acked: 0,
        refused: BTreeMap::new(),
        last_ack: base,
    };
    let total = bodies.len() as u64;
    let mut next = bodies.into_iter().enumerate();
    let mut outstanding = 0usize;
    let mut next_m = 0usize;
    loop {
        while outstanding < in_flight {
            let due = rate.map(|r| base + Duration::from_secs_f64(next_m as f64 / r));
            if due.is_some_and(|d| d > Instant::now()) && outstanding > 0 {
                break; // read acks until it is due
            }
            let Some((m, body)) = next.next() else { break };
            if let Some(due) = due {
                tokio::time::sleep_until(due.into()).await;
            }
            next_m += 1;
            let stamp = base.elapsed().as_micros();
            let frame = ClientMsg::Send {
                reply_to: None,
                room: room.clone(),
                text: format!("{stamp} {body}"),
                id: format!("a{m}"),
            };
            if let Err(e) = g.send(&frame).await {
                *out.refused.entry(e).or_default() += 1;
                return out;
            }
            out.sent += 1;
            outstanding += 1;
        }
        if outstanding == 0 || out.acked + out.refused.values().sum::<u64>() >= total {
            break;
        }
        // Paced: read acks only until the next send is due.
        let wait = match rate {
            Some(r) if next_m < total as usize => (base
                + Duration::from_secs_f64(next_m as f64 / r))
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1)),
            _ => STEP_TIMEOUT,
        };
        let frame = match g.next_within(wait).await {
            Ok(None) if wait < STEP_TIMEOUT => continue, // the next send is due
            Ok(None) => Err(format!("no answer for {wait:?}")),
            Ok(Some(msg)) => Ok(msg),
            Err(e) => Err(e),
        };
        match frame {
            Ok(ServerMsg::Ack { .. }) => {
                out.acked += 1;
                out.last_ack = Instant::now();
                outstanding -= 1;
            }
            Ok(ServerMsg::Error { code, .. }) => {
                *out.refused.entry(format!("{code:?}")).or_default() += 1;
                outstanding -= 1;
            }
            Ok(_) => {}
            Err(e) => {
                *out.refused.entry(e).or_default() += 1;
                break;
            }
        }
    }
    // Every send is answered: the sender is done (rooms above the announce limit tell
    // nobody it left; smaller ones send `left`, which members skip).
    g.close().await;
    out
}

/// What one member must receive.
#[derive(Clone, Copy)]
struct Want {
    kind: AlertKind,
    count: u64,
}

/// What members bring back (and, summed, the run).
struct Tally {
    received: u64,
    duplicated: u64,
    missing: u64,
    undelivered: u64,
    wrong_kind: u64,
    latency: Histogram<u64>,
    failures: BTreeMap<String, u64>,
    /// When this member's last alert came.
    last: Option<Instant>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            received: 0,
            duplicated: 0,
            missing: 0,
            undelivered: 0,
            wrong_kind: 0,
            latency: Latency::histogram(),
            failures: BTreeMap::new(),
            last: None,
        }
    }

    fn add(&mut self, t: Tally) {
        self.received += t.received;
        self.duplicated += t.duplicated;
        self.missing += t.missing;
        self.undelivered += t.undelivered;
        self.wrong_kind += t.wrong_kind;
        let _ = self.latency.add(&t.latency);
        for (why, n) in t.failures {
            *self.failures.entry(why).or_default() += n;
        }
    }
}

/// One member: reads until told to stop, checking every alert.
async fn member(
    mut g: Guest,
    want: Want,
    base: Instant,
    received: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Tally {
    let mut t = Tally::new();
    let mut seq = g.inbox_head;
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => break,
            frame = g.next_raw() => frame,
        };
        let text = match frame {
            Ok(text) => text,
            Err(e) => {
                *t.failures.entry(e).or_default() += 1;
                break;
            }
        };
        // Room messages (most of the traffic) are skipped by their type alone.
        if !text.as_str().starts_with(r#"{"type":"alert""#) {
            continue;
        }
        let now = Instant::now();
        let Ok(ServerMsg::Alert(alert)) = serde_json::from_str::<ServerMsg>(text.as_str()) else {
            *t.failures
                .entry("undecodable alert".to_owned())
                .or_default() += 1;
            continue;
        };
        t.received += 1;
        t.last = Some(now);
        received.fetch_add(1, Relaxed);
        if alert.seq <= seq {
            t.duplicated += 1;
            continue;
        }
        t.missing += alert.seq - seq - 1;
        seq = alert.seq;
        if alert.kind != want.kind {
            t.wrong_kind += 1;
        }
        let stamp = alert
            .body
            .split(' ')
            .next()
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(stamp) = stamp {
            let us = (now.saturating_duration_since(base).as_micros() as u64)
                .saturating_sub(stamp)
                .max(1);
            t.latency.saturating_record(us);
        }
    }
    // Expected alerts that had not come (beyond the gaps already counted).
    let good = t.received - t.duplicated;
    t.undelivered = want.count.saturating_sub(good + t.missing);
    // More distinct alerts than expected are repeats of the same message's alert.
    t.duplicated += good.saturating_sub(want.count);
    g.close().await;
    t
}
