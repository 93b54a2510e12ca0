//! The per-connection handles other parts of the server hold: a bounded outbox to push
//! frames into, and a control to close the connection with a reason.

use std::sync::{Arc, OnceLock};

use common::CloseCode;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::codec::Frame;
use crate::metrics::Metrics;

/// Identifies one WebSocket connection for the life of the process.
pub type ConnId = u64;

/// A frame waiting to be written to one connection.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The room a chat message belongs to (None for other frames).
    pub room: Option<Arc<str>>,
    /// The offset of a chat message, so the session can drop what it already sent
    /// during a replay (0 for other frames).
    pub offset: u64,
    pub frame: Frame,
}

/// Asks a connection to close. Whoever calls [`Control::close`] first names the reason.
#[derive(Debug, Default)]
pub struct Control {
    token: CancellationToken,
    reason: OnceLock<CloseCode>,
}

impl Control {
    /// Asks the connection to close with `code`; later calls keep the first reason.
    pub fn close(&self, code: CloseCode) {
        let _ = self.reason.set(code);
        self.token.cancel();
    }

    /// Resolves once someone asked this connection to close.
    pub async fn closed(&self) -> CloseCode {
        self.token.cancelled().await;
        self.reason.get().copied().unwrap_or(CloseCode::Normal)
    }
}

/// The sending side of a connection's bounded outbox.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    control: Arc<Control>,
    /// Frames dropped because the queue was full (`huddle_outbox_drops_total`).
    dropped: Counter,
}

impl Outbox {
    /// A new outbox holding at most `capacity` frames, its receiver, and its control;
    /// frames it has to drop are counted in `metrics`.
    pub fn new(
        capacity: usize,
        metrics: &Metrics,
    ) -> (Self, mpsc::Receiver<Outgoing>, Arc<Control>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let control = Arc::new(Control::default());
        (
            Outbox {
                tx,
                control: Arc::clone(&control),
                dropped: metrics.outbox_drops.clone(),
            },
            rx,
            control,
        )
    }

    /// Queues a frame without waiting. A full queue means the peer reads slower than the
    /// room talks: the connection is closed with 4008 rather than letting one slow reader
    /// hold memory or slow the broadcaster. The client resumes with `since`.
    pub fn push(&self, item: Outgoing) {
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.inc();
                self.control.close(CloseCode::SlowConsumer);
            }
            // The session is ending; nothing to deliver to.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// The connection's control, to close it for another reason.
    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }
}
