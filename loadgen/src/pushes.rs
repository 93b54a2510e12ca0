//! `loadgen pushes`: how fast a server turns alerts into Web Pushes.
//!
//! A local push service ([`crate::push_service`]) holds N subscribers' keys. N guests
//! each sign in, send `push_subscribe` with their subscriber's endpoint
//! (`http://127.0.0.1:PORT/push/<i>`) and keys, and disconnect, so each has a push
//! subscription and no open connection. Then C HTTP clients post A alerts per user
//! through `POST /api/users/{user}/notifications` (the server's `--api-token`), as fast
//! as the server answers, spread over the users in turn. An alert for a user with no
//! connection is due for a push at once; the push service decrypts every push and
//! reads back its title, `p<n> <µs>`: which alert it is and when it was posted.
//!
//! Measured: pushes per second received by the push service from the first POST to the
//! last push, the delay from each POST to its push (p50/p99), the POSTs' own rate and
//! latency, and that every alert was pushed exactly once. The server must allow more
//! than A pushes a minute per user (`--push-rate`) and loopback push endpoints
//! (`--push-hosts 127.0.0.1`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ClientMsg, PushKeys, ServerMsg};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::guest::Guest;
use crate::measure::Latency;
use crate::procstat::{ticks_per_sec, Proc, Sample};
use crate::push_service::{OnPush, PushService};
use crate::report::RunReport;
use crate::scenario::parse_ws_url;
use crate::signins::{cpus_allowed, online_cpus, source_ip, Http, MAX_CONCURRENCY};

/// Most users one run subscribes.
pub const MAX_USERS: usize = 10_000;
/// Most alerts one run posts.
pub const MAX_ALERTS: usize = 200_000;
/// Longest the sign-ins and subscriptions may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest the run waits for pushes after the last POST.
pub const MAX_DRAIN: Duration = Duration::from_secs(600);
/// After the last expected push, how long the service keeps listening for repeats.
const LINGER: Duration = Duration::from_millis(500);
/// Version of the report's layout.
pub const SCHEMA: u32 = 1;

/// What to measure.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The server's WebSocket URL; the API is on the same address.
    pub url: String,
    /// The server's `--api-token`.
    pub api_token: String,
    /// Users, each with one subscription.
    pub users: usize,
    /// Alerts posted per user.
    pub per_user: usize,
    /// HTTP clients posting at once.
    pub concurrency: usize,
    /// After the last POST, wait at most this long for the pushes.
    pub drain: Duration,
    pub nick_prefix: String,
    pub server_pid: Option<u32>,
    pub label: String,
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}")]
    Options(String),
    #[error("set-up failed: {0}")]
    Setup(String),
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    pub schema: u32,
    pub label: String,
    pub users: usize,
    pub per_user: usize,
    pub concurrency: usize,
    pub cpus: usize,
    pub server_cpus: Option<String>,
    pub loadgen_cpus: Option<String>,
    /// Seconds to sign in, subscribe and disconnect every user.
    pub setup_s: f64,
    /// Alerts posted, and answered 202.
    pub posted: u64,
    pub accepted: u64,
    /// POSTs that failed, by reason.
    pub post_failures: BTreeMap<String, u64>,
    /// Seconds from the first POST to the last answer.
    pub post_s: f64,
    pub posts_per_s: f64,
    /// Request → answer of the POSTs.
    pub post_latency: Latency,
    /// Pushes that decrypted (duplicates included).
    pub pushed: u64,
    /// Seconds from the first POST to the last push.
    pub window_s: f64,
    /// `pushed` / `window_s`.
    pub pushes_per_s: f64,
    /// POST → push.
    pub latency: Latency,
    /// Alerts pushed more than once (each extra push counts).
    pub duplicated: u64,
    /// Accepted alerts never pushed.
    pub missing: u64,
    /// Pushes the service refused (bad headers, or not decrypting).
    pub refused: u64,
    /// Pushes that decrypted but did not name one of this run's alerts.
    pub unexpected: u64,
    pub server_cpu_pct: Option<f64>,
    pub server_rss_before: Option<u64>,
    pub server_rss_after: Option<u64>,
    pub loadgen_cpu_pct: f64,
    pub ok: bool,
}

impl RunReport for PushReport {
    fn passed(&self) -> bool {
        self.ok
    }

    fn human(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        let mib =
            |b: Option<u64>| b.map_or("?".to_owned(), |b| format!("{:.1}", b as f64 / 1048576.0));
        let mut s = format!(
            "pushes ({}): {} users × {} alerts, {} posting at once\n  \
             {:.0} pushes/s: {} pushed of {} accepted in {:.2} s; POST→push p50 {:.1} ms, \
             p99 {:.1} ms, max {:.1} ms\n  \
             POSTs {:.0}/s (p50 {:.1} ms, p99 {:.1} ms); duplicated {}, missing {}, refused {}, \
             unexpected {}; server CPU {}, RSS {} → {} MiB; loadgen CPU {:.0} %; set-up {:.1} s: {}\n",
            self.label,
            self.users,
            self.per_user,
            self.concurrency,
            self.pushes_per_s,
            self.pushed,
            self.accepted,
            self.window_s,
            ms(self.latency.p50_us),
            ms(self.latency.p99_us),
            ms(self.latency.max_us),
            self.posts_per_s,
            ms(self.post_latency.p50_us),
            ms(self.post_latency.p99_us),
            self.duplicated,
            self.missing,
            self.refused,
            self.unexpected,
            self.server_cpu_pct
                .map_or("?".to_owned(), |c| format!("{c:.0} %")),
            mib(self.server_rss_before),
            mib(self.server_rss_after),
            self.loadgen_cpu_pct,
            self.setup_s,
            if self.ok { "OK" } else { "NOT OK" },
        );
        for (why, n) in &self.post_failures {
            s.push_str(&format!("  {n} × {why}\n"));
        }
        s
    }
}

/// What the push service saw; shared with its handler. A std Mutex: each push holds it
/// for a few counter updates, never across an `.await`.
struct Arrivals {
    /// Pushes per (user, alert number).
    counts: Vec<Vec<u8>>,
    pushed: u64,
    unexpected: u64,
    latency: Histogram<u64>,
    last: Option<Instant>,
}

/// Runs the benchmark; see the module docs.
pub async fn pushes(o: PushOptions) -> Result<PushReport, PushError> {
    let addr = parse_ws_url(&o.url).map_err(|e| PushError::Options(e.to_string()))?;
    if !(1..=MAX_USERS).contains(&o.users) || o.per_user == 0 {
        return Err(PushError::Options(format!(
            "--users must be 1..={MAX_USERS} and --per-user at least 1"
        )));
    }
    let total = o.users * o.per_user;
    if total > MAX_ALERTS {
        return Err(PushError::Options(format!(
            "--users × --per-user must be at most {MAX_ALERTS}"
        )));
    }
    if !(1..=MAX_CONCURRENCY).contains(&o.concurrency) {
        return Err(PushError::Options(format!(
            "--concurrency must be 1..={MAX_CONCURRENCY}"
        )));
    }
    let drain = o.drain.min(MAX_DRAIN);
    let base = Instant::now();
    let arrivals = Arc::new(Mutex::new(Arrivals {
        counts: vec![vec![0; o.per_user]; o.users],
        pushed: 0,
        unexpected: 0,
        latency: Latency::histogram(),
        last: None,
    }));
    let on_push: OnPush = {
        let arrivals = Arc::clone(&arrivals);
        Arc::new(move |i, plain, at| record(&arrivals, base, i, plain, at))
    };
    let service = PushService::start(o.users, on_push)
        .await
        .map_err(|e| PushError::Setup(format!("push service: {e}")))?;

    let set_up = Instant::now();
    let users = tokio::time::timeout(SETUP_TIMEOUT, subscribe_all(addr, &o, &service))
        .await
        .map_err(|_| PushError::Setup(format!("not subscribed within {SETUP_TIMEOUT:?}")))??;
    let setup_s = set_up.elapsed().as_secs_f64();
    // The sessions are over (each waited for the server's close); a moment more for
    // the server to have released them everywhere.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let ticks = ticks_per_sec();
    let server_before = o.server_pid.and_then(|p| Proc::Pid(p).sample().ok());
    let self_before = Proc::This.sample().ok();
    let first_post = Instant::now();
    let users = Arc::new(users);
    let mut posters = JoinSet::new();
    for c in 0..o.concurrency {
        posters.spawn(post_loop(
            addr,
            c,
            o.concurrency,
            o.per_user,
            Arc::clone(&users),
            o.api_token.clone(),
            base,
        ));
    }
    let mut posts = Posts::new();
    while let Some(done) = posters.join_next().await {
        match done {
            Ok(p) => posts.add(p),
            Err(e) => {
                *posts
                    .failures
                    .entry(format!("poster task: {e}"))
                    .or_default() += 1
            }
        }
    }
    let post_s = posts
        .last
        .saturating_duration_since(first_post)
        .as_secs_f64();
    let deadline = Instant::now() + drain;
    let pushed_now = || lock(&arrivals).pushed;
    while pushed_now() < posts.accepted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server_after = o.server_pid.and_then(|p| Proc::Pid(p).sample().ok());
    let self_after = Proc::This.sample().ok();
    tokio::time::sleep(LINGER).await;

    let a = lock(&arrivals);
    let mut duplicated = 0u64;
    let mut distinct = 0u64;
    for n in a.counts.iter().flatten() {
        distinct += u64::from(*n > 0);
        duplicated += u64::from(n.saturating_sub(1));
    }
    let missing = posts.accepted.saturating_sub(distinct);
    let window_s = a.last.map_or(0.0, |l| {
        l.saturating_duration_since(first_post).as_secs_f64()
    });
    let cpu = |before: &Option<Sample>, after: &Option<Sample>| match (before, after) {
        (Some(b), Some(a)) => Some(b.cpu_pct_until(a, ticks)),
        _ => None,
    };
    let refused = service.refused();
    let ok = posts.accepted == total as u64
        && missing == 0
        && duplicated == 0
        && refused == 0
        && a.unexpected == 0
        && service.accepted() == a.pushed;
    Ok(PushReport {
        schema: SCHEMA,
        label: o.label,
        users: o.users,
        per_user: o.per_user,
        concurrency: o.concurrency,
        cpus: online_cpus(),
        server_cpus: o
            .server_pid
            .and_then(|pid| cpus_allowed(&format!("/proc/{pid}/status"))),
        loadgen_cpus: cpus_allowed("/proc/self/status"),
        setup_s,
        posted: posts.posted,
        accepted: posts.accepted,
        post_failures: posts.failures,
        post_s,
        posts_per_s: if post_s > 0.0 {
            posts.accepted as f64 / post_s
        } else {
            0.0
        },
        post_latency: Latency::of(&posts.latency),
        pushed: a.pushed,
        window_s,
        pushes_per_s: if window_s > 0.0 {
            a.pushed as f64 / window_s
        } else {
            0.0
        },
        latency: Latency::of(&a.latency),
        duplicated,
        missing,
        refused,
        unexpected: a.unexpected,
        server_cpu_pct: cpu(&server_before, &server_after),
        server_rss_before: server_before.map(|s| s.rss_bytes),
        server_rss_after: server_after.map(|s| s.rss_bytes),
        loadgen_cpu_pct: cpu(&self_before, &self_after).unwrap_or(0.0),
        ok,
    })
}

fn lock(a: &Mutex<Arrivals>) -> std::sync::MutexGuard<'_, Arrivals> {
    a.lock().unwrap_or_else(|e| e.into_inner())
}

/// One decrypted push for subscriber `i`: `{"kind":"alert","title":"p<n> <µs>",…}`.
fn record(arrivals: &Mutex<Arrivals>, base: Instant, i: usize, plain: &[u8], at: Instant) {
    let title = serde_json::from_slice::<serde_json::Value>(plain)
        .ok()
        .filter(|v| v["kind"] == "alert")
        .and_then(|v| v["title"].as_str().map(str::to_owned));
    let parsed = title.as_deref().and_then(|t| {
        let (n, stamp) = t.strip_prefix('p')?.split_once(' ')?;
        Some((n.parse::<usize>().ok()?, stamp.parse::<u64>().ok()?))
    });
    let mut a = lock(arrivals);
    a.pushed += 1;
    a.last = Some(a.last.map_or(at, |l| l.max(at)));
    let Some((n, stamp)) = parsed else {
        a.unexpected += 1;
        return;
    };
    let Some(count) = a.counts.get_mut(i).and_then(|c| c.get_mut(n)) else {
        a.unexpected += 1;
        return;
    };
    *count = count.saturating_add(1);
    let us = (at.saturating_duration_since(base).as_micros() as u64)
        .saturating_sub(stamp)
        .max(1);
    a.latency.saturating_record(us);
}

/// Signs every user in, subscribes it and disconnects; the user ids, by subscriber.
async fn subscribe_all(
    addr: SocketAddr,
    o: &PushOptions,
    service: &PushService,
) -> Result<Vec<String>, PushError> {
    let gate = Arc::new(Semaphore::new(64));
    let mut set = JoinSet::new();
    for i in 0..o.users {
        let sub = service.subscription(i);
        let (gate, url, nick) = (
            Arc::clone(&gate),
            o.url.clone(),
            format!("{}{i}", o.nick_prefix),
        );
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            let mut g = Guest::sign_in(addr, &url, i, &nick).await?;
            g.send(&ClientMsg::PushSubscribe {
                endpoint: sub.endpoint,
                keys: PushKeys {
                    p256dh: sub.p256dh,
                    auth: sub.auth,
                },
            })
            .await?;
            g.until(|m| matches!(m, ServerMsg::PushSubscribed { .. }).then_some(()))
                .await?;
            let user = g.user.clone();
            g.close().await;
            Ok::<_, String>((i, user))
        });
    }
    let mut users = vec![String::new(); o.users];
    while let Some(done) = set.join_next().await {
        let (i, user) = done
            .map_err(|e| PushError::Setup(e.to_string()))?
            .map_err(PushError::Setup)?;
        users[i] = user;
    }
    Ok(users)
}

/// What the posters bring back.
struct Posts {
    posted: u64,
    accepted: u64,
    failures: BTreeMap<String, u64>,
    latency: Histogram<u64>,
    last: Instant,
}

impl Posts {
    fn new() -> Self {
        Posts {
            posted: 0,
            accepted: 0,
            failures: BTreeMap::new(),
            latency: Latency::histogram(),
            last: Instant::now(),
        }
    }

    fn add(&mut self, p: Posts) {
        self.posted += p.posted;
        self.accepted += p.accepted;
        for (why, n) in p.failures {
            *self.failures.entry(why).or_default() += n;
        }
        let _ = self.latency.add(&p.latency);
        self.last = self.last.max(p.last);
    }
}

/// Poster `c` of `of` posts alerts k = c, c + of, … (user k mod users, number
/// k / users), each titled with its number and the time of its POST.
async fn post_loop(
    addr: SocketAddr,
    c: usize,
    of: usize,
    per_user: usize,
    users: Arc<Vec<String>>,
    token: String,
    base: Instant,
) -> Posts {
    let mut p = Posts::new();
    let mut http: Option<Http> = None;
    let total = users.len() * per_user;
    for k in (c..total).step_by(of) {
        let (user, n) = (&users[k % users.len()], k / users.len());
        let mut conn = match http.take() {
            Some(conn) => conn,
            None => match Http::connect(addr, source_ip(c)).await {
                Ok(conn) => conn,
                Err(e) => {
                    *p.failures.entry(format!("connect: {e}")).or_default() += 1;
                    continue;
                }
            },
        };
        let start = Instant::now();
        let stamp = start.saturating_duration_since(base).as_micros();
        let body =
            serde_json::json!({"title": format!("p{n} {stamp}"), "body": "bench"}).to_string();
        p.posted += 1;
        match conn
            .post_as(
                &format!("/api/users/{user}/notifications"),
                &body,
                Some(&token),
            )
            .await
        {
            Ok((202, _)) => {
                p.accepted += 1;
                let us = (start.elapsed().as_micros() as u64).max(1);
                p.latency.saturating_record(us);
            }
            Ok((status, answer)) => {
                let code = serde_json::from_str::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                *p.failures
                    .entry(format!("HTTP {status} {code}"))
                    .or_default() += 1;
            }
            Err(e) => {
                *p.failures.entry(format!("POST: {e}")).or_default() += 1;
                continue;
            }
        }
        p.last = Instant::now();
        if !conn.closed {
            http = Some(conn);
        }
    }
    p
}
