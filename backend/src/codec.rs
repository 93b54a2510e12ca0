//! JSON at the edge: the only module that turns frames into text and back, both the
//! protocol's frames and what instances relay to each other through Redis (room events
//! and control requests).

use axum::extract::ws::Utf8Bytes;
use common::{decode_client, ClientMsg, DecodeError, ServerMsg};
use serde::{Deserialize, Serialize};

use crate::session::outbox::ConnId;

/// An encoded server frame. Cloning shares the bytes, so a broadcast encodes once and
/// hands the same buffer to every recipient.
pub(crate) type Frame = Utf8Bytes;

/// Encodes a server frame.
pub(crate) fn encode(msg: &ServerMsg) -> Frame {
    // Serializing these plain structs to a String cannot fail: no maps with non-string
    // keys, no custom Serialize impls that error.
    let json = serde_json::to_string(msg).unwrap_or_else(|e| {
        tracing::error!(error = %e, "failed to encode a server frame");
        String::from(r#"{"type":"error","code":"internal","message":"encoding failed"}"#)
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
