//! The cluster broker's stream reader: delivers stored messages by reading each room's
//! stream (`Keys::log`, entry id `<offset>-1`) with one `XREAD BLOCK` over every room
//! with local members, from the last offset delivered here per room.
//!
//! Stream order is offset order, so every member on every instance sees one order; the
//! stream is the only path, so nothing arrives twice (this instance's own messages come
//! back through it too); and after a Redis reconnect the reader resumes from its
//! positions, so nothing is skipped while the data survives. When it cannot deliver a
//! room without a hole (the history was reset, or trimmed past this instance's
//! position), it reports the room lost and its members resume on their own.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig};
use tokio_util::sync::CancellationToken;

use super::is_channel;
use super::redis::Shared;
use crate::cluster::{pause, Retry, CONNECT_TIMEOUT, RESPONSE_TIMEOUT};
use crate::disconnect::Disconnect;
use crate::logsafe::{Chain, Escaped};
use crate::store::redis::{fresh_epoch, offset_of, stream_entry};

/// How long one `XREAD` waits for new entries. Also the longest a newly subscribed room
/// waits before the reader includes it, so it is short.
const READ_BLOCK: Duration = Duration::from_millis(200);
/// Most entries taken from one room's stream per read: bounds one reply's size while a
/// busy room catches up.
const READ_COUNT: usize = 512;

/// The stream reader task; see the module docs.
pub(super) async fn read_streams(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut retry = Retry::new("redis stream reader");
    let mut epoch: Option<String> = None;
    while !cancel.is_cancelled() {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(READ_BLOCK + RESPONSE_TIMEOUT));
        let conn = shared
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await;
        let result = match conn {
            Ok(mut conn) => {
                retry.connected();
                read_loop(&shared, &mut conn, &mut epoch, &cancel).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            if !pause(&cancel, retry.failed(&e)).await {
                break;
            }
        }
    }
}

/// Reads and delivers until cancelled (`Ok`) or a Redis error (`Err`).
async fn read_loop(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    epoch: &mut Option<String>,
    cancel: &CancellationToken,
) -> redis::RedisResult<()> {
    let options = StreamReadOptions::default()
        .block(READ_BLOCK.as_millis() as usize)
        .count(READ_COUNT);
    let epoch_key = shared.keys.epoch();
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        // A different epoch means Redis lost its data: offsets start over, so positions
        // from the old history would skip the new one's first messages, and so would the
        // sessions, which drop offsets they think they have. Created here when missing,
        // exactly as the store does, so a loss is seen once.
        let (now,): (String,) = redis::pipe()
            .atomic()
            .set_nx(&epoch_key, fresh_epoch())
            .ignore()
            .get(&epoch_key)
            .query_async(conn)
            .await?;
        if epoch.as_ref().is_some_and(|e| *e != now) {
            tracing::warn!("redis history epoch changed; closing members so they reload");
            let mut rooms = shared.rooms();
            for (room, position) in rooms.iter_mut() {
                *position = 0;
                // Their rejoin with the old epoch gets `recovered: false`.
                shared.node.lost(room, Disconnect::EpochChanged);
            }
        }
        *epoch = Some(now);
        // A user's own channel carries events only: it has no stream to read.
        let (keys, ids): (Vec<String>, Vec<String>) = shared
            .rooms()
            .iter()
            .filter(|(room, _)| !is_channel(room))
            .map(|(room, last)| (shared.keys.log(room), format!("{last}-1")))
            .unzip();
        if keys.is_empty() {
            if !pause(cancel, READ_BLOCK).await {
                return Ok(());
            }
            continue;
        }
        let reply: Option<StreamReadReply> = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            reply = conn.xread_options(&keys, &ids, &options) => reply?,
        };
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(room) = shared.keys.room_of_log(&stream.key) else {
                continue;
            };
            let erased = erased_in_holes(shared, conn, room, &stream.ids).await?;
            deliver_entries(shared, room, &stream.ids, &erased);
        }
    }
}

/// The most offsets of one hole looked up in `erased`: a hole wider than this is taken
/// for a trim (a deletion erases one message and its few edits).
const HOLE_CHECK: u64 = 1000;

/// Of the offsets missing between this node's position in `room` and the entries just
/// read, those a deletion erased (noted in the room's `erased` set in the same script
/// that removed them, so a reader that sees the hole also sees the note).
async fn erased_in_holes(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    room: &str,
    entries: &[StreamId],
) -> redis::RedisResult<HashSet<u64>> {
    let Some(mut prev) = shared.rooms().get(room).copied() else {
        return Ok(HashSet::new());
    };
    let mut holes: Option<(u64, u64)> = None;
    for entry in entries {
        let Ok(offset) = offset_of(&entry.id) else {
            continue;
        };
        if prev > 0 && offset > prev + 1 && offset - prev <= HOLE_CHECK {
            let (lo, _) = holes.unwrap_or((prev + 1, 0));
            holes = Some((lo, offset - 1));
        }
        prev = prev.max(offset);
    }
    let Some((lo, hi)) = holes else {
        return Ok(HashSet::new());
    };
    let erased: Vec<u64> = conn.zrangebyscore(shared.keys.erased(room), lo, hi).await?;
    Ok(erased.into_iter().collect())
}

/// Hands a room's new stream entries up to this node, in order. A hole before an entry
/// is a loss (the stream was trimmed past this node's position) unless every offset in
/// it is one a deletion erased (`erased`).
fn deliver_entries(shared: &Shared, room: &str, entries: &[StreamId], erased: &HashSet<u64>) {
    let mut rooms = shared.rooms();
    // Unsubscribed while the read was in flight: nobody here to deliver to.
    let Some(position) = rooms.get_mut(room) else {
        return;
    };
    // Handed up together, so each member gets them in one socket write.
    let mut batch = Vec::with_capacity(entries.len());
    for entry in entries {
        let msg = match stream_entry(room, entry) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::error!(room = %Escaped(room), error = %Chain(&e), "unreadable stream entry skipped");
                continue;
            }
        };
        let offset = msg.offset();
        // Resubscribed (or reset) while the read was in flight: already delivered.
        if offset <= *position {
            continue;
        }
        // A deletion removes the message and its edits from the stream: a hole it
        // accounts for is no loss.
        let explained = offset - *position <= HOLE_CHECK
            && (*position + 1..offset).all(|o| erased.contains(&o));
        if *position > 0 && offset > *position + 1 && !explained {
            // The stream was trimmed (`--history-max`) past what this instance had read:
            // its members would silently miss messages. Like an overflowing outbox,
            // 4008 makes them resume with `since`, which tells them what is gone.
            tracing::warn!(room = %Escaped(room), from = *position + 1, to = offset - 1, "fell behind the trimmed stream; closing members with 4008");
            shared.node.messages(&batch);
            batch.clear();
            shared.node.lost(room, Disconnect::FellBehind);
        }
        *position = offset;
        batch.push(msg);
    }
    if !batch.is_empty() {
        shared.node.messages(&batch);
    }
}
