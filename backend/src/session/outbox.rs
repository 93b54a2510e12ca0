//! The per-connection write side other parts of the server hold: a bounded outbox that
//! writes a frame straight into the peer's socket when nothing is waiting ahead of it,
//! and queues it for the connection's own task otherwise; and a control to close the
//! connection with a reason.
//!
//! The direct write is what keeps a broadcast cheap: a member whose kernel buffer has
//! room costs one non-blocking `send` from the fan-out path, with no wake-up of its task,
//! no second lock and no copy. Only a member with something already waiting (a frame
//! its socket did not take, a room still being joined, a directive to obey in order,
//! the session in the middle of its own write) gets a queued item and its task's
//! attention, and a queue that reaches its bound closes the connection with 4008.
//!
//! One rule keeps the byte stream whole: the socket is written by exactly one party at a
//! time, decided under the queue's lock. The fan-out may write only while nothing is
//! queued, nothing is unsent and the session is not writing; the session marks itself
//! writing (and takes whatever a direct write left unsent, to go first) before it
//! writes, and clears the mark after.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::broker::{is_channel, Directive};
use crate::codec::Wire;
use crate::disconnect::Disconnect;
use crate::locks;
use crate::metrics::Metrics;
use crate::session::socket::{try_send_vectored, MAX_SLICES};

/// Identifies one WebSocket connection for the life of the process.
pub(crate) type ConnId = u64;

/// A frame for one connection, from the fan-out.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// The room a frame belongs to (None for other frames).
    pub(crate) room: Option<Arc<str>>,
    /// The offset of a log entry, so nothing at or below what the connection was
    /// already sent for the room (by `joined.head` or a replay) goes out again; 0 for
    /// other frames.
    pub(crate) offset: u64,
    /// Sent unless empty.
    pub(crate) frame: Wire,
    /// What the connection must do when it takes this item, in queue order.
    pub(crate) directive: Option<Directive>,
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

/// The sending side of a connection's outbox, held by the hub for each room the
/// connection is in.
///
/// Not a `tokio::sync::mpsc` channel: that allocates a block of slots up front and keeps
/// it, about 1.8 KB for every connection even when it never receives a frame. This queue
/// holds nothing while empty and gives its memory back after a burst.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    queue: Arc<Queue>,
    control: Arc<Control>,
    /// Frames dropped because the queue was full (`huddle_outbox_drops_total`).
    dropped: Counter,
}

/// The session's side: what is waiting, the rooms it receives, and the write mark.
#[derive(Debug)]
pub(crate) struct Inbox {
    queue: Arc<Queue>,
}

#[derive(Debug)]
struct Queue {
    items: Mutex<Items>,
    ready: Notify,
    capacity: usize,
    /// Text frames written to the peer (`huddle_messages_out_total`).
    sent: Counter,
}

#[derive(Debug, Default)]
struct Items {
    /// Items for the session to look at before anything of them is written.
    frames: VecDeque<Outgoing>,
    /// Bytes already admitted that must reach the socket before any other: what a
    /// direct write could not finish.
    unsent: VecDeque<Bytes>,
    /// The session is writing to the socket: nobody else may.
    writing: bool,
    /// The rooms this connection receives frames of.
    rooms: HashMap<Arc<str>, Receiving>,
    /// The socket, written directly when nothing waits (plain TCP only; TLS frames are
    /// encrypted by the session). Let go when the session ends.
    direct: Option<Arc<TcpStream>>,
    /// Set when the session ends: later frames are dropped silently.
    closed: bool,
}

/// This connection's state in one room it receives.
#[derive(Debug, Clone, Copy, Default)]
struct Receiving {
    /// Highest offset written to the peer; anything at or below it is a duplicate of
    /// what `joined.head` or a replay already covered.
    last: u64,
    /// The session is answering a join of the room: its frames wait in the queue so
    /// none goes out before `joined` and the replay.
    held: bool,
}

/// What may happen to a frame now.
enum Admit {
    Send,
    Skip,
    /// Not decidable by the fan-out: the session decides when it takes the item.
    Queue,
}

/// A drained queue keeping more room than this gives it back: bursts are rare, and
/// most connections spend their life idle.
const KEEP_CAPACITY: usize = 16;

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Items> {
        locks::lock(&self.items)
    }
}

impl Items {
    fn idle(&self) -> bool {
        self.frames.is_empty() && self.unsent.is_empty()
    }

    /// Whether the frame of `item` goes out, by its room. `taking`: the session decides
    /// (a room it no longer receives means the item was queued before it left);
    /// otherwise the fan-out does, and leaves anything unsure to the session.
    fn admit(&mut self, room: Option<&str>, offset: u64, taking: bool) -> Admit {
        let Some(room) = room.filter(|r| !is_channel(r)) else {
            return Admit::Send;
        };
        let Some(receiving) = self.rooms.get_mut(room) else {
            return if taking { Admit::Skip } else { Admit::Queue };
        };
        if receiving.held && !taking {
            return Admit::Queue;
        }
        if offset > 0 {
            if offset <= receiving.last {
                return Admit::Skip;
            }
            receiving.last = offset;
        }
        Admit::Send
    }
}

impl Items {
    /// Where the frames of `room` still due start (a commit's frames of one room are in
    /// offset order, so those already sent are a prefix), taking them as sent; `None`
    /// when the room's frames must wait for the session (held, or not received yet).
    fn due(&mut self, room: &str, frames: &[(u64, Wire)]) -> Option<usize> {
        let receiving = self.rooms.get_mut(room).filter(|r| !r.held)?;
        let from = frames.partition_point(|(offset, _)| *offset <= receiving.last);
        if let Some((last, _)) = frames.last() {
            receiving.last = receiving.last.max(*last);
        }
        Some(from)
    }
}

impl Outbox {
    /// A new outbox holding at most `capacity` frames, its receiver, and its control;
    /// frames it has to drop are counted in `metrics`. With `direct`, frames are written
    /// into that socket from the fan-out whenever nothing waits ahead of them.
    pub(crate) fn new(
        capacity: usize,
        metrics: &Metrics,
        direct: Option<Arc<TcpStream>>,
    ) -> (Self, Inbox, Arc<Control>) {
        let queue = Arc::new(Queue {
            items: Mutex::new(Items {
                direct,
                ..Items::default()
            }),
            ready: Notify::new(),
            capacity: capacity.max(1),
            sent: metrics.messages_out.clone(),
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

    /// Delivers a frame without waiting: written into the socket at once when nothing
    /// waits ahead of it, else queued. A full queue means the peer reads slower than the
    /// room talks: the connection is closed with 4008 rather than letting one slow reader
    /// hold memory or slow the broadcaster. The client resumes with `since`.
    pub(crate) fn push(&self, item: Outgoing) {
        let mut items = self.queue.lock();
        if items.closed {
            return;
        }
        if items.idle() && !items.writing && item.directive.is_none() && items.direct.is_some() {
            match items.admit(item.room.as_deref(), item.offset, false) {
                Admit::Skip => return,
                Admit::Send => {
                    self.write_now(&mut items, std::iter::once(item.frame.bytes()));
                    return;
                }
                Admit::Queue => {}
            }
        }
        if items.frames.len() + items.unsent.len() >= self.queue.capacity {
            drop(items);
            self.dropped.inc();
            self.control.close(Disconnect::SlowConsumer);
            return;
        }
        let wake = items.idle();
        items.frames.push_back(item);
        drop(items);
        // One wake-up per batch: the session takes everything queued when it runs.
        if wake {
            self.queue.ready.notify_one();
        }
    }

    /// Delivers a room's stored entries (in offset order) like [`Outbox::push`], all of
    /// them in one socket write when they go out directly: under load the writer
    /// commits several at once, and a member then costs one `send` for all of them.
    pub(crate) fn push_stored(&self, room: &Arc<str>, frames: &[(u64, Wire)]) {
        let mut items = self.queue.lock();
        if items.closed {
            return;
        }
        if items.idle() && !items.writing && items.direct.is_some() {
            if let Some(from) = items.due(room, frames) {
                let due = frames[from..].iter().map(|(_, frame)| frame.bytes());
                self.write_now(&mut items, due);
                return;
            }
        }
        drop(items);
        for (offset, frame) in frames {
            self.push(Outgoing {
                room: Some(Arc::clone(room)),
                offset: *offset,
                frame: frame.clone(),
                directive: None,
            });
        }
    }

    /// Writes `frames` into the socket with one vectored `send`, without waiting; what
    /// it does not take (past the first [`MAX_SLICES`] frames too) is left for the
    /// session, which is woken to finish it when the socket has room. Empty frames are
    /// not sent.
    fn write_now<'a>(&self, items: &mut Items, frames: impl Iterator<Item = &'a Bytes> + Clone) {
        let Some(tcp) = items.direct.as_ref() else {
            return;
        };
        let frames = frames.filter(|frame| !frame.is_empty());
        // On the stack: this runs once per member of every fan-out.
        let mut slices = [io::IoSlice::new(&[]); MAX_SLICES];
        let mut n = 0;
        for (slot, frame) in slices.iter_mut().zip(frames.clone()) {
            *slot = io::IoSlice::new(frame);
            n += 1;
        }
        if n == 0 {
            return;
        }
        // `sendmsg` with `MSG_NOSIGNAL`, not `writev`: a peer that has gone must not
        // raise SIGPIPE. A broken socket writes nothing too: the session's next read or
        // write finds out and ends.
        let mut written = try_send_vectored(tcp, &slices[..n]).unwrap_or(0);
        let mut rest = false;
        for frame in frames {
            self.queue.sent.inc();
            if written >= frame.len() {
                written -= frame.len();
                continue;
            }
            items.unsent.push_back(frame.slice(written..));
            written = 0;
            rest = true;
        }
        if rest {
            self.queue.ready.notify_one();
        }
    }

    /// The connection's control, to close it for another reason.
    pub(crate) fn control(&self) -> &Arc<Control> {
        &self.control
    }
}

/// What the session took from its outbox to write.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Bytes to write, in order.
    pub(crate) bytes: Vec<Bytes>,
    /// How many of them are text frames (counted once written).
    pub(crate) frames: u64,
    /// The directives of the items taken, in queue order.
    pub(crate) directives: Vec<Directive>,
}

impl Inbox {
    /// Resolves once something waits to be written.
    pub(crate) async fn ready(&self) {
        loop {
            if !self.queue.lock().idle() {
                return;
            }
            self.queue.ready.notified().await;
        }
    }

    /// Marks the session as writing and takes what waits: first the bytes a direct
    /// write left unsent, then up to `max` queued items that are still due (a room left
    /// since, or an offset already sent, is skipped). A `Drop` directive stops the
    /// room's later items at once. Ends with [`Inbox::written`].
    pub(crate) fn take(&self, max: usize) -> Batch {
        let mut items = self.queue.lock();
        items.writing = true;
        let mut batch = Batch {
            bytes: items.unsent.drain(..).collect(),
            ..Batch::default()
        };
        let n = items.frames.len().min(max);
        for _ in 0..n {
            let Some(item) = items.frames.pop_front() else {
                break;
            };
            if let Some(directive) = item.directive.clone() {
                if let Directive::Drop { room } = &directive {
                    items.rooms.remove(room.as_str());
                }
                batch.directives.push(directive);
            }
            if item.frame.is_empty() {
                continue;
            }
            if let Admit::Send = items.admit(item.room.as_deref(), item.offset, true) {
                batch.bytes.push(item.frame.bytes().clone());
                batch.frames += 1;
            }
        }
        if items.frames.is_empty() && items.frames.capacity() > KEEP_CAPACITY {
            items.frames = VecDeque::new();
        }
        batch
    }

    /// Marks the session as writing its own frames, and takes the bytes a direct write
    /// left unsent, which must go first. Ends with [`Inbox::written`].
    pub(crate) fn begin_write(&self) -> Vec<Bytes> {
        let mut items = self.queue.lock();
        items.writing = true;
        items.unsent.drain(..).collect()
    }

    /// The session's write ended: the fan-out may write directly again. `frames` text
    /// frames reached the socket.
    pub(crate) fn written(&self, frames: u64) {
        self.queue.lock().writing = false;
        self.queue.sent.inc_by(frames);
    }

    /// The session answers a join of `room`: its frames wait in the queue from now
    /// until [`Inbox::receive`].
    pub(crate) fn hold(&self, room: &Arc<str>) {
        let mut items = self.queue.lock();
        items.rooms.entry(Arc::clone(room)).or_default().held = true;
    }

    /// The peer has `room` up to `head` (its `joined` and replay are written): later
    /// frames of the room go out, directly when nothing waits.
    pub(crate) fn receive(&self, room: &Arc<str>, head: u64) {
        let mut items = self.queue.lock();
        let receiving = items.rooms.entry(Arc::clone(room)).or_default();
        receiving.last = receiving.last.max(head);
        receiving.held = false;
    }

    /// The connection left `room`: nothing more of it goes out.
    pub(crate) fn forget(&self, room: &str) {
        self.queue.lock().rooms.remove(room);
    }

    /// The highest offset of `room` written to the peer (0 if it does not receive it).
    pub(crate) fn last_offset(&self, room: &str) -> u64 {
        self.queue.lock().rooms.get(room).map_or(0, |r| r.last)
    }

    /// Ends the outbox: later frames are dropped and the socket is let go. Returns
    /// what a direct write left unsent, which must go out before a close frame.
    pub(crate) fn close(&self) -> Vec<Bytes> {
        let mut items = self.queue.lock();
        items.closed = true;
        items.direct = None;
        items.frames = VecDeque::new();
        items.rooms = HashMap::new();
        items.unsent.drain(..).collect()
    }

    /// The next queued item, if any (tests look at what the fan-out queued).
    #[cfg(test)]
    pub(crate) fn try_recv(&self) -> Option<Outgoing> {
        self.queue.lock().frames.pop_front()
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn item(room: &str, offset: u64, text: &str) -> Outgoing {
        Outgoing {
            room: Some(Arc::from(room)),
            offset,
            frame: crate::codec::wire_of(text),
            directive: None,
        }
    }

    async fn pair() -> (Arc<TcpStream>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Arc::new(server), client)
    }

    /// Reads what the peer received until `want` bytes arrived.
    async fn received(peer: &mut TcpStream, want: usize) -> Vec<u8> {
        let mut got = vec![0; want];
        peer.read_exact(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn a_receiving_room_is_written_straight_to_the_socket_in_order_once() {
        let metrics = Metrics::default();
        let (tcp, mut peer) = pair().await;
        let (outbox, inbox, _) = Outbox::new(4, &metrics, Some(tcp));
        let room: Arc<str> = Arc::from("r");
        inbox.receive(&room, 1);
        outbox.push(item("r", 1, "one"));
        outbox.push(item("r", 2, "two"));
        outbox.push(item("r", 2, "two again"));
        outbox.push(item("r", 3, "three"));
        let want = [crate::codec::wire_of("two"), crate::codec::wire_of("three")];
        let len = want.iter().map(|w| w.bytes().len()).sum();
        let expected: Vec<u8> = want.iter().flat_map(|w| w.bytes().to_vec()).collect();
        assert_eq!(received(&mut peer, len).await, expected);
        assert!(inbox.try_recv().is_none(), "nothing was queued");
        assert_eq!(metrics.messages_out.get(), 2);
        assert_eq!(inbox.last_offset("r"), 3);
    }

    #[tokio::test]
    async fn a_commits_entries_go_out_together_skipping_what_was_sent_or_queue_while_held() {
        let metrics = Metrics::default();
        let (tcp, mut peer) = pair().await;
        let (outbox, inbox, _) = Outbox::new(8, &metrics, Some(tcp));
        let room: Arc<str> = Arc::from("r");
        let frames: Vec<(u64, Wire)> = (1..=4)
            .map(|o| (o, crate::codec::wire_of(&format!("m{o}"))))
            .collect();
        inbox.receive(&room, 2);
        outbox.push_stored(&room, &frames);
        let expected: Vec<u8> = frames[2..]
            .iter()
            .flat_map(|(_, w)| w.bytes().to_vec())
            .collect();
        assert_eq!(received(&mut peer, expected.len()).await, expected);
        assert!(inbox.try_recv().is_none());
        assert_eq!(inbox.last_offset("r"), 4);
        // Held (joining): everything waits for the session, in order.
        let more: Vec<(u64, Wire)> = (5..=6)
            .map(|o| (o, crate::codec::wire_of(&format!("m{o}"))))
            .collect();
        inbox.hold(&room);
        outbox.push_stored(&room, &more);
        assert_eq!(inbox.try_recv().unwrap().offset, 5);
        assert_eq!(inbox.try_recv().unwrap().offset, 6);
    }

    #[tokio::test]
    async fn a_commit_past_the_slice_limit_leaves_the_rest_for_the_session_in_order() {
        let metrics = Metrics::default();
        let (tcp, mut peer) = pair().await;
        let (outbox, inbox, _) = Outbox::new(8, &metrics, Some(tcp));
        let room: Arc<str> = Arc::from("r");
        let total = MAX_SLICES as u64 + 3;
        let frames: Vec<(u64, Wire)> = (1..=total)
            .map(|o| (o, crate::codec::wire_of(&format!("m{o}"))))
            .collect();
        inbox.receive(&room, 0);
        outbox.push_stored(&room, &frames);
        let bytes = |frames: &[(u64, Wire)]| -> Vec<u8> {
            frames
                .iter()
                .flat_map(|(_, w)| w.bytes().to_vec())
                .collect()
        };
        let first = bytes(&frames[..MAX_SLICES]);
        assert_eq!(received(&mut peer, first.len()).await, first);
        // The frames past one write's slices wait as unsent bytes, ahead of anything.
        let batch = inbox.take(64);
        let rest: Vec<u8> = batch.bytes.iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(rest, bytes(&frames[MAX_SLICES..]));
        assert_eq!(batch.frames, 0, "counted when written directly");
        inbox.written(batch.frames);
        assert_eq!(metrics.messages_out.get(), total);
        assert_eq!(inbox.last_offset("r"), total);
    }

    #[tokio::test]
    async fn a_held_room_or_a_writing_session_queues_until_the_session_takes_it() {
        let metrics = Metrics::default();
        let (tcp, _peer) = pair().await;
        let (outbox, inbox, _) = Outbox::new(8, &metrics, Some(tcp));
        let room: Arc<str> = Arc::from("r");
        // Joining: nothing may go before `joined`.
        inbox.hold(&room);
        outbox.push(item("r", 4, "four"));
        outbox.push(item("r", 6, "six"));
        // `joined.head` was 5: four is covered, six is due.
        inbox.receive(&room, 5);
        let batch = inbox.take(64);
        assert_eq!(
            batch.bytes,
            vec![crate::codec::wire_of("six").bytes().clone()]
        );
        // While the session writes, the fan-out queues behind it.
        outbox.push(item("r", 7, "seven"));
        assert_eq!(inbox.try_recv().unwrap().offset, 7);
        inbox.written(batch.frames);
        // A room left: its queued frames are skipped.
        outbox.push(item("other", 1, "x"));
        let batch = inbox.take(64);
        assert!(batch.bytes.is_empty());
        inbox.written(0);
    }

    #[tokio::test]
    async fn a_drop_directive_stops_the_rooms_later_frames() {
        let metrics = Metrics::default();
        let (outbox, inbox, _) = Outbox::new(8, &metrics, None);
        let room: Arc<str> = Arc::from("r");
        inbox.receive(&room, 0);
        outbox.push(item("r", 1, "before"));
        outbox.push(Outgoing {
            room: Some(Arc::from("@u")),
            offset: 0,
            frame: crate::codec::wire_of("left"),
            directive: Some(Directive::Drop {
                room: "r".to_owned(),
            }),
        });
        outbox.push(item("r", 2, "after"));
        let batch = inbox.take(64);
        let texts: Vec<_> = batch
            .bytes
            .iter()
            .map(|b| String::from_utf8_lossy(&b[2..]).into_owned())
            .collect();
        assert_eq!(texts, ["before", "left"]);
        assert_eq!(batch.directives.len(), 1);
    }

    #[tokio::test]
    async fn a_full_socket_leaves_the_rest_unsent_for_the_session_then_the_queue_is_bounded() {
        let metrics = Metrics::default();
        let (tcp, _peer) = pair().await;
        let (outbox, inbox, control) = Outbox::new(4, &metrics, Some(tcp));
        let room: Arc<str> = Arc::from("r");
        inbox.receive(&room, 0);
        // The peer never reads: the kernel's buffers fill, then frames wait.
        let big = "x".repeat(64 * 1024);
        let mut offset = 0;
        while inbox.queue.lock().unsent.is_empty() {
            offset += 1;
            assert!(offset < 10_000, "the socket never filled");
            outbox.push(item("r", offset, &big));
        }
        let frames_before = offset;
        for _ in 0..4 {
            offset += 1;
            outbox.push(item("r", offset, &big));
        }
        assert_eq!(control.closed().await, Disconnect::SlowConsumer);
        let batch = inbox.take(64);
        assert_eq!(
            batch.frames, 3,
            "queued behind the unsent rest, up to the bound"
        );
        assert_eq!(batch.bytes.len(), 4, "the unsent rest goes first");
        assert!(frames_before > 1);
    }
}
