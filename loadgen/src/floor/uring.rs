//! The floor's fan-out through io_uring (`loadgen floor --io-uring`): the sends of one
//! round of frames to every member whose queue is empty go into the submission queue
//! together and are submitted with one `io_uring_enter`, instead of one `send` (or
//! `writev`) system call each. The sends carry `MSG_DONTWAIT`, so a full socket answers
//! `EAGAIN` at once (like `try_write`) and the frames are queued for the member's task
//! as in the standard path.
//!
//! This is the only module of the crate with `unsafe`: pushing a send names a buffer and
//! a file descriptor the kernel uses later, and [`Batch::send_all`] keeps both alive
//! (the frames are borrowed and every member is held) until each of its sends completed.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd as _;
use std::sync::Arc;

use bytes::Bytes;
use io_uring::{opcode, types, IoUring};

use super::Member;

/// Submission queue entries: a room of up to this many is one submission, a bigger one
/// a few.
const ENTRIES: u32 = 4096;

/// A ring for fan-outs, used by one broadcaster at a time.
pub(crate) struct Batch {
    ring: IoUring,
    /// The members (indexes into the room's list) of the sends in flight.
    in_flight: Vec<usize>,
}

impl Batch {
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Batch {
            ring: IoUring::new(ENTRIES)?,
            in_flight: Vec::new(),
        })
    }

    /// Writes `frames` to every member: one batch of `sendmsg`s (all naming the same
    /// frames) for those with nothing queued, the queue for the others.
    pub(crate) fn send_all(&mut self, members: &[Arc<Member>], frames: &[Bytes]) {
        let iov: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            })
            .collect();
        // SAFETY: all-zero is a valid msghdr (no name, no control data).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len();
        let total: usize = frames.iter().map(Bytes::len).sum();
        for (base, chunk) in members.chunks(ENTRIES as usize).enumerate() {
            let base = base * ENTRIES as usize;
            self.in_flight.clear();
            for (i, m) in chunk.iter().enumerate() {
                let mut out = m.lock();
                if out.closed {
                    continue;
                }
                if !out.queue.is_empty() || out.busy {
                    drop(out);
                    for f in frames {
                        m.send(f.clone());
                    }
                    continue;
                }
                let send = opcode::SendMsg::new(types::Fd(m.stream.as_raw_fd()), &msg)
                    .flags(flags() as u32)
                    .build()
                    .user_data((base + i) as u64);
                // SAFETY: the sendmsg names `msg`, `iov` and `frames`, all alive until
                // this function returns, and the member's socket, which `members` (held
                // by the caller under the room's lock) keeps open; we return only after
                // reaping every send pushed here. At most ENTRIES are pushed per chunk,
                // into a queue that is empty at the start of each.
                if unsafe { self.ring.submission().push(&send) }.is_err() {
                    drop(out);
                    for f in frames {
                        m.send(f.clone());
                    }
                    continue;
                }
                out.busy = true;
                self.in_flight.push(base + i);
            }
            self.submit_and_reap(members, frames, total);
        }
    }

    fn submit_and_reap(&mut self, members: &[Arc<Member>], frames: &[Bytes], total: usize) {
        let mut left = self.in_flight.len();
        while left > 0 {
            match self.ring.submit_and_wait(left) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The kernel may still hold pointers into `frames`: going on could
                    // let it read freed memory.
                    eprintln!("floor: io_uring submit failed: {e}");
                    std::process::abort();
                }
            }
            for cqe in self.ring.completion() {
                left -= 1;
                let m = &members[cqe.user_data() as usize];
                let res = cqe.result();
                let mut out = m.lock();
                out.busy = false;
                if res >= 0 && res as usize == total {
                    if out.queue.is_empty() && !out.closed {
                        continue;
                    }
                } else if res >= 0 || -res == libc::EAGAIN {
                    // Ahead of anything queued while the send was in flight.
                    let mut rest = std::collections::VecDeque::new();
                    super::queue_rest(&mut rest, frames, res.max(0) as usize);
                    while let Some(f) = rest.pop_back() {
                        out.queue.push_front(f);
                    }
                } else {
                    out.closed = true;
                }
                drop(out);
                m.wake.notify_one();
            }
        }
    }
}

/// Answer at once (`EAGAIN` when the socket is full), and no SIGPIPE.
fn flags() -> i32 {
    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL
}
