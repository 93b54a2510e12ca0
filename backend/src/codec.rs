//! JSON at the edge: the only module that turns frames into text and back, both the
//! protocol's frames and what instances relay to each other through Redis (room events
//! and control requests).

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use common::{decode_client, ClientMsg, DecodeError, ServerMsg};
use serde::{Deserialize, Serialize};

use crate::session::outbox::ConnId;

/// An encoded server frame. Cloning shares the bytes, so a broadcast encodes once and
/// hands the same buffer to every recipient.
pub(crate) type Frame = Utf8Bytes;

/// A text frame ready for the socket: the WebSocket header and the JSON payload in one
/// shared buffer, so a broadcast frames a message once and writes the same bytes to every
/// member (server frames are never masked, so they are the same for everyone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Wire {
    bytes: Bytes,
    /// The header's length: the payload starts here.
    header: u8,
}

impl Wire {
    /// The bytes to write.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Nothing to send (an item that only carries a directive).
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The JSON payload.
    pub(crate) fn text(&self) -> &str {
        // Built only from `str`s (see `wire`/`wire_of`), so never invalid.
        std::str::from_utf8(&self.bytes[usize::from(self.header)..]).unwrap_or_default()
    }
}

/// The most a server text frame's header takes (no mask, 64-bit length).
const MAX_HEADER: usize = 10;

/// Encodes a server frame straight into its wire form: the JSON is written after room
/// for the longest header, which then goes in front of it, so nothing is copied.
pub(crate) fn wire(msg: &ServerMsg) -> Wire {
    let mut buf = Vec::with_capacity(256);
    buf.resize(MAX_HEADER, 0);
    if let Err(e) = serde_json::to_writer(&mut buf, msg) {
        tracing::error!(error = %e, "failed to encode a server frame");
        return wire_of(ENCODING_FAILED);
    }
    finish_wire(buf)
}

/// The frame of a stored entry, as `ServerMsg::stored` would encode it, without
/// copying the entry: the fan-out encodes each entry of a commit from the writer's own.
pub(crate) fn wire_stored(entry: &common::Entry) -> Wire {
    /// `ServerMsg`'s variants for log entries, borrowing.
    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Stored<'a> {
        Message(&'a common::ChatMessage),
        Edited(&'a common::Edited),
        Deleted(&'a common::Deleted),
        Reacted(&'a common::Reacted),
    }
    let stored = match entry {
        // A stored notice goes out as a `notification`, shaped apart: the rare case
        // takes the copy.
        common::Entry::Message(m) if m.is_notice() => {
            return wire(&ServerMsg::stored(entry.clone()));
        }
        common::Entry::Message(m) => Stored::Message(m),
        common::Entry::Edited(e) => Stored::Edited(e),
        common::Entry::Deleted(d) => Stored::Deleted(d),
        common::Entry::Reacted(r) => Stored::Reacted(r),
    };
    let mut buf = Vec::with_capacity(256);
    buf.resize(MAX_HEADER, 0);
    if let Err(e) = serde_json::to_writer(&mut buf, &stored) {
        tracing::error!(error = %e, "failed to encode a stored entry");
        return wire_of(ENCODING_FAILED);
    }
    finish_wire(buf)
}

/// The wire form of an already encoded frame (one copy of its bytes). Nothing gives
/// nothing: an event that only carries a directive has no frame to send.
pub(crate) fn wire_of(json: &str) -> Wire {
    if json.is_empty() {
        return Wire::default();
    }
    let mut buf = Vec::with_capacity(MAX_HEADER + json.len());
    buf.resize(MAX_HEADER, 0);
    buf.extend_from_slice(json.as_bytes());
    finish_wire(buf)
}

/// Writes the text frame header for `buf[MAX_HEADER..]` just before it.
fn finish_wire(mut buf: Vec<u8>) -> Wire {
    let len = (buf.len() - MAX_HEADER) as u64;
    let header = tungstenite::protocol::frame::FrameHeader {
        is_final: true,
        opcode: tungstenite::protocol::frame::coding::OpCode::Data(
            tungstenite::protocol::frame::coding::Data::Text,
        ),
        ..Default::default()
    };
    let size = header.len(len);
    let start = MAX_HEADER - size;
    let mut slot = &mut buf[start..MAX_HEADER];
    // Writing at most 10 bytes into a 10-byte slice cannot fail.
    let _ = header.format(len, &mut slot);
    Wire {
        bytes: Bytes::from(buf).slice(start..),
        header: size as u8,
    }
}

const ENCODING_FAILED: &str = r#"{"type":"error","code":"internal","message":"encoding failed"}"#;

/// Encodes a server frame.
pub(crate) fn encode(msg: &ServerMsg) -> Frame {
    // Serializing these plain structs to a String cannot fail: no maps with non-string
    // keys, no custom Serialize impls that error.
    let json = serde_json::to_string(msg).unwrap_or_else(|e| {
        tracing::error!(error = %e, "failed to encode a server frame");
        String::from(ENCODING_FAILED)
    });
    Utf8Bytes::from(json)
}

/// Drops the oldest of `messages` (ascending by offset) until the rest encode to at
/// most `max` bytes as a JSON array, so no `history` answer outgrows the frame limit
/// however long its texts are; `true` if any were dropped. The newest is always kept:
/// one message is far below the limit, the text rule sees to that.
pub(crate) fn keep_newest_within(messages: &mut Vec<common::ChatMessage>, max: usize) -> bool {
    let mut total = 2;
    let mut keep = 0;
    for m in messages.iter().rev() {
        let size = serde_json::to_string(m).map_or(max, |json| json.len()) + 1;
        if keep > 0 && total + size > max {
            break;
        }
        total += size;
        keep += 1;
    }
    let drop = messages.len() - keep;
    messages.drain(..drop);
    drop > 0
}

/// Lists at most `per_emoji` users of each reaction of each message (the first who
/// reacted), and gives the full count of any emoji cut short in `reaction_counts`, so
/// one popular message cannot outgrow the frame limit on its own: twelve emoji of 100
/// users each stay far below it, beside the longest text.
pub(crate) fn cap_reactions(messages: &mut [common::ChatMessage], per_emoji: usize) {
    for m in messages {
        for (emoji, users) in &mut m.reactions.0 {
            if users.len() > per_emoji {
                m.reaction_counts.insert(emoji.clone(), users.len() as u64);
                users.truncate(per_emoji);
            }
        }
    }
}

/// Users listed per emoji of a message in `history` (see [`cap_reactions`]): twelve
/// emoji of 20 users, with their names in `nicks`, stay far below the frame limit
/// beside the longest text, and a tooltip names no more anyway.
pub(crate) const REACTORS_LISTED: usize = 20;

/// The `history` answer for `page`, within `max` bytes: reactions capped
/// ([`cap_reactions`]), then the oldest messages dropped until the rest, with the names
/// of who reacted to them, fit (`slack`: what the frame holds besides the list). The
/// newest message is always kept. Returns the frame and how many messages it holds.
pub(crate) fn history_frame(
    room: &str,
    page: crate::store::Page,
    max: usize,
    slack: usize,
) -> (Wire, usize) {
    let crate::store::Page {
        mut messages,
        has_more,
        nicks: all_nicks,
    } = page;
    cap_reactions(&mut messages, REACTORS_LISTED);
    let mut trimmed = keep_newest_within(&mut messages, max.saturating_sub(slack));
    loop {
        let named = |user: &String| {
            messages
                .iter()
                .any(|m| m.reactions.0.iter().any(|(_, us)| us.contains(user)))
        };
        let nicks = all_nicks
            .iter()
            .filter(|(user, _)| named(user))
            .map(|(u, n)| (u.clone(), n.clone()))
            .collect();
        let count = messages.len();
        let answer = ServerMsg::History {
            room: room.to_owned(),
            messages,
            has_more: has_more || trimmed,
            nicks,
        };
        let frame = wire(&answer);
        let ServerMsg::History { messages: back, .. } = answer else {
            unreachable!("built as a history frame just above")
        };
        messages = back;
        if frame.text().len() <= max || count <= 1 {
            return (frame, count);
        }
        // The names of who reacted did not fit beside the messages: one fewer.
        messages.remove(0);
        trimmed = true;
    }
}

/// Keeps the first of `nicks` that encode to at most `max` bytes as a JSON array;
/// `true` if any were dropped. A room of thousands would otherwise send every joiner a
/// list beyond the frame limit.
pub(crate) fn keep_first_within(nicks: &mut Vec<String>, max: usize) -> bool {
    let mut total = 2;
    let keep = nicks
        .iter()
        .take_while(|nick| {
            total += serde_json::to_string(nick).map_or(max, |json| json.len()) + 1;
            total <= max
        })
        .count();
    let cut = keep < nicks.len();
    nicks.truncate(keep);
    cut
}

/// Decodes a client text frame.
pub(crate) fn decode(text: &str) -> Result<ClientMsg, DecodeError> {
    decode_client(text)
}

/// A room event as one instance relays it to the others.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Relayed<S> {
    /// The publishing instance.
    pub(crate) origin: S,
    /// The connection (on `origin`) that must not receive it.
    pub(crate) except: Option<ConnId>,
    /// The user none of whose connections receive it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) except_user: Option<S>,
    /// The encoded server frame.
    pub(crate) frame: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) directive: Option<crate::broker::Directive>,
}

/// Encodes an event for the other instances.
pub(crate) fn encode_relayed(origin: &str, event: &crate::broker::Event) -> String {
    let wire = Relayed {
        origin,
        except: event.except,
        except_user: event.except_user.as_deref(),
        frame: event.frame.as_str(),
        directive: event.directive.clone(),
    };
    // Two strings and a number: cannot fail.
    serde_json::to_string(&wire).unwrap_or_default()
}

/// Decodes an event relayed by an instance (owned strings: the frame is JSON inside
/// JSON, so it arrives escaped).
pub(crate) fn decode_relayed(payload: &[u8]) -> Result<Relayed<String>, serde_json::Error> {
    serde_json::from_slice(payload)
}

/// A request to close a connection, sent to the instance that holds it: its user opened
/// too many elsewhere.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Evict {
    pub(crate) evict: ConnId,
    pub(crate) user: String,
}

pub(crate) fn encode_evict(evict: &Evict) -> String {
    serde_json::to_string(evict).unwrap_or_default()
}

pub(crate) fn decode_evict(payload: &[u8]) -> Result<Evict, serde_json::Error> {
    serde_json::from_slice(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_frames_are_text_frames_of_the_json_whatever_its_length() {
        use tungstenite::protocol::frame::FrameHeader;
        assert!(wire_of("").is_empty(), "no frame for a directive alone");
        for len in [1, 125, 126, 65_535, 65_536, 200_000] {
            let json = "x".repeat(len);
            let wire = wire_of(&json);
            let mut cursor = std::io::Cursor::new(wire.bytes().as_ref());
            let (header, payload) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert!(header.is_final && header.mask.is_none(), "{len}");
            assert_eq!(payload, len as u64);
            assert_eq!(cursor.position() as usize + len, wire.bytes().len());
            assert_eq!(wire.text(), json);
        }
        let msg = ServerMsg::error(common::ErrorCode::Internal, "x", None);
        assert_eq!(wire(&msg).text(), encode(&msg).as_str());
    }

    #[test]
    fn a_stored_entry_is_framed_as_its_server_frame_would_be() {
        let message = common::ChatMessage {
            room: "r".to_owned(),
            offset: 3,
            id: "m".to_owned(),
            nick: "a".to_owned(),
            text: "hi @b".to_owned(),
            ts: 5,
            reply_to: Some(1),
            ..Default::default()
        };
        let notice = common::ChatMessage {
            nick: String::new(),
            user: None,
            id: String::new(),
            ..message.clone()
        };
        let entries = [
            common::Entry::Message(message),
            common::Entry::Message(notice),
            common::Entry::Edited(common::Edited {
                room: "r".to_owned(),
                offset: 4,
                target: 3,
                text: "hello".to_owned(),
                user: "a".to_owned(),
                ts: 6,
            }),
            common::Entry::Deleted(common::Deleted {
                room: "r".to_owned(),
                offset: 5,
                target: 3,
                user: "a".to_owned(),
                ts: 7,
            }),
            common::Entry::Reacted(common::Reacted {
                room: "r".to_owned(),
                offset: 6,
                target: 3,
                emoji: "👍".to_owned(),
                user: "b".to_owned(),
                on: true,
                ts: 8,
                nick: "b".to_owned(),
            }),
        ];
        for entry in entries {
            assert_eq!(
                wire_stored(&entry),
                wire(&ServerMsg::stored(entry.clone())),
                "{entry:?}"
            );
        }
    }

    #[test]
    fn a_member_list_keeps_its_first_nicks_within_the_limit() {
        let mut nicks: Vec<String> = (0..5000).map(|i| format!("member-{i:05}")).collect();
        assert!(keep_first_within(&mut nicks, 64 * 1024 - 512));
        assert!(serde_json::to_string(&nicks).unwrap().len() <= 64 * 1024 - 512);
        assert_eq!(nicks[0], "member-00000");
        assert!(nicks.len() > 4000, "{}", nicks.len());
        let mut few = vec!["a".to_owned(), "b".to_owned()];
        assert!(!keep_first_within(&mut few, 100));
        assert_eq!(few.len(), 2);
    }

    #[test]
    fn a_history_frame_caps_reactions_and_fits_the_names_of_who_reacted() {
        let msg = |offset: u64, reactors: usize| {
            let mut m = common::ChatMessage {
                room: "r".into(),
                offset,
                id: format!("m{offset}"),
                nick: "n".into(),
                text: "x".repeat(100),
                ts: 1,
                ..Default::default()
            };
            for u in 0..reactors {
                m.reactions.apply("👍", &format!("user-{offset}-{u}"), true);
            }
            m
        };
        let nicks_of = |ms: &[common::ChatMessage]| {
            ms.iter()
                .flat_map(|m| m.reactions.users("👍").to_vec())
                .map(|u| (u.clone(), "a fairly long display name".repeat(2)))
                .collect()
        };
        // One message with 1,000 reactions: 20 listed, the count given.
        let page = crate::store::Page {
            messages: vec![msg(1, 1000)],
            has_more: false,
            nicks: nicks_of(&[msg(1, 1000)]),
        };
        let (frame, count) = history_frame("r", page, 64 * 1024, 512);
        let v: serde_json::Value = serde_json::from_str(frame.text()).unwrap();
        assert_eq!(count, 1);
        assert_eq!(
            v["messages"][0]["reactions"]["👍"]
                .as_array()
                .unwrap()
                .len(),
            20
        );
        assert_eq!(v["messages"][0]["reaction_counts"]["👍"], 1000);
        assert_eq!(
            v["nicks"].as_object().unwrap().len(),
            20,
            "only those listed"
        );
        assert_eq!(v["has_more"], false);
        // 100 messages of 20 reactors each: their names do not fit in 64 KB with them,
        // so the oldest go, and the page says there is more.
        let messages: Vec<_> = (1..=100).map(|o| msg(o, 20)).collect();
        let page = crate::store::Page {
            nicks: nicks_of(&messages),
            messages,
            has_more: false,
        };
        let (frame, count) = history_frame("r", page, 64 * 1024, 512);
        assert!(frame.text().len() <= 64 * 1024, "{}", frame.text().len());
        assert!(count < 100, "{count}");
        let v: serde_json::Value = serde_json::from_str(frame.text()).unwrap();
        assert_eq!(
            v["messages"].as_array().unwrap().last().unwrap()["offset"],
            100
        );
        assert_eq!(v["has_more"], true);
        assert_eq!(v["nicks"].as_object().unwrap().len(), 20 * count);
    }

    #[test]
    fn a_history_page_keeps_its_newest_messages_within_the_limit() {
        let msg = |offset: u64| common::ChatMessage {
            room: "r".into(),
            offset,
            id: format!("m{offset}"),
            nick: "n".into(),
            text: "x".repeat(1000),
            ts: 1,
            ..Default::default()
        };
        let mut page: Vec<_> = (1..=100).map(msg).collect();
        assert!(keep_newest_within(&mut page, 10_000));
        let kept: Vec<u64> = page.iter().map(|m| m.offset).collect();
        assert_eq!(kept, (92..=100).collect::<Vec<_>>());
        assert!(serde_json::to_string(&page).unwrap().len() <= 10_000);
        let mut small: Vec<_> = (1..=3).map(msg).collect();
        assert!(!keep_newest_within(&mut small, 1_000_000));
        assert_eq!(small.len(), 3);
    }

    #[test]
    fn relayed_events_and_control_requests_round_trip() {
        let frame = Frame::from(r#"{"type":"typing","room":"r","nick":"a\"b"}"#);
        let event = crate::broker::Event {
            room: std::sync::Arc::from("r"),
            except: Some(7),
            except_user: Some(std::sync::Arc::from("guest:1")),
            frame: frame.clone(),
            directive: Some(crate::broker::Directive::Drop { room: "r".into() }),
        };
        let wire = encode_relayed("ab12", &event);
        let back = decode_relayed(wire.as_bytes()).unwrap();
        assert_eq!(back.origin, "ab12");
        assert_eq!(back.except, Some(7));
        assert_eq!(back.except_user.as_deref(), Some("guest:1"));
        assert_eq!(back.frame, frame.as_str());
        assert_eq!(back.directive, event.directive);
        // What instances before v2 relay: no user, no directive.
        let old = decode_relayed(br#"{"origin":"a","except":null,"frame":"{}"}"#).unwrap();
        assert_eq!((old.except_user, old.directive), (None, None));
        let evict = Evict {
            evict: 7,
            user: "bob".to_owned(),
        };
        assert_eq!(
            decode_evict(encode_evict(&evict).as_bytes()).unwrap(),
            evict
        );
        assert_eq!(
            decode_evict(br#"{"evict":7,"user":"bob"}"#).unwrap(),
            evict,
            "the wire format"
        );
    }
}
