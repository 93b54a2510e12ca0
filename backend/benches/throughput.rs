//! Measures end-to-end chat throughput on one node: many senders, one room, every
//! message stored in SQLite (group commit), acked, and fanned out to every member.
//!
//! Run: `cargo bench -p backend --bench throughput` (optionally `-- SENDERS LISTENERS
//! MESSAGES_PER_SENDER`). It prints numbers; it asserts nothing beyond completeness.
//! Traffic stays on 127.0.0.1 and the run is bounded in count and time.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, nick: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .unwrap();
    for frame in [
        json!({"type": "hello", "nick": nick}),
        json!({"type": "join", "room": "bench"}),
    ] {
        ws.send(Message::text(frame.to_string())).await.unwrap();
        loop {
            let Some(Ok(Message::Text(t))) = ws.next().await else {
                panic!("closed")
            };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "welcome" || v["type"] == "joined" {
                break;
            }
        }
    }
    ws
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let senders = *args.first().unwrap_or(&20);
    let listeners = *args.get(1).unwrap_or(&80);
    let per_sender = *args.get(2).unwrap_or(&250);
    let total = senders * per_sender;

    let dir = tempfile::tempdir().unwrap();
    let mut config = backend::Config::with_db(dir.path().join("bench.db"));
    config.rate_per_sec = 1_000_000;
    config.rate_burst = 1_000_000;
    config.outbox = 1 << 16;
    // Every bench client comes from 127.0.0.1: no per-address limits.
    config.max_connections_per_ip = 0;
    config.ip_join_rate = 0;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(backend::run(listener, config, async move {
        let _ = stopped.await;
    }));

    let mut readers = Vec::new();
    for i in 0..listeners {
        let mut ws = connect(&url, &format!("listener{i}")).await;
        readers.push(tokio::spawn(async move {
            let mut got = 0;
            while got < total {
                match ws.next().await {
                    Some(Ok(Message::Text(t)))
                        if t.as_str().starts_with(r#"{"type":"message""#) =>
                    {
                        got += 1
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
            got
        }));
    }
    let mut sockets = Vec::new();
    for i in 0..senders {
        sockets.push(connect(&url, &format!("sender{i}")).await);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            let sent_at = std::sync::Arc::new(std::sync::Mutex::new(vec![None; per_sender]));
            let stamps = sent_at.clone();
            let writer = tokio::spawn(async move {
                for n in 0..per_sender {
                    stamps.lock().unwrap()[n] = Some(Instant::now());
                    let frame = json!({"type": "send", "room": "bench", "id": format!("{i}-{n}"), "text": "hello, this is a benchmark message"});
                    tx.send(Message::text(frame.to_string())).await.unwrap();
                }
                tx
            });
            let mut latencies = Vec::with_capacity(per_sender);
            let mut received = 0;
            while latencies.len() < per_sender || received < total {
                let Some(Ok(Message::Text(t))) = rx.next().await else { break };
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                match v["type"].as_str() {
                    Some("ack") => {
                        let n: usize = v["id"].as_str().unwrap().split('-').nth(1).unwrap().parse().unwrap();
                        let at = sent_at.lock().unwrap()[n].unwrap();
                        latencies.push(at.elapsed());
                    }
                    Some("message") => received += 1,
                    _ => {}
                }
            }
            let _tx = writer.await.unwrap();
            (latencies, received)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        let (l, _) = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("benchmark timed out")
            .unwrap();
        latencies.extend(l);
    }
    let acked_in = started.elapsed();
    let mut delivered = 0;
    for r in readers {
        delivered += tokio::time::timeout(Duration::from_secs(120), r)
            .await
            .expect("benchmark timed out")
            .unwrap();
    }
    let all_in = started.elapsed();
    latencies.sort();
    let members = senders + listeners;
    println!("huddle throughput: {senders} senders x {per_sender} messages, {members} members in one room");
    println!(
        "  acked:      {} messages in {:.2?} = {:.0} msg/s",
        latencies.len(),
        acked_in,
        latencies.len() as f64 / acked_in.as_secs_f64()
    );
    println!(
        "  delivered:  {} frames to listeners in {:.2?} = {:.0} frames/s (plus {} to senders)",
        delivered,
        all_in,
        delivered as f64 / all_in.as_secs_f64(),
        total * senders
    );
    println!(
        "  ack latency: p50 {:.2?}  p99 {:.2?}  max {:.2?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
