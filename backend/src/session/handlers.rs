//! One handler per client frame type. Each answers the peer directly and publishes what
//! the room must see; an `Err` ends the connection (the peer is gone or must be closed).
//!
//! [`Session::on_text`] checks what every frame shares once (`hello` first, the
//! address's `hello`/`join` bucket, the `send` rate, the room name) before a handler
//! runs; handlers other than `hello` get the connection's [`Identity`].

use std::sync::Arc;

use common::{validate, ClientMsg, ErrorCode, RoomInfo, ServerMsg};
use tokio::time::Instant;

use super::{End, RoomSub, Session};
use crate::broker::Directive;
use crate::codec;
use crate::directory::UserRecord;
use crate::disconnect::Disconnect;
use crate::identity::{guest_user, is_session_token, new_session_token, Identity, UserKind};
use crate::logsafe::{Chain, Escaped};
use crate::membership::{Farewell, Passage};
use crate::nicks::ClaimError;

use super::members;

/// Bytes of a `history` or `joined` frame besides its list (type, room name, epoch…).
pub(super) const FRAME_SLACK: usize = 512;

/// Messages fetched from the store per step of a `since` replay.
const REPLAY_PAGE: u32 = 100;

const SERVER: &str = concat!("huddle/", env!("CARGO_PKG_VERSION"));

impl Session {
    /// Handles one text frame from the peer.
    pub(super) async fn on_text(&mut self, text: &str) -> Result<(), End> {
        let decoded = codec::decode(text);
        // Every frame counts, valid or not, before any work is done for it.
        if !self.frames.try_take() {
            let reference = match &decoded {
                Ok(msg) => Some(msg.reference().to_owned()),
                Err(e) => e.reference.clone(),
            };
            let (rate, burst) = self.state.config.frame_bucket();
            let message = format!(
                "too many frames: at most {rate} per second (bursts of {burst}); this one was not executed"
            );
            return self
                .reply_error(ErrorCode::RateLimited, message, reference)
                .await;
        }
        let msg = match decoded {
            Ok(msg) => msg,
            Err(e) => {
                // Before `hello`, any frame that is a typed object but not a hello is
                // answered with `hello_required`, whatever else is wrong with it.
                let typed_non_hello = e.frame_type.as_deref().is_some_and(|t| t != "hello");
                if self.identity.is_none() && typed_non_hello {
                    return self.hello_required(e.frame_type).await;
                }
                return self.reply_error(e.code, e.message, e.reference).await;
            }
        };
        if self.identity.is_none() && !matches!(msg, ClientMsg::Hello { .. }) {
            return self.hello_required(Some(msg.kind().to_owned())).await;
        }
        // `hello`, `join` and what makes stored rooms and memberships also draw on the
        // address's shared bucket, so opening new connections does not buy one address
        // more nicks, joins or rooms.
        let stores_something = matches!(
            msg,
            ClientMsg::Hello { .. }
                | ClientMsg::Join { .. }
                | ClientMsg::CreateRoom { .. }
                | ClientMsg::Invite { .. }
                | ClientMsg::OpenDm { .. }
        );
        if stores_something && !self.state.peers.try_join(self.peer.ip()) {
            let config = &self.state.config;
            let message = format!(
                "too many hello, join and room requests from your address: at most {} per minute (bursts of {}); this one was not executed",
                config.ip_join_rate, config.ip_join_burst
            );
            let reference = Some(msg.kind().to_owned());
            return self
                .reply_error(ErrorCode::RateLimited, message, reference)
                .await;
        }
        // The send rate comes before anything else about a send (or an edit, deletion
        // or reaction, which take their place in the log like one): a refused one costs
        // the server nothing more.
        let writes_log = matches!(
            msg,
            ClientMsg::Send { .. }
                | ClientMsg::Edit { .. }
                | ClientMsg::Delete { .. }
                | ClientMsg::React { .. }
        );
        if writes_log && !self.rate.try_take() {
            let message = format!(
                "too many messages, edits and reactions: at most {} per second (bursts of {}); this one was not stored",
                self.state.limits.rate_per_sec, self.state.limits.rate_burst
            );
            let reference = Some(msg.reference().to_owned());
            return self
                .reply_error(ErrorCode::RateLimited, message, reference)
                .await;
        }
        let room: Option<Arc<str>> = match msg.room().map(|r| validate::room(r, &self.state.limits))
        {
            None => None,
            // A joined room's name is shared with the session's map rather than copied
            // for every frame.
            Some(Ok(room)) => Some(
                self.rooms
                    .get_key_value(room)
                    .map_or_else(|| Arc::from(room), |(name, _)| Arc::clone(name)),
            ),
            Some(Err(e)) => {
                let reference = Some(msg.reference().to_owned());
                return self.reply_error(e.code(), e.to_string(), reference).await;
            }
        };
        let who = self.identity.clone();
        match (msg, who, room) {
            (
                ClientMsg::Hello {
                    nick,
                    session,
                    token,
                },
                _,
                _,
            ) => self.hello(nick, session, token).await,
            (ClientMsg::ListRooms { cursor, limit }, _, _) => self.list_rooms(cursor, limit).await,
            (ClientMsg::Join { since, epoch, .. }, Some(who), Some(room)) => {
                self.join(&who, room, since, epoch).await
            }
            (ClientMsg::Leave { .. }, Some(who), Some(room)) => self.leave(&who, room).await,
            (
                ClientMsg::Send {
                    text, id, reply_to, ..
                },
                Some(who),
                Some(room),
            ) => self.send(&who, room, text, id, reply_to).await,
            (
                ClientMsg::Edit {
                    offset, text, id, ..
                },
                Some(who),
                Some(room),
            ) => self.edit(&who, room, offset, text, id).await,
            (ClientMsg::Delete { offset, id, .. }, Some(who), Some(room)) => {
                self.delete(&who, room, offset, id).await
            }
            (
                ClientMsg::React {
                    offset,
                    emoji,
                    on,
                    id,
                    ..
                },
                Some(who),
                Some(room),
            ) => self.react(&who, room, offset, &emoji, on, id).await,
            (ClientMsg::Typing { .. }, Some(who), Some(room)) => self.typing(&who, room).await,
            (ClientMsg::History { before, limit, .. }, Some(who), Some(room)) => {
                self.history(&who, room, before, limit).await
            }
            (ClientMsg::Members { after, limit, .. }, Some(who), Some(room)) => {
                self.members(&who, room, after, limit).await
            }
            (ClientMsg::Read { offset, .. }, Some(who), Some(room)) => {
                self.read(&who, room, offset).await
            }
            (ClientMsg::CreateRoom { private, .. }, Some(who), Some(room)) => {
                self.create_room(&who, room, private).await
            }
            (ClientMsg::Invite { user, .. }, Some(who), Some(room)) => {
                self.invite(&who, room, &user).await
            }
            (ClientMsg::Remove { user, .. }, Some(who), Some(room)) => {
                self.remove(&who, room, &user).await
            }
            (ClientMsg::OpenDm { user }, Some(who), _) => self.open_dm(&who, &user).await,
            (ClientMsg::Inbox { since }, Some(who), _) => self.inbox(&who, since).await,
            (ClientMsg::AlertRead { seq }, Some(who), _) => self.alert_read(&who, seq).await,
            (ClientMsg::PushSubscribe { endpoint, keys }, Some(who), _) => {
                self.push_subscribe(&who, endpoint, keys).await
            }
            (ClientMsg::PushUnsubscribe { endpoint }, Some(who), _) => {
                self.push_unsubscribe(&who, endpoint).await
            }
            (ClientMsg::RoomNotify { level, .. }, Some(who), Some(room)) => {
                self.room_notify(&who, room, level).await
            }
            (ClientMsg::QuietHours { quiet }, Some(who), _) => self.quiet_hours(&who, quiet).await,
            // Checked above: only `hello` comes without an identity, and every other
            // frame that names a room has a valid one.
            (msg, _, _) => self.hello_required(Some(msg.kind().to_owned())).await,
        }
    }

    async fn hello_required(&mut self, frame_type: Option<String>) -> Result<(), End> {
        self.reply_error(ErrorCode::HelloRequired, "send hello first", frame_type)
            .await
    }

    async fn hello(
        &mut self,
        nick: Option<String>,
        session: Option<String>,
        token: Option<String>,
    ) -> Result<(), End> {
        if let Some(token) = token {
            return self.hello_token(&token).await;
        }
        let reference = Some("hello".to_owned());
        if let Some(current) = &self.identity {
            let message = format!(
                "this connection already has the nick {:?}; open a new connection to change it",
                &*current.nick
            );
            return self
                .reply_error(ErrorCode::InvalidNick, message, reference)
                .await;
        }
        if !self.state.config.guests {
            let message = "this server admits only signed-in people: log in, or open it from the application that embeds it";
            return self
                .reply_error(ErrorCode::GuestsDisabled, message, reference)
                .await;
        }
        let Some(raw_nick) = nick else {
            let message = "\"hello\" needs a string field \"nick\" (or \"token\" to sign in)";
            return self
                .reply_error(ErrorCode::InvalidNick, message, reference)
                .await;
        };
        let nick = match validate::nick(&raw_nick, &self.state.limits) {
            Ok(n) => n.to_owned(),
            Err(e) => return self.reply_error(e.code(), e.to_string(), reference).await,
        };
        let key = validate::nick_key(&nick);
        // No guest may pose as a registered person, even while they are away.
        match self.state.directory.account_with_key(&key).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                let message =
                    format!("{nick:?} is a registered name; log in as it, or pick another nick");
                return self
                    .reply_error(ErrorCode::NickTaken, message, reference)
                    .await;
            }
            Err(e) => {
                tracing::error!(error = %Chain(&e), "account lookup failed");
                return self.internal_error("hello").await;
            }
        }
        // The session names the guest: the same token is the same user, in any tab.
        let token = session
            .filter(|s| is_session_token(s))
            .unwrap_or_else(new_session_token);
        let who = Identity {
            user: Arc::from(guest_user(&token)),
            nick: Arc::from(nick.as_str()),
            key: Arc::from(key.as_str()),
            session: Arc::from(token.as_str()),
            kind: UserKind::Guest,
        };
        self.sign_in(who, None, None).await
    }

    /// Admits this connection as `who` (signed in with the account token whose hash is
    /// `token_hash`, or a host token that expires at `expires`): claims the nick, joins
    /// the user's channel, and answers `welcome` with the user's rooms.
    pub(super) async fn sign_in(
        &mut self,
        who: Identity,
        token_hash: Option<String>,
        expires: Option<u64>,
    ) -> Result<(), End> {
        let reference = Some("hello".to_owned());
        let claimed = self
            .state
            .nicks
            .claim(&who, self.conn, Arc::clone(&self.control))
            .await;
        match claimed {
            Ok(()) => {}
            Err(ClaimError::Taken) => {
                let message = format!("the nick {:?} is in use; pick another", &*who.nick);
                return self
                    .reply_error(ErrorCode::NickTaken, message, reference)
                    .await;
            }
            Err(ClaimError::Reserved) => {
                let message = format!(
                    "the nick {:?} is kept for its owner, who just disconnected, for {} s; pick another or try again later",
                    &*who.nick,
                    self.state.config.presence_grace.as_secs_f64().ceil()
                );
                return self
                    .reply_error(ErrorCode::NickTaken, message, reference)
                    .await;
            }
            Err(ClaimError::OtherNick(current)) => {
                let message = format!(
                    "this session is connected as {current:?} elsewhere; use that nick, or start a new session for another"
                );
                return self
                    .reply_error(ErrorCode::InvalidNick, message, reference)
                    .await;
            }
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "nick not claimable now");
                let message = "cannot reserve the nick right now; retry in a moment";
                return self
                    .reply_error(ErrorCode::Internal, message, reference)
                    .await;
            }
        }
        let membership = Arc::clone(&self.state.membership);
        if let Err(e) = membership.join_user(self.conn, &who, &self.outbox).await {
            tracing::error!(error = %Chain(&e), "subscribing to the user's channel failed");
            self.state.nicks.release(&who, self.conn).await;
            return self.internal_error("hello").await;
        }
        let record = UserRecord {
            user: who.user.to_string(),
            nick: who.nick.to_string(),
            kind: who.kind,
        };
        if let Err(e) = self
            .state
            .directory
            .seen(&record, &who.key, crate::clock::now_ms())
            .await
        {
            // Only invitations and DMs to a brand-new user depend on it; the sign-in
            // itself need not fail.
            tracing::warn!(error = %Chain(&e), "user not recorded");
        }
        let rooms = super::people::member_rooms(self.state.clone(), who.clone()).await;
        let (inbox, quiet) = self.inbox_welcome(&who).await;
        tracing::debug!(nick = %Escaped(&who.nick), "hello");
        let welcome = ServerMsg::Welcome {
            nick: who.nick.to_string(),
            session: who.session.to_string(),
            server: SERVER.to_owned(),
            limits: self.state.limits.clone(),
            user: who.user.to_string(),
            rooms,
            inbox,
            quiet,
        };
        self.identity = Some(who);
        self.token_hash = token_hash;
        self.expires = expires;
        self.keep_stream().await;
        self.reply(&welcome).await
    }

    pub(super) async fn join(
        &mut self,
        who: &Identity,
        room: Arc<str>,
        since: Option<u64>,
        epoch: Option<String>,
    ) -> Result<(), End> {
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
        // The stored membership: a private room admits its members only, any other
        // room makes the joiner one.
        let member = if rejoin {
            true
        } else {
            match self.visible(who, &room, "join").await? {
                Some(member) => member,
                None => return Ok(()),
            }
        };
        let membership = Arc::clone(&self.state.membership);
        // Joined before the head is read: every message after `head` is then certain to
        // reach the outbox, and anything at or below it that also lands there is dropped
        // by `forward`.
        let change = match membership.join(&room, self.conn, who, &self.outbox).await {
            Ok(change) => change,
            Err(e) => {
                tracing::error!(room = %Escaped(&room), error = %Chain(&e), "subscribe failed");
                return self.internal_error("join").await;
            }
        };
        let head = match self.state.store.head(&room).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(room = %Escaped(&room), error = %Chain(&e), "reading the room head failed");
                if change.is_some() {
                    membership
                        .depart(&room, self.conn, who, Farewell::Quiet)
                        .await;
                    self.rooms.remove(&room);
                    self.inbox.forget(&room);
                    self.link.forget(&room);
                }
                return self.internal_error("join").await;
            }
        };
        if !member {
            // Joining from now on: what came before is not unread for them.
            let stored = self
                .state
                .directory
                .add_member(&room, &who.user, head.head)
                .await;
            match stored {
                Ok(added) => {
                    if added {
                        self.state.alerts.settings_changed(&room);
                    }
                }
                // Storage refuses writes for now: the room can still be read and
                // followed, only not remembered among the user's rooms.
                Err(e @ crate::store::StoreError::Full(_)) => {
                    tracing::warn!(room = %Escaped(&room), error = %Chain(&e), "membership not stored: storage refuses writes");
                }
                Err(e) => {
                    tracing::error!(room = %Escaped(&room), error = %Chain(&e), "membership not stored");
                    if change.is_some() {
                        membership
                            .depart(&room, self.conn, who, Farewell::Quiet)
                            .await;
                    }
                    return self.internal_error("join").await;
                }
            }
        }
        let recovered = match since {
            None => None,
            // A gap larger than this connection may read now is not replayed: the
            // client starts the room over from its newest page instead.
            Some(k) => Some(
                self.recoverable(&room, k, epoch.as_deref(), &head).await
                    && self.reads.covers(head.head.saturating_sub(k)),
            ),
        };
        let nicks = membership
            .members(&room, change.as_ref().map(|c| c.nicks.clone()))
            .await;
        self.rooms
            .entry(Arc::clone(&room))
            .or_insert(RoomSub { last_typing: None });
        // The room's frames wait from here until `joined` and the replay are written.
        self.inbox.hold(&room);
        // A crowd's joiner gets the first page and the count, not thousands of nicks.
        let max = self.state.config.max_frame_bytes as usize;
        let list = members::joined_list(
            nicks,
            self.state.config.announce_limit,
            max.saturating_sub(FRAME_SLACK),
        );
        let joined = ServerMsg::Joined {
            room: room.to_string(),
            head: head.head,
            epoch: head.epoch,
            nicks: list.nicks,
            recovered,
            members: list.members,
            next: list.next,
        };
        // An SSE stream's position in the room: the replay's start, or (set as the
        // `joined` goes out) the head.
        let replay_from = since.filter(|_| recovered == Some(true));
        self.link.joining(&room, replay_from);
        self.reply(&joined).await?;
        if recovered == Some(true) {
            self.replay(&room, since.unwrap_or(0), head.head).await?;
        }
        self.inbox.receive(&room, head.head);
        if let Some(change) = change {
            membership
                .announce(&room, who, Passage::Joined, change)
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
                tracing::error!(room = %Escaped(room), error = %Chain(&e), "recovery check failed");
                false
            }
        }
    }

    /// Sends the stored messages in `since+1..=head`, in order, straight to the socket
    /// (not through the bounded outbox, which a long replay would overflow). Paced by
    /// the read budget's bytes: the number of messages was checked before `recovered:
    /// true` was promised, their size is only known as they are read, so a long replay
    /// slows down rather than stopping short.
    async fn replay(&mut self, room: &str, since: u64, head: u64) -> Result<(), End> {
        let mut cursor = since;
        while cursor < head {
            let want = REPLAY_PAGE.min((head - cursor).min(u64::from(u32::MAX)) as u32);
            let page = match self.state.store.after(room, cursor, want).await {
                Ok(p) => p,
                Err(e) => {
                    // The peer got `recovered: true`; a hole now would be silent loss, so
                    // drop the connection and let the client resume from what it has.
                    tracing::error!(room = %Escaped(room), error = %Chain(&e), "replay failed");
                    return Err(End::Close(Disconnect::ReplayFailed));
                }
            };
            let Some(last) = page.last().map(common::Entry::offset) else {
                break;
            };
            for m in page.into_iter().filter(|m| m.offset() <= head) {
                let debt = self.reads.debt_delay();
                if !debt.is_zero() {
                    // Paced, but still closable: shutdown or a takeover need not wait.
                    let control = Arc::clone(&self.control);
                    tokio::select! {
                        () = tokio::time::sleep(debt) => {}
                        why = control.closed() => return Err(End::Close(why)),
                        () = self.state.shutdown.cancelled() => {
                            return Err(End::Close(Disconnect::Shutdown));
                        }
                    }
                }
                let frame = codec::wire(&ServerMsg::stored(m));
                self.reads.charge(1, frame.text().len());
                self.send_frame(frame).await?;
            }
            cursor = last;
        }
        Ok(())
    }

    /// Ends the user's membership: this connection departs at once, the user's others
    /// when they take the `left` this sends them.
    async fn leave(&mut self, who: &Identity, room: Arc<str>) -> Result<(), End> {
        let here = self.rooms.remove(&room).is_some();
        self.inbox.forget(&room);
        self.link.forget(&room);
        let stored = match self.state.directory.remove_member(&room, &who.user).await {
            Ok(stored) => {
                self.state.alerts.settings_changed(&room);
                stored
            }
            Err(e) => {
                tracing::error!(room = %Escaped(&room), error = %Chain(&e), "membership not ended");
                if !here {
                    return self.internal_error("leave").await;
                }
                false
            }
        };
        if !here && !stored {
            return self.not_joined(&room, Some("leave".to_owned())).await;
        }
        let membership = Arc::clone(&self.state.membership);
        if here {
            membership
                .depart(&room, self.conn, who, Farewell::Announce)
                .await;
        }
        let left = ServerMsg::Left {
            room: room.to_string(),
        };
        let drop = Directive::Drop {
            room: room.to_string(),
        };
        membership
            .tell_user(&who.user, Some(self.conn), Some(&left), Some(drop))
            .await;
        self.reply(&left).await
    }

    async fn typing(&mut self, who: &Identity, room: Arc<str>) -> Result<(), End> {
        let interval =
            std::time::Duration::from_millis(u64::from(self.state.limits.typing_interval_ms));
        let Some(sub) = self.rooms.get_mut(&room) else {
            let reference = Some("typing".to_owned());
            return self
                .not_joined_or_forbidden(who, &room, "typing", reference)
                .await;
        };
        let now = Instant::now();
        if sub
            .last_typing
            .is_some_and(|t| now.duration_since(t) < interval)
        {
            return Ok(());
        }
        sub.last_typing = Some(now);
        let msg = ServerMsg::Typing {
            room: room.to_string(),
            nick: who.nick.to_string(),
        };
        self.state
            .membership
            .publish_quietly(&room, Some(&who.user), &msg)
            .await;
        Ok(())
    }

    async fn history(
        &mut self,
        who: &Identity,
        room: Arc<str>,
        before: Option<u64>,
        limit: Option<u64>,
    ) -> Result<(), End> {
        if !self.rooms.contains_key(&room) && self.visible(who, &room, "history").await?.is_none() {
            return Ok(());
        }
        if !self.reads.may_read() {
            let config = &self.state.config;
            let message = format!(
                "too much history read: at most {} messages and {} KB per second; try again shortly",
                config.read_rate,
                config.read_bytes / 1024
            );
            return self
                .reply_error(ErrorCode::RateLimited, message, Some("history".to_owned()))
                .await;
        }
        let limits = &self.state.limits;
        let limit = limit
            .unwrap_or(u64::from(limits.history_default))
            .clamp(1, u64::from(limits.history_max)) as u32;
        match self.state.store.page(&room, before, limit).await {
            Ok(page) => {
                let max = self.state.config.max_frame_bytes as usize;
                let (frame, count) = codec::history_frame(&room, page, max, FRAME_SLACK);
                self.reads.charge(count, frame.text().len());
                self.send_frame(frame).await
            }
            Err(e) => {
                tracing::error!(room = %Escaped(&room), error = %Chain(&e), "history read failed");
                self.internal_error("history").await
            }
        }
    }

    /// One page of the rooms with history, most messages first. The cursor is the
    /// number of rooms already seen: rooms that gain messages meanwhile may move between
    /// pages, which a room list can live with, and no page costs more than its size.
    async fn list_rooms(&mut self, cursor: Option<String>, limit: Option<u64>) -> Result<(), End> {
        let offset = match cursor.as_deref().map(str::parse::<u64>) {
            None => 0,
            Some(Ok(offset)) => offset,
            Some(Err(_)) => {
                return self
                    .reply_error(
                        ErrorCode::BadJson,
                        "\"cursor\" must be the \"next\" of an earlier \"rooms\" answer",
                        Some("list_rooms".to_owned()),
                    )
                    .await;
            }
        };
        let limit = limit
            .unwrap_or(common::MAX_ROOMS_PAGE)
            .clamp(1, common::MAX_ROOMS_PAGE) as u32;
        let list = match self.state.store.rooms(offset, limit).await {
            Ok(list) => list,
            Err(e) => {
                tracing::error!(error = %Chain(&e), "listing rooms failed");
                return self.internal_error("list_rooms").await;
            }
        };
        let seen = offset.saturating_add(list.rooms.len() as u64);
        let next = (seen < list.total && !list.rooms.is_empty()).then(|| seen.to_string());
        let rooms = list
            .rooms
            .into_iter()
            .map(|(room, head)| RoomInfo {
                members: self.state.membership.local_users(&room),
                room,
                head,
            })
            .collect();
        let msg = ServerMsg::Rooms {
            rooms,
            total: list.total,
            next,
        };
        self.reply(&msg).await
    }

    pub(super) async fn not_joined(
        &mut self,
        room: &str,
        reference: Option<String>,
    ) -> Result<(), End> {
        let message = format!("not a member of room {room:?}; join it first");
        self.reply_error(ErrorCode::NotJoined, message, reference)
            .await
    }

    pub(super) async fn internal_error(&mut self, reference: &str) -> Result<(), End> {
        self.reply_error(
            ErrorCode::Internal,
            "the server failed to handle this request; try again",
            Some(reference.to_owned()),
        )
        .await
    }
}
