//! End to end: the real WebAssembly app in headless Chromium, driven through
//! chromedriver, against the real server.
//!
//! Needs the release bundle in `dist/` (`cargo xtask web`) and `chromium` +
//! `chromedriver` on PATH. `cargo xtask test` sets `HUDDLE_E2E=1`, which turns a missing
//! prerequisite into a failure; a plain `cargo test` skips these tests with a message.
//!
//! The tests read the page through the selectors of the DOM contract
//! (`notes/dom-contract.md`), mostly with small scripts, and wait for conditions rather
//! than for fixed times. Screenshots go to `target/e2e/`; with `HUDDLE_SCREENSHOTS=1`
//! the four pictures of the app in `docs/` are regenerated.

mod support;

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::elements::Element;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use support::{which, Client, Huddle, TestServer};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(20);

/// Enter, as WebDriver spells it in `send_keys`.
const ENTER: &str = "\u{E007}";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether the prerequisites are here; panics when they must be (under `cargo xtask test`).
fn ready() -> bool {
    let bundle = workspace().join("dist/index.html").exists();
    let driver = which("chromedriver").is_some() && which("chromium").is_some();
    if bundle && driver {
        return true;
    }
    let why = match (bundle, driver) {
        (false, _) => "no web bundle in dist/ (run `cargo xtask web`)",
        _ => "chromium/chromedriver not on PATH (run `cargo xtask setup`)",
    };
    assert!(
        std::env::var_os("HUDDLE_E2E").is_none(),
        "browser test cannot run: {why}"
    );
    eprintln!("SKIPPED browser test: {why}");
    false
}

/// A chromedriver process on a free port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = support::free_port();
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
    let (mut sink, mut stream) = c.ws.split();
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

#[tokio::test]
async fn two_people_chat_in_the_browser_with_blue_join_and_leave_notices() {
    if !ready() {
        return;
    }
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(1000, 700).await;
    let (bob, _p2) = driver.browser(1000, 700).await;

    sign_in(&alice, &base, "alice").await;
    sign_in(&bob, &base, "bob").await;

    // Alice sees bob arrive, as a blue system notification.
    assert_blue_notice(&alice, "bob joined").await;

    // Messages flow both ways, and are acknowledged.
    say(&alice, "hello bob").await;
    wait_message(&bob, "hello bob").await;
    let markup = "hi alice, <b>not bold</b> <img src=x onerror=\"window.__pwned=1\">";
    say(&bob, markup).await;
    wait_message(&alice, markup).await;

    // Markup in a nick is text too (the nick rules allow it: no control characters).
    let mut eve = server.member("<b>eve</b>", "lobby").await;
    assert_blue_notice(&alice, "<b>eve</b> joined").await;
    eve.say_acked("lobby", "<img src=x onerror=\"window.__pwned=2\">")
        .await;
    wait_message(&alice, "<img src=x onerror=\"window.__pwned=2\">").await;
    let shown: (Vec<String>, Vec<String>) = js(
        &alice,
        "return [Array.from(document.querySelectorAll('li.msg .nick'), n => n.textContent), \
                 Array.from(document.querySelectorAll('.presence li'), n => n.textContent)]",
        vec![],
    )
    .await;
    assert!(shown.0.contains(&"<b>eve</b>".to_owned()), "{shown:?}");
    assert!(shown.1.contains(&"<b>eve</b>".to_owned()), "{shown:?}");
    let injected: bool = js(
        &alice,
        "return document.querySelector('.app img, .app b') !== null || window.__pwned !== undefined",
        vec![],
    )
    .await;
    assert!(!injected, "text from the network was rendered as HTML");

    // Web addresses become safe links; other schemes stay text.
    let linked = "docs at https://example.com/a?b=1 and javascript:alert(1)";
    say(&bob, linked).await;
    wait_message(&alice, linked).await;
    let links: Vec<(String, String, String)> = js(
        &alice,
        "const p = Array.from(document.querySelectorAll('li.msg .text'))\
             .find(p => p.textContent === arguments[0]); \
         return Array.from(p.querySelectorAll('a'), a => \
             [a.getAttribute('href'), a.getAttribute('rel') || '', a.getAttribute('target') || ''])",
        vec![json!(linked)],
    )
    .await;
    assert_eq!(links.len(), 1, "exactly one link expected: {links:?}");
    let (href, rel, target) = &links[0];
    assert_eq!(href, "https://example.com/a?b=1");
    assert!(rel.split(' ').any(|r| r == "noopener"), "rel {rel:?}");
    assert_eq!(target, "_blank");
    let script_links: usize = js(
        &alice,
        "return Array.from(document.querySelectorAll('a'))\
             .filter(a => /^\\s*javascript:/i.test(a.getAttribute('href') || '')).length",
        vec![],
    )
    .await;
    assert_eq!(script_links, 0, "a javascript: link was rendered");
    wait_all_acked(&alice).await;
    wait_all_acked(&bob).await;

    // The server has them, in order.
    let mut probe = server.login("probe").await;
    let texts = probe.history_texts("lobby").await;
    assert_eq!(
        texts,
        [
            "hello bob",
            markup,
            "<img src=x onerror=\"window.__pwned=2\">",
            linked
        ]
    );

    screenshot(&alice, "alice.png").await;
    screenshot(&bob, "bob.png").await;

    // Bob leaves; alice is told, in blue.
    bob.close().await.unwrap();
    assert_blue_notice(&alice, "bob left").await;
    alice.close().await.unwrap();
}

#[tokio::test]
async fn typing_shows_for_the_others_and_goes_away() {
    if !ready() {
        return;
    }
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(1000, 700).await;
    let (bob, _p2) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    sign_in(&bob, &base, "bob").await;
    assert_blue_notice(&alice, "bob joined").await;

    let typing_is = "const t = document.querySelector('.typing'); \
                     return !!t && t.textContent.trim() === arguments[0]";
    let field = bob
        .find(Locator::Css("textarea[name=message]"))
        .await
        .unwrap();
    field.send_keys("hel").await.unwrap();
    let stopped = Instant::now();
    wait_for(
        &alice,
        "bob is typing",
        Duration::from_secs(5),
        typing_is,
        vec![json!("bob is typing…")],
    )
    .await;
    // Bob typed nothing more: it goes away by itself, a few seconds later.
    wait_for(
        &alice,
        "the typing line to clear",
        Duration::from_secs(8),
        typing_is,
        vec![json!("")],
    )
    .await;
    let shown_for = stopped.elapsed();
    assert!(
        shown_for >= Duration::from_secs(2) && shown_for <= Duration::from_secs(8),
        "typing shown for {shown_for:?}"
    );
    // Bob never sees himself typing.
    assert!(js::<bool>(&bob, typing_is, vec![json!("")]).await);

    // Typing again, then sending: the message clears it at once.
    field.send_keys("lo").await.unwrap();
    wait_for(
        &alice,
        "bob is typing again",
        Duration::from_secs(5),
        typing_is,
        vec![json!("bob is typing…")],
    )
    .await;
    field.send_keys(ENTER).await.unwrap();
    wait_message(&alice, "hello").await;
    wait_for(
        &alice,
        "the typing line to clear when bob's message arrives",
        Duration::from_secs(2),
        typing_is,
        vec![json!("")],
    )
    .await;
}

#[tokio::test]
async fn rooms_links_unread_badges_back_button_and_leaving() {
    if !ready() {
        return;
    }
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(1000, 700).await;
    let (bob, _p2) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    assert_eq!(room_on_screen(&alice).await.as_deref(), Some("lobby"));

    // Alice creates #dev with the join form: it is on screen, in the URL and the sidebar.
    let field = alice
        .find(Locator::Css(".join-room input[name=room]"))
        .await
        .unwrap();
    field.send_keys(&format!("dev{ENTER}")).await.unwrap();
    wait_room_on_screen(&alice, "dev").await;
    assert_eq!(
        alice.current_url().await.unwrap().fragment(),
        Some("/r/dev")
    );
    assert_eq!(sidebar_rooms(&alice).await, ["dev", "lobby"]);
    wait_css(
        &alice,
        ".room-item.current[data-room=dev] [aria-current=page]",
    )
    .await;

    // Bob follows a link straight into #dev.
    sign_in_at(&bob, &format!("{base}#/r/dev"), "bob").await;
    wait_room_on_screen(&bob, "dev").await;
    say(&bob, "in dev").await;
    wait_message(&alice, "in dev").await;

    // Back in the lobby, #dev's message is not there.
    alice
        .find(Locator::Css(".room-item[data-room=lobby] .room-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_room_on_screen(&alice, "lobby").await;
    assert!(!message_texts(&alice).await.contains(&"in dev".to_owned()));

    // A message in #dev while alice reads the lobby raises its badge ...
    say(&bob, "ping dev").await;
    let badge = wait_css(&alice, ".room-item[data-room=dev] .unread").await;
    assert_eq!(badge.text().await.unwrap(), "1");
    assert!(message_texts(&alice).await.is_empty());
    // ... and opening #dev clears it.
    alice
        .find(Locator::Css(".room-item[data-room=dev] .room-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_room_on_screen(&alice, "dev").await;
    wait_message(&alice, "ping dev").await;
    assert!(alice
        .find_all(Locator::Css(".room-item[data-room=dev] .unread"))
        .await
        .unwrap()
        .is_empty());

    // The browser's back button returns to the room before.
    alice.back().await.unwrap();
    wait_room_on_screen(&alice, "lobby").await;
    assert_eq!(
        alice.current_url().await.unwrap().fragment(),
        Some("/r/lobby")
    );

    // The room directory lists #dev after a refresh.
    alice
        .find(Locator::Css(".refresh-rooms"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(&alice, ".all-rooms .open-room[data-room=dev]").await;

    // Leaving #dev takes it out of the sidebar; bob sees alice go, in blue.
    let leave = alice
        .find(Locator::Css(".room-item[data-room=dev] .leave-room"))
        .await
        .unwrap();
    // The button shows on hover (or focus), as for a person with a mouse.
    alice
        .perform_actions(<MouseActions as InputSource>::then(
            MouseActions::new("mouse".to_owned()),
            PointerAction::MoveToElement {
                element: leave.clone(),
                duration: None,
                x: 0.0,
                y: 0.0,
            },
        ))
        .await
        .unwrap();
    leave.click().await.unwrap();
    wait_for(
        &alice,
        "#dev to leave the sidebar",
        WAIT,
        "return document.querySelector('.room-item[data-room=dev]') === null",
        vec![],
    )
    .await;
    assert_eq!(sidebar_rooms(&alice).await, ["lobby"]);
    assert_blue_notice(&bob, "alice left").await;

    // A /r/<room> path works too, and is rewritten to the hash form.
    alice.goto(&format!("{base}r/dev")).await.unwrap();
    wait_room_on_screen(&alice, "dev").await;
    wait_css(&alice, ".status-connected").await;
    wait_message(&alice, "ping dev").await;
    let url = alice.current_url().await.unwrap();
    assert_eq!((url.path(), url.fragment()), ("/", Some("/r/dev")));
    assert_eq!(sidebar_rooms(&alice).await, ["dev", "lobby"]);
    assert_blue_notice(&bob, "alice joined").await;
}

#[tokio::test]
async fn a_reload_keeps_the_nick_and_the_rooms() {
    if !ready() {
        return;
    }
    let server = TestServer::start().await;
    // Through a proxy that makes the WebSocket take a second to open, so whatever
    // the page shows while it reconnects stays on screen long enough to be seen.
    let proxy = slow_websocket_proxy(server.addr, Duration::from_secs(1)).await;
    let base = format!("http://{proxy}/");
    let driver = Driver::start().await;
    let (alice, _p) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    let field = alice
        .find(Locator::Css(".join-room input[name=room]"))
        .await
        .unwrap();
    field.send_keys(&format!("dev{ENTER}")).await.unwrap();
    wait_room_on_screen(&alice, "dev").await;
    say(&alice, "before reload").await;
    wait_all_acked(&alice).await;
    // A second client, to ask the server who is where after the reload.
    let mut watcher = server.member("watcher", "lobby").await;

    alice.refresh().await.unwrap();
    // Straight back in, as alice, in the same rooms: the page never asks for the nick
    // (the saved session reclaims it), not even while its socket is on the way.
    let first: String = {
        let start = Instant::now();
        loop {
            let seen: Option<String> = js(
                &alice,
                "return document.querySelector('.nick-form') ? 'the nick form' \
                     : document.querySelector('main.room') ? 'the room' : null",
                vec![],
            )
            .await;
            if let Some(seen) = seen {
                break seen;
            }
            assert!(
                start.elapsed() < WAIT,
                "the page showed nothing after the reload"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    assert_eq!(
        first, "the room",
        "after a reload the page showed the nick form first"
    );
    wait_css(&alice, ".status-connected").await;
    wait_room_on_screen(&alice, "dev").await;
    assert!(
        alice
            .find_all(Locator::Css("#nick, .nick-form"))
            .await
            .unwrap()
            .is_empty(),
        "the nick form is shown after a reload"
    );
    assert_eq!(
        welcomes(&alice).await,
        1,
        "a fresh page counts its welcomes from 0"
    );
    assert_eq!(sidebar_rooms(&alice).await, ["dev", "lobby"]);
    wait_message(&alice, "before reload").await;
    wait_css(&alice, "li.msg.mine").await;
    let members: Vec<String> = js(
        &alice,
        "return Array.from(document.querySelectorAll('.presence li'), li => li.textContent)",
        vec![],
    )
    .await;
    assert_eq!(members, ["alice"]);
    // The server agrees it is alice (the session reclaimed the nick): she is in the
    // lobby as alice, and "alice" cannot be taken by someone else.
    let mut other = server.client().await;
    let refused = other.hello("alice").await;
    assert_eq!(refused["code"], "nick_taken", "{refused}");
    watcher.send(json!({"type": "list_rooms"})).await;
    let rooms = watcher.next_of("rooms").await;
    let dev = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room"] == "dev")
        .cloned()
        .expect("no #dev on the server");
    assert_eq!(dev["members"], 1, "{rooms}");
}

#[tokio::test]
async fn the_app_reconnects_after_a_server_restart_without_losing_messages() {
    if !ready() {
        return;
    }
    let mut server = TestServer::start().await;
    let addr = server.addr;
    let db = server.db.clone();
    let base = format!("http://{addr}/");
    let driver = Driver::start().await;
    let (alice, _p) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    say(&alice, "before restart").await;
    wait_message(&alice, "before restart").await;

    // A graceful stop: every socket is closed with 1001.
    server.stop().await.unwrap();
    wait_css(
        &alice,
        ".status-reconnecting, .status-offline, .status-connecting",
    )
    .await;
    // A message sent while offline is kept and delivered after the reconnect.
    say(&alice, "while offline").await;
    let mut restarted = None;
    for _ in 0..100 {
        if let Ok(listener) = tokio::net::TcpListener::bind(addr).await {
            drop(listener);
            restarted = Some(TestServer::on_db(db.clone(), |c| c.addr = addr).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let restarted = restarted.expect("port not free again");
    alice
        .wait()
        .at_most(Duration::from_secs(40))
        .for_element(Locator::Css(".status-connected"))
        .await
        .expect("app did not reconnect");
    say(&alice, "after restart").await;
    wait_message(&alice, "after restart").await;
    wait_all_acked(&alice).await;
    assert_eq!(
        message_texts(&alice).await,
        ["before restart", "while offline", "after restart"]
    );
    // The server stored each exactly once, in the order they were written.
    let mut probe = restarted.login("probe").await;
    let stored = probe.history_texts("lobby").await;
    assert_eq!(stored, ["before restart", "while offline", "after restart"]);
    alice.close().await.unwrap();
}

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

#[tokio::test]
async fn a_server_killed_with_sigkill_mid_conversation_loses_and_repeats_nothing() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("huddle.db");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    let mut server = Huddle::start(&db, addr, &[]).await;
    let base = format!("http://{addr}/");
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(900, 700).await;
    let (bob, _p2) = driver.browser(900, 700).await;
    sign_in(&alice, &base, "alice").await;
    sign_in(&bob, &base, "bob").await;

    // Alice keeps talking, one message every ~100 ms, through the crash.
    let (expected, sender) = keep_talking(&alice, 40);
    wait_message(&bob, "m8").await;
    server.kill9().await;
    // Messages typed while the server is down wait in alice's page.
    wait_for(
        &alice,
        "messages queued while the server is down",
        WAIT,
        "return document.querySelectorAll('li.msg.pending').length >= 3",
        vec![],
    )
    .await;
    let server = Huddle::start(&db, addr, &[]).await;
    sender.await.unwrap();
    wait_all_acked(&alice).await;

    for (who, b) in [("alice", &alice), ("bob", &bob)] {
        wait_for_all(b, who, &expected).await;
        assert!(welcomes(b).await >= 2, "{who} never reconnected");
    }
    let mut probe = Client::connect(&server.ws_url()).await;
    assert_eq!(probe.hello("probe").await["type"], "welcome");
    let texts: Vec<String> = probe
        .whole_history("lobby")
        .await
        .into_iter()
        .map(|(_, _, _, text)| text)
        .collect();
    assert_eq!(texts, expected);
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

#[tokio::test]
async fn behind_a_load_balancer_a_killed_instance_loses_nothing() {
    if !ready() {
        return;
    }
    let Some(_) = support::nginx::binary() else {
        assert!(
            std::env::var_os("HUDDLE_E2E").is_none(),
            "browser test cannot run: nginx is not installed (run `cargo xtask setup`)"
        );
        eprintln!("SKIPPED browser test: nginx is not installed (run `cargo xtask setup`)");
        return;
    };
    if !support::redis::available() {
        return;
    }
    let redis = support::redis::RedisServer::start().await;
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let mut instances = Vec::new();
    for name in ["a", "b"] {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", support::free_port())
            .parse()
            .unwrap();
        let db = dir.path().join(format!("{name}.db"));
        instances.push(Huddle::start(&db, addr, &["--redis", &url]).await);
    }
    let nginx = support::nginx::Nginx::start(&[instances[0].addr, instances[1].addr]).await;
    // One URL for everyone: nginx picks the instance, with no stickiness.
    let base = format!("http://{}/", nginx.addr);
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(900, 700).await;
    let (bob, _p2) = driver.browser(900, 700).await;
    sign_in(&alice, &base, "alice").await;
    // Alice is the only one signed in yet: the instance with a session is hers.
    let hers = if sessions_live(instances[0].addr).await == 1 {
        0
    } else {
        1
    };
    assert_eq!(sessions_live(instances[hers].addr).await, 1);
    sign_in(&bob, &base, "bob").await;

    // Alice keeps talking through the death of her instance.
    let (expected, sender) = keep_talking(&alice, 30);
    wait_message(&bob, "m8").await;
    instances[hers].kill9().await;
    sender.await.unwrap();
    wait_all_acked(&alice).await;

    for (who, b) in [("alice", &alice), ("bob", &bob)] {
        wait_for_all(b, who, &expected).await;
        wait_css(b, ".status-connected").await;
    }
    assert!(welcomes(&alice).await >= 2, "alice never reconnected");
    // She is on the survivor now, under the same nick.
    let survivor = &instances[1 - hers];
    assert!(sessions_live(survivor.addr).await >= 2);
    let mut probe = Client::connect(&survivor.ws_url()).await;
    assert_eq!(probe.hello("probe").await["type"], "welcome");
    let texts: Vec<String> = probe
        .whole_history("lobby")
        .await
        .into_iter()
        .map(|(_, _, _, text)| text)
        .collect();
    assert_eq!(texts, expected);
}

#[tokio::test]
async fn a_slow_consumer_closed_with_4008_resumes_without_gaps_or_duplicates() {
    if !ready() {
        return;
    }
    // A small outbox (and commit batches that fit in it), and no rate limit for the
    // flooder, which keeps no more in flight than a batch so that it is never the slow
    // one itself.
    let server = TestServer::with(|c| {
        c.outbox = 16;
        c.max_batch = 8;
        c.rate_per_sec = 100_000;
        c.rate_burst = 100_000;
    })
    .await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p) = driver.browser(1000, 700).await;
    alice.goto(&base).await.unwrap();
    wait_css(&alice, "#nick").await;
    record_close_codes(&alice).await;
    let field = alice.find(Locator::Css("#nick")).await.unwrap();
    field.send_keys(&format!("alice{ENTER}")).await.unwrap();
    wait_css(&alice, ".status-connected").await;
    assert_eq!(welcomes(&alice).await, 1);

    // Alice's page stops reading: its main thread is busy until the test opens the
    // gate, so the browser stops taking frames off the socket and the server's queue
    // for her fills.
    let gate = Gate::start().await;
    let freeze = {
        let (alice, url) = (alice.clone(), gate.url.clone());
        tokio::spawn(async move {
            alice
                .execute(
                    "const until = Date.now() + 25000; \
                     while (Date.now() < until) { \
                         const x = new XMLHttpRequest(); \
                         x.open('GET', arguments[0], false); \
                         x.send(); \
                         if (x.responseText === 'open') { return true; } \
                         const t = Date.now(); while (Date.now() - t < 20) {} \
                     } \
                     return false;",
                    vec![json!(url)],
                )
                .await
                .unwrap()
        })
    };
    // Each message is 4000 control characters, which JSON sends as 6 bytes each: about
    // 24 KB per frame, so a few hundred frames fill the socket buffers in between. The
    // flood stops as soon as the server has dropped alice (her "left" notification),
    // and her page wakes up then, while the server is still trying to say why.
    let opened = gate.open.clone();
    let acked = flood(
        &server.ws_url(),
        "flooder",
        "lobby",
        2000,
        8,
        |i| format!("flood {i} {}", "\u{1}".repeat(3980)),
        move |v| {
            let left = v["type"] == "notification" && v["kind"] == "left" && v["nick"] == "alice";
            if left {
                opened.store(true, Ordering::SeqCst);
            }
            left
        },
    )
    .await;
    gate.open.store(true, Ordering::SeqCst);
    assert_eq!(
        freeze.await.unwrap(),
        json!(true),
        "the page was frozen until the gate opened"
    );
    let head = acked as u64;
    eprintln!("4008 test: {acked} messages of ~24 KB flooded");

    // Alice was closed with 4008, came back by herself, and resumed.
    wait_for(
        &alice,
        "alice to reconnect (a second welcome)",
        Duration::from_secs(30),
        "const s = document.querySelector('.status-connected'); \
         return !!s && Number(s.dataset.welcomes) >= 2",
        vec![],
    )
    .await;
    // The page usually reads the server's 4008. The close frame queues behind the
    // megabytes already in the socket, though, and the server waits only a second for
    // it to go out; when the page drains more slowly than that (a busy machine), the
    // connection just ends and the page sees 1006. Both lead to the same resume.
    let closes: Vec<u16> = js(&alice, "return window.__closes", vec![]).await;
    assert!(
        matches!(closes.first(), Some(4008 | 1006)),
        "close codes seen by the page: {closes:?}"
    );
    eprintln!("4008 test: the page saw close codes {closes:?}");
    wait_for(
        &alice,
        &format!("the newest message (offset {head}) rendered"),
        Duration::from_secs(30),
        "return document.querySelector(`li.msg[data-offset=\"${arguments[0]}\"]`) !== null",
        vec![json!(head)],
    )
    .await;
    // Every message is there exactly once, ending at the head: walk up to the oldest.
    let seen = scroll_to_oldest(&alice, 350).await;
    assert_eq!(
        seen,
        (1..=head).collect::<BTreeSet<_>>(),
        "offsets alice can see"
    );
}

#[tokio::test]
async fn a_reader_at_the_bottom_keeps_following_a_burst_of_messages() {
    if !ready() {
        return;
    }
    let server = TestServer::with(|c| {
        c.rate_per_sec = 100_000;
        c.rate_burst = 100_000;
    })
    .await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    // More messages than the page renders, faster than it paints.
    let total = 400;
    let acked = flood(
        &server.ws_url(),
        "chatty",
        "lobby",
        total,
        100,
        |i| format!("burst {i}"),
        |_| false,
    )
    .await;
    assert_eq!(acked, total);
    // Alice did not scroll: she sees the newest message, at the bottom, with no
    // "Jump to latest" offered.
    wait_for(
        &alice,
        &format!(
            "'burst {total}' at the bottom of the view, with no 'Jump to latest' \
             (the view must keep following when it was at the bottom)"
        ),
        Duration::from_secs(10),
        "const s = document.querySelector('.scroller'); \
         const last = Array.from(document.querySelectorAll('li.msg .text')).pop(); \
         return !!last && last.textContent === arguments[0] \
             && document.querySelector('.jump-latest') === null \
             && s.scrollTop + s.clientHeight >= s.scrollHeight - 50",
        vec![json!(format!("burst {total}"))],
    )
    .await;
    let rows: usize = js(
        &alice,
        "return document.querySelectorAll('ol.messages > li').length",
        vec![],
    )
    .await;
    assert!(rows <= 300, "{rows} rows rendered");
}

#[tokio::test]
async fn a_long_room_keeps_the_page_bounded_while_scrolling_up() {
    if !ready() {
        return;
    }
    let server = TestServer::with(|c| {
        c.rate_per_sec = 100_000;
        c.rate_burst = 100_000;
    })
    .await;
    let total = 3000;
    let acked = flood(
        &server.ws_url(),
        "writer",
        "big",
        total,
        200,
        |i| format!("line {i}"),
        |_| false,
    )
    .await;
    assert_eq!(acked, total);
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p) = driver.browser(1000, 700).await;
    sign_in_at(&alice, &format!("{base}#/r/big"), "alice").await;
    wait_room_on_screen(&alice, "big").await;
    wait_message(&alice, &format!("line {total}")).await;
    let rows: usize = js(
        &alice,
        "return document.querySelectorAll('ol.messages > li').length",
        vec![],
    )
    .await;
    assert!(rows <= 300, "{rows} rows rendered on opening");
    // The view starts at the bottom, on the newest message.
    let at_bottom: bool = js(
        &alice,
        "const s = document.querySelector('.scroller'); \
         return s.scrollTop + s.clientHeight >= s.scrollHeight - 50",
        vec![],
    )
    .await;
    assert!(at_bottom, "the room did not open at its newest message");

    // Scrolling up all the way pages through everything, never rendering too much.
    let start = Instant::now();
    let seen = scroll_to_oldest(&alice, 350).await;
    assert_eq!(seen, (1..=total as u64).collect::<BTreeSet<_>>());
    eprintln!("scrolled through {total} messages in {:?}", start.elapsed());
    let rows: usize = js(
        &alice,
        "return document.querySelectorAll('ol.messages > li').length",
        vec![],
    )
    .await;
    assert!(rows <= 350, "{rows} rows rendered at the top");
    // Jumping back to the newest works from up there.
    alice
        .find(Locator::Css(".jump-latest"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_message(&alice, &format!("line {total}")).await;
}

/// Sets up the conversation shown in the documentation's screenshots and takes the
/// desktop (1280x800) and phone (360x740) pictures, light or dark.
async fn screenshot_scene(driver: &Driver, dark: bool) {
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    // History from before alice arrives.
    let mut bob = server.member("bob", "lobby").await;
    let mut carol = server.member("carol", "lobby").await;
    bob.say_acked("lobby", "Morning! The new build is up on staging.")
        .await;
    bob.say_acked(
        "lobby",
        "Release notes: https://example.com/huddle/releases/0.4",
    )
    .await;
    carol
        .say_acked(
            "lobby",
            "Nice. Reconnects feel instant now, even on the train.",
        )
        .await;

    let flags: &[&str] = if dark {
        &["--blink-settings=preferredColorScheme=0"]
    } else {
        &[]
    };
    let (alice, _p) = driver.browser_with(1280, 800, flags).await;
    sign_in(&alice, &base, "alice").await;
    let dark_now: bool = js(
        &alice,
        "return matchMedia('(prefers-color-scheme: dark)').matches",
        vec![],
    )
    .await;
    assert_eq!(dark_now, dark, "prefers-color-scheme: dark");
    // A second room, with news in it.
    let field = alice
        .find(Locator::Css(".join-room input[name=room]"))
        .await
        .unwrap();
    field.send_keys(&format!("design{ENTER}")).await.unwrap();
    wait_room_on_screen(&alice, "design").await;
    alice
        .find(Locator::Css(".room-item[data-room=lobby] .room-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_room_on_screen(&alice, "lobby").await;
    let mut dana = server.member("dana", "design").await;
    dana.say_acked("design", "Mock-ups for the phone layout are in.")
        .await;
    dana.say_acked("design", "Feedback welcome!").await;
    wait_css(&alice, ".room-item[data-room=design] .unread").await;

    // Live: someone joins, alice answers, carol follows up twice, bob starts typing.
    let _erin = server.member("erin", "lobby").await;
    assert_blue_notice(&alice, "erin joined").await;
    say(&alice, "Great, I'll try it after lunch.").await;
    wait_all_acked(&alice).await;
    carol.say_acked("lobby", "Stand-up moved to 10:30.").await;
    carol.say_acked("lobby", "Same link as always.").await;
    wait_message(&alice, "Same link as always.").await;
    let grouped: usize = js(
        &alice,
        "return document.querySelectorAll('li.msg.continued').length",
        vec![],
    )
    .await;
    assert!(grouped >= 2, "no grouped messages");
    wait_css(&alice, "li.msg .text a[href]").await;

    let dir = screenshot_dir(true);
    let suffix = if dark { "-dark" } else { "" };
    for (width, height, name) in [
        (1280, 800, format!("screenshot{suffix}.png")),
        (360, 740, format!("screenshot-phone{suffix}.png")),
    ] {
        set_viewport(&alice, width, height).await;
        // Someone typing (the line lasts 5 s after each typing frame).
        bob.send(json!({"type": "typing", "room": "lobby"})).await;
        wait_for(
            &alice,
            "bob is typing",
            WAIT,
            "return document.querySelector('.typing').textContent.includes('bob is typing')",
            vec![],
        )
        .await;
        // The newest rows in view, and the layout settled after the resize.
        js::<Value>(
            &alice,
            "await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))); \
             const s = document.querySelector('.scroller'); s.scrollTop = s.scrollHeight; \
             await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))); \
             return null",
            vec![],
        )
        .await;
        let (path, w, h) = screenshot_to(&alice, &dir, &name).await;
        assert_eq!((w, h), (width, height), "{}", path.display());
        eprintln!("wrote {}", path.display());
    }
    let [r, g, b] = colour_of(&alice, "li.notice", "erin joined").await;
    assert!(
        b > r + 60 && b > g + 40,
        "notice not blue in this theme: {r},{g},{b}"
    );
    alice.close().await.unwrap();
}

#[tokio::test]
async fn screenshots_of_the_app_light_and_dark_desktop_and_phone() {
    if !ready() {
        return;
    }
    let driver = Driver::start().await;
    // Boxed: each scene's future holds two browsers and a server, too big for the stack.
    Box::pin(screenshot_scene(&driver, false)).await;
    Box::pin(screenshot_scene(&driver, true)).await;
}

/// Sends a raw HTTP/1.1 GET and returns the response head (status line and headers).
async fn http_head(addr: std::net::SocketAddr, path: &str, headers: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_lowercase()
}

#[tokio::test]
async fn the_bundle_is_served_precompressed_with_validators() {
    if !ready() {
        return;
    }
    let wasm = std::fs::read_dir(workspace().join("dist"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.ends_with(".wasm"))
        .expect("no .wasm in dist/");
    let server = TestServer::start().await;
    let path = format!("/{wasm}");
    let br = http_head(server.addr, &path, "Accept-Encoding: gzip, deflate, br\r\n").await;
    assert!(br.contains("content-encoding: br"), "{br}");
    assert!(br.contains("content-type: application/wasm"), "{br}");
    assert!(
        br.contains("cache-control: public, max-age=31536000, immutable"),
        "{br}"
    );
    let gz = http_head(server.addr, &path, "Accept-Encoding: gzip\r\n").await;
    assert!(gz.contains("content-encoding: gzip"), "{gz}");
    let plain = http_head(server.addr, &path, "").await;
    assert!(
        plain.starts_with("http/1.1 200") && !plain.contains("content-encoding"),
        "{plain}"
    );
    let etag = plain
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("no etag")
        .to_owned();
    let again = http_head(server.addr, &path, &format!("If-None-Match: {etag}\r\n")).await;
    assert!(again.starts_with("http/1.1 304"), "{again}");
    let index = http_head(server.addr, "/r/lobby", "").await;
    assert!(
        index.contains("text/html") && index.contains("cache-control: no-cache"),
        "{index}"
    );
}
