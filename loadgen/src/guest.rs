//! One guest connection for the v2 scenarios (`alerts`, `pushes`): connect from a
//! source address of its own, `hello {nick}`, keep what `welcome` said (the user id and
//! the limits), then send frames and read them one at a time, each step bounded in time.

use std::net::SocketAddr;
use std::time::Duration;

use common::{ClientMsg, Limits, ServerMsg};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::signins::{connect, source_ip};

/// Longest one set-up step (connect, handshake, hello, an answer) may take.
pub(crate) const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// A signed-in guest.
pub(crate) struct Guest {
    ws: WebSocketStream<TcpStream>,
    /// The user id `welcome` named (what the notifications API takes).
    pub(crate) user: String,
    /// The server's limits from `welcome`.
    pub(crate) limits: Limits,
    /// The newest `seq` in the user's inbox at `welcome`.
    pub(crate) inbox_head: u64,
}

impl Guest {
    /// Client `i` connects to `addr` (from 127.0.0.(i mod 255 + 1)) and says `hello`
    /// as `nick`; ready once `welcome` came.
    pub(crate) async fn sign_in(
        addr: SocketAddr,
        url: &str,
        i: usize,
        nick: &str,
    ) -> Result<Guest, String> {
        let stream = connect(addr, source_ip(i))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (ws, _) =
            tokio::time::timeout(STEP_TIMEOUT, tokio_tungstenite::client_async(url, stream))
                .await
                .map_err(|_| "handshake: timed out".to_owned())?
                .map_err(|e| format!("handshake: {e}"))?;
        let mut guest = Guest {
            ws,
            user: String::new(),
            limits: Limits::default(),
            inbox_head: 0,
        };
        guest
            .send(&ClientMsg::Hello {
                nick: Some(nick.to_owned()),
                session: None,
                token: None,
            })
            .await?;
        loop {
            match guest.next(STEP_TIMEOUT).await? {
                ServerMsg::Welcome {
                    user,
                    limits,
                    inbox,
                    ..
                } => {
                    guest.user = user;
                    guest.limits = limits;
                    guest.inbox_head = inbox.head;
                    return Ok(guest);
                }
                ServerMsg::Error { code, .. } => return Err(format!("hello refused: {code:?}")),
                _ => {}
            }
        }
    }

    pub(crate) async fn send(&mut self, msg: &ClientMsg) -> Result<(), String> {
        let text = serde_json::to_string(msg).map_err(|e| e.to_string())?;
        self.send_text(text).await
    }

    /// Sends a frame already encoded.
    pub(crate) async fn send_text(&mut self, text: String) -> Result<(), String> {
        tokio::time::timeout(STEP_TIMEOUT, self.ws.send(Message::text(text)))
            .await
            .map_err(|_| "send: timed out".to_owned())?
            .map_err(|e| format!("send: {e}"))
    }

    /// The next frame, waiting at most `wait`.
    pub(crate) async fn next(&mut self, wait: Duration) -> Result<ServerMsg, String> {
        self.next_within(wait)
            .await?
            .ok_or_else(|| format!("no frame for {wait:?}"))
    }

    /// The next frame, or `None` if none came within `wait`.
    pub(crate) async fn next_within(
        &mut self,
        wait: Duration,
    ) -> Result<Option<ServerMsg>, String> {
        let Ok(text) = tokio::time::timeout(wait, self.next_raw()).await else {
            return Ok(None);
        };
        serde_json::from_str(text?.as_str())
            .map(Some)
            .map_err(|e| format!("bad frame: {e}"))
    }

    /// The next text frame, undecoded (no time limit: the caller bounds it).
    pub(crate) async fn next_raw(&mut self) -> Result<Utf8Bytes, String> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(t),
                Some(Ok(Message::Close(f))) => {
                    return Err(format!("closed: {}", f.map_or(0, |f| u16::from(f.code))))
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("read: {e}")),
                None => return Err("connection ended".to_owned()),
            }
        }
    }

    /// Reads until a frame `want` accepts, failing on an `error` frame.
    pub(crate) async fn until<T>(
        &mut self,
        mut want: impl FnMut(ServerMsg) -> Option<T>,
    ) -> Result<T, String> {
        loop {
            match self.next(STEP_TIMEOUT).await? {
                ServerMsg::Error {
                    code, reference, ..
                } => {
                    return Err(format!(
                        "refused: {code:?} ({})",
                        reference.unwrap_or_default()
                    ))
                }
                msg => {
                    if let Some(found) = want(msg) {
                        return Ok(found);
                    }
                }
            }
        }
    }

    /// Closes, and waits (bounded) for the server's close, so the server has ended the
    /// session when this returns.
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(STEP_TIMEOUT, async {
            let _ = self.ws.close(None).await;
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}
