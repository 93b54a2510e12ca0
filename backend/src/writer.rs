//! The single history writer: group commit, then broadcast in commit order. It writes
//! every entry of a room's log (messages, edits, deletions, reactions) the same way.
//!
//! Sessions hand appends to one task through a bounded queue. The task takes everything
//! waiting (up to `max_batch`), stores it in one transaction, and only after the commit
//! publishes each new message and answers each sender. So a message is never broadcast or
//! acked before it is durable, offsets are assigned in commit order, and one fsync is
//! shared by every message in the batch.

use std::sync::Arc;

use common::{ChatMessage, Entry};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::broker::Broker;
use crate::logsafe::Chain;
use crate::metrics::{Broadcast, Metrics};
use crate::store::{AppendOutcome, HistoryStore, NewEntry, StoreError};

/// What a sender learns about its append.
pub(crate) type AppendResult = Result<AppendOutcome<Stored>, WriteError>;

/// Where a sender's entry was stored: all its answer needs. The entry itself is not
/// handed back: it goes to the broker and, a message, moves on to the alerts, so the
/// writer copies none of its strings for the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    offset: u64,
}

impl Stored {
    /// The entry's place in its room's log.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }
}

/// Why an append was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum WriteError {
    #[error("history store failed")]
    Store(#[source] Arc<StoreError>),
    #[error("history writer has stopped")]
    Stopped,
}

struct Request {
    msg: NewEntry,
    reply: oneshot::Sender<AppendResult>,
}

/// The writer's bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterConfig {
    /// Appends waiting (`--write-queue`).
    pub(crate) queue: usize,
    /// Appends per transaction (`--max-batch`).
    pub(crate) max_batch: usize,
}

/// A handle to queue appends. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Request>,
}

/// Owns the writer task; [`WriterTask::shutdown`] flushes what is queued and waits.
pub(crate) struct WriterTask {
    handle: JoinHandle<()>,
}

impl WriteError {
    /// Whether the storage refuses writes (full or read-only) rather than failed.
    pub(crate) fn is_full(&self) -> bool {
        matches!(self, WriteError::Store(e) if matches!(**e, StoreError::Full(_)))
    }
}

impl Writer {
    /// Starts the writer task; each stored message then also goes to `committed`
    /// (the alerts), in commit order.
    pub(crate) fn start(
        store: Arc<dyn HistoryStore>,
        broker: Arc<dyn Broker>,
        committed: mpsc::Sender<ChatMessage>,
        config: WriterConfig,
        metrics: Metrics,
    ) -> (Writer, WriterTask) {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let handle = tokio::spawn(run(
            rx,
            store,
            broker,
            committed,
            config.max_batch.max(1),
            metrics,
        ));
        (Writer { tx }, WriterTask { handle })
    }

    /// Queues a message and returns where its outcome will arrive. Waits only when the
    /// queue is full, which pushes back on senders instead of buffering without bound.
    pub(crate) async fn append(&self, msg: NewEntry) -> oneshot::Receiver<AppendResult> {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(req)) = self.tx.send(Request { msg, reply }).await {
            let _ = req.reply.send(Err(WriteError::Stopped));
        }
        rx
    }
}

impl WriterTask {
    /// Waits until every queued append is stored and answered. Call after every
    /// [`Writer`] handle is dropped, or it waits for them.
    pub(crate) async fn shutdown(self) {
        if let Err(e) = self.handle.await {
            tracing::error!(error = %e, "history writer task failed");
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<Request>,
    store: Arc<dyn HistoryStore>,
    broker: Arc<dyn Broker>,
    committed: mpsc::Sender<ChatMessage>,
    max_batch: usize,
    metrics: Metrics,
) {
    let mut batch = Vec::with_capacity(max_batch);
    // Kept across batches, so taking a batch apart allocates only the entries' vector
    // (which the store takes).
    let mut replies = Vec::with_capacity(max_batch);
    // Whether the store refused the last batch as full or read-only: that is logged when
    // it starts and when it ends, not once per batch, so a full store that senders keep
    // trying cannot flood the log.
    let mut refusing = false;
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let mut msgs = Vec::with_capacity(batch.len());
        for Request { msg, reply } in batch.drain(..) {
            msgs.push(msg);
            replies.push(reply);
        }
        let (size, started) = (msgs.len(), std::time::Instant::now());
        let stored = store.append_batch(msgs).await;
        metrics.history_batch(size, started.elapsed(), stored.is_ok());
        match stored {
            Ok(outcomes) => {
                if std::mem::take(&mut refusing) {
                    tracing::warn!("history store accepts writes again");
                }
                let mut answers = Vec::with_capacity(outcomes.len());
                let mut stored = Vec::with_capacity(outcomes.len());
                for outcome in outcomes {
                    let (answer, entry) = split(outcome);
                    answers.push(answer);
                    stored.extend(entry);
                }
                // The whole commit is published at once, so a member gets all of a
                // room's new entries in one socket write: under load, batches grow and
                // each delivery costs less.
                if !stored.is_empty() {
                    // The entries are durable whatever happens here: members that miss
                    // them recover them with `since`, so a broker failure is logged, not
                    // turned into a failed append.
                    match broker.publish_stored(&stored).await {
                        Ok(()) => {
                            for _ in &stored {
                                metrics.broadcast(Broadcast::Message);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %Chain(&e), entries = stored.len(), "broadcast failed");
                        }
                    }
                }
                for entry in stored {
                    // Only messages alert: an edit or a reaction is no news to be
                    // told of (and an edit adding `@nick` would alert twice over).
                    if let Entry::Message(m) = entry {
                        // Waits when the alerts are a full queue behind: they then
                        // slow the writer rather than grow without bound. After the
                        // broadcast, so an alert never arrives before its message.
                        if committed.send(m).await.is_err() {
                            tracing::debug!("alerts have stopped; message not looked at");
                        }
                    }
                }
                for (answer, reply) in answers.into_iter().zip(replies.drain(..)) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) => {
                if !matches!(e, StoreError::Full(_)) {
                    tracing::error!(error = %Chain(&e), "history write failed; batch not acknowledged");
                } else if !std::mem::replace(&mut refusing, true) {
                    tracing::warn!(error = %Chain(&e), "history store refuses writes (full or read-only); sends are answered `unavailable` until it accepts them again");
                }
                let err = WriteError::Store(Arc::new(e));
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

/// The sender's answer and, when stored, the entry (for the broker and the alerts).
fn split(outcome: AppendOutcome) -> (AppendOutcome<Stored>, Option<Entry>) {
    match outcome {
        AppendOutcome::Stored(entry) => {
            let offset = entry.offset();
            (AppendOutcome::Stored(Stored { offset }), Some(entry))
        }
        AppendOutcome::Duplicate { offset } => (AppendOutcome::Duplicate { offset }, None),
        AppendOutcome::RoomLimit => (AppendOutcome::RoomLimit, None),
        AppendOutcome::Refused(why) => (AppendOutcome::Refused(why), None),
    }
}
