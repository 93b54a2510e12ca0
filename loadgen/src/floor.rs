//! `loadgen floor`: the least a broadcast server can do with the same sockets, as a
//! floor to measure Huddle against on the same machine at the same moment.
//!
//! It speaks only the part of the protocol the load generator's clients use: `hello` →
//! `welcome`, `join` → `joined {room, head, epoch}`, `send {room, id, text}` → `ack {id,
//! room, offset}` to the sender and `message {room, offset, id, nick, text, ts}` to every
//! member, the sender included, with offsets 1, 2, 3, … per room. It stores nothing,
//! checks nothing else, and ignores every other frame. Each broadcast frame is encoded
//! once (WebSocket header and JSON in one [`Bytes`]) and written to every member: straight
//! to the socket with a non-blocking write when nothing is queued for that member, else
//! queued (bounded) for the member's own task, which writes its queue with one vectored
//! write when the socket is writable again.
//!
//! The writes are made by the room's own task, woken by the first `send` after it last
//! ran: at low load it writes each frame as soon as the sender's task yields; when the
//! core is busy, the frames of every `send` handled meanwhile go out together, one
//! vectored write per member. So the floor costs one write per member per message when
//! it can, and fewer when it must, as a server that coalesces its writes would.
//!
//! tungstenite does the handshake and parses the clients' frames (masking, control
//! frames, fragments) over [`Feed`], a non-blocking adapter on the shared socket; only
//! the server's outgoing frames bypass it.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{ChatMessage, ClientMsg, Limits, ServerMsg};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// Frames queued for one member before it is dropped as too slow (Huddle's default
/// outbox holds as many).
const QUEUE_LIMIT: usize = 1024;
/// Most queued frames one vectored write takes.
const WRITE_BATCH: usize = 64;

/// Accepts connections on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    let floor = Arc::new(Floor {
        rooms: Mutex::new(HashMap::new()),
        next_session: AtomicU64::new(1),
    });
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(ok) => ok,
            // Out of file descriptors or a connection reset before accept: keep going.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(session(Arc::clone(&floor), stream));
    }
}

/// Binds `addr` (port 0 picks a free one).
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The shared state: rooms by name.
struct Floor {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    next_session: AtomicU64,
}

/// One room: its last offset, its members and the frames not yet written to them. Every
/// write of a message outside a member's own task happens under this lock, so offsets go
/// out in order.
#[derive(Default)]
struct Room {
    state: Mutex<RoomState>,
    /// Wakes the room's task: frames are pending.
    wake: Notify,
}

#[derive(Default)]
struct RoomState {
    offset: u64,
    members: Vec<Arc<Member>>,
    /// Encoded `message` frames not yet written, in offset order.
    pending: Vec<Bytes>,
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, RoomState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the pending frames to every member, one non-blocking write each (under
    /// the room's lock).
    fn fan_out(state: &mut RoomState) {
        if state.pending.is_empty() {
            return;
        }
        let frames = std::mem::take(&mut state.pending);
        let slices: Vec<IoSlice<'_>> = frames.iter().map(|f| IoSlice::new(f)).collect();
        for m in &state.members {
            m.send_many(&frames, &slices);
        }
        // Keep the allocation for the next round.
        state.pending = frames;
        state.pending.clear();
    }
}

/// The room's task: writes pending frames whenever woken, until the process ends.
async fn room_task(room: Arc<Room>) {
    loop {
        room.wake.notified().await;
        Room::fan_out(&mut room.lock());
    }
}

/// One connection's socket and its queue of frames not yet written.
struct Member {
    stream: TcpStream,
    out: Mutex<Out>,
    /// Wakes the member's task when its queue fills or it must close.
    wake: Notify,
}

#[derive(Default)]
struct Out {
    /// Frames (or the unwritten rest of one) waiting for the socket.
    queue: VecDeque<Bytes>,
    /// Too slow, or the socket failed: the task closes the connection.
    closed: bool,
}

impl Member {
    fn lock(&self) -> MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `frame` now if nothing is queued and the socket takes it, else queues it.
    fn send(&self, frame: Bytes) {
        let mut out = self.lock();
        if out.closed {
            return;
        }
        if out.queue.is_empty() {
            match self.stream.try_write(&frame) {
                Ok(n) if n == frame.len() => return,
                Ok(n) => out.queue.push_back(frame.slice(n..)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => out.queue.push_back(frame),
                Err(_) => out.closed = true,
            }
        } else if out.queue.len() < QUEUE_LIMIT {
            out.queue.push_back(frame);
            return;
        } else {
            out.closed = true;
        }
        drop(out);
        self.wake.notify_one();
    }

    /// Writes `frames` (whose slices are `slices`) now if nothing is queued and the
    /// socket takes them, else queues what is left.
    fn send_many(&self, frames: &[Bytes], slices: &[IoSlice<'_>]) {
        let mut out = self.lock();
        if out.closed {
            return;
        }
        if out.queue.is_empty() {
            let written = if let [one] = frames {
                self.stream.try_write(one)
            } else {
                self.stream.try_write_vectored(slices)
            };
            match written {
                Ok(n) => {
                    queue_rest(&mut out.queue, frames, n);
                    if out.queue.is_empty() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    out.queue.extend(frames.iter().cloned());
                }
                Err(_) => out.closed = true,
            }
        } else if out.queue.len() + frames.len() <= QUEUE_LIMIT {
            out.queue.extend(frames.iter().cloned());
            return;
        } else {
            out.closed = true;
        }
        drop(out);
        self.wake.notify_one();
    }

    /// Writes as much of the queue as the socket takes. `Ok(true)`: it is empty.
    fn flush(&self) -> io::Result<bool> {
        let mut out = self.lock();
        loop {
            if out.queue.is_empty() {
                return Ok(true);
            }
            let slices: Vec<IoSlice<'_>> = out
                .queue
                .iter()
                .take(WRITE_BATCH)
                .map(|b| IoSlice::new(b))
                .collect();
            let written = match self.stream.try_write_vectored(&slices) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            };
            drop(slices);
            consume(&mut out.queue, written);
        }
    }
}

/// Queues what is left of `frames` after `n` bytes of them were written.
fn queue_rest(queue: &mut VecDeque<Bytes>, frames: &[Bytes], mut n: usize) {
    for f in frames {
        if n >= f.len() {
            n -= f.len();
        } else {
            queue.push_back(f.slice(n..));
            n = 0;
        }
    }
}

/// Drops `n` written bytes from the front of `queue`.
fn consume(queue: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = queue.front_mut() else {
            return;
        };
        if n >= front.len() {
            n -= front.len();
            queue.pop_front();
        } else {
            *front = front.slice(n..);
            return;
        }
    }
}

/// What tungstenite reads from and writes to: reads come straight from the socket
/// (`WouldBlock` when it is empty), writes (the handshake's answer, pongs) are kept for
/// the session to send through the member's queue.
struct Feed {
    member: Arc<Member>,
    written: Vec<u8>,
}

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.member.stream.try_read(buf)
    }
}

impl Write for Feed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Feed {
    /// Sends what tungstenite wrote.
    fn pass_on(&mut self) {
        if !self.written.is_empty() {
            let bytes = Bytes::from(std::mem::take(&mut self.written));
            self.member.send(bytes);
        }
    }
}

fn ws_config() -> WebSocketConfig {
    // Small buffers: client frames are small, and idle connections should cost little.
    WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_message_size(Some(64 << 10))
        .max_frame_size(Some(64 << 10))
}

/// One connection from accept to close.
async fn session(floor: Arc<Floor>, stream: TcpStream) {
    let member = Arc::new(Member {
        stream,
        out: Mutex::new(Out::default()),
        wake: Notify::new(),
    });
    let feed = Feed {
        member: Arc::clone(&member),
        written: Vec::new(),
    };
    let Some(mut ws) = handshake(&member, feed).await else {
        return;
    };
    let mut s = Session {
        floor: &floor,
        member: &member,
        nick: None,
        rooms: Vec::new(),
    };
    let _ = s.serve(&mut ws).await;
    for (_, room) in &s.rooms {
        let mut state = room.lock();
        if let Some(i) = state.members.iter().position(|m| Arc::ptr_eq(m, &member)) {
            state.members.swap_remove(i);
        }
    }
}

async fn handshake(member: &Member, feed: Feed) -> Option<WebSocket<Feed>> {
    let mut attempt = tungstenite::accept_with_config(feed, Some(ws_config()));
    loop {
        match attempt {
            Ok(mut ws) => {
                ws.get_mut().pass_on();
                return Some(ws);
            }
            Err(HandshakeError::Interrupted(mid)) => {
                member.stream.readable().await.ok()?;
                attempt = mid.handshake();
            }
            Err(HandshakeError::Failure(_)) => return None,
        }
    }
}

struct Session<'a> {
    floor: &'a Floor,
    member: &'a Arc<Member>,
    nick: Option<String>,
    /// The rooms joined, by name.
    rooms: Vec<(String, Arc<Room>)>,
}

impl Session<'_> {
    async fn serve(&mut self, ws: &mut WebSocket<Feed>) -> io::Result<()> {
        let member = self.member;
        let mut want_write = false;
        loop {
            tokio::select! {
                ready = member.stream.readable() => {
                    ready?;
                    loop {
                        match ws.read() {
                            Ok(Message::Text(text)) => self.on_text(text.as_str()),
                            Ok(Message::Close(_)) => return Ok(()),
                            Ok(_) => {}
                            Err(tungstenite::Error::Io(e))
                                if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(_) => return Ok(()),
                        }
                    }
                    // Pongs and close replies tungstenite queued.
                    let _ = ws.flush();
                    ws.get_mut().pass_on();
                }
                () = member.wake.notified(), if !want_write => {
                    if member.lock().closed {
                        return Ok(());
                    }
                    want_write = !member.flush()?;
                }
                ready = member.stream.writable(), if want_write => {
                    ready?;
                    want_write = !member.flush()?;
                }
            }
        }
    }

    fn on_text(&mut self, text: &str) {
        let Ok(msg) = common::decode_client(text) else {
            return;
        };
        match msg {
            ClientMsg::Hello { nick, .. } => {
                let nick = nick.unwrap_or_else(|| "guest".to_owned());
                let session = format!("floor-{}", self.floor.next_session.fetch_add(1, Relaxed));
                let welcome = ServerMsg::Welcome {
                    nick: nick.clone(),
                    session,
                    server: "loadgen-floor".to_owned(),
                    limits: Limits {
                        rate_per_sec: u32::MAX,
                        rate_burst: u32::MAX,
                        ..Limits::default()
                    },
                    user: String::new(),
                    rooms: Vec::new(),
                    inbox: Default::default(),
                    quiet: None,
                };
                self.nick = Some(nick);
                self.member.send(encode(&welcome));
            }
            ClientMsg::Join { room, .. } if self.nick.is_some() => {
                if self.rooms.iter().any(|(name, _)| *name == room) {
                    return;
                }
                let handle = {
                    let mut rooms = self.floor.rooms.lock().unwrap_or_else(|e| e.into_inner());
                    Arc::clone(rooms.entry(room.clone()).or_insert_with(|| {
                        let new = Arc::new(Room::default());
                        tokio::spawn(room_task(Arc::clone(&new)));
                        new
                    }))
                };
                {
                    let mut state = handle.lock();
                    // Frames up to the head go to the members before this one joins.
                    Room::fan_out(&mut state);
                    state.members.push(Arc::clone(self.member));
                    let joined = ServerMsg::Joined {
                        room: room.clone(),
                        head: state.offset,
                        epoch: "floor".to_owned(),
                        nicks: Vec::new(),
                        recovered: None,
                        members: Some(state.members.len() as u64),
                        next: None,
                    };
                    // Under the room's lock: no message can overtake `joined`.
                    self.member.send(encode(&joined));
                }
                self.rooms.push((room, handle));
            }
            ClientMsg::Send { room, text, id, .. } => {
                let (Some(nick), Some((_, handle))) = (
                    &self.nick,
                    self.rooms.iter().find(|(name, _)| *name == room),
                ) else {
                    return;
                };
                let mut state = handle.lock();
                state.offset += 1;
                let offset = state.offset;
                let ack = ServerMsg::Ack {
                    id: id.clone(),
                    room: room.clone(),
                    offset,
                };
                self.member.send(encode(&ack));
                let message = ServerMsg::Message(ChatMessage {
                    room,
                    offset,
                    id,
                    nick: nick.clone(),
                    text,
                    ts: now_ms(),
                    ..ChatMessage::default()
                });
                // The first pending frame wakes the room's task; later ones ride along.
                if state.pending.is_empty() {
                    handle.wake.notify_one();
                }
                state.pending.push(encode(&message));
            }
            _ => {}
        }
    }
}

/// One server frame, encoded once: the WebSocket header and the JSON in one buffer.
pub fn encode(msg: &ServerMsg) -> Bytes {
    let json = serde_json::to_vec(msg).unwrap_or_default();
    let frame = Frame::message(json, OpCode::Data(Data::Text), true);
    let mut out = Vec::with_capacity(frame.len());
    // Writing into a Vec cannot fail.
    let _ = frame.format(&mut out);
    Bytes::from(out)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
