//! End to end: the real WebAssembly app in headless Chromium, driven through
//! chromedriver, against the real server.
//!
//! Needs the release bundle in `dist/` (`cargo xtask web`) and `chromium` +
//! `chromedriver` on PATH. `cargo xtask test` sets `HUDDLE_E2E=1`, which turns a missing
//! prerequisite into a failure; a plain `cargo test` skips these tests with a message.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::json;
use support::TestServer;

const WAIT: Duration = Duration::from_secs(20);

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

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| p.is_file())
    })
}

/// A chromedriver process on a free port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
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

async fn sign_in(b: &Browser, base: &str, nick: &str) {
    b.goto(base).await.unwrap();
    let field = b
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#nick"))
        .await
        .unwrap();
    field.clear().await.unwrap();
    field.send_keys(&format!("{nick}\u{E007}")).await.unwrap();
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(".status-connected"))
        .await
        .expect("app did not connect");
}

async fn say(b: &Browser, text: &str) {
    let input = b.find(Locator::Css("input[name=message]")).await.unwrap();
    input.send_keys(&format!("{text}\u{E007}")).await.unwrap();
}

/// Waits for a chat message whose text is exactly `text`.
async fn wait_message(b: &Browser, text: &str) {
    let xpath = format!(
        "//li[contains(@class,'msg')]//p[@class='text' and text()={}]",
        xpath_literal(text)
    );
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|_| panic!("message {text:?} never appeared"));
}

fn xpath_literal(s: &str) -> String {
    if !s.contains('\'') {
        format!("'{s}'")
    } else {
        format!("\"{s}\"")
    }
}

/// Waits until no message of this browser is still waiting for its ack.
async fn wait_all_acked(b: &Browser) {
    for _ in 0..200 {
        if b.find_all(Locator::Css(".pending"))
            .await
            .unwrap()
            .is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("a message was never acknowledged");
}

async fn screenshot(b: &Browser, name: &str) {
    let dir = workspace().join("target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let png = b.screenshot().await.unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

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
    let notice = alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(
            "//li[contains(@class,'notice')][contains(., 'bob joined')]",
        ))
        .await
        .expect("no join notification");
    let color = alice
        .execute(
            "return getComputedStyle(arguments[0]).color",
            vec![serde_json::to_value(&notice).unwrap()],
        )
        .await
        .unwrap();
    let rgb: Vec<u32> = color
        .as_str()
        .unwrap()
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .map(|c| c.trim().parse().unwrap())
        .collect();
    assert!(
        rgb[2] > rgb[0] + 60 && rgb[2] > rgb[1] + 60,
        "notification is not blue: {color}"
    );

    // Messages flow both ways, and are acknowledged.
    say(&alice, "hello bob").await;
    wait_message(&bob, "hello bob").await;
    say(
        &bob,
        "hi alice, <b>not bold</b> <img src=x onerror=alert(1)>",
    )
    .await;
    wait_message(
        &alice,
        "hi alice, <b>not bold</b> <img src=x onerror=alert(1)>",
    )
    .await;
    let injected = alice
        .find_all(Locator::Css(".messages img, .messages b"))
        .await
        .unwrap();
    assert!(injected.is_empty(), "message text was rendered as HTML");
    wait_all_acked(&alice).await;

    // The server has them, in order.
    let mut probe = server.login("probe").await;
    let texts = probe.history_texts("lobby").await;
    assert_eq!(
        texts,
        [
            "hello bob",
            "hi alice, <b>not bold</b> <img src=x onerror=alert(1)>"
        ]
    );

    screenshot(&alice, "alice.png").await;
    screenshot(&bob, "bob.png").await;

    // Bob leaves; alice is told, in blue.
    bob.close().await.unwrap();
    alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(
            "//li[contains(@class,'notice')][contains(., 'bob left')]",
        ))
        .await
        .expect("no leave notification");
    alice.close().await.unwrap();
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

    server.stop().await.unwrap();
    alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(
            ".status-reconnecting, .status-offline, .status-connecting",
        ))
        .await
        .expect("the app did not notice the server going away");
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
    let texts: Vec<String> = {
        let mut out = Vec::new();
        for el in alice.find_all(Locator::Css(".msg .text")).await.unwrap() {
            out.push(el.text().await.unwrap());
        }
        out
    };
    assert_eq!(
        texts.iter().filter(|t| *t == "before restart").count(),
        1,
        "{texts:?}"
    );
    for text in ["while offline", "after restart"] {
        assert_eq!(texts.iter().filter(|t| *t == text).count(), 1, "{texts:?}");
    }
    // The server stored each exactly once, in the order they were written.
    wait_all_acked(&alice).await;
    let mut probe = restarted.login("probe").await;
    let stored = probe.history_texts("lobby").await;
    assert_eq!(stored, ["before restart", "while offline", "after restart"]);
    alice.close().await.unwrap();
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
