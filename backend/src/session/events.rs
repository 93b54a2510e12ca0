//! One SSE stream's write side: the WebSocket wire a session writes (the same bytes the
//! fan-out frames once for every member), re-framed as Server-Sent Events into the
//! response body, and each room's position, which the event ids carry.
//!
//! The session and the fan-out know one wire, the WebSocket's; the stream translates it
//! frame by frame at the last moment: a text frame becomes a `data:` event, a ping a
//! heartbeat comment, a close frame the final `close` event. So nothing upstream needs a
//! second encoding or a second path, and what an SSE client receives is, frame for
//! frame, what a WebSocket client would.
//!
//! An event that moves a room's position (`joined`, a log entry) carries the id
//! `<stream>,<room>:<offset>,…`: every joined room with the highest offset the stream
//! sent of it. A reconnecting EventSource sends the last one back as `Last-Event-ID`,
//! which is all a resume needs to know of where the client is (`since` per room).

use std::borrow::Cow;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use rand::distr::{Alphanumeric, SampleString};
use serde::Deserialize;
use tokio::sync::mpsc;

/// The response body's queue, in chunks (each one session write).
pub(crate) const BODY_QUEUE: usize = 4;
/// A stream id's length: alphanumeric, about 190 random bits.
const ID_LEN: usize = 32;
/// How long an EventSource waits before reconnecting (ms).
const RETRY_MS: u32 = 2000;

/// A fresh stream id.
pub(crate) fn new_stream_id() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), ID_LEN)
}

/// Whether `s` has the shape of a stream id.
pub(crate) fn is_stream_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Where a client was, from a `Last-Event-ID`: the stream and, per room, the highest
/// offset it had. `None` for anything this server did not write (at most `max_rooms`).
pub(crate) fn parse_event_id(id: &str, max_rooms: usize) -> Option<(String, Vec<(String, u64)>)> {
    let mut parts = id.split(',');
    let stream = parts.next().filter(|s| is_stream_id(s))?;
    let limits = common::Limits::default();
    let mut rooms = Vec::new();
    for part in parts {
        let (room, offset) = part.split_once(':')?;
        common::validate::room(room, &limits).ok()?;
        if rooms.iter().any(|(r, _)| r == room) || rooms.len() >= max_rooms {
            return None;
        }
        rooms.push((room.to_owned(), offset.parse().ok()?));
    }
    Some((stream.to_owned(), rooms))
}

/// One stream's write side.
pub(crate) struct EventStream {
    id: Arc<str>,
    body: mpsc::Sender<Bytes>,
    /// Every joined room and the highest offset sent of it, in the order joined.
    positions: Vec<(Arc<str>, u64)>,
}

impl EventStream {
    /// A stream writing into `body`.
    pub(crate) fn new(id: String, body: mpsc::Sender<Bytes>) -> Self {
        EventStream {
            id: Arc::from(id),
            body,
            positions: Vec::new(),
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Resolves once the response body is gone: the client went away.
    pub(crate) async fn gone(&self) {
        self.body.closed().await;
    }

    /// Writes the first event: the stream's id (the key for its POSTs), whether it
    /// resumed a session, and the position it starts from.
    pub(crate) async fn open(&mut self, resumed: bool) -> io::Result<()> {
        // The id is alphanumeric: nothing to escape.
        let data = format!(r#"{{"stream":"{}","resumed":{resumed}}}"#, self.id);
        let mut out = format!("retry: {RETRY_MS}\nid: ").into_bytes();
        self.write_id(&mut out);
        out.extend_from_slice(format!("\nevent: stream\ndata: {data}\n\n").as_bytes());
        self.body
            .send(Bytes::from(out))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }

    /// The session (re)joins `room`, replaying after `since` if given: the stream's
    /// position there is at least that, from now on.
    pub(crate) fn joining(&mut self, room: &str, since: Option<u64>) {
        let Some(since) = since else {
            return;
        };
        match self.positions.iter_mut().find(|(r, _)| &**r == room) {
            Some((_, offset)) => *offset = (*offset).max(since),
            None => self.positions.push((Arc::from(room), since)),
        }
    }

    /// The session left `room`: a resume does not rejoin it.
    pub(crate) fn forget(&mut self, room: &str) {
        self.positions.retain(|(r, _)| &**r != room);
    }

    /// Writes WebSocket-framed `bufs` as events, in one chunk of the body. Cancel-safe:
    /// nothing is translated (so no position moves) until the body has room.
    pub(crate) async fn write_all(&mut self, bufs: Vec<Bytes>) -> io::Result<()> {
        let gone = || io::Error::from(io::ErrorKind::BrokenPipe);
        let body = self.body.clone();
        let permit = body.reserve().await.map_err(|_| gone())?;
        let mut out = Vec::with_capacity(bufs.iter().map(|b| b.len() + 16).sum());
        for buf in &bufs {
            self.transcode(buf, &mut out);
        }
        if !out.is_empty() {
            permit.send(Bytes::from(out));
        }
        Ok(())
    }

    /// Re-frames the WebSocket frames in `buf` (server frames: unmasked, whole).
    fn transcode(&mut self, mut buf: &[u8], out: &mut Vec<u8>) {
        while let Some((opcode, payload, rest)) = split_frame(buf) {
            match opcode {
                OP_TEXT => {
                    if let Ok(json) = std::str::from_utf8(payload) {
                        self.event(json, out);
                    }
                }
                OP_PING => out.extend_from_slice(b": hb\n\n"),
                OP_CLOSE => {
                    let code = payload
                        .get(..2)
                        .map_or(1000, |c| u16::from_be_bytes([c[0], c[1]]));
                    let reason = payload
                        .get(2..)
                        .map_or(Cow::Borrowed(""), String::from_utf8_lossy);
                    let data = serde_json::json!({"code": code, "reason": reason});
                    out.extend_from_slice(format!("event: close\ndata: {data}\n\n").as_bytes());
                }
                // Pongs answer pings an SSE client never sends.
                _ => {}
            }
            buf = rest;
        }
    }

    /// One server frame as an event, with the stream's id when it moves a position.
    fn event(&mut self, json: &str, out: &mut Vec<u8>) {
        if self.moves(json) {
            out.extend_from_slice(b"id: ");
            self.write_id(out);
            out.push(b'\n');
        }
        // Compact JSON has no line breaks (they are escaped in strings): one data line.
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(json.as_bytes());
        out.extend_from_slice(b"\n\n");
    }

    /// Whether the frame `json` is about a room's position, updating it if so.
    fn moves(&mut self, json: &str) -> bool {
        // Every frame is encoded with its `type` first (`codec`).
        let kind = json
            .strip_prefix(r#"{"type":""#)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default();
        let joined = kind == "joined";
        let entry = matches!(
            kind,
            "message" | "edited" | "deleted" | "reacted" | "notification"
        );
        if !joined && !entry {
            return false;
        }
        let Ok(at) = serde_json::from_str::<At<'_>>(json) else {
            return false;
        };
        let Some(room) = at.room else {
            return false;
        };
        let offset = if joined {
            // A replay follows a recovered join: the position moves with each entry.
            // Otherwise live entries follow `head`.
            (at.recovered != Some(true)).then_some(at.head).flatten()
        } else {
            at.offset
        };
        let slot = match self.positions.iter().position(|(r, _)| **r == *room) {
            Some(i) => i,
            None if joined => {
                self.positions.push((Arc::from(&*room), 0));
                self.positions.len() - 1
            }
            // An entry of a room not joined (cannot happen): no position to move.
            None => return false,
        };
        let position = &mut self.positions[slot].1;
        match (joined, offset) {
            (true, Some(head)) => *position = head,
            (false, Some(offset)) => *position = (*position).max(offset),
            (_, None) => {}
        }
        true
    }

    fn write_id(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.id.as_bytes());
        for (room, offset) in &self.positions {
            out.extend_from_slice(format!(",{room}:{offset}").as_bytes());
        }
    }
}

/// The fields of a frame that place it in a room.
#[derive(Deserialize)]
struct At<'a> {
    #[serde(borrow)]
    room: Option<Cow<'a, str>>,
    offset: Option<u64>,
    head: Option<u64>,
    recovered: Option<bool>,
}

const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;

/// A WebSocket ping frame, for a session's heartbeat.
pub(crate) const PING_FRAME: [u8; 2] = [0x80 | OP_PING, 0];

/// A WebSocket close frame with `code` and `reason` (at most 123 bytes, as every
/// `Disconnect` reason is).
pub(crate) fn close_frame(code: u16, reason: &str) -> Bytes {
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    let mut frame = vec![0x80 | OP_CLOSE, (2 + reason.len()) as u8];
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason);
    Bytes::from(frame)
}

/// The first whole frame of `buf`: its opcode, payload and what follows it.
fn split_frame(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&first, rest) = buf.split_first()?;
    let (&second, rest) = rest.split_first()?;
    let (len, rest) = match second & 0x7f {
        126 => {
            let (len, rest) = rest.split_at_checked(2)?;
            (usize::from(u16::from_be_bytes([len[0], len[1]])), rest)
        }
        127 => {
            let (len, rest) = rest.split_at_checked(8)?;
            let len = u64::from_be_bytes(len.try_into().ok()?);
            (usize::try_from(len).ok()?, rest)
        }
        n => (usize::from(n), rest),
    };
    let (payload, rest) = rest.split_at_checked(len)?;
    Some((first & 0x0f, payload, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use common::ServerMsg;

    fn stream() -> (EventStream, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(4);
        (EventStream::new("S".repeat(32), tx), rx)
    }

    async fn written(
        s: &mut EventStream,
        rx: &mut mpsc::Receiver<Bytes>,
        frames: Vec<Bytes>,
    ) -> String {
        s.write_all(frames).await.unwrap();
        String::from_utf8(rx.recv().await.unwrap().to_vec()).unwrap()
    }

    fn wire(json: &str) -> Bytes {
        codec::wire_of(json).bytes().clone()
    }

    #[tokio::test]
    async fn frames_become_events_and_positions_move_with_joins_and_entries() {
        let (mut s, mut rx) = stream();
        let id = "S".repeat(32);
        let joined = wire(r#"{"type":"joined","room":"a","head":7,"epoch":"e","nicks":[]}"#);
        let typing = wire(r#"{"type":"typing","room":"a","nick":"x"}"#);
        let message = wire(
            r#"{"type":"message","room":"a","offset":8,"nick":"x","text":"hi","id":"1","ts":1}"#,
        );
        let out = written(&mut s, &mut rx, vec![joined, typing, message]).await;
        assert_eq!(
            out,
            format!(
                "id: {id},a:7\ndata: {{\"type\":\"joined\",\"room\":\"a\",\"head\":7,\"epoch\":\"e\",\"nicks\":[]}}\n\n\
                 data: {{\"type\":\"typing\",\"room\":\"a\",\"nick\":\"x\"}}\n\n\
                 id: {id},a:8\ndata: {{\"type\":\"message\",\"room\":\"a\",\"offset\":8,\"nick\":\"x\",\"text\":\"hi\",\"id\":\"1\",\"ts\":1}}\n\n"
            )
        );
        // A recovered join keeps the since it was asked for until the replay moves it.
        s.joining("b", Some(3));
        let recovered = wire(
            r#"{"type":"joined","room":"b","head":9,"epoch":"e","nicks":[],"recovered":true}"#,
        );
        let out = written(&mut s, &mut rx, vec![recovered]).await;
        assert!(out.starts_with(&format!("id: {id},a:8,b:3\n")), "{out}");
        s.forget("a");
        let entry = wire(
            r#"{"type":"edited","room":"b","offset":4,"target":2,"text":"x","user":"u","ts":1}"#,
        );
        let out = written(&mut s, &mut rx, vec![entry]).await;
        assert!(out.starts_with(&format!("id: {id},b:4\n")), "{out}");
        let (stream, rooms) = parse_event_id(&format!("{id},b:4"), 10).unwrap();
        assert_eq!((stream, rooms), (id.clone(), vec![("b".to_owned(), 4)]));
    }

    #[tokio::test]
    async fn pings_become_comments_and_a_close_frame_the_close_event() {
        let (mut s, mut rx) = stream();
        let frames = vec![
            Bytes::from_static(&PING_FRAME),
            close_frame(4001, "closed for a newer connection of the same user"),
        ];
        let out = written(&mut s, &mut rx, frames).await;
        assert_eq!(
            out,
            ": hb\n\nevent: close\ndata: {\"code\":4001,\"reason\":\"closed for a newer connection of the same user\"}\n\n"
        );
        // A long frame (16-bit length) goes through whole.
        let text = "x".repeat(70_000);
        let msg = codec::wire(&ServerMsg::error(
            common::ErrorCode::Internal,
            text.clone(),
            None,
        ));
        let out = written(&mut s, &mut rx, vec![msg.bytes().clone()]).await;
        assert!(out.starts_with("data: {") && out.contains(&text) && out.ends_with("}\n\n"));
    }

    #[test]
    fn event_ids_this_server_did_not_write_are_refused() {
        let id = "a".repeat(32);
        assert!(parse_event_id(&id, 4).is_some_and(|(_, rooms)| rooms.is_empty()));
        for bad in [
            "short".to_owned(),
            format!("{id},Room:1"),
            format!("{id},a:x"),
            format!("{id},a:1,a:2"),
            format!("{id},a:1,b:1,c:1,d:1,e:1"),
            format!("{id},a"),
        ] {
            assert_eq!(parse_event_id(&bad, 4), None, "{bad}");
        }
    }
}
