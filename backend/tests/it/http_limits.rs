//! What a peer can hold before it has sent a request: slow or huge request heads, more
//! open connections than its share, and unfinished requests at shutdown. Attackers come
//! from 127.0.0.2 and honest clients from 127.0.0.3 (all of 127/8 is loopback), with
//! no trusted proxies, so each is an address of its own.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::{get, TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection to `addr` from the loopback address `from`.
pub(crate) async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Sends `GET /healthz` from `from` and returns the status code.
async fn healthz_from(from: &str, addr: SocketAddr) -> u16 {
    let mut s = connect_from(from, addr).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("/healthz timed out")
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Reads until the server closes the connection, or panics after `within`; returns
/// what it sent.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut buf = Vec::new();
    match tokio::time::timeout(within, s.read_to_end(&mut buf)).await {
        Ok(_) => buf,
        Err(_) => panic!("the server kept the connection open for {within:?}"),
    }
}

async fn untrusting(tweak: impl FnOnce(&mut backend::Config)) -> TestServer {
    TestServer::with(|c| {
        c.trusted_proxies = vec![];
        c.header_timeout = Duration::from_millis(800);
        tweak(c);
    })
    .await
}

#[tokio::test]
async fn half_sent_requests_are_capped_per_address_and_time_out() {
    // A header timeout longer than opening the 300 takes on a busy machine: the test
    // counts who was refused while all of them wait, so none may time out (and free
    // its place) before the last one has arrived.
    let server = untrusting(|c| {
        c.max_http_connections_per_ip = 32;
        c.header_timeout = Duration::from_secs(3);
    })
    .await;
    let mut slow = Vec::new();
    let mut refused = 0;
    for _ in 0..300 {
        let mut s = connect_from("127.0.0.2", server.addr).await;
        let _ = s
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await;
        slow.push(s);
    }
    // The honest client is served at once while the 300 wait.
    let started = Instant::now();
    assert_eq!(healthz_from("127.0.0.3", server.addr).await, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Beyond its share of 32, the attacker's connections were refused with a 503.
    for s in &mut slow {
        let mut first = [0u8; 12];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(50), s.read(&mut first)).await
        {
            if first[..n].starts_with(b"HTTP/1.1 503") {
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 300 - 32, "refused beyond the per-address share");
    // And the ones let in are dropped once the header timeout passes.
    for s in &mut slow {
        closed_within(s, Duration::from_secs(5)).await;
    }
    // Their places are free again.
    assert_eq!(healthz_from("127.0.0.2", server.addr).await, 200);
}

#[tokio::test]
async fn open_connections_are_capped_in_total() {
    let server = untrusting(|c| {
        c.max_http_connections = 4;
        c.max_http_connections_per_ip = 0;
    })
    .await;
    let mut held = Vec::new();
    for from in ["127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"] {
        held.push(connect_from(from, server.addr).await);
    }
    // Give the server a moment to accept all four, then the fifth is over the total.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = connect_from("127.0.0.8", server.addr).await;
    let answer = closed_within(&mut fifth, WAIT).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(healthz_from("127.0.0.8", server.addr).await, 200);
}

#[tokio::test]
async fn a_huge_request_head_is_refused_not_buffered() {
    let server = TestServer::start().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let padding = "a".repeat(400 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {padding}\r\n\r\n");
    // The server stops reading once the head is over its limit, so the write may fail.
    let _ = s.write_all(request.as_bytes()).await;
    let answer = closed_within(&mut s, WAIT).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
}

#[tokio::test]
async fn shutdown_does_not_wait_for_unfinished_requests() {
    let mut server = TestServer::with(|c| c.header_timeout = Duration::from_secs(3600)).await;
    let mut chat = server.member("alice", "lobby").await;
    let mut unfinished = TcpStream::connect(server.addr).await.unwrap();
    unfinished
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // And a keep-alive connection between requests.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    let started = Instant::now();
    server.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(chat.expect_close().await, Some(1001));
    closed_within(&mut unfinished, Duration::from_secs(1)).await;
    closed_within(&mut idle, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn trusted_proxies_count_only_in_the_total() {
    // Every client behind a proxy shares its address: the per-address share must not
    // apply to it (the test clients come from 127.0.0.1, trusted by default).
    let server = TestServer::with(|c| c.max_http_connections_per_ip = 2).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let (status, _) = get(server.addr, "/healthz").await;
    assert_eq!(status, 200);
}
