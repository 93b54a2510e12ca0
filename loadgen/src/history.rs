//! `loadgen history`: how long a `history` page takes when its messages carry
//! reactions and edits, whose entries sit in the room's log between the messages.
//!
//! One author and R reactors (guests, each its own user) join one room. The author
//! posts N messages in rounds of `batch`; after each round, while the author edits
//! every `edit_every`-th message of the round once or twice (alternately), each message
//! gets 3 to 5 reactions (`reactions_min..=reactions_max`, cycling) from as many
//! different reactors (two reactors share each emoji, so lists of users form), and
//! then the author deletes every `delete_every`-th message. The log so interleaves
//! messages with their edits and reactions, as a live room would, and a page of 100
//! messages walks over several hundred entries. `--plain` posts the messages only.
//!
//! Then a fresh connection (not joined, so no room traffic reaches it) pages through
//! the whole room once with `history {before, limit}`, checking every message against
//! what the run did (text, `edited_ts`, `deleted`, the set of users per emoji, their
//! nicks); that walk also gives the `before` of every page. Then `readers`
//! connections (default 1, one request at a time each) ask for those pages in turn,
//! the newest (no `before`) and every older one, until `requests` pages or `duration`
//! have passed, and the time from sending `history` to its answer is recorded. The
//! answer is not decoded inside the measurement.
//!
//! Mind the server's limits: the fill sends at most the `rate_per_sec` of `welcome`
//! (with half its burst) per connection, which takes minutes at the default 20/s; the
//! reads need `--read-rate` and `--read-bytes` far above their defaults (200 messages
//! and 256 KiB per second would allow 2 pages a second), and every `rate_limited`
//! answer is counted and makes the run NOT OK.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::validate::REACTIONS;
use common::{ClientMsg, ErrorCode, ServerMsg};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::guest::{Guest, STEP_TIMEOUT};
use crate::measure::Latency;
use crate::procstat::{ticks_per_sec, Proc, Sample};
use crate::report::RunReport;
use crate::scenario::parse_ws_url;
use crate::signins::{cpus_allowed, online_cpus};

/// Most messages one run posts.
pub const MAX_MESSAGES: usize = 100_000;
/// Most reactors (one connection each).
pub const MAX_REACTORS: usize = 100;
/// Most pages one run asks for.
pub const MAX_REQUESTS: usize = 1_000_000;
/// Longest the measurement may last.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Most readers at once.
pub const MAX_READERS: usize = 64;
/// Longest the fill (posting, editing, reacting, deleting) may take.
const FILL_TIMEOUT: Duration = Duration::from_secs(900);
/// Mismatches described in the report (all are counted).
const EXAMPLES: usize = 5;
/// Version of the report's layout.
pub const SCHEMA: u32 = 1;

/// What to build and measure.
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    /// The server's WebSocket URL (`ws://127.0.0.1:PORT/ws`).
    pub url: String,
    /// Messages posted.
    pub messages: usize,
    /// Reacting users (connections).
    pub reactors: usize,
    /// Reactions per message cycle through `reactions_min..=reactions_max`.
    pub reactions_min: usize,
    pub reactions_max: usize,
    /// Every this-many-th message is edited (once or twice, alternately); 0: none.
    pub edit_every: usize,
    /// Every this-many-th message is deleted; 0: none.
    pub delete_every: usize,
    /// Length of each message text (and of each edit), in bytes.
    pub text_bytes: usize,
    /// Messages per round (each followed by its edits, reactions and deletions).
    pub batch: usize,
    /// Unacked frames per connection during the fill.
    pub in_flight: usize,
    /// Pages asked for in the measurement (over all readers).
    pub requests: usize,
    /// Longest the measurement lasts.
    pub duration: Duration,
    /// Messages per page (`history.limit`).
    pub limit: u64,
    /// Connections reading at once, one request in flight each.
    pub readers: usize,
    pub room: String,
    /// Nicks are `<prefix>a` (the author), `<prefix>r<i>`, `<prefix>h<i>`.
    pub nick_prefix: String,
    /// Server process to measure (CPU, RSS).
    pub server_pid: Option<u32>,
    /// The store's own process (a `redis-server`), whose CPU is measured too.
    pub store_pid: Option<u32>,
    pub label: String,
}

impl HistoryOptions {
    /// No reactions, edits or deletions.
    pub fn plain(&mut self) {
        self.reactors = 0;
        self.reactions_min = 0;
        self.reactions_max = 0;
        self.edit_every = 0;
        self.delete_every = 0;
    }

    fn check(&self) -> Result<(), HistoryError> {
        let bad = |s: String| Err(HistoryError::Options(s));
        if !(1..=MAX_MESSAGES).contains(&self.messages) {
            return bad(format!("--messages must be 1..={MAX_MESSAGES}"));
        }
        if self.reactors > MAX_REACTORS {
            return bad(format!("--reactors must be at most {MAX_REACTORS}"));
        }
        if self.reactions_min > self.reactions_max || self.reactions_max > self.reactors {
            return bad(format!(
                "need --reactions-min ≤ --reactions-max ≤ --reactors (each reaction of a \
                 message comes from another user), got {} ≤ {} ≤ {}",
                self.reactions_min, self.reactions_max, self.reactors
            ));
        }
        if !(1..=MAX_REQUESTS).contains(&self.requests) || self.duration > MAX_DURATION {
            return bad(format!(
                "--requests must be 1..={MAX_REQUESTS} and --duration at most {MAX_DURATION:?}"
            ));
        }
        if !(1..=MAX_READERS).contains(&self.readers) {
            return bad(format!("--readers must be 1..={MAX_READERS}"));
        }
        if self.limit == 0 || self.batch == 0 || self.in_flight == 0 || self.text_bytes < 40 {
            return bad(
                "--limit, --batch and --in-flight must be at least 1, --text-bytes at least 40"
                    .to_owned(),
            );
        }
        Ok(())
    }

    fn reactions_of(&self, m: usize) -> usize {
        if self.reactions_max == 0 {
            0
        } else {
            self.reactions_min + m % (self.reactions_max - self.reactions_min + 1)
        }
    }

    fn edits_of(&self, m: usize) -> usize {
        if self.edit_every > 0 && m % self.edit_every == self.edit_every - 1 {
            1 + (m / self.edit_every) % 2
        } else {
            0
        }
    }

    fn deleted(&self, m: usize) -> bool {
        self.delete_every > 0 && m % self.delete_every == self.delete_every - 1
    }
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{0}")]
    Options(String),
    #[error("set-up failed: {0}")]
    Setup(String),
    #[error("filling the room failed: {0}")]
    Fill(String),
    #[error("reading history failed: {0}")]
    Read(String),
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryReport {
    pub schema: u32,
    pub label: String,
    /// `reactions` (reactions, edits, deletions) or `plain`.
    pub variant: &'static str,
    pub messages: usize,
    pub reactors: usize,
    pub reactions_min: usize,
    pub reactions_max: usize,
    pub edit_every: usize,
    pub delete_every: usize,
    pub text_bytes: usize,
    pub limit: u64,
    pub readers: usize,
    pub cpus: usize,
    pub server_cpus: Option<String>,
    pub loadgen_cpus: Option<String>,
    /// Entries in the room's log (its last offset): messages, edits, reactions, deletions.
    pub log_entries: u64,
    pub reactions: u64,
    pub edits: u64,
    pub deletes: u64,
    /// Seconds the fill took, and its acked entries per second.
    pub fill_s: f64,
    pub fill_per_s: f64,
    /// Pages of the room (the walk), and the fewest messages in one that was not the
    /// oldest (below `limit`: the server trimmed pages to its frame limit).
    pub pages: usize,
    pub fewest_per_page: usize,
    /// Bytes of the newest page's frame, and the largest and mean over all pages.
    pub page_bytes: usize,
    pub page_bytes_max: usize,
    pub page_bytes_mean: f64,
    /// Messages of the walk that differed from what the run did, and the first few.
    pub mismatches: u64,
    pub examples: Vec<String>,
    /// Pages answered in the measurement, and its seconds.
    pub requests: u64,
    pub window_s: f64,
    pub pages_per_s: f64,
    /// Send → answer, every page; the newest page; pages with `before`.
    pub latency: Latency,
    pub latency_newest: Latency,
    pub latency_before: Latency,
    /// `history` answered with `rate_limited` (not in the latencies).
    pub rate_limited: u64,
    /// Server CPU over the measurement, % of one core.
    pub server_cpu_pct: Option<f64>,
    pub server_rss_after: Option<u64>,
    /// The store process's CPU over the measurement (`--store-pid`), % of one core.
    pub store_cpu_pct: Option<f64>,
    pub loadgen_cpu_pct: f64,
    pub ok: bool,
}

impl RunReport for HistoryReport {
    fn passed(&self) -> bool {
        self.ok
    }

    fn human(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        let lat = |l: &Latency| {
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({})",
                ms(l.p50_us),
                ms(l.p99_us),
                ms(l.max_us),
                l.count
            )
        };
        let mut s = format!(
            "history ({}): {} — {} messages, {} reactions, {} edits, {} deleted: {} log entries \
             (filled in {:.1} s, {:.0}/s)\n  \
             {} pages of {} (fewest {}), newest page {} bytes (largest {}, mean {:.0})\n  \
             {} pages in {:.2} s by {} reader(s): {:.0} pages/s; {}\n  \
             newest page {}; with before {}\n  \
             rate limited {}, mismatches {}; server CPU {}, RSS {} MiB{}; loadgen CPU {:.0} %: {}\n",
            self.label,
            self.variant,
            self.messages,
            self.reactions,
            self.edits,
            self.deletes,
            self.log_entries,
            self.fill_s,
            self.fill_per_s,
            self.pages,
            self.limit,
            self.fewest_per_page,
            self.page_bytes,
            self.page_bytes_max,
            self.page_bytes_mean,
            self.requests,
            self.window_s,
            self.readers,
            self.pages_per_s,
            lat(&self.latency),
            lat(&self.latency_newest),
            lat(&self.latency_before),
            self.rate_limited,
            self.mismatches,
            self.server_cpu_pct
                .map_or("?".to_owned(), |c| format!("{c:.0} %")),
            self.server_rss_after
                .map_or("?".to_owned(), |b| format!("{:.1}", b as f64 / 1048576.0)),
            self.store_cpu_pct
                .map_or(String::new(), |c| format!("; store CPU {c:.0} %")),
            self.loadgen_cpu_pct,
            if self.ok { "OK" } else { "NOT OK" },
        );
        for e in &self.examples {
            s.push_str(&format!("  {e}\n"));
        }
        s
    }
}

/// What one message should look like in `history`.
#[derive(Debug, Clone, Default)]
struct Expected {
    offset: u64,
    text: String,
    edited: bool,
    deleted: bool,
    /// Emoji → user ids.
    reactions: BTreeMap<String, BTreeSet<String>>,
}

/// Runs the benchmark; see the module docs.
pub async fn history(o: HistoryOptions) -> Result<HistoryReport, HistoryError> {
    o.check()?;
    let addr = parse_ws_url(&o.url).map_err(|e| HistoryError::Options(e.to_string()))?;

    let started = Instant::now();
    let (expected, counts, log_entries, users) = tokio::time::timeout(FILL_TIMEOUT, fill(addr, &o))
        .await
        .map_err(|_| HistoryError::Fill(format!("not done within {FILL_TIMEOUT:?}")))??;
    let fill_s = started.elapsed().as_secs_f64();

    // The walk: every page once, checked; it names the pages the readers ask for.
    let mut reader = Guest::sign_in(addr, &o.url, 200, &format!("{}h0", o.nick_prefix))
        .await
        .map_err(HistoryError::Setup)?;
    let walk = walk(&mut reader, &o, &expected, &users).await?;

    // Quiet before the clock: the fill's own traffic is done.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut readers = vec![reader];
    for i in 1..o.readers {
        let nick = format!("{}h{i}", o.nick_prefix);
        readers.push(
            Guest::sign_in(addr, &o.url, 200 + i, &nick)
                .await
                .map_err(HistoryError::Setup)?,
        );
    }
    let ticks = ticks_per_sec();
    let server_before = o.server_pid.and_then(|p| Proc::Pid(p).sample().ok());
    let store_before = o.store_pid.and_then(|p| Proc::Pid(p).sample().ok());
    let self_before = Proc::This.sample().ok();
    let base = Instant::now();
    let deadline = base + o.duration;
    let next = Arc::new(AtomicUsize::new(0));
    let limited = Arc::new(AtomicU64::new(0));
    let befores = Arc::new(walk.befores.clone());
    let mut set = JoinSet::new();
    for g in readers {
        set.spawn(read_pages(
            g,
            o.room.clone(),
            o.limit,
            Arc::clone(&befores),
            Arc::clone(&next),
            o.requests,
            deadline,
            Arc::clone(&limited),
        ));
    }
    let mut newest = Latency::histogram();
    let mut older = Latency::histogram();
    let mut failure = None;
    while let Some(done) = set.join_next().await {
        match done {
            Ok(Ok((n, b))) => {
                let _ = newest.add(&n);
                let _ = older.add(&b);
            }
            Ok(Err(e)) => failure = Some(e),
            Err(e) => failure = Some(format!("reader task: {e}")),
        }
    }
    let window_s = base.elapsed().as_secs_f64();
    let server_after = o.server_pid.and_then(|p| Proc::Pid(p).sample().ok());
    let store_after = o.store_pid.and_then(|p| Proc::Pid(p).sample().ok());
    let self_after = Proc::This.sample().ok();
    if let Some(e) = failure {
        return Err(HistoryError::Read(e));
    }
    let mut all = Latency::histogram();
    let _ = all.add(&newest);
    let _ = all.add(&older);
    let requests = all.len();
    let cpu = |before: &Option<Sample>, after: &Option<Sample>| match (before, after) {
        (Some(b), Some(a)) => Some(b.cpu_pct_until(a, ticks)),
        _ => None,
    };
    let rate_limited = limited.load(Relaxed);
    let sizes = &walk.sizes;
    Ok(HistoryReport {
        schema: SCHEMA,
        variant: if counts.reactions + counts.edits + counts.deletes == 0 {
            "plain"
        } else {
            "reactions"
        },
        label: o.label,
        messages: o.messages,
        reactors: o.reactors,
        reactions_min: o.reactions_min,
        reactions_max: o.reactions_max,
        edit_every: o.edit_every,
        delete_every: o.delete_every,
        text_bytes: o.text_bytes,
        limit: o.limit,
        readers: o.readers,
        cpus: online_cpus(),
        server_cpus: o
            .server_pid
            .and_then(|pid| cpus_allowed(&format!("/proc/{pid}/status"))),
        loadgen_cpus: cpus_allowed("/proc/self/status"),
        log_entries,
        reactions: counts.reactions,
        edits: counts.edits,
        deletes: counts.deletes,
        fill_s,
        fill_per_s: if fill_s > 0.0 {
            log_entries as f64 / fill_s
        } else {
            0.0
        },
        pages: walk.befores.len(),
        fewest_per_page: walk.fewest,
        page_bytes: sizes.first().copied().unwrap_or(0),
        page_bytes_max: sizes.iter().copied().max().unwrap_or(0),
        page_bytes_mean: sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64,
        mismatches: walk.mismatches,
        examples: walk.examples,
        requests,
        window_s,
        pages_per_s: if window_s > 0.0 {
            requests as f64 / window_s
        } else {
            0.0
        },
        latency: Latency::of(&all),
        latency_newest: Latency::of(&newest),
        latency_before: Latency::of(&older),
        rate_limited,
        server_cpu_pct: cpu(&server_before, &server_after),
        server_rss_after: server_after.map(|s| s.rss_bytes),
        store_cpu_pct: cpu(&store_before, &store_after),
        loadgen_cpu_pct: cpu(&self_before, &self_after).unwrap_or(0.0),
        ok: walk.mismatches == 0 && rate_limited == 0 && requests > 0,
    })
}

/// Frames the fill made.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    reactions: u64,
    edits: u64,
    deletes: u64,
}

/// A message text of exactly `bytes` bytes: `h<m> v<version>` padded.
fn text(m: usize, version: usize, bytes: usize) -> String {
    let mut t = format!("history bench message {m} version {version} ");
    while t.len() < bytes {
        t.push(char::from(b'a' + (t.len() % 26) as u8));
    }
    t.truncate(bytes);
    t
}

/// Connects and joins the author and the reactors, then posts, edits, reacts and
/// deletes round by round. Returns what each message should look like, the counts,
/// the room's last offset, and each user id's nick.
async fn fill(
    addr: SocketAddr,
    o: &HistoryOptions,
) -> Result<(Vec<Expected>, Counts, u64, HashMap<String, String>), HistoryError> {
    let mut set = JoinSet::new();
    for i in 0..=o.reactors {
        let nick = if i == 0 {
            format!("{}a", o.nick_prefix)
        } else {
            format!("{}r{}", o.nick_prefix, i - 1)
        };
        let (url, room) = (o.url.clone(), o.room.clone());
        set.spawn(async move {
            let mut g = Guest::sign_in(addr, &url, i, &nick).await?;
            g.send(&ClientMsg::Join {
                room,
                since: None,
                epoch: None,
            })
            .await?;
            g.until(|m| matches!(m, ServerMsg::Joined { .. }).then_some(()))
                .await?;
            Ok::<_, String>((i, nick, g))
        });
    }
    let mut conns: Vec<Option<Conn>> = (0..=o.reactors).map(|_| None).collect();
    let mut users = HashMap::new();
    while let Some(done) = set.join_next().await {
        let (i, nick, g) = done
            .map_err(|e| HistoryError::Setup(e.to_string()))?
            .map_err(HistoryError::Setup)?;
        users.insert(g.user.clone(), nick);
        conns[i] = Some(Conn::new(g));
    }
    let mut conns: Vec<Conn> = conns.into_iter().flatten().collect();
    let max_chars = conns[0].guest.limits.text_max_chars as usize;
    if o.text_bytes > max_chars {
        return Err(HistoryError::Options(format!(
            "--text-bytes {} is over the server's {max_chars} characters",
            o.text_bytes
        )));
    }
    let reactor_ids: Vec<String> = conns[1..].iter().map(|c| c.guest.user.clone()).collect();

    let mut expected: Vec<Expected> = Vec::with_capacity(o.messages);
    let mut counts = Counts::default();
    let mut last = 0u64;
    let room = o.room.as_str();
    for start in (0..o.messages).step_by(o.batch) {
        let end = (start + o.batch).min(o.messages);
        // Posts.
        let sends: Vec<ClientMsg> = (start..end)
            .map(|m| ClientMsg::Send {
                room: room.to_owned(),
                text: text(m, 0, o.text_bytes),
                id: format!("m{m}"),
                reply_to: None,
            })
            .collect();
        let offsets = conns[0].pipeline(sends, o.in_flight).await?;
        for (m, &offset) in (start..end).zip(&offsets) {
            expected.push(Expected {
                offset,
                text: text(m, 0, o.text_bytes),
                ..Expected::default()
            });
            last = last.max(offset);
        }
        // Edits (the author) and reactions (every reactor), at once.
        let mut work: Vec<Vec<ClientMsg>> = vec![Vec::new(); conns.len()];
        for m in start..end {
            let e = &mut expected[m];
            for v in 1..=o.edits_of(m) {
                work[0].push(ClientMsg::Edit {
                    room: room.to_owned(),
                    offset: e.offset,
                    text: text(m, v, o.text_bytes),
                    id: format!("e{m}.{v}"),
                });
                e.text = text(m, v, o.text_bytes);
                e.edited = true;
                counts.edits += 1;
            }
            for j in 0..o.reactions_of(m) {
                let r = (m + j) % o.reactors;
                // Reactors j and j + 1 share an emoji: lists of two users form.
                let emoji = REACTIONS[(m + j / 2) % REACTIONS.len()];
                work[1 + r].push(ClientMsg::React {
                    room: room.to_owned(),
                    offset: e.offset,
                    emoji: emoji.to_owned(),
                    on: true,
                    id: format!("r{m}.{j}"),
                });
                e.reactions
                    .entry(emoji.to_owned())
                    .or_default()
                    .insert(reactor_ids[r].clone());
                counts.reactions += 1;
            }
        }
        let mut tasks = JoinSet::new();
        for (i, (conn, frames)) in conns.drain(..).zip(work).enumerate() {
            let in_flight = o.in_flight;
            tasks.spawn(async move {
                let mut conn = conn;
                let got = conn.pipeline(frames, in_flight).await;
                (i, conn, got)
            });
        }
        let mut back: Vec<Option<Conn>> = (0..=o.reactors).map(|_| None).collect();
        while let Some(done) = tasks.join_next().await {
            let (i, conn, got) = done.map_err(|e| HistoryError::Fill(e.to_string()))?;
            last = last.max(got?.into_iter().max().unwrap_or(0));
            back[i] = Some(conn);
        }
        conns = back.into_iter().flatten().collect();
        // Deletions, once the reactions are in.
        let deletes: Vec<ClientMsg> = (start..end)
            .filter(|&m| o.deleted(m))
            .map(|m| {
                let e = &mut expected[m];
                e.deleted = true;
                e.edited = false;
                e.text.clear();
                e.reactions.clear();
                counts.deletes += 1;
                ClientMsg::Delete {
                    room: room.to_owned(),
                    offset: e.offset,
                    id: format!("d{m}"),
                }
            })
            .collect();
        let offsets = conns[0].pipeline(deletes, o.in_flight).await?;
        last = last.max(offsets.into_iter().max().unwrap_or(0));
    }
    for conn in conns {
        conn.guest.close().await;
    }
    Ok((expected, counts, last, users))
}

/// A fill connection: the guest and its send pacing.
struct Conn {
    guest: Guest,
    /// Sends allowed now (a token bucket below the server's `send` bucket).
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl Conn {
    fn new(guest: Guest) -> Self {
        // Below the server's bucket, which covers edits and reactions too.
        let rate = f64::from(guest.limits.rate_per_sec.max(1)) * 0.9;
        let burst = (f64::from(guest.limits.rate_burst) / 2.0).max(1.0);
        Conn {
            guest,
            tokens: burst,
            rate,
            burst,
            at: Instant::now(),
        }
    }

    async fn pace(&mut self) {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
            tokio::time::sleep(wait).await;
            self.tokens = 1.0;
            self.at = Instant::now();
        }
        self.tokens -= 1.0;
    }

    /// Sends `frames` in order with at most `in_flight` unacked; the offset each ack
    /// named, in the frames' order. An `error` answer ends it.
    async fn pipeline(
        &mut self,
        frames: Vec<ClientMsg>,
        in_flight: usize,
    ) -> Result<Vec<u64>, HistoryError> {
        let fail = |s: String| HistoryError::Fill(s);
        let index: HashMap<String, usize> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| (f.reference().to_owned(), i))
            .collect();
        let mut offsets = vec![0u64; frames.len()];
        let (mut sent, mut acked) = (0usize, 0usize);
        let mut frames = frames.into_iter();
        while acked < offsets.len() {
            while sent - acked < in_flight {
                let Some(frame) = frames.next() else { break };
                self.pace().await;
                self.guest.send(&frame).await.map_err(fail)?;
                sent += 1;
            }
            let raw = tokio::time::timeout(STEP_TIMEOUT, self.guest.next_raw())
                .await
                .map_err(|_| fail(format!("no ack for {STEP_TIMEOUT:?}")))?
                .map_err(fail)?;
            // Room traffic (the other connections' entries) is skipped by its type.
            let text = raw.as_str();
            if !(text.starts_with(r#"{"type":"ack""#) || text.starts_with(r#"{"type":"error""#)) {
                continue;
            }
            match serde_json::from_str::<ServerMsg>(text) {
                Ok(ServerMsg::Ack { id, offset, .. }) => {
                    if let Some(&i) = index.get(&id) {
                        offsets[i] = offset;
                        acked += 1;
                    }
                }
                Ok(ServerMsg::Error {
                    code,
                    message,
                    reference,
                }) => {
                    return Err(fail(format!(
                        "{code:?} for {}: {message}",
                        reference.unwrap_or_default()
                    )))
                }
                Ok(_) => {}
                Err(e) => return Err(fail(format!("bad frame: {e}"))),
            }
        }
        Ok(offsets)
    }
}

/// What the walk found.
struct Walk {
    /// The `before` of each page, newest first (`None`: the newest page).
    befores: Vec<Option<u64>>,
    /// Each page's frame in bytes, newest first.
    sizes: Vec<usize>,
    fewest: usize,
    mismatches: u64,
    examples: Vec<String>,
}

/// Pages through the whole room, newest first, checking every message.
async fn walk(
    g: &mut Guest,
    o: &HistoryOptions,
    expected: &[Expected],
    users: &HashMap<String, String>,
) -> Result<Walk, HistoryError> {
    let by_offset: HashMap<u64, &Expected> = expected.iter().map(|e| (e.offset, e)).collect();
    let mut w = Walk {
        befores: Vec::new(),
        sizes: Vec::new(),
        fewest: usize::MAX,
        mismatches: 0,
        examples: Vec::new(),
    };
    let wrong = |w: &mut Walk, what: String| {
        w.mismatches += 1;
        if w.examples.len() < EXAMPLES {
            w.examples.push(what);
        }
    };
    let mut seen = BTreeSet::new();
    let mut before = None;
    loop {
        let (raw, _) = ask(g, &o.room, before, o.limit).await?;
        let Some(raw) = raw else {
            return Err(HistoryError::Read(
                "rate_limited during the walk: raise the server's --read-rate and --read-bytes"
                    .to_owned(),
            ));
        };
        let Ok(ServerMsg::History {
            messages,
            has_more,
            nicks,
            ..
        }) = serde_json::from_str::<ServerMsg>(&raw)
        else {
            return Err(HistoryError::Read("undecodable history frame".to_owned()));
        };
        w.befores.push(before);
        w.sizes.push(raw.len());
        if has_more {
            w.fewest = w.fewest.min(messages.len());
        }
        if !messages.windows(2).all(|p| p[0].offset < p[1].offset) {
            wrong(
                &mut w,
                format!("page before {before:?}: not ascending by offset"),
            );
        }
        for m in &messages {
            if before.is_some_and(|b| m.offset >= b) || !seen.insert(m.offset) {
                wrong(
                    &mut w,
                    format!("offset {} out of place or repeated", m.offset),
                );
                continue;
            }
            let Some(e) = by_offset.get(&m.offset) else {
                wrong(
                    &mut w,
                    format!("offset {}: not a message this run posted", m.offset),
                );
                continue;
            };
            if m.text != e.text || m.deleted != e.deleted || m.edited_ts.is_some() != e.edited {
                wrong(
                    &mut w,
                    format!(
                        "offset {}: text {:?} deleted {} edited_ts {:?}; expected text {:?} \
                         deleted {} edited {}",
                        m.offset, m.text, m.deleted, m.edited_ts, e.text, e.deleted, e.edited
                    ),
                );
            }
            let got: BTreeMap<String, BTreeSet<String>> = m
                .reactions
                .0
                .iter()
                .map(|(emoji, us)| (emoji.clone(), us.iter().cloned().collect()))
                .collect();
            if got != e.reactions {
                wrong(
                    &mut w,
                    format!(
                        "offset {}: reactions {got:?}, expected {:?}",
                        m.offset, e.reactions
                    ),
                );
            }
            for user in got.values().flatten() {
                if nicks.get(user) != users.get(user) {
                    wrong(
                        &mut w,
                        format!(
                            "offset {}: nick of {user} is {:?}, expected {:?}",
                            m.offset,
                            nicks.get(user),
                            users.get(user)
                        ),
                    );
                }
            }
        }
        match (has_more, messages.first()) {
            (true, Some(first)) => before = Some(first.offset),
            _ => break,
        }
    }
    if seen.len() != expected.len() {
        let missing = expected.len() - seen.len().min(expected.len());
        wrong(
            &mut w,
            format!(
                "the walk found {} messages of {}: {missing} missing",
                seen.len(),
                expected.len()
            ),
        );
    }
    if w.fewest == usize::MAX {
        w.fewest = w.sizes.len().min(1) * o.limit as usize;
    }
    Ok(w)
}

/// Sends `history` and waits for its answer: the frame (`None` when rate limited) and
/// the time it took. Any other error ends the run.
async fn ask(
    g: &mut Guest,
    room: &str,
    before: Option<u64>,
    limit: u64,
) -> Result<(Option<String>, Duration), HistoryError> {
    let frame = ClientMsg::History {
        room: room.to_owned(),
        before,
        limit: Some(limit),
    };
    let frame = serde_json::to_string(&frame).map_err(|e| HistoryError::Read(e.to_string()))?;
    let sent = Instant::now();
    g.send_text(frame).await.map_err(HistoryError::Read)?;
    loop {
        let raw = tokio::time::timeout(STEP_TIMEOUT, g.next_raw())
            .await
            .map_err(|_| HistoryError::Read(format!("no answer for {STEP_TIMEOUT:?}")))?
            .map_err(HistoryError::Read)?;
        let took = sent.elapsed();
        let text = raw.as_str();
        if text.starts_with(r#"{"type":"history""#) {
            return Ok((Some(text.to_owned()), took));
        }
        if text.starts_with(r#"{"type":"error""#) {
            return match serde_json::from_str::<ServerMsg>(text) {
                Ok(ServerMsg::Error {
                    code: ErrorCode::RateLimited,
                    ..
                }) => Ok((None, took)),
                _ => Err(HistoryError::Read(format!("history refused: {text}"))),
            };
        }
    }
}

/// One reader: asks for page `i mod pages` for each `i` it takes from `next`, until
/// `requests` or `deadline`; send → answer into two histograms (newest, with `before`).
#[allow(clippy::too_many_arguments)]
async fn read_pages(
    mut g: Guest,
    room: String,
    limit: u64,
    befores: Arc<Vec<Option<u64>>>,
    next: Arc<AtomicUsize>,
    requests: usize,
    deadline: Instant,
    limited: Arc<AtomicU64>,
) -> Result<(Histogram<u64>, Histogram<u64>), String> {
    let mut newest = Latency::histogram();
    let mut older = Latency::histogram();
    while Instant::now() < deadline {
        let i = next.fetch_add(1, Relaxed);
        if i >= requests {
            break;
        }
        let before = befores[i % befores.len()];
        let (answer, took) = ask(&mut g, &room, before, limit)
            .await
            .map_err(|e| e.to_string())?;
        if answer.is_none() {
            limited.fetch_add(1, Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let us = (took.as_micros() as u64).max(1);
        match before {
            None => newest.saturating_record(us),
            Some(_) => older.saturating_record(us),
        }
    }
    g.close().await;
    Ok((newest, older))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> HistoryOptions {
        HistoryOptions {
            url: "ws://127.0.0.1:1/ws".to_owned(),
            messages: 1000,
            reactors: 5,
            reactions_min: 3,
            reactions_max: 5,
            edit_every: 2,
            delete_every: 50,
            text_bytes: 100,
            batch: 100,
            in_flight: 32,
            requests: 2000,
            duration: Duration::from_secs(60),
            limit: 100,
            readers: 1,
            room: "r".to_owned(),
            nick_prefix: "h".to_owned(),
            server_pid: None,
            store_pid: None,
            label: String::new(),
        }
    }

    #[test]
    fn shape_of_the_room() {
        let o = options();
        assert!(o.check().is_ok());
        let reactions: usize = (0..o.messages).map(|m| o.reactions_of(m)).sum();
        let edits: usize = (0..o.messages).map(|m| o.edits_of(m)).sum();
        let deleted = (0..o.messages).filter(|&m| o.deleted(m)).count();
        assert_eq!(reactions, 3999); // 334 × 3 + 333 × 4 + 333 × 5
        assert_eq!(edits, 750); // 500 messages, once and twice alternately
        assert_eq!(deleted, 20);
        assert_eq!(
            (0..5).map(|m| o.reactions_of(m)).collect::<Vec<_>>(),
            [3, 4, 5, 3, 4]
        );
        let mut plain = o.clone();
        plain.plain();
        assert!(plain.check().is_ok());
        assert_eq!(plain.reactions_of(7) + plain.edits_of(7), 0);
        assert!(!plain.deleted(49));
    }

    #[test]
    fn bad_options_are_refused() {
        let mut o = options();
        o.reactors = 4;
        assert!(o.check().is_err(), "5 reactions need 5 users");
        let mut o = options();
        o.readers = 0;
        assert!(o.check().is_err());
    }

    #[test]
    fn texts_have_the_asked_length_and_differ_by_version() {
        assert_eq!(text(12, 0, 100).len(), 100);
        assert_ne!(text(12, 0, 100), text(12, 1, 100));
        assert!(text(12, 2, 100).starts_with("history bench message 12 version 2 "));
    }
}
