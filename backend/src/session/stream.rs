//! What an SSE stream's session does beyond a WebSocket's: it listens on its own
//! channel (where its POSTs arrive, from any node), opens with the `stream` event,
//! may continue the session of an earlier stream (a resume), and keeps the record a
//! later stream may resume from.

use std::sync::Arc;

use super::{End, Session};
use crate::broker::Directive;
use crate::disconnect::Disconnect;
use crate::logsafe::Chain;
use crate::state::AppState;
use crate::streams::{Resume, LIVE_TTL};

/// A stream asking to continue another's session: what its `Last-Event-ID` said.
#[derive(Debug)]
pub(crate) struct Resumption {
    /// The stream it continues.
    pub(crate) from: String,
    /// Each room with the highest offset the client had.
    pub(crate) rooms: Vec<(String, u64)>,
}

/// The record `resumption` may continue, if there is one and it still signs in: an
/// account token signed out since, or a host token expired, does not resume.
async fn resumable(state: &AppState, resumption: &Resumption) -> Option<Resume> {
    if state.config.sse_resume.is_zero() {
        return None;
    }
    let record = match state.streams.take(&resumption.from).await {
        Ok(record) => record?,
        Err(e) => {
            tracing::warn!(error = %Chain(&e), "stream record unreadable; starting afresh");
            return None;
        }
    };
    if let Some(hash) = &record.token_hash {
        match state.directory.token_user(hash).await {
            Ok(Some(user)) if user == record.user => {}
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "token not checkable; starting afresh");
                return None;
            }
        }
    }
    if record
        .expires
        .is_some_and(|at| at <= crate::clock::now_ms() / 1000)
    {
        return None;
    }
    Some(record)
}

impl Session {
    /// For an SSE stream: listens on its channel, writes the `stream` event, and
    /// resumes the session `resume` names if it can. Nothing for a WebSocket.
    pub(super) async fn open_stream(&mut self, resume: Option<Resumption>) -> Result<(), End> {
        let Some(id) = self.link.stream().map(|s| s.id().to_owned()) else {
            return Ok(());
        };
        let membership = Arc::clone(&self.state.membership);
        if let Err(e) = membership.join_stream(self.conn, &id, &self.outbox).await {
            tracing::error!(error = %Chain(&e), "stream channel not subscribed");
            return Err(End::Close(Disconnect::Shutdown));
        }
        let mut record = None;
        if let Some(resumption) = &resume {
            record = resumable(&self.state, resumption).await;
        }
        let rooms = match (&record, resume) {
            (Some(_), Some(resumption)) => {
                self.seed(&resumption.rooms);
                Some(resumption)
            }
            _ => None,
        };
        if let super::Link::Events(stream) = &mut self.link {
            let opened = tokio::time::timeout(
                self.state.config.idle_timeout,
                stream.open(record.is_some()),
            )
            .await;
            if !matches!(opened, Ok(Ok(()))) {
                return Err(End::PeerGone);
            }
        }
        let (Some(record), Some(resumption)) = (record, rooms) else {
            return Ok(());
        };
        let Some(who) = record.identity() else {
            return Ok(());
        };
        tracing::debug!(from = %resumption.from, rooms = resumption.rooms.len(), "stream resumed");
        Box::pin(self.sign_in(who.clone(), record.token_hash, record.expires)).await?;
        if self.identity.is_none() {
            // The sign-in was refused (its `error` is written): the client says hello.
            return Ok(());
        }
        for (room, since) in resumption.rooms {
            Box::pin(self.join(&who, Arc::from(room), Some(since), None)).await?;
        }
        // The stream it continues may still be open somewhere: it must not go on too.
        let _ = membership
            .post_to_stream(&resumption.from, Directive::Resumed)
            .await;
        Ok(())
    }

    /// A resumed stream starts where the client was, so its first event already
    /// names the rooms to resume should it drop at once.
    fn seed(&mut self, rooms: &[(String, u64)]) {
        for (room, offset) in rooms {
            self.link.joining(room, Some(*offset));
        }
    }

    /// Records who this SSE stream's session signed in as, for a later resume.
    pub(super) async fn keep_stream(&mut self) {
        let (Some(stream), Some(who)) = (self.link.stream(), &self.identity) else {
            return;
        };
        if self.state.config.sse_resume.is_zero() {
            return;
        }
        let record = Resume::of(who, self.token_hash.as_deref(), self.expires);
        if let Err(e) = self
            .state
            .streams
            .keep(stream.id(), &record, LIVE_TTL)
            .await
        {
            tracing::warn!(error = %Chain(&e), "stream record not kept; it will not resume");
        }
    }

    /// After an SSE stream ended: its channel is left, and its record kept for the
    /// resume window if the client went away, forgotten if the server closed it.
    pub(super) async fn close_stream(&mut self, end: End) {
        let Some(id) = self.link.stream().map(|s| s.id().to_owned()) else {
            return;
        };
        let membership = Arc::clone(&self.state.membership);
        membership.leave_stream(self.conn, &id).await;
        let streams = &self.state.streams;
        // A client gone, or a server stopping, is a reason to resume (elsewhere); any
        // other close was meant.
        let result = match end {
            End::Close(why) if why != Disconnect::Shutdown => streams.forget(&id).await,
            _ => streams.expire(&id, self.state.config.sse_resume).await,
        };
        if let Err(e) = result {
            tracing::debug!(error = %Chain(&e), "stream record not updated");
        }
    }
}
