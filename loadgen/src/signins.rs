//! `loadgen signins`: how fast a server signs people in, in three parts, each a fixed
//! number of concurrent clients looping for a bounded time:
//!
//! 1. **login**: `POST /api/auth/login` (argon2id verification on the server), each
//!    client on its own keep-alive HTTP/1.1 connection and its own account (registered
//!    first, before the clock starts);
//! 2. **token**: a WebSocket per sign-in: connect, `hello {token}` with an account token
//!    from the logins, wait for `welcome`, close (and wait for the server's close);
//! 3. **guest**: the same with `hello {nick}`, a new nick each time.
//!
//! Latency is from the request's first byte (login) or the TCP connect (token, guest)
//! to the answer (`200` or `welcome`); the rate counts complete sign-ins (for the
//! WebSocket parts: closed again) per second of the part. Client `i` uses source address
//! 127.0.0.(i mod 255 + 1), as `run` does, so per-address limits spread over 255.
//!
//! The argon2 parameters are the argon2 crate's defaults, which are what the server's
//! accounts use (same workspace, same crate version); the report carries them and the
//! time one verification takes on the load generator's core, measured before the parts.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{ClientMsg, ServerMsg};
use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::procstat::{ticks_per_sec, Proc};
use crate::report::RunReport;
use crate::scenario::parse_ws_url;

/// The most concurrent clients: one source address each, at most 255 addresses, and
/// the login throttle allows 10 attempts at once per address.
pub const MAX_CONCURRENCY: usize = 255;
/// The longest one part may last.
pub const MAX_PART: Duration = Duration::from_secs(120);
/// Longest one request, hello or close may take before it counts as failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The password every benchmark account gets (the server wants 8 or more characters).
const PASSWORD: &str = "bench-password-0123";
/// Version of the report's layout.
pub const SCHEMA: u32 = 1;

/// What to measure.
#[derive(Debug, Clone)]
pub struct SigninOptions {
    /// The server's WebSocket URL (`ws://127.0.0.1:PORT/ws`); HTTP goes to the same address.
    pub url: String,
    /// Clients at once in each part.
    pub concurrency: usize,
    /// How long each part lasts.
    pub duration: Duration,
    /// Account names are `<prefix><i>` (lower case, digits, `-`).
    pub prefix: String,
    /// The server process, for its CPU use per part.
    pub server_pid: Option<u32>,
    pub label: String,
}

/// One part's figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Part {
    pub name: String,
    pub concurrency: usize,
    pub window_s: f64,
    /// Sign-ins completed in the window.
    pub ok: u64,
    pub failed: u64,
    pub per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    /// Failures by reason.
    pub reasons: BTreeMap<String, u64>,
    /// The server's CPU over the part, in % of one core (when its pid was given).
    pub server_cpu_pct: Option<f64>,
    /// The load generator's own CPU over the part, in % of one core.
    pub loadgen_cpu_pct: f64,
}

/// Everything `signins` measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SigninReport {
    pub schema: u32,
    pub label: String,
    /// CPUs online on the machine (`/sys/devices/system/cpu/online`).
    pub cpus: usize,
    /// The CPUs the server may run on (`Cpus_allowed_list` of its pid), e.g. `0`.
    pub server_cpus: Option<String>,
    /// The CPUs the load generator may run on.
    pub loadgen_cpus: Option<String>,
    /// `argon2id m=<KiB>,t=<passes>,p=<lanes>`: the argon2 crate's defaults.
    pub argon2: String,
    /// One argon2id verification on the load generator's core, best of 5.
    pub argon2_verify_ms: f64,
    /// Accounts registered before the parts (one per client).
    pub accounts: usize,
    pub parts: Vec<Part>,
    /// Every part finished with no failure.
    pub ok: bool,
}

impl RunReport for SigninReport {
    fn passed(&self) -> bool {
        self.ok
    }

    fn human(&self) -> String {
        let mut s = format!(
            "signins ({}): {} CPUs online, server on CPU {}, loadgen on CPU {}; {} (one verify \
             {:.1} ms on loadgen's core); {} accounts\n",
            self.label,
            self.cpus,
            self.server_cpus.as_deref().unwrap_or("?"),
            self.loadgen_cpus.as_deref().unwrap_or("?"),
            self.argon2,
            self.argon2_verify_ms,
            self.accounts
        );
        for p in &self.parts {
            let cpu = p
                .server_cpu_pct
                .map_or_else(|| "?".to_owned(), |c| format!("{c:.0} %"));
            s.push_str(&format!(
                "  {:<6} c={:<3} {:>9.1}/s  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  ok {} failed {}  server CPU {cpu}, loadgen CPU {:.0} %\n",
                p.name,
                p.concurrency,
                p.per_s,
                p.p50_us as f64 / 1000.0,
                p.p99_us as f64 / 1000.0,
                p.max_us as f64 / 1000.0,
                p.ok,
                p.failed,
                p.loadgen_cpu_pct,
            ));
            for (why, n) in &p.reasons {
                s.push_str(&format!("         {n} × {why}\n"));
            }
        }
        s
    }
}

/// Why `signins` could not run.
#[derive(Debug, thiserror::Error)]
pub enum SigninError {
    #[error("{0}")]
    Options(String),
    #[error("registering the benchmark accounts failed: {0}")]
    Register(String),
    #[error("no login succeeded, so there is no token for the `token` part")]
    NoToken,
}

/// The argon2 parameters the server's accounts use, and one verification's time here.
pub fn argon2_cost() -> (String, f64) {
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
    let a = argon2::Argon2::default();
    let p = a.params();
    let label = format!(
        "argon2id m={},t={},p={}",
        p.m_cost(),
        p.t_cost(),
        p.p_cost()
    );
    let best = a
        .hash_password_with_salt(b"benchmark", b"loadgen-signins!")
        .ok()
        .map(|parsed| {
            (0..5)
                .map(|_| {
                    let start = Instant::now();
                    let ok = a.verify_password(b"benchmark", &parsed).is_ok();
                    std::hint::black_box(ok);
                    start.elapsed()
                })
                .min()
                .unwrap_or_default()
        });
    (label, best.map_or(0.0, |d| d.as_secs_f64() * 1000.0))
}

/// Registers the accounts, then runs the three parts one after the other.
pub async fn signins(o: SigninOptions) -> Result<SigninReport, SigninError> {
    if o.concurrency == 0 || o.concurrency > MAX_CONCURRENCY {
        return Err(SigninError::Options(format!(
            "--concurrency must be 1..={MAX_CONCURRENCY}"
        )));
    }
    if o.duration.is_zero() || o.duration > MAX_PART {
        return Err(SigninError::Options(format!(
            "--duration must be above 0 and at most {}s",
            MAX_PART.as_secs()
        )));
    }
    let addr = parse_ws_url(&o.url).map_err(|e| SigninError::Options(e.to_string()))?;
    let (argon2, argon2_verify_ms) = tokio::task::spawn_blocking(argon2_cost)
        .await
        .unwrap_or_default();
    let users: Vec<String> = (0..o.concurrency)
        .map(|i| format!("{}{i}", o.prefix))
        .collect();

    // The accounts, before any clock: a sign-up is a hash too, but not what is measured.
    let mut set = JoinSet::new();
    for (i, user) in users.iter().enumerate() {
        let user = user.clone();
        set.spawn(async move {
            let mut http = Http::connect(addr, source_ip(i)).await?;
            let (status, body) = http.post("/api/auth/register", &credentials(&user)).await?;
            match status {
                201 => Ok(()),
                // A second run against the same server: the account is there already.
                409 => Ok(()),
                _ => Err(format!("{user}: HTTP {status}: {body}")),
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done.map_err(|e| SigninError::Register(e.to_string()))?
            .map_err(SigninError::Register)?;
    }

    let mut parts = Vec::new();
    let (login, tokens) = measure(&o, "login", |i, deadline| {
        login_loop(addr, i, format!("{}{i}", o.prefix), deadline)
    })
    .await;
    parts.push(login);
    let tokens: Vec<String> = tokens.into_iter().flatten().collect();
    if tokens.is_empty() {
        return Err(SigninError::NoToken);
    }
    let url = o.url.clone();
    let (token, _) = measure(&o, "token", |i, deadline| {
        let hello = Hello::Token(tokens[i % tokens.len()].clone());
        ws_loop(addr, url.clone(), i, hello, deadline)
    })
    .await;
    parts.push(token);
    let prefix = o.prefix.clone();
    let (guest, _) = measure(&o, "guest", |i, deadline| {
        let hello = Hello::Guest(format!("{prefix}g{i}-"));
        ws_loop(addr, url.clone(), i, hello, deadline)
    })
    .await;
    parts.push(guest);

    Ok(SigninReport {
        schema: SCHEMA,
        label: o.label,
        cpus: online_cpus(),
        server_cpus: o
            .server_pid
            .and_then(|pid| cpus_allowed(&format!("/proc/{pid}/status"))),
        loadgen_cpus: cpus_allowed("/proc/self/status"),
        argon2,
        argon2_verify_ms,
        accounts: users.len(),
        ok: parts.iter().all(|p| p.failed == 0 && p.ok > 0),
        parts,
    })
}

/// What one client of a part brings back.
struct Tally {
    latency: Histogram<u64>,
    failed: u64,
    reasons: BTreeMap<String, u64>,
    /// The last account token a login returned.
    token: Option<String>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            // 1 µs to 10 min, 3 significant digits: cannot fail.
            latency: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
            failed: 0,
            reasons: BTreeMap::new(),
            token: None,
        }
    }

    fn ok(&mut self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency.saturating_record(us);
    }

    fn fail(&mut self, why: String) {
        self.failed += 1;
        *self.reasons.entry(why).or_default() += 1;
    }
}

/// Runs `client(i, deadline)` for every client at once and sums what they measured.
async fn measure<F, Fut>(o: &SigninOptions, name: &str, client: F) -> (Part, Vec<Option<String>>)
where
    F: Fn(usize, Instant) -> Fut,
    Fut: std::future::Future<Output = Tally> + Send + 'static,
{
    let ticks = ticks_per_sec();
    let server_before = o.server_pid.and_then(|p| Proc::Pid(p).sample().ok());
    let self_before = Proc::This.sample().ok();
    let start = Instant::now();
    let deadline = start + o.duration;
    let mut set = JoinSet::new();
    for i in 0..o.concurrency {
        set.spawn(client(i, deadline));
    }
    let mut all = Tally::new();
    let mut tokens = Vec::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok(t) => {
                let _ = all.latency.add(&t.latency);
                all.failed += t.failed;
                for (why, n) in t.reasons {
                    *all.reasons.entry(why).or_default() += n;
                }
                tokens.push(t.token);
            }
            Err(e) => all.fail(format!("client task: {e}")),
        }
    }
    let window = start.elapsed();
    let cpu = |before: Option<crate::procstat::Sample>, p: Proc| {
        let after = p.sample().ok()?;
        Some(before?.cpu_pct_until(&after, ticks))
    };
    let server_cpu_pct = o
        .server_pid
        .and_then(|pid| cpu(server_before, Proc::Pid(pid)));
    let loadgen_cpu_pct = cpu(self_before, Proc::This).unwrap_or(0.0);
    let h = &all.latency;
    let ok = h.len();
    let part = Part {
        name: name.to_owned(),
        concurrency: o.concurrency,
        window_s: window.as_secs_f64(),
        ok,
        failed: all.failed,
        per_s: ok as f64 / window.as_secs_f64(),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
        mean_us: h.mean(),
        reasons: all.reasons,
        server_cpu_pct,
        loadgen_cpu_pct,
    };
    (part, tokens)
}

/// Client `i` logs in as `user` over one keep-alive connection until `deadline`.
async fn login_loop(addr: SocketAddr, i: usize, user: String, deadline: Instant) -> Tally {
    let mut t = Tally::new();
    let body = credentials(&user);
    let mut http: Option<Http> = None;
    while Instant::now() < deadline {
        let conn = match http.take() {
            Some(c) => c,
            None => match Http::connect(addr, source_ip(i)).await {
                Ok(c) => c,
                Err(e) => {
                    t.fail(format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let mut conn = conn;
        let start = Instant::now();
        match conn.post("/api/auth/login", &body).await {
            Ok((200, answer)) => {
                t.ok(start.elapsed());
                match serde_json::from_str::<serde_json::Value>(&answer) {
                    Ok(v) => t.token = v["token"].as_str().map(str::to_owned),
                    Err(_) => t.fail("login: answer is not JSON".to_owned()),
                }
            }
            Ok((status, answer)) => {
                let code = serde_json::from_str::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                t.fail(format!("login: HTTP {status} {code}"));
            }
            Err(e) => {
                t.fail(format!("login: {e}"));
                continue;
            }
        }
        if !conn.closed {
            http = Some(conn);
        }
    }
    t
}

/// How a WebSocket client signs in.
#[derive(Clone)]
enum Hello {
    /// An account token.
    Token(String),
    /// A guest; each sign-in takes `<prefix><n>` as its nick.
    Guest(String),
}

/// Client `i` signs in over a new WebSocket, then closes it, until `deadline`.
async fn ws_loop(
    addr: SocketAddr,
    url: String,
    i: usize,
    hello: Hello,
    deadline: Instant,
) -> Tally {
    let mut t = Tally::new();
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let frame = match &hello {
            Hello::Token(token) => ClientMsg::Hello {
                nick: None,
                session: None,
                token: Some(token.clone()),
            },
            Hello::Guest(prefix) => ClientMsg::Hello {
                nick: Some(format!("{prefix}{n}")),
                session: None,
                token: None,
            },
        };
        let start = Instant::now();
        match tokio::time::timeout(STEP_TIMEOUT, sign_in(addr, &url, i, &frame)).await {
            Ok(Ok(mut ws)) => {
                t.ok(start.elapsed());
                // Close, and wait for the server's close, so the next sign-in does not
                // overlap this connection's end on the server.
                let closed = tokio::time::timeout(STEP_TIMEOUT, async {
                    let _ = ws.close(None).await;
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
                if closed.is_err() {
                    t.fail("close: timed out".to_owned());
                }
            }
            Ok(Err(e)) => {
                t.fail(e);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => t.fail("sign-in: timed out".to_owned()),
        }
    }
    t
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Connect, handshake, `hello`, and wait for `welcome`.
async fn sign_in(addr: SocketAddr, url: &str, i: usize, hello: &ClientMsg) -> Result<Ws, String> {
    let stream = connect(addr, source_ip(i))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let text = serde_json::to_string(hello).map_err(|e| e.to_string())?;
    ws.send(Message::text(text))
        .await
        .map_err(|e| format!("hello: {e}"))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => match serde_json::from_str::<ServerMsg>(t.as_str()) {
                Ok(ServerMsg::Welcome { .. }) => return Ok(ws),
                Ok(ServerMsg::Error { code, .. }) => return Err(format!("hello refused: {code}")),
                Ok(_) => {}
                Err(e) => return Err(format!("bad frame: {e}")),
            },
            Some(Ok(Message::Close(f))) => {
                return Err(format!(
                    "closed before welcome: {}",
                    f.map_or(0, |f| u16::from(f.code))
                ))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("before welcome: {e}")),
            None => return Err("connection ended before welcome".to_owned()),
        }
    }
}

/// CPUs online, or what this process may use if that cannot be read.
pub(crate) fn online_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .map(|list| count_cpus(&list))
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// How many CPUs a kernel CPU list names (`0-1` → 2, `0,2-3` → 3); 0 if it is malformed.
fn count_cpus(list: &str) -> usize {
    list.trim()
        .split(',')
        .map(|range| match range.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => usize::from(range.parse::<usize>().is_ok()),
        })
        .sum()
}

/// `Cpus_allowed_list` from a `/proc/<pid>/status` file.
pub(crate) fn cpus_allowed(status: &str) -> Option<String> {
    std::fs::read_to_string(status)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_owned())
}

pub(crate) fn source_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, (i % MAX_CONCURRENCY) as u8 + 1)
}

fn credentials(user: &str) -> String {
    serde_json::json!({"user": user, "password": PASSWORD}).to_string()
}

pub(crate) async fn connect(addr: SocketAddr, from: Ipv4Addr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.into(), 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The smallest HTTP/1.1 client the accounts API needs: JSON `POST`s over one
/// keep-alive connection, answers with a `Content-Length` (axum's JSON answers have one).
pub(crate) struct Http {
    stream: BufReader<TcpStream>,
    host: String,
    /// The server said `Connection: close`: open a new one for the next request.
    pub(crate) closed: bool,
}

impl Http {
    pub(crate) async fn connect(addr: SocketAddr, from: Ipv4Addr) -> Result<Self, String> {
        let stream = connect(addr, from)
            .await
            .map_err(|e| e.kind().to_string())?;
        Ok(Http {
            stream: BufReader::new(stream),
            host: addr.to_string(),
            closed: false,
        })
    }

    /// Sends `body` as JSON to `path`; returns the status and the answer's body.
    async fn post(&mut self, path: &str, body: &str) -> Result<(u16, String), String> {
        self.post_as(path, body, None).await
    }

    /// [`Http::post`] with an `Authorization: Bearer <token>` header when `bearer` is set.
    pub(crate) async fn post_as(
        &mut self,
        path: &str,
        body: &str,
        bearer: Option<&str>,
    ) -> Result<(u16, String), String> {
        tokio::time::timeout(STEP_TIMEOUT, self.exchange(path, body, bearer))
            .await
            .map_err(|_| "timed out".to_owned())?
    }

    async fn exchange(
        &mut self,
        path: &str,
        body: &str,
        bearer: Option<&str>,
    ) -> Result<(u16, String), String> {
        let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        let io = |e: std::io::Error| e.kind().to_string();
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .map_err(io)?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await.map_err(io)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {:?}", line.trim_end()))?;
        let mut length = 0usize;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await.map_err(io)? == 0 {
                return Err("connection ended in the headers".to_owned());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().map_err(|_| "bad Content-Length".to_owned())?;
                } else if name.eq_ignore_ascii_case("connection")
                    && value.eq_ignore_ascii_case("close")
                {
                    self.closed = true;
                }
            }
        }
        let mut answer = vec![0; length];
        self.stream.read_exact(&mut answer).await.map_err(io)?;
        Ok((status, String::from_utf8_lossy(&answer).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(count_cpus("0-1\n"), 2);
        assert_eq!(count_cpus("0"), 1);
        assert_eq!(count_cpus("0,2-3,7"), 4);
        assert_eq!(count_cpus(""), 0);
        assert_eq!(count_cpus("3-1"), 0);
    }

    #[test]
    fn source_addresses_stay_in_loopback_and_skip_zero() {
        assert_eq!(source_ip(0), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(source_ip(254), Ipv4Addr::new(127, 0, 0, 255));
        assert_eq!(source_ip(255), Ipv4Addr::new(127, 0, 0, 1));
    }
}
