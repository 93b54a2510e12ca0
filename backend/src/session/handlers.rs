//! One handler per client frame type. Each answers the peer directly and publishes what
//! the room must see; an `Err` ends the connection (the peer is gone or must be closed).

use std::sync::Arc;

use common::{validate, ClientMsg, ErrorCode, NotificationKind, RoomInfo, ServerMsg};
use futures_util::FutureExt;
use tokio::time::Instant;

use super::{End, PendingSend, RoomSub, Session};
use crate::broker::ClaimError;
use crate::codec;
use crate::logsafe::Escaped;
use crate::store::NewMessage;
use crate::writer::WriteError;

/// Messages fetched from the store per step of a `since` replay.
const REPLAY_PAGE: u32 = 100;

const SERVER: &str = concat!("huddle/", env!("CARGO_PKG_VERSION"));

impl Session {
    /// Handles one text frame from the peer.
    pub(super) async fn on_text(&mut self, text: &str) -> Result<(), End> {
        let msg = match codec::decode(text) {
            Ok(msg) => msg,
            Err(e) => {
                // Before `hello`, any frame that is a typed object but not a hello is
                // answered with `hello_required`, whatever else is wrong with it.
                let typed_non_hello = e.frame_type.as_deref().is_some_and(|t| t != "hello");
                if self.nick.is_none() && typed_non_hello {
                    return self.hello_required(e.frame_type).await;
                }
                return self.reply_error(e.code, e.message, e.reference).await;
            }
        };
        if self.nick.is_none() && !matches!(msg, ClientMsg::Hello { .. }) {
            return self.hello_required(Some(msg.kind().to_owned())).await;
        }
        // `hello` and `join` also draw on the address's shared bucket, so opening new
        // connections does not buy one address more nicks or joins.
        if matches!(msg, ClientMsg::Hello { .. } | ClientMsg::Join { .. })
            && !self.state.peers.try_join(self.peer.ip())
        {
            let config = &self.state.config;
            let message = format!(
                "too many hello and join requests from your address: at most {} per minute (bursts of {}); this one was not executed",
                config.ip_join_rate, config.ip_join_burst
            );
            let reference = Some(msg.kind().to_owned());
            return self
                .reply_error(ErrorCode::RateLimited, message, reference)
                .await;
        }
        match msg {
            ClientMsg::Hello { nick, session } => self.hello(&nick, session.as_deref()).await,
            ClientMsg::Join { room, since, epoch } => self.join(&room, since, epoch).await,
            ClientMsg::Leave { room } => self.leave(&room).await,
            ClientMsg::Send { room, text, id } => self.send(&room, &text, id).await,
            ClientMsg::Typing { room } => self.typing(&room).await,
            ClientMsg::History {
                room,
                before,
                limit,
            } => self.history(&room, before, limit).await,
            ClientMsg::ListRooms => self.list_rooms().await,
        }
    }

    async fn hello_required(&mut self, frame_type: Option<String>) -> Result<(), End> {
        self.reply_error(ErrorCode::HelloRequired, "send hello first", frame_type)
            .await
    }

    async fn hello(&mut self, raw_nick: &str, session: Option<&str>) -> Result<(), End> {
        let reference = Some("hello".to_owned());
        if let Some(current) = &self.nick {
            let message = format!("this connection already has the nick {current:?}; open a new connection to change it");
            return self
                .reply_error(ErrorCode::InvalidNick, message, reference)
                .await;
        }
        let nick = match validate::nick(raw_nick, &self.state.limits) {
            Ok(n) => n.to_owned(),
            Err(e) => return self.reply_error(e.code(), e.to_string(), reference).await,
        };
        let key = validate::nick_key(&nick);
        let claimed = self
            .state
            .nicks
            .claim(&key, session, self.conn, Arc::clone(&self.control));
        let taken = |nick: &str| format!("the nick {nick:?} is in use; pick another");
        let Ok(token) = claimed else {
            return self
                .reply_error(ErrorCode::NickTaken, taken(&nick), reference)
                .await;
        };
        // Then across the cluster (a no-op on one node).
        let cluster = self.state.broker.claim_nick(&key, &token, self.conn).await;
        if let Err(e) = cluster {
            self.state.nicks.release(&key, self.conn);
            let (code, message) = match e {
                ClaimError::Taken => (ErrorCode::NickTaken, taken(&nick)),
                ClaimError::Unavailable(why) => {
                    tracing::warn!(error = %why, "nick not claimable now");
                    (
                        ErrorCode::Internal,
                        "cannot reserve the nick right now; retry in a moment".to_owned(),
                    )
                }
            };
            return self.reply_error(code, message, reference).await;
        }
        tracing::debug!(nick = %Escaped(&nick), "hello");
        self.nick = Some(Arc::from(nick.as_str()));
        self.nick_key = key;
        let welcome = ServerMsg::Welcome {
            nick,
            session: token,
            server: SERVER.to_owned(),
            limits: self.state.limits.clone(),
        };
        self.reply(&welcome).await
    }

    async fn join(
        &mut self,
        raw_room: &str,
        since: Option<u64>,
        epoch: Option<String>,
    ) -> Result<(), End> {
        let room: Arc<str> = match validate::room(raw_room, &self.state.limits) {
            Ok(r) => Arc::from(r),
            Err(e) => {
                return self
                    .reply_error(e.code(), e.to_string(), Some("join".to_owned()))
                    .await
            }
        };
        let rejoin = self.rooms.contains_key(&room);
        if !rejoin && self.rooms.len() >= self.state.config.max_rooms_per_conn {
            let message = format!(
                "a connection may be in at most {} rooms; leave one first",
                self.state.config.max_rooms_per_conn
            );
            return self
                .reply_error(ErrorCode::InvalidRoom, message, Some("join".to_owned()))
                .await;
        }
        let nick = self.nick.clone().unwrap_or_default();
        // Subscribe before reading the head: every message after `head` is then certain
        // to reach the outbox, and anything at or below it that also lands there is
        // dropped by `forward`.
        let change = self
            .state
            .hub
            .join(&room, self.conn, nick, self.outbox.clone());
        // A broker reading the store's log needs every joiner to wait for its position
        // in the room (not just the first), or a second joiner could read the head first.
        let every_join = self.state.broker.delivers_stored_messages();
        if change.as_ref().is_some_and(|c| c.edge || every_join) {
            if let Err(e) = self.state.broker.subscribe(&room).await {
                tracing::error!(room = %Escaped(&room), error = %e, "subscribe failed");
                self.state.hub.leave(&room, self.conn);
                return self.internal_error("join").await;
            }
        }
        if change.is_some() {
            let nick = self.nick.as_deref().unwrap_or_default();
            self.state
                .broker
                .member_joined(&room, self.conn, nick)
                .await;
        }
        let head = match self.state.store.head(&room).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(room = %Escaped(&room), error = %e, "reading the room head failed");
                if change.is_some() {
                    self.undo_join(&room).await;
                }
                return self.internal_error("join").await;
            }
        };
        let recovered = match since {
            None => None,
            Some(k) => Some(self.recoverable(&room, k, epoch.as_deref(), &head).await),
        };
        let nicks = match &change {
            Some(c) => c.nicks.clone(),
            None => self.state.hub.nicks(&room),
        };
        let nicks = self.state.broker.members(&room, nicks).await;
        let sub = self.rooms.entry(Arc::clone(&room)).or_insert(RoomSub {
            last_offset: 0,
            last_typing: None,
        });
        sub.last_offset = sub.last_offset.max(head.head);
        let joined = ServerMsg::Joined {
            room: room.to_string(),
            head: head.head,
            epoch: head.epoch,
            nicks: nicks.clone(),
            recovered,
        };
        self.reply(&joined).await?;
        if recovered == Some(true) {
            self.replay(&room, since.unwrap_or(0), head.head).await?;
        }
        if let Some(change) = change {
            self.announce(
                &room,
                NotificationKind::Joined,
                change.nicks,
                change.version,
            )
            .await;
        }
        Ok(())
    }

    /// Whether every message after `since` is still stored in the same history.
    async fn recoverable(
        &mut self,
        room: &str,
        since: u64,
        epoch: Option<&str>,
        head: &crate::store::RoomHead,
    ) -> bool {
        if epoch.is_some_and(|e| e != head.epoch) || since > head.head {
            return false;
        }
        if since == head.head {
            return true;
        }
        match self.state.store.count_between(room, since, head.head).await {
            Ok(n) => n == head.head - since,
            Err(e) => {
                tracing::error!(room = %Escaped(room), error = %e, "recovery check failed");
                false
            }
        }
    }

    /// Sends the stored messages in `since+1..=head`, in order, straight to the socket
    /// (not through the bounded outbox, which a long replay would overflow).
    async fn replay(&mut self, room: &str, since: u64, head: u64) -> Result<(), End> {
        let mut cursor = since;
        while cursor < head {
            let want = REPLAY_PAGE.min((head - cursor).min(u64::from(u32::MAX)) as u32);
            let page = match self.state.store.after(room, cursor, want).await {
                Ok(p) => p,
                Err(e) => {
                    // The peer got `recovered: true`; a hole now would be silent loss, so
                    // drop the connection and let the client resume from what it has.
                    tracing::error!(room = %Escaped(room), error = %e, "replay failed");
                    return Err(End::Close(common::CloseCode::GoingAway));
                }
            };
            let Some(last) = page.last().map(|m| m.offset) else {
                break;
            };
            for m in page.into_iter().filter(|m| m.offset <= head) {
                self.reply(&ServerMsg::Message(m)).await?;
            }
            cursor = last;
        }
        Ok(())
    }

    async fn undo_join(&mut self, room: &Arc<str>) {
        if let Some(change) = self.state.hub.leave(room, self.conn) {
            self.state.broker.member_left(room, self.conn).await;
            if change.edge {
                let _ = self.state.broker.unsubscribe(room).await;
            }
        }
        self.rooms.remove(room);
    }

    async fn leave(&mut self, raw_room: &str) -> Result<(), End> {
        let reference = Some("leave".to_owned());
        let room = match validate::room(raw_room, &self.state.limits) {
            Ok(r) => r,
            Err(e) => return self.reply_error(e.code(), e.to_string(), reference).await,
        };
        let Some((room, _)) = self.rooms.remove_entry(room) else {
            return self.not_joined(room, reference).await;
        };
        let change = self.state.hub.leave(&room, self.conn);
        if change.is_some() {
            self.state.broker.member_left(&room, self.conn).await;
        }
        self.reply(&ServerMsg::Left {
            room: room.to_string(),
        })
        .await?;
        if let Some(change) = change {
            let edge = change.edge;
            self.announce(&room, NotificationKind::Left, change.nicks, change.version)
                .await;
            if edge {
                if let Err(e) = self.state.broker.unsubscribe(&room).await {
                    tracing::warn!(room = %Escaped(&room), error = %e, "unsubscribe failed");
                }
            }
        }
        Ok(())
    }

    async fn send(&mut self, raw_room: &str, raw_text: &str, id: String) -> Result<(), End> {
        let reference = Some(id.clone());
        // The rate limit comes first: a refused send costs the server nothing more.
        if !self.rate.try_take() {
            let message = format!(
                "too many messages: at most {} per second (bursts of {}); this one was not delivered",
                self.state.limits.rate_per_sec, self.state.limits.rate_burst
            );
            return self
                .reply_error(ErrorCode::RateLimited, message, reference)
                .await;
        }
        let limits = &self.state.limits;
        let room = match validate::room(raw_room, limits) {
            Ok(r) => r,
            Err(e) => return self.reply_error(e.code(), e.to_string(), reference).await,
        };
        if !self.rooms.contains_key(room) {
            return self.not_joined(room, reference).await;
        }
        let checked =
            validate::text(raw_text, limits).and_then(|t| validate::id(&id, limits).map(|_| t));
        let text = match checked {
            Ok(t) => t.to_owned(),
            Err(e) => return self.reply_error(e.code(), e.to_string(), reference).await,
        };
        let msg = NewMessage {
            room: room.to_owned(),
            nick: self.nick.as_deref().unwrap_or_default().to_owned(),
            nick_key: self.nick_key.clone(),
            id: id.clone(),
            text,
        };
        let ctx = PendingSend {
            id,
            room: room.to_owned(),
        };
        // Awaiting the queue here (not inside the pending future) keeps one connection's
        // messages in the order it sent them.
        let answer = self.state.writer.append(msg).await;
        self.state.metrics.messages_in.inc();
        self.pending.push(
            answer
                .map(|r| (ctx, r.unwrap_or(Err(WriteError::Stopped))))
                .boxed(),
        );
        Ok(())
    }

    async fn typing(&mut self, raw_room: &str) -> Result<(), End> {
        let reference = Some("typing".to_owned());
        let room = match validate::room(raw_room, &self.state.limits) {
            Ok(r) => r,
            Err(e) => return self.reply_error(e.code(), e.to_string(), reference).await,
        };
        let interval =
            std::time::Duration::from_millis(u64::from(self.state.limits.typing_interval_ms));
        let Some(room) = self.rooms.get_key_value(room).map(|(k, _)| Arc::clone(k)) else {
            return self.not_joined(room, reference).await;
        };
        let now = Instant::now();
        if let Some(sub) = self.rooms.get_mut(&room) {
            if sub
                .last_typing
                .is_some_and(|t| now.duration_since(t) < interval)
            {
                return Ok(());
            }
            sub.last_typing = Some(now);
        }
        let msg = ServerMsg::Typing {
            room: room.to_string(),
            nick: self.nick.as_deref().unwrap_or_default().to_owned(),
        };
        self.publish_event(&room, &msg).await;
        Ok(())
    }

    async fn history(
        &mut self,
        raw_room: &str,
        before: Option<u64>,
        limit: Option<u64>,
    ) -> Result<(), End> {
        let limits = &self.state.limits;
        let room = match validate::room(raw_room, limits) {
            Ok(r) => r.to_owned(),
            Err(e) => {
                return self
                    .reply_error(e.code(), e.to_string(), Some("history".to_owned()))
                    .await
            }
        };
        let limit = limit
            .unwrap_or(u64::from(limits.history_default))
            .clamp(1, u64::from(limits.history_max)) as u32;
        match self.state.store.page(&room, before, limit).await {
            Ok(page) => {
                let msg = ServerMsg::History {
                    room,
                    messages: page.messages,
                    has_more: page.has_more,
                };
                self.reply(&msg).await
            }
            Err(e) => {
                tracing::error!(room = %Escaped(&room), error = %e, "history read failed");
                self.internal_error("history").await
            }
        }
    }

    async fn list_rooms(&mut self) -> Result<(), End> {
        let stored = match self.state.store.rooms().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "listing rooms failed");
                return self.internal_error("list_rooms").await;
            }
        };
        let mut rooms: std::collections::BTreeMap<String, RoomInfo> = stored
            .into_iter()
            .map(|(room, head)| {
                (
                    room.clone(),
                    RoomInfo {
                        room,
                        members: 0,
                        head,
                    },
                )
            })
            .collect();
        for (room, members) in self.state.hub.room_sizes() {
            rooms
                .entry(room.clone())
                .or_insert(RoomInfo {
                    room,
                    members: 0,
                    head: 0,
                })
                .members = members;
        }
        let rooms = rooms.into_values().collect();
        self.reply(&ServerMsg::Rooms { rooms }).await
    }

    async fn not_joined(&mut self, room: &str, reference: Option<String>) -> Result<(), End> {
        let message = format!("not a member of room {room:?}; join it first");
        self.reply_error(ErrorCode::NotJoined, message, reference)
            .await
    }

    async fn internal_error(&mut self, reference: &str) -> Result<(), End> {
        self.reply_error(
            ErrorCode::Internal,
            "the server failed to handle this request; try again",
            Some(reference.to_owned()),
        )
        .await
    }
}
