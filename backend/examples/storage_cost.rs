//! What a stored message costs: disk in SQLite, memory in Redis. Prints bytes per
//! message for 100,000 messages of 100 bytes in 100 rooms, so docs/deploy.md can say
//! how big a deployment's storage must be for its retention.
//!
//! `cargo run -p backend --release --example storage_cost [-- redis://127.0.0.1:6379/0]`
//! (Redis is measured only when a URL is given: use an empty, disposable database; it
//! is flushed before and after.)

use backend::{Change, HistoryStore, NewEntry, RedisKeys, RedisStore, SqliteStore};

const MESSAGES: usize = 100_000;
const ROOMS: usize = 100;
const BATCH: usize = 1_000;

fn batches() -> impl Iterator<Item = Vec<NewEntry>> {
    (0..MESSAGES / BATCH).map(|b| {
        (0..BATCH)
            .map(|i| {
                let n = b * BATCH + i;
                NewEntry {
                    room: format!("room-{:03}", n % ROOMS),
                    nick: "someone".into(),
                    user: "someone".into(),
                    id: format!("m{n}"),
                    change: Change::Message {
                        text: "x".repeat(100),
                        reply_to: None,
                    },
                }
            })
            .collect()
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cost.db");
    let store = SqliteStore::open(&path)?;
    for batch in batches() {
        store.append_batch(batch).await?;
    }
    drop(store);
    // Reopening checkpoints the WAL into the main file on close of the last connection.
    drop(SqliteStore::open(&path)?);
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir.path())? {
        bytes += entry?.metadata()?.len();
    }
    println!(
        "sqlite: {MESSAGES} messages of 100 bytes: {bytes} bytes on disk, {} bytes per message",
        bytes / MESSAGES as u64
    );

    if let Some(url) = std::env::args().nth(1) {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let () = redis::cmd("FLUSHDB").query_async(&mut conn).await?;
        let used = |info: String| -> u64 {
            info.lines()
                .find_map(|l| l.strip_prefix("used_memory:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let before = used(
            redis::cmd("INFO")
                .arg("memory")
                .query_async(&mut conn)
                .await?,
        );
        let store = RedisStore::connect(&url, RedisKeys::default(), 1_000_000).await?;
        for batch in batches() {
            store.append_batch(batch).await?;
        }
        let after = used(
            redis::cmd("INFO")
                .arg("memory")
                .query_async(&mut conn)
                .await?,
        );
        println!(
            "redis: {MESSAGES} messages of 100 bytes: {} bytes of memory, {} bytes per message (de-duplication keys included; they expire after a day)",
            after - before,
            (after - before) / MESSAGES as u64
        );
        let () = redis::cmd("FLUSHDB").query_async(&mut conn).await?;
    }
    Ok(())
}
