//! The handlers about people rather than messages: who may see a room, the rooms a user
//! is a member of (`welcome.rooms`), read offsets, private rooms, invitations, removal
//! and direct messages. The rules themselves live in [`crate::rooms`].

use std::sync::Arc;

use common::{text, ErrorCode, MemberRoom, ServerMsg};

use super::{End, Session};
use crate::accounts::TokenError;
use crate::broker::Directive;
use crate::directory::RoomSettings;
use crate::identity::Identity;
use crate::logsafe::{Chain, Escaped};
use crate::rooms;
use crate::state::AppState;

/// Unread messages looked through for mentions per room at sign-in; beyond it a
/// room's mention count is a lower bound.
const MENTION_SCAN: u32 = 200;
/// The same over all of a user's rooms: what one `hello` may read at most.
const MENTION_SCAN_TOTAL: u32 = 2000;

impl Session {
    /// Whether `who` may see `room`, and whether they are a member (`Some(member)`);
    /// `None` after answering `forbidden` (or `internal`): for a non-member a private
    /// room does not exist.
    pub(super) async fn visible(
        &mut self,
        who: &Identity,
        room: &str,
        reference: &str,
    ) -> Result<Option<bool>, End> {
        let directory = Arc::clone(&self.state.directory);
        let looked_up = async {
            let settings = directory.settings(room).await?;
            let member = directory.is_member(room, &who.user).await?;
            Ok::<_, crate::store::StoreError>((settings, member))
        }
        .await;
        let (settings, member) = match looked_up {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(room = %Escaped(room), error = %Chain(&e), "membership lookup failed");
                self.internal_error(reference).await?;
                return Ok(None);
            }
        };
        // An owner who left may come back to their room.
        let owner = rooms::may_manage(settings.as_ref(), &who.user);
        if rooms::may_see(room, settings.as_ref(), member || owner) {
            return Ok(Some(member));
        }
        self.forbidden(room, reference).await?;
        Ok(None)
    }

    /// The answer to a frame that needs a join the connection has not made:
    /// `forbidden` for a room the user may not see (so a private room answers an
    /// outsider the same way whatever they try), otherwise `not_joined`.
    pub(super) async fn not_joined_or_forbidden(
        &mut self,
        who: &Identity,
        room: &str,
        kind: &str,
        reference: Option<String>,
    ) -> Result<(), End> {
        let answer_ref = reference.clone().unwrap_or_else(|| kind.to_owned());
        match self.visible(who, room, &answer_ref).await? {
            Some(_) => self.not_joined(room, reference).await,
            None => Ok(()),
        }
    }

    async fn forbidden(&mut self, room: &str, reference: &str) -> Result<(), End> {
        // The same words whether the room is private or does not exist: nothing here
        // may tell an outsider that a private room is there.
        let message = format!("no room {room:?} that you may enter");
        self.reply_error(ErrorCode::Forbidden, message, Some(reference.to_owned()))
            .await
    }

    /// `read {room, offset}`: stores the user's read offset (only forward, at most the
    /// room's head) and tells their other connections.
    pub(super) async fn read(
        &mut self,
        who: &Identity,
        room: Arc<str>,
        offset: u64,
    ) -> Result<(), End> {
        let head = match self.rooms.get(&room) {
            Some(_) => self.inbox.last_offset(&room),
            None => {
                match self.visible(who, &room, "read").await? {
                    None => return Ok(()),
                    Some(false) => return self.not_joined(&room, Some("read".to_owned())).await,
                    Some(true) => {}
                }
                match self.state.store.head(&room).await {
                    Ok(h) => h.head,
                    Err(e) => {
                        tracing::error!(room = %Escaped(&room), error = %Chain(&e), "reading the room head failed");
                        return self.internal_error("read").await;
                    }
                }
            }
        };
        let offset = offset.min(head);
        // Whether or not the offset moved: an alert made just after an earlier read
        // of the same message is read now.
        self.room_alerts_read(who, &room, offset).await;
        match self
            .state
            .directory
            .set_read(&who.user, &room, offset)
            .await
        {
            Ok(Some(offset)) => {
                let msg = ServerMsg::Read {
                    room: room.to_string(),
                    offset,
                };
                self.state
                    .membership
                    .tell_user(&who.user, Some(self.conn), Some(&msg), None)
                    .await;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::error!(room = %Escaped(&room), error = %Chain(&e), "read offset not stored");
                self.internal_error("read").await
            }
        }
    }

    /// `create_room {room, private}`: the creator owns it and is its first member.
    pub(super) async fn create_room(
        &mut self,
        who: &Identity,
        room: Arc<str>,
        private: bool,
    ) -> Result<(), End> {
        let reference = Some("create_room".to_owned());
        if rooms::is_dm_name(&room) {
            let message =
                "room names starting with \"dm--\" are kept for direct messages; pick another name";
            return self
                .reply_error(ErrorCode::InvalidRoom, message, reference)
                .await;
        }
        let settings = RoomSettings {
            private,
            owner: Some(who.user.to_string()),
            dm: None,
        };
        let (directory, store) = (&self.state.directory, &self.state.store);
        let created = async {
            // A room with history exists even without settings (every v1 room).
            if store.head(&room).await?.head > 0 {
                return Ok(false);
            }
            if !directory.create_room(&room, &settings).await? {
                return Ok(false);
            }
            directory.add_member(&room, &who.user, 0).await?;
            Ok::<_, crate::store::StoreError>(true)
        }
        .await;
        match created {
            Ok(true) => {
                self.reply(&ServerMsg::RoomCreated {
                    room: room.to_string(),
                    private,
                })
                .await
            }
            Ok(false) => {
                let message = format!("a room {room:?} exists already; pick another name");
                self.reply_error(ErrorCode::RoomExists, message, reference)
                    .await
            }
            Err(e) => {
                tracing::error!(room = %Escaped(&room), error = %Chain(&e), "room not created");
                self.internal_error("create_room").await
            }
        }
    }

    /// The settings of a room `who` manages; `None` after answering `forbidden`.
    async fn managed(
        &mut self,
        who: &Identity,
        room: &str,
        reference: &str,
    ) -> Result<Option<RoomSettings>, End> {
        let settings = match self.state.directory.settings(room).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(room = %Escaped(room), error = %Chain(&e), "room settings not read");
                self.internal_error(reference).await?;
                return Ok(None);
            }
        };
        if rooms::may_manage(settings.as_ref(), &who.user) {
            return Ok(settings);
        }
        if self.visible(who, room, reference).await?.is_some() {
            let message = format!("only the owner of {room:?} may do that");
            self.reply_error(ErrorCode::Forbidden, message, Some(reference.to_owned()))
                .await?;
        }
        Ok(None)
    }

    /// `invite {room, user}` (owner only): `user` becomes a member and hears of it.
    pub(super) async fn invite(
        &mut self,
        who: &Identity,
        room: Arc<str>,
        user: &str,
    ) -> Result<(), End> {
        if self.managed(who, &room, "invite").await?.is_none() {
            return Ok(());
        }
        let directory = Arc::clone(&self.state.directory);
        let added = async {
            if directory.user(user).await?.is_none() {
                return Ok(None);
            }
            directory.add_member(&room, user, 0).await.map(Some)
        }
        .await;
        match added {
            Ok(Some(added)) => {
                if added {
                    self.state.alerts.settings_changed(&room);
                }
                let note = ServerMsg::Invited {
                    room: room.to_string(),
                    user: user.to_owned(),
                    by: Some(who.user.to_string()),
                };
                self.state
                    .membership
                    .tell_user(user, None, Some(&note), None)
                    .await;
                if added {
                    // After `invited`, so a client knows the room its alert names.
                    self.state.alerts.invited(user, &room, &who.nick).await;
                }
                self.reply(&ServerMsg::Invited {
                    room: room.to_string(),
                    user: user.to_owned(),
                    by: None,
                })
                .await
            }
            Ok(None) => self.unknown_user(user, "invite").await,
            Err(e) => {
                tracing::error!(room = %Escaped(&room), error = %Chain(&e), "invitation not stored");
                self.internal_error("invite").await
            }
        }
    }

    /// `remove {room, user}` (owner only): `user` stops being a member, and their open
    /// connections stop receiving the room at once.
    pub(super) async fn remove(
        &mut self,
        who: &Identity,
        room: Arc<str>,
        user: &str,
    ) -> Result<(), End> {
        if self.managed(who, &room, "remove").await?.is_none() {
            return Ok(());
        }
        if user == &*who.user {
            let message = "an owner leaves their room with \"leave\"";
            return self
                .reply_error(ErrorCode::Forbidden, message, Some("remove".to_owned()))
                .await;
        }
        match self.state.directory.remove_member(&room, user).await {
            Ok(true) => {
                self.state.alerts.settings_changed(&room);
                let left = ServerMsg::Left {
                    room: room.to_string(),
                };
                let drop = Directive::Drop {
                    room: room.to_string(),
                };
                let membership = Arc::clone(&self.state.membership);
                membership
                    .tell_user(user, None, Some(&left), Some(drop))
                    .await;
                let note = ServerMsg::Notification {
                    room: room.to_string(),
                    kind: common::NotificationKind::Info,
                    text: format!("{} removed {user}", who.nick),
                    nick: None,
                    ts: crate::clock::now_ms(),
                    offset: None,
                };
                membership.publish_quietly(&room, None, &note).await;
                Ok(())
            }
            Ok(false) => {
                let message = format!(
                    "{:?} is not a member of {room:?}",
                    Escaped(user).to_string()
                );
                self.reply_error(ErrorCode::UnknownUser, message, Some("remove".to_owned()))
                    .await
            }
            Err(e) => {
                tracing::error!(room = %Escaped(&room), error = %Chain(&e), "membership not ended");
                self.internal_error("remove").await
            }
        }
    }

    /// `open_dm {user}`: the private room of exactly these two users, made on first use;
    /// both hear of it.
    pub(super) async fn open_dm(&mut self, who: &Identity, user: &str) -> Result<(), End> {
        if user == &*who.user {
            return self.unknown_user(user, "open_dm").await;
        }
        let directory = Arc::clone(&self.state.directory);
        let room = rooms::dm_room(&who.user, user);
        let opened = async {
            let Some(peer) = directory.user(user).await? else {
                return Ok(None);
            };
            let settings = RoomSettings {
                private: true,
                owner: None,
                dm: Some(rooms::dm_pair(&who.user, user)),
            };
            directory.create_room(&room, &settings).await?;
            directory.add_member(&room, &who.user, 0).await?;
            directory.add_member(&room, user, 0).await?;
            Ok::<_, crate::store::StoreError>(Some(peer))
        }
        .await;
        match opened {
            Ok(Some(peer)) => {
                let to_peer = ServerMsg::Dm {
                    room: room.clone(),
                    user: who.user.to_string(),
                    nick: Some(who.nick.to_string()),
                };
                self.state
                    .membership
                    .tell_user(user, None, Some(&to_peer), None)
                    .await;
                self.reply(&ServerMsg::Dm {
                    room,
                    user: peer.user,
                    nick: Some(peer.nick),
                })
                .await
            }
            Ok(None) => self.unknown_user(user, "open_dm").await,
            Err(e) => {
                tracing::error!(error = %Chain(&e), "direct-message room not opened");
                self.internal_error("open_dm").await
            }
        }
    }

    async fn unknown_user(&mut self, user: &str, reference: &str) -> Result<(), End> {
        let message = format!("no user {:?} here", Escaped(user).to_string());
        self.reply_error(ErrorCode::UnknownUser, message, Some(reference.to_owned()))
            .await
    }
}

impl Session {
    /// `hello {token}`: signs in with an account token or a host JWT; on a connection
    /// already signed in as the same user, refreshes its token (no answer).
    pub(super) async fn hello_token(&mut self, token: &str) -> Result<(), End> {
        let signin = match self.state.accounts.verify(token).await {
            Ok(s) => s,
            Err(TokenError::Store(e)) => {
                tracing::error!(error = %Chain(&e), "token lookup failed");
                return self.internal_error("hello").await;
            }
            Err(e) => {
                // The reason is for the operator; the client learns only that it failed.
                tracing::info!(reason = %Chain(&e), "sign-in token refused");
                return self.invalid_token("the token is not valid (expired, signed out, or not for this server); sign in again").await;
            }
        };
        // A host token keeps working for the clock skew the verifier allows.
        let expires = signin
            .expires
            .map(|exp| exp + crate::auth::jwt::LEEWAY_SECS);
        if let Some(current) = &self.identity {
            if *current.user == signin.user && !current.is_guest() {
                self.token_hash = signin.token_hash;
                self.expires = expires;
                return Ok(());
            }
            return self
                .invalid_token("this connection is signed in as someone else; open a new connection to sign in")
                .await;
        }
        let key = common::validate::nick_key(&signin.nick);
        let who = Identity {
            user: Arc::from(signin.user.as_str()),
            nick: Arc::from(signin.nick.as_str()),
            key: Arc::from(key.as_str()),
            session: Arc::from(""),
            kind: signin.kind,
        };
        self.sign_in(who, signin.token_hash, expires).await
    }

    async fn invalid_token(&mut self, message: &str) -> Result<(), End> {
        self.reply_error(ErrorCode::InvalidToken, message, Some("hello".to_owned()))
            .await
    }
}

/// The rooms `who` is a member of, with their read state, for `welcome`. Failures leave
/// a room out (logged) rather than failing the sign-in. Owned arguments: the session
/// itself cannot be held across these awaits (its socket is not `Sync`).
pub(super) async fn member_rooms(state: AppState, who: Identity) -> Vec<MemberRoom> {
    let (directory, store) = (&state.directory, &state.store);
    let limit = state.config.max_rooms_per_conn;
    let memberships = match directory.memberships(&who.user, limit).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %Chain(&e), "memberships not read");
            return Vec::new();
        }
    };
    let levels: std::collections::HashMap<String, common::NotifyLevel> =
        match directory.notify_levels(&who.user).await {
            Ok(levels) => levels.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "alert levels not read");
                Default::default()
            }
        };
    let mut rooms = Vec::with_capacity(memberships.len());
    let mut budget = MENTION_SCAN_TOTAL;
    for (room, read) in memberships {
        let found = async {
            let head = store.head(&room).await?;
            let settings = directory.settings(&room).await?;
            let scan = budget.min(MENTION_SCAN);
            let (unread, mentions) =
                unread_and_mentions(&state, &who, &room, read, head.head, scan).await?;
            budget -= scan.min(u32::try_from(head.head.saturating_sub(read)).unwrap_or(u32::MAX));
            let peer = match settings.as_ref().and_then(|s| s.dm_peer(&who.user)) {
                Some(peer) => {
                    let nick = directory.user(peer).await?.map(|u| u.nick);
                    Some((peer.to_owned(), nick))
                }
                None => None,
            };
            Ok::<_, crate::store::StoreError>((head, settings, unread, mentions, peer))
        }
        .await;
        match found {
            Ok((head, settings, unread, mentions, peer)) => {
                let (dm, dm_nick) = peer.map_or((None, None), |(p, n)| (Some(p), n));
                rooms.push(MemberRoom {
                    unread,
                    read: read.min(head.head),
                    head: head.head,
                    epoch: head.epoch,
                    mentions,
                    private: settings.as_ref().is_some_and(|s| s.private),
                    dm,
                    dm_nick,
                    notify: levels.get(&room).copied().unwrap_or_default(),
                    owner: settings.as_ref().and_then(|s| s.owner.clone()),
                    room,
                });
            }
            Err(e) => {
                tracing::error!(room = %Escaped(&room), error = %Chain(&e), "room left out of welcome");
            }
        }
    }
    rooms
}

/// How many of `room`'s messages after `read` (up to `head`) are unread, and how many
/// of those mention `who`; their own messages are neither, and neither are the log's
/// edits, deletions and reactions, which take offsets but are no news. Only the newest
/// `scan` entries are looked at: beyond them every entry counts as an unread message
/// without a mention, so a long absence costs one bounded read.
async fn unread_and_mentions(
    state: &AppState,
    who: &Identity,
    room: &str,
    read: u64,
    head: u64,
    scan: u32,
) -> Result<(u64, u64), crate::store::StoreError> {
    if head <= read {
        return Ok((0, 0));
    }
    let from = read.max(head.saturating_sub(u64::from(scan)));
    let entries = if scan == 0 {
        Vec::new()
    } else {
        state.store.after(room, from, scan).await?
    };
    let others: Vec<_> = entries
        .iter()
        .filter_map(common::Entry::as_message)
        .filter(|m| m.offset <= head && m.user.as_deref() != Some(&*who.user))
        .collect();
    let mentions = others
        .iter()
        .filter(|m| text::mentions(&m.text, &who.nick))
        .count() as u64;
    Ok((from - read + others.len() as u64, mentions))
}
