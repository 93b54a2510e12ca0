//! The per-connection handles other parts of the server hold: a bounded outbox to push
//! frames into, and a control to close the connection with a reason.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::codec::Frame;
use crate::disconnect::Disconnect;
use crate::locks;
use crate::metrics::Metrics;

/// Identifies one WebSocket connection for the life of the process.
pub(crate) type ConnId = u64;

/// A frame waiting to be written to one connection.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// The room a chat message belongs to (None for other frames).
    pub(crate) room: Option<Arc<str>>,
    /// The offset of a chat message, so the session can drop what it already sent
    /// during a replay (0 for other frames).
    pub(crate) offset: u64,
    /// Sent unless empty.
    pub(crate) frame: Frame,
    /// What the connection must do when it takes this item, in queue order.
    pub(crate) directive: Option<crate::broker::Directive>,
}

/// Asks a connection to close. Whoever calls [`Control::close`] first names the reason.
#[derive(Debug, Default)]
pub(crate) struct Control {
    token: CancellationToken,
    reason: OnceLock<Disconnect>,
}

impl Control {
    /// Asks the connection to close for `why`; later calls keep the first reason.
    pub(crate) fn close(&self, why: Disconnect) {
        let _ = self.reason.set(why);
        self.token.cancel();
    }

    /// Resolves once someone asked this connection to close, with the reason.
    pub(crate) async fn closed(&self) -> Disconnect {
        self.token.cancelled().await;
        // Set before the token is cancelled, so always there.
        self.reason.get().copied().unwrap_or(Disconnect::Shutdown)
    }
}

/// The sending side of a connection's bounded outbox.
///
/// Not a `tokio::sync::mpsc` channel: that allocates a block of slots up front and keeps
/// it, about 1.8 KB for every connection even when it never receives a frame. This queue
/// holds nothing while empty, gives its memory back after a burst, and lets the session
/// take everything queued in one lock, which is what write coalescing wants anyway.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    queue: Arc<Queue>,
    control: Arc<Control>,
    /// Frames dropped because the queue was full (`huddle_outbox_drops_total`).
    dropped: Counter,
}

/// The receiving side, owned by the session.
#[derive(Debug)]
pub(crate) struct Inbox {
    queue: Arc<Queue>,
}

#[derive(Debug)]
struct Queue {
    items: Mutex<Items>,
    ready: Notify,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Items {
    frames: VecDeque<Outgoing>,
    /// Set when the session ends: later frames are dropped silently.
    closed: bool,
}

/// A drained queue keeping more room than this gives it back: bursts are rare, and
/// most connections spend their life idle.
const KEEP_CAPACITY: usize = 16;

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Items> {
        locks::lock(&self.items)
    }
}

impl Outbox {
    /// A new outbox holding at most `capacity` frames, its receiver, and its control;
    /// frames it has to drop are counted in `metrics`.
    pub(crate) fn new(capacity: usize, metrics: &Metrics) -> (Self, Inbox, Arc<Control>) {
        let queue = Arc::new(Queue {
            items: Mutex::new(Items::default()),
            ready: Notify::new(),
            capacity: capacity.max(1),
        });
        let control = Arc::new(Control::default());
        (
            Outbox {
                queue: Arc::clone(&queue),
                control: Arc::clone(&control),
                dropped: metrics.outbox_drops.clone(),
            },
            Inbox { queue },
            control,
        )
    }

    /// Queues a frame without waiting. A full queue means the peer reads slower than the
    /// room talks: the connection is closed with 4008 rather than letting one slow reader
    /// hold memory or slow the broadcaster. The client resumes with `since`.
    pub(crate) fn push(&self, item: Outgoing) {
        let mut items = self.queue.lock();
        if items.closed {
            return;
        }
        if items.frames.len() >= self.queue.capacity {
            drop(items);
            self.dropped.inc();
            self.control.close(Disconnect::SlowConsumer);
            return;
        }
        let was_empty = items.frames.is_empty();
        items.frames.push_back(item);
        drop(items);
        // One wake-up per batch: the session takes everything queued when it runs.
        if was_empty {
            self.queue.ready.notify_one();
        }
    }

    /// The connection's control, to close it for another reason.
    pub(crate) fn control(&self) -> &Arc<Control> {
        &self.control
    }
}

impl Inbox {
    /// Waits for frames, then moves up to `max` of them (oldest first) into `into`.
    pub(crate) async fn recv_many(&self, into: &mut Vec<Outgoing>, max: usize) {
        loop {
            if self.try_recv_many(into, max) > 0 {
                return;
            }
            self.queue.ready.notified().await;
        }
    }

    /// Moves up to `max` queued frames into `into` without waiting; returns how many.
    pub(crate) fn try_recv_many(&self, into: &mut Vec<Outgoing>, max: usize) -> usize {
        let mut items = self.queue.lock();
        let n = items.frames.len().min(max);
        into.extend(items.frames.drain(..n));
        if items.frames.is_empty() && items.frames.capacity() > KEEP_CAPACITY {
            items.frames = VecDeque::new();
        } else if !items.frames.is_empty() {
            // Frames left behind (more than `max`): make sure the next wait ends at once.
            self.queue.ready.notify_one();
        }
        n
    }

    /// The next queued frame, if any.
    #[cfg(test)]
    pub(crate) fn try_recv(&self) -> Option<Outgoing> {
        let mut one = Vec::with_capacity(1);
        self.try_recv_many(&mut one, 1);
        one.pop()
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut items = self.queue.lock();
        items.closed = true;
        items.frames = VecDeque::new();
    }
}
