//! End to end: the real WebAssembly app in headless Chromium, driven through
//! chromedriver, against the real server.
//!
//! Needs the release bundle in `dist/` (`cargo xtask web`) and `chromium` +
//! `chromedriver` on PATH, so every test here is `#[ignore]`d: a plain `cargo test`
//! lists them as ignored, `cargo xtask test` runs them (`--include-ignored`) after
//! checking the tools, and a test run without its tools fails saying what is missing.
//!
//! The tests read the page through the selectors of the DOM contract
//! (`notes/dom-contract.md`), mostly with small scripts, and wait for conditions rather
//! than for fixed times. Screenshots go to `target/e2e/`; with `HUDDLE_SCREENSHOTS=1`
//! the four pictures of the app in `docs/` are regenerated.

mod bundle;
mod chat;
mod conversation;
mod failover;
mod fallback;
mod members;
mod notifications;
mod people;
mod recovery;
mod rooms;
mod screenshots;
mod scrolling;

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{which, Client, Huddle, TestServer};
use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::elements::Element;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(20);

/// Enter, as WebDriver spells it in `send_keys`.
const ENTER: &str = "\u{E007}";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Panics, saying what to do, unless the web bundle and the browser are here: these
/// tests are `#[ignore]`d, so they run only when asked for, and then must not pass
/// without running.
fn require() {
    let bundle = workspace().join("dist/index.html").exists();
    let driver = which("chromedriver").is_some() && which("chromium").is_some();
    assert!(
        bundle,
        "browser test cannot run: no web bundle in dist/ (run `cargo xtask web`)"
    );
    assert!(
        driver,
        "browser test cannot run: chromium/chromedriver not on PATH (run `cargo xtask setup`)"
    );
}

/// A chromedriver process on a free port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = crate::support::free_port();
        // Its own process group, so dropping the driver also ends the browsers it
        // started, even when a test fails before closing them.
        let driver = Driver {
            child: Command::new("chromedriver")
                .process_group(0)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver"),
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("chromedriver did not start");
    }

    /// A new headless Chromium with its own profile (so its own localStorage).
    async fn browser(&self, width: u32, height: u32) -> (Browser, tempfile::TempDir) {
        self.browser_with(width, height, &[]).await
    }

    /// Like [`Driver::browser`], with extra command-line flags for Chromium.
    async fn browser_with(
        &self,
        width: u32,
        height: u32,
        extra: &[&str],
    ) -> (Browser, tempfile::TempDir) {
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            // Fixed pixels, so screenshots have the size asked for.
            "--force-device-scale-factor=1".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".to_owned(), json!({ "args": args }));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let browser = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("start chromium");
        (browser, profile)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Reading and driving the page.

/// Runs a script in the page and decodes what it returns.
async fn js<T: DeserializeOwned>(b: &Browser, script: &str, args: Vec<Value>) -> T {
    let value = b
        .execute(script, args)
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"));
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("script returned {value}: {e}\n{script}"))
}

/// What the page shows, for failure messages: the status, the room, the rendered
/// rows, and the end of the page's text.
async fn page_text(b: &Browser) -> String {
    b.execute(
        r#"const q = s => document.querySelector(s);
        const o = Array.from(document.querySelectorAll('li.msg[data-offset]'),
            li => Number(li.dataset.offset));
        const st = q('.status');
        const app = q('.app');
        const text = (app ? app.innerText : document.body.innerHTML)
            .replace(/[\u0000-\u0008\u000b-\u001f]+/g, '…');
        return `status: ${st ? `${st.className} "${st.textContent}" welcomes=${st.dataset.welcomes}` : 'none'}\n`
            + `room: ${q('main.room') ? q('main.room').dataset.room : 'none'}, `
            + `${document.querySelectorAll('ol.messages > li').length} rows, ${o.length} messages, `
            + `offsets ${o.length ? Math.min(...o) + '..' + Math.max(...o) : '-'}\n`
            + `closes: ${JSON.stringify(window.__closes)}\n`
            + text.slice(-2500);"#,
        vec![],
    )
    .await
    .map(|v| v.as_str().unwrap_or_default().to_owned())
    .unwrap_or_else(|e| format!("(page unreadable: {e})"))
}

/// Polls `script` (which must return a boolean) until it is true.
async fn wait_for(b: &Browser, what: &str, timeout: Duration, script: &str, args: Vec<Value>) {
    let start = Instant::now();
    loop {
        if js::<bool>(b, script, args.clone()).await {
            return;
        }
        if start.elapsed() > timeout {
            panic!(
                "waited {timeout:?} for {what}; the page shows:\n{}",
                page_text(b).await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for an element matching `css`.
async fn wait_css(b: &Browser, css: &str) -> Element {
    match b.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
        Ok(el) => el,
        Err(e) => panic!(
            "{css} never appeared ({e}); the page shows:\n{}",
            page_text(b).await
        ),
    }
}

/// Clicks the element matching `css` once it appears.
async fn click(b: &Browser, css: &str) {
    wait_css(b, css).await.click().await.unwrap();
}

/// Joins `room` through the sidebar's field and waits until it is on screen.
async fn join_room(b: &Browser, room: &str) {
    let field = wait_css(b, ".join-room input[name=room]").await;
    field.send_keys(&format!("{room}{ENTER}")).await.unwrap();
    wait_room_on_screen(b, room).await;
}

/// Opens `url` and signs in as `nick` through the nick form.
async fn sign_in_at(b: &Browser, url: &str, nick: &str) {
    b.goto(url).await.unwrap();
    let field = wait_css(b, "#nick").await;
    field.clear().await.unwrap();
    field.send_keys(&format!("{nick}{ENTER}")).await.unwrap();
    wait_css(b, ".status-connected").await;
    wait_css(b, "main.room textarea[name=message]").await;
}

async fn sign_in(b: &Browser, base: &str, nick: &str) {
    sign_in_at(b, base, nick).await;
}

/// Types a message into the composer and sends it with Enter.
async fn say(b: &Browser, text: &str) {
    let input = b
        .find(Locator::Css("textarea[name=message]"))
        .await
        .unwrap();
    input.send_keys(&format!("{text}{ENTER}")).await.unwrap();
}

/// Waits for a chat message whose text is exactly `text`.
async fn wait_message(b: &Browser, text: &str) {
    wait_for(
        b,
        &format!("message {text:?}"),
        WAIT,
        "return Array.from(document.querySelectorAll('li.msg .text'))\
             .some(p => p.textContent === arguments[0])",
        vec![json!(text)],
    )
    .await;
}

/// The texts of every rendered message row, in page order.
async fn message_texts(b: &Browser) -> Vec<String> {
    js(
        b,
        "return Array.from(document.querySelectorAll('li.msg .text'), p => p.textContent)",
        vec![],
    )
    .await
}

/// The offsets of the rendered stored messages, in page order.
async fn rendered_offsets(b: &Browser) -> Vec<u64> {
    js(
        b,
        "return Array.from(document.querySelectorAll('li.msg[data-offset]'), \
             li => Number(li.dataset.offset))",
        vec![],
    )
    .await
}

/// Waits until no message of this browser is still waiting for its ack.
async fn wait_all_acked(b: &Browser) {
    wait_for(
        b,
        "every message to be acknowledged (no .pending row)",
        Duration::from_secs(30),
        "return document.querySelector('.pending') === null",
        vec![],
    )
    .await;
}

/// The room on screen, from `main.room[data-room]`.
async fn room_on_screen(b: &Browser) -> Option<String> {
    js(
        b,
        "const m = document.querySelector('main.room'); return m && m.dataset.room",
        vec![],
    )
    .await
}

async fn wait_room_on_screen(b: &Browser, room: &str) {
    wait_for(
        b,
        &format!("#{room} on screen"),
        WAIT,
        "const m = document.querySelector('main.room'); \
         return !!m && m.dataset.room === arguments[0]",
        vec![json!(room)],
    )
    .await;
}

/// The joined rooms in the sidebar, in order.
async fn sidebar_rooms(b: &Browser) -> Vec<String> {
    js(
        b,
        "return Array.from(document.querySelectorAll('.joined-rooms .room-item'), \
             li => li.dataset.room)",
        vec![],
    )
    .await
}

/// The computed text colour of the first element matching `css` whose text contains
/// `text`, as [r, g, b].
async fn colour_of(b: &Browser, css: &str, text: &str) -> [u32; 3] {
    let colour: String = js(
        b,
        "const el = Array.from(document.querySelectorAll(arguments[0]))\
             .find(e => e.textContent.includes(arguments[1])); \
         return el ? getComputedStyle(el).color : 'none'",
        vec![json!(css), json!(text)],
    )
    .await;
    let parts: Vec<u32> = colour
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .take(3)
        .map(|c| {
            c.trim()
                .parse()
                .unwrap_or_else(|_| panic!("colour {colour:?}"))
        })
        .collect();
    [parts[0], parts[1], parts[2]]
}

/// Asserts that a notice containing `text` is shown in blue.
async fn assert_blue_notice(b: &Browser, text: &str) {
    wait_for(
        b,
        &format!("a notice {text:?}"),
        WAIT,
        "return Array.from(document.querySelectorAll('li.notice'))\
             .some(n => n.textContent.includes(arguments[0]))",
        vec![json!(text)],
    )
    .await;
    let [r, g, bl] = colour_of(b, "li.notice", text).await;
    assert!(
        bl > r + 60 && bl > g + 40,
        "notice {text:?} is not blue: rgb({r}, {g}, {bl})"
    );
}

/// Where screenshots go: `docs/` when regenerating the documentation's pictures
/// (`HUDDLE_SCREENSHOTS=1`), otherwise `target/e2e/` so test runs leave the tree clean.
fn screenshot_dir(for_docs: bool) -> PathBuf {
    if for_docs && std::env::var_os("HUDDLE_SCREENSHOTS").is_some_and(|v| v == "1") {
        workspace().join("docs")
    } else {
        workspace().join("target/e2e")
    }
}

/// Resizes the window so that the page's viewport is `width` x `height` CSS pixels.
/// (Headless Chromium keeps room for browser chrome it does not draw, so the window
/// must be larger than the viewport by that much.)
async fn set_viewport(b: &Browser, width: u32, height: u32) {
    let inner = || async { js::<(u32, u32)>(b, "return [innerWidth, innerHeight]", vec![]).await };
    let (mut w, mut h) = (width, height);
    for _ in 0..5 {
        b.set_window_size(w, h).await.unwrap();
        let (iw, ih) = inner().await;
        if (iw, ih) == (width, height) {
            return;
        }
        w = (w + width).saturating_sub(iw);
        h = (h + height).saturating_sub(ih);
    }
    panic!(
        "cannot get a {width}x{height} viewport: {:?}",
        inner().await
    );
}

/// Saves a screenshot and returns its path and its size in pixels.
async fn screenshot_to(b: &Browser, dir: &Path, name: &str) -> (PathBuf, u32, u32) {
    std::fs::create_dir_all(dir).unwrap();
    let png = b.screenshot().await.unwrap();
    assert_eq!(&png[1..4], b"PNG", "not a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap();
    (path, width, height)
}

async fn screenshot(b: &Browser, name: &str) {
    screenshot_to(b, &screenshot_dir(false), name).await;
}

/// Replaces the page's `WebSocket` with one that records close codes in
/// `window.__closes`, for sockets the app opens from now on. (The app's glue looks the
/// constructor up on every connect.)
async fn record_close_codes(b: &Browser) {
    b.execute(
        "window.__closes = []; \
         const Native = window.WebSocket; \
         window.WebSocket = class extends Native { \
             constructor(url, protocols) { \
                 super(url, protocols); \
                 this.addEventListener('close', e => window.__closes.push(e.code)); \
             } \
         };",
        vec![],
    )
    .await
    .unwrap();
}

/// The number of `welcome`s the page received (the status element's `data-welcomes`).
async fn welcomes(b: &Browser) -> u32 {
    js(
        b,
        "const s = document.querySelector('.status'); \
         return s ? Number(s.dataset.welcomes) : 0",
        vec![],
    )
    .await
}

/// Walks a room's whole history in the page, from the rendered window up to the
/// oldest message, the way a reader scrolling up would: scroll the view to the top
/// (or press "Load older messages" when it is already there) and wait for older rows.
/// Checks on every step that the page renders no offset twice and at most
/// `max_rows` rows, and that loading does not throw the view to the bottom. Returns
/// every offset seen.
async fn scroll_to_oldest(b: &Browser, max_rows: usize) -> BTreeSet<u64> {
    let mut seen = BTreeSet::new();
    loop {
        let shown = rendered_offsets(b).await;
        let unique: BTreeSet<u64> = shown.iter().copied().collect();
        assert_eq!(unique.len(), shown.len(), "an offset is rendered twice");
        let rows: usize = js(
            b,
            "return document.querySelectorAll('ol.messages > li').length",
            vec![],
        )
        .await;
        assert!(
            rows <= max_rows,
            "{rows} rows rendered (at most {max_rows})"
        );
        seen.extend(shown.iter().copied());
        let min = *shown.iter().min().expect("no message rendered");
        let more: bool = js(
            b,
            "return document.querySelector('.load-older') !== null",
            vec![],
        )
        .await;
        if !more {
            assert_eq!(
                min, 1,
                "no older messages offered, but the oldest shown is {min}"
            );
            return seen;
        }
        // The row at the top now must stay in view when the older rows arrive.
        let top_key = format!("m{min}");
        b.execute(
            "const s = document.querySelector('.scroller'); \
             if (s.scrollTop > 0) { s.scrollTop = 0; } \
             else { document.querySelector('.load-older').click(); }",
            vec![],
        )
        .await
        .unwrap();
        wait_for(
            b,
            &format!("messages older than {min}"),
            WAIT,
            "const o = Array.from(document.querySelectorAll('li.msg[data-offset]'), \
                 li => Number(li.dataset.offset)); \
             return o.length > 0 && Math.min(...o) < arguments[0]",
            vec![json!(min)],
        )
        .await;
        // Once laid out (a frame later), the old top row is still on screen, near
        // the top: the view neither jumped to the bottom nor stayed at the new top.
        let (in_view, scroll_top, scroll_height, client_height): (bool, f64, f64, f64) = js(
            b,
            "await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))); \
             const s = document.querySelector('.scroller'); \
             const row = s.querySelector(`[data-key=\"${arguments[0]}\"]`); \
             const top = row.offsetTop - s.scrollTop; \
             return [top >= -row.offsetHeight && top < s.clientHeight, \
                     s.scrollTop, s.scrollHeight, s.clientHeight]",
            vec![json!(top_key)],
        )
        .await;
        assert!(
            in_view,
            "after loading older rows, row {top_key} left the view \
             (scrollTop {scroll_top}, scrollHeight {scroll_height}, clientHeight {client_height})"
        );
        assert!(
            scroll_top + client_height < scroll_height - 100.0,
            "the view jumped to the bottom after loading older rows \
             (scrollTop {scroll_top}, scrollHeight {scroll_height})"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Protocol-side helpers.

/// Posts `count` messages to `room` as `nick`, as fast as the server takes them, with
/// at most `window` unacknowledged at a time, reading meanwhile (a member that stopped
/// reading its own echoes would itself become a slow consumer). Stops early once
/// `stop` holds for a frame the flooder receives. Returns how many messages were
/// acknowledged.
async fn flood(
    ws_url: &str,
    nick: &str,
    room: &str,
    count: usize,
    window: usize,
    text: impl Fn(usize) -> String + Send + 'static,
    stop: impl Fn(&Value) -> bool + Send + 'static,
) -> usize {
    let mut c = Client::connect(ws_url).await;
    assert_eq!(c.hello(nick).await["type"], "welcome");
    assert_eq!(c.join(room).await["type"], "joined");
    let (mut sink, mut stream) = c.into_ws().split();
    let stopped = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let done_sending = Arc::new(AtomicBool::new(false));
    let room_for = Arc::new(tokio::sync::Semaphore::new(window));
    let reader = {
        let (stopped, sent, done_sending, room_for) = (
            stopped.clone(),
            sent.clone(),
            done_sending.clone(),
            room_for.clone(),
        );
        tokio::spawn(async move {
            let mut acked = 0;
            loop {
                if done_sending.load(Ordering::SeqCst) && acked == sent.load(Ordering::SeqCst) {
                    return acked;
                }
                let frame = tokio::time::timeout(Duration::from_secs(30), stream.next())
                    .await
                    .expect("flooder: no frame for 30 s")
                    .expect("flooder: connection ended")
                    .expect("flooder: read error");
                let Message::Text(t) = frame else { continue };
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                match v["type"].as_str() {
                    Some("ack") => {
                        acked += 1;
                        room_for.add_permits(1);
                    }
                    Some("error") => panic!("flooder got an error: {v}"),
                    _ => {}
                }
                if stop(&v) {
                    stopped.store(true, Ordering::SeqCst);
                }
            }
        })
    };
    for i in 1..=count {
        room_for.acquire().await.unwrap().forget();
        if stopped.load(Ordering::SeqCst) {
            break;
        }
        let frame = json!({"type": "send", "room": room, "text": text(i), "id": format!("f{i}")});
        sink.send(Message::text(frame.to_string()))
            .await
            .expect("flooder: send");
        sent.store(i, Ordering::SeqCst);
    }
    done_sending.store(true, Ordering::SeqCst);
    let acked = reader.await.unwrap();
    let _ = sink.close().await;
    acked
}

/// A tiny HTTP endpoint a frozen page polls with synchronous requests: it answers
/// `shut` until the test sets `open`. (A page whose main thread is busy runs no
/// events, so this is the one way to tell it when to resume.)
struct Gate {
    url: String,
    open: Arc<AtomicBool>,
}

impl Gate {
    async fn start() -> Gate {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/gate", listener.local_addr().unwrap());
        let open = Arc::new(AtomicBool::new(false));
        let state = open.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let _ = s.read(&mut buf).await;
                    let body = if state.load(Ordering::SeqCst) {
                        "open"
                    } else {
                        "shut"
                    };
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\n\
                         Cache-Control: no-store\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(reply.as_bytes()).await;
                });
            }
        });
        Gate { url, open }
    }
}

/// A TCP proxy in front of a server that holds every WebSocket upgrade (`GET /ws`)
/// back for `delay`, like a slow network, and passes everything else straight
/// through. What a page shows while it waits for its socket is then easy to see.
async fn slow_websocket_proxy(
    upstream: std::net::SocketAddr,
    delay: Duration,
) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut first = vec![0u8; 8192];
                let Ok(n) = client.read(&mut first).await else {
                    return;
                };
                if first[..n].starts_with(b"GET /ws") {
                    tokio::time::sleep(delay).await;
                }
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                if server.write_all(&first[..n]).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    addr
}

// ---------------------------------------------------------------------------------------
// The tests.

/// Has `b` say m1..m`count`, one every ~100 ms, in a task of its own; returns the texts
/// and the task.
fn keep_talking(b: &Browser, count: usize) -> (Vec<String>, tokio::task::JoinHandle<()>) {
    let expected: Vec<String> = (1..=count).map(|i| format!("m{i}")).collect();
    let (b, texts) = (b.clone(), expected.clone());
    let task = tokio::spawn(async move {
        for text in &texts {
            say(&b, text).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (expected, task)
}

/// Waits until `b` (`who`) shows the last of `expected`, then checks that its messages
/// are exactly `expected`, each once, in order.
async fn wait_for_all(b: &Browser, who: &str, expected: &[String]) {
    let last = expected.last().expect("some messages");
    wait_for(
        b,
        &format!("{last} at {who}"),
        Duration::from_secs(30),
        "return Array.from(document.querySelectorAll('li.msg .text'))\
             .some(p => p.textContent === arguments[0])",
        vec![json!(last)],
    )
    .await;
    assert_eq!(message_texts(b).await, expected, "what {who} sees");
}

/// The number of live chat sessions on an instance, from its `/metrics`.
async fn sessions_live(addr: std::net::SocketAddr) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix("huddle_sessions_live "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no huddle_sessions_live in:\n{body}"))
}
