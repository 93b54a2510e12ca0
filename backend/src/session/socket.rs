//! One WebSocket after the upgrade: the peer's frames read through tungstenite's
//! protocol state (fragments, control frames, size limits, the close handshake) over our
//! own reads, and bytes written in order.
//!
//! tungstenite does not own the socket here, because it is not the only writer: on plain
//! TCP the fan-out writes members' frames straight into it (see [`super::outbox`]). What
//! tungstenite would write itself (a pong, its half of a close) it writes into a buffer
//! here instead, and the session sends those bytes in their turn like any other frame.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tungstenite::protocol::{CloseFrame, Message, Role, WebSocketConfig, WebSocketContext};

/// A byte stream a WebSocket can run over (TLS, or anything else hyper upgraded).
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// What the WebSocket runs over.
pub(crate) enum Transport {
    /// Plain TCP, shared with the outbox for its direct writes.
    Tcp(Arc<TcpStream>),
    /// Anything else (TLS): only the session writes to it.
    Stream {
        read: ReadHalf<Box<dyn Io>>,
        write: WriteHalf<Box<dyn Io>>,
    },
}

impl Transport {
    /// A transport over a stream only the session writes to.
    pub(crate) fn stream(io: Box<dyn Io>) -> Self {
        let (read, write) = tokio::io::split(io);
        Transport::Stream { read, write }
    }
}

/// The most buffers handed to one vectored write (here and by the outbox's direct
/// writes).
pub(crate) const MAX_SLICES: usize = 64;

/// One WebSocket connection's socket.
pub(crate) struct Socket {
    transport: Transport,
    protocol: WebSocketContext,
    /// What tungstenite wrote (a pong, a close frame) and the session has yet to send.
    replies: Vec<u8>,
    /// Bytes a write has yet to get into the socket: a write cancelled part way leaves
    /// its rest here, and the next write (the close frame) finishes it first, so the
    /// peer never sees a frame cut short.
    pending: VecDeque<Bytes>,
}

impl Socket {
    /// A WebSocket over `transport`; `read` is what was read past the handshake.
    pub(crate) fn new(transport: Transport, read: &[u8], config: WebSocketConfig) -> Self {
        let protocol = if read.is_empty() {
            WebSocketContext::new(Role::Server, Some(config))
        } else {
            WebSocketContext::from_partially_read(read.to_vec(), Role::Server, Some(config))
        };
        Socket {
            transport,
            protocol,
            replies: Vec::new(),
            pending: VecDeque::new(),
        }
    }

    /// The TCP socket the outbox may write to directly (plain TCP only).
    pub(crate) fn direct(&self) -> Option<Arc<TcpStream>> {
        match &self.transport {
            Transport::Tcp(tcp) => Some(Arc::clone(tcp)),
            Transport::Stream { .. } => None,
        }
    }

    /// The peer's next message; `None` once the connection is closed. Cancel-safe: a
    /// partly read frame stays in tungstenite's buffer.
    pub(crate) async fn recv(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, tungstenite::Error>>> {
        let mut io = Reading {
            transport: &mut self.transport,
            cx,
            replies: &mut self.replies,
        };
        match self.protocol.read(&mut io) {
            Ok(msg) => Poll::Ready(Some(Ok(msg))),
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                Poll::Pending
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Poll::Ready(None)
            }
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    /// A ping frame, to send.
    pub(crate) fn ping(&mut self) -> Bytes {
        let _ = self
            .protocol
            .write(&mut Replies(&mut self.replies), Message::Ping(Bytes::new()));
        self.replies()
    }

    /// Our close frame (or, after the peer's, our half of the handshake), to send.
    pub(crate) fn close_frame(&mut self, code: u16, reason: &'static str) -> Bytes {
        let frame = CloseFrame {
            code: code.into(),
            reason: reason.into(),
        };
        let _ = self
            .protocol
            .close(&mut Replies(&mut self.replies), Some(frame));
        self.replies()
    }

    /// What tungstenite queued in answer to the peer (a pong, the reply to its close),
    /// to send; empty if nothing.
    pub(crate) fn replies(&mut self) -> Bytes {
        let _ = self.protocol.flush(&mut Replies(&mut self.replies));
        Bytes::from(std::mem::take(&mut self.replies))
    }

    /// Writes `bufs` in order, after the rest of any earlier write that was cancelled.
    /// Cancel-safe: what is not written yet stays for the next write.
    pub(crate) async fn write_all(&mut self, bufs: Vec<Bytes>) -> io::Result<()> {
        self.pending
            .extend(bufs.into_iter().filter(|b| !b.is_empty()));
        let result = match &mut self.transport {
            Transport::Tcp(tcp) => write_tcp(tcp, &mut self.pending).await,
            Transport::Stream { write, .. } => write_stream(write, &mut self.pending).await,
        };
        if self.pending.capacity() > MAX_SLICES {
            self.pending = VecDeque::new();
        }
        result
    }
}

/// Writes `queue` through a stream, taking each buffer off as it is written.
async fn write_stream(
    write: &mut WriteHalf<Box<dyn Io>>,
    queue: &mut VecDeque<Bytes>,
) -> io::Result<()> {
    while let Some(front) = queue.front_mut() {
        let n = write.write(front).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if n >= front.len() {
            queue.pop_front();
        } else {
            front.advance(n);
        }
    }
    write.flush().await
}

/// Writes `slices` into `tcp` with one vectored send, without waiting (`WouldBlock` when
/// the socket is full, with tokio's readiness cleared so the next `writable` waits).
///
/// Not `try_write_vectored`: that is `writev`, which has no `MSG_NOSIGNAL`, so writing
/// to a peer that has gone raises SIGPIPE, and kills a host that does not ignore it (the
/// `huddle` binary does, as every Rust `main`; libFuzzer's C `main` does not). `sendmsg`
/// with `MSG_NOSIGNAL` returns `EPIPE` instead, as std's `send` for a single buffer does.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
))]
pub(crate) fn try_send_vectored(tcp: &TcpStream, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    tcp.try_io(tokio::io::Interest::WRITABLE, || {
        socket2::SockRef::from(tcp).send_vectored_with_flags(slices, libc::MSG_NOSIGNAL)
    })
}

/// Writes `slices` into `tcp` with one vectored send, without waiting. Where there is
/// no `MSG_NOSIGNAL` (macOS, Windows): `writev`, as before.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
pub(crate) fn try_send_vectored(tcp: &TcpStream, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    tcp.try_write_vectored(slices)
}

/// Writes `queue` with as few vectored `send`s as the socket allows, taking each
/// buffer off as it is written.
async fn write_tcp(tcp: &TcpStream, queue: &mut VecDeque<Bytes>) -> io::Result<()> {
    while !queue.is_empty() {
        tcp.writable().await?;
        let result = {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut n = 0;
            for (slot, buf) in slices.iter_mut().zip(queue.iter()) {
                *slot = IoSlice::new(buf);
                n += 1;
            }
            try_send_vectored(tcp, &slices[..n])
        };
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut written) => {
                while written > 0 {
                    let Some(front) = queue.front_mut() else {
                        break;
                    };
                    if written >= front.len() {
                        written -= front.len();
                        queue.pop_front();
                    } else {
                        front.advance(written);
                        written = 0;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// tungstenite's view of the socket while reading: reads come from the transport
/// (`WouldBlock` when it has nothing, with the task registered for more), writes go to
/// the replies buffer.
struct Reading<'a, 'b> {
    transport: &'a mut Transport,
    cx: &'a mut Context<'b>,
    replies: &'a mut Vec<u8>,
}

impl Read for Reading<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.transport {
            Transport::Tcp(tcp) => loop {
                match tcp.try_read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        match tcp.poll_read_ready(self.cx) {
                            Poll::Ready(Ok(())) => continue,
                            Poll::Ready(Err(e)) => return Err(e),
                            Poll::Pending => return Err(io::ErrorKind::WouldBlock.into()),
                        }
                    }
                    result => return result,
                }
            },
            Transport::Stream { read, .. } => {
                let mut filled = ReadBuf::new(buf);
                match Pin::new(read).poll_read(self.cx, &mut filled) {
                    Poll::Ready(Ok(())) => Ok(filled.filled().len()),
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }
}

impl Write for Reading<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Replies(self.replies).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// tungstenite's view of the socket while it encodes a control frame: nothing to read,
/// and every byte written kept for the session to send.
struct Replies<'a>(&'a mut Vec<u8>);

impl Read for Replies<'_> {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl Write for Replies<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::signal::unix::{signal, SignalKind};

    /// Set in the child process that runs the check itself.
    const CHILD: &str = "HUDDLE_SIGPIPE_CHILD";

    /// A vectored write to a peer that has gone fails with `EPIPE` (or `ECONNRESET`)
    /// and raises no SIGPIPE, through [`try_send_vectored`] and the session's writer.
    ///
    /// The test harness, like every Rust `main`, ignores SIGPIPE, so an ignored signal
    /// would go unnoticed and `writev` would pass too. Instead the check installs a
    /// SIGPIPE handler (tokio's, no unsafe code) and fails if the signal arrives: with
    /// `writev` it does. A handler is process-wide, and another test writing to a closed
    /// socket at the same time could trip it, so the check runs alone, in a child process
    /// of this test binary that runs only this test.
    #[test]
    fn a_vectored_write_to_a_closed_peer_raises_no_sigpipe() {
        if std::env::var_os(CHILD).is_some() {
            closed_peer_check();
            return;
        }
        let name = concat!(
            module_path!(),
            "::a_vectored_write_to_a_closed_peer_raises_no_sigpipe"
        );
        // The harness names tests without the crate.
        let name = name.split_once("::").map_or(name, |(_, rest)| rest);
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--test-threads=1", "--nocapture"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "the check failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
        assert!(
            stdout.contains("1 passed"),
            "the check did not run:\n{stdout}"
        );
    }

    fn closed_peer_check() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut sigpipe = signal(SignalKind::pipe()).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let peer = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            drop(peer);
            let frames = [Bytes::from_static(b"one"), Bytes::from_static(b"two")];
            let slices = [IoSlice::new(&frames[0]), IoSlice::new(&frames[1])];
            // The first send after the peer's close is taken; its reset makes a later
            // one fail.
            let mut tries = 0;
            let err = loop {
                tries += 1;
                assert!(tries < 100, "writes to a closed peer kept succeeding");
                match try_send_vectored(&tcp, &slices) {
                    Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        tcp.writable().await.unwrap();
                    }
                    Err(e) => break e,
                }
            };
            assert!(
                matches!(
                    err.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ),
                "{err}"
            );
            // The session's writer, on the same socket.
            let mut queue: VecDeque<Bytes> = frames.iter().cloned().collect();
            let err = write_tcp(&tcp, &mut queue).await.unwrap_err();
            assert!(
                matches!(
                    err.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ),
                "{err}"
            );
            let raised = tokio::time::timeout(Duration::from_millis(200), sigpipe.recv()).await;
            assert!(raised.is_err(), "a vectored write raised SIGPIPE");
        });
    }
}
