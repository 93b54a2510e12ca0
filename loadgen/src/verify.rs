//! After a crash: read every room's history back through the protocol and check that
//! each acknowledged message is stored at the offset its ack named, with its id and nick.
//! Also the file format acks are kept in between (`room offset id nick`, one per line).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use common::{ClientMsg, ServerMsg};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use crate::conn::AckRecord;

/// Longest wait for one answer from the server.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// A `history` page: the most the protocol returns at once.
const PAGE: u64 = 100;

/// What the read-back found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// Acked messages checked.
    pub acked: u64,
    /// Found at their offset with the same id and nick.
    pub present: u64,
    /// No message at the acked offset.
    pub missing: u64,
    /// Another message at the acked offset.
    pub mismatched: u64,
    pub rooms: u64,
    /// Up to ten examples of what went wrong.
    pub examples: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.missing == 0 && self.mismatched == 0 && self.present == self.acked
    }
}

/// Reading history back failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot connect to {url}: {why}")]
    Connect { url: String, why: String },
    #[error("the server {0}")]
    Protocol(String),
    #[error("acks file line {line}: {why}")]
    Parse { line: usize, why: String },
}

/// Writes acks, one per line: `room offset id nick`.
pub fn format_acks(acks: &[AckRecord]) -> String {
    let mut out = String::with_capacity(acks.len() * 32);
    for a in acks {
        let _ = writeln!(out, "{} {} {} {}", a.room, a.offset, a.id, a.nick);
    }
    out
}

/// Reads what [`format_acks`] wrote.
pub fn parse_acks(text: &str) -> Result<Vec<AckRecord>, VerifyError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let bad = |why: &str| VerifyError::Parse {
                line: i + 1,
                why: why.to_owned(),
            };
            let mut parts = line.split(' ');
            let (Some(room), Some(offset), Some(id), Some(nick), None) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) else {
                return Err(bad("expected `room offset id nick`"));
            };
            Ok(AckRecord {
                room: room.to_owned(),
                offset: offset.parse().map_err(|_| bad("offset is not a number"))?,
                id: id.to_owned(),
                nick: nick.to_owned(),
            })
        })
        .collect()
}

/// Checks every ack against the history the server at `url` returns.
pub async fn verify(url: &str, acks: &[AckRecord]) -> Result<Verdict, VerifyError> {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| VerifyError::Connect {
                url: url.to_owned(),
                why: e.to_string(),
            })?;
    // History needs no hello beyond the first frame rule; say hello anyway, as a client.
    let nick = format!("verify{}", std::process::id());
    request(
        &mut ws,
        &ClientMsg::Hello {
            nick: Some(nick),
            session: None,
            token: None,
        },
    )
    .await?;
    loop {
        match answer(&mut ws).await? {
            ServerMsg::Welcome { .. } => break,
            ServerMsg::Error { code, message, .. } => {
                return Err(VerifyError::Protocol(format!(
                    "refused hello: {code} ({message})"
                )))
            }
            _ => {}
        }
    }

    let mut by_room: BTreeMap<&str, Vec<&AckRecord>> = BTreeMap::new();
    for a in acks {
        by_room.entry(a.room.as_str()).or_default().push(a);
    }
    let mut verdict = Verdict {
        acked: acks.len() as u64,
        rooms: by_room.len() as u64,
        ..Verdict::default()
    };
    for (room, acked) in by_room {
        let lowest = acked.iter().map(|a| a.offset).min().unwrap_or(1);
        let stored = read_history(&mut ws, room, lowest).await?;
        for a in acked {
            match stored.get(&a.offset) {
                Some((id, nick)) if *id == a.id && *nick == a.nick => verdict.present += 1,
                Some((id, nick)) => {
                    verdict.mismatched += 1;
                    example(
                        &mut verdict,
                        format!(
                            "{room}@{}: acked {}/{}, stored {nick}/{id}",
                            a.offset, a.nick, a.id
                        ),
                    );
                }
                None => {
                    verdict.missing += 1;
                    example(
                        &mut verdict,
                        format!("{room}@{}: acked {}/{}, not stored", a.offset, a.nick, a.id),
                    );
                }
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(verdict)
}

fn example(v: &mut Verdict, what: String) {
    if v.examples.len() < 10 {
        v.examples.push(what);
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The room's messages from the newest back to offset `lowest`: offset → (id, nick).
async fn read_history(
    ws: &mut Ws,
    room: &str,
    lowest: u64,
) -> Result<HashMap<u64, (String, String)>, VerifyError> {
    let mut stored = HashMap::new();
    let mut before = None;
    loop {
        let ask = ClientMsg::History {
            room: room.to_owned(),
            before,
            limit: Some(PAGE),
        };
        request(ws, &ask).await?;
        let (messages, has_more) = loop {
            match answer(ws).await? {
                ServerMsg::History {
                    room: r,
                    messages,
                    has_more,
                    ..
                } if r == room => break (messages, has_more),
                ServerMsg::Error { code, message, .. } => {
                    return Err(VerifyError::Protocol(format!(
                        "refused history of {room}: {code} ({message})"
                    )))
                }
                _ => {}
            }
        };
        let Some(first) = messages.first().map(|m| m.offset) else {
            break;
        };
        for m in messages {
            stored.insert(m.offset, (m.id, m.nick));
        }
        if !has_more || first <= lowest {
            break;
        }
        before = Some(first);
    }
    Ok(stored)
}

async fn request(ws: &mut Ws, msg: &ClientMsg) -> Result<(), VerifyError> {
    let text = serde_json::to_string(msg).map_err(|e| VerifyError::Protocol(e.to_string()))?;
    ws.send(Message::text(text))
        .await
        .map_err(|e| VerifyError::Protocol(format!("connection failed: {e}")))
}

async fn answer(ws: &mut Ws) -> Result<ServerMsg, VerifyError> {
    loop {
        let frame = tokio::time::timeout(ANSWER_TIMEOUT, ws.next())
            .await
            .map_err(|_| VerifyError::Protocol("did not answer within 30s".to_owned()))?;
        match frame {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str())
                    .map_err(|e| VerifyError::Protocol(format!("sent a bad frame: {e}")))
            }
            Some(Ok(Message::Close(f))) => {
                return Err(VerifyError::Protocol(format!(
                    "closed the connection: {f:?}"
                )))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(VerifyError::Protocol(format!("connection failed: {e}"))),
            None => return Err(VerifyError::Protocol("closed the connection".to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_round_trip_through_the_file_format() {
        let acks = vec![
            AckRecord {
                room: "bench-0".into(),
                offset: 7,
                id: "3".into(),
                nick: "lgx-1".into(),
            },
            AckRecord {
                room: "bench-1".into(),
                offset: 1,
                id: "0".into(),
                nick: "lgx-2".into(),
            },
        ];
        assert_eq!(parse_acks(&format_acks(&acks)).unwrap(), acks);
        assert!(parse_acks("bench-0 x 1 n\n").is_err());
        assert!(parse_acks("bench-0 1 1\n").is_err());
    }
}
