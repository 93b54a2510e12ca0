//! What lets an SSE stream be resumed: the [`Streams`] seam keeps, per stream id, who
//! its session signed in as ([`Resume`]), so that an EventSource reconnecting with
//! `Last-Event-ID`, on whichever instance its request lands, continues that session.
//! [`MemoryStreams`] for one node; [`RedisStreams`] for a cluster, where a stream that
//! dropped on one instance resumes on another.
//!
//! Where a resumed stream is in each room is not kept here: the event id carries it
//! (see `session::events`), so nothing is written per message.

mod memory;
mod redis;

pub(crate) use self::redis::RedisStreams;
pub(crate) use memory::MemoryStreams;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::identity::{Identity, UserKind};

/// How long the record of a live stream is kept; re-kept when the stream ends for the
/// resume window. A stream alive longer than this resumes as a fresh one.
pub(crate) const LIVE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Who a stream's session signed in as: enough to sign the resumed stream in again
/// without the client's proof, which the new instance never saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Resume {
    pub(crate) user: String,
    pub(crate) nick: String,
    pub(crate) key: String,
    /// A guest's session token (empty for signed-in users).
    pub(crate) session: String,
    pub(crate) kind: String,
    /// The account token's hash: a resume checks it was not signed out since.
    pub(crate) token_hash: Option<String>,
    /// When the host token expires (seconds since the epoch): not resumed after.
    pub(crate) expires: Option<u64>,
}

impl Resume {
    pub(crate) fn of(who: &Identity, token_hash: Option<&str>, expires: Option<u64>) -> Self {
        Resume {
            user: who.user.to_string(),
            nick: who.nick.to_string(),
            key: who.key.to_string(),
            session: who.session.to_string(),
            kind: who.kind.as_str().to_owned(),
            token_hash: token_hash.map(str::to_owned),
            expires,
        }
    }

    /// The identity recorded; `None` for a record no version of this server wrote.
    pub(crate) fn identity(&self) -> Option<Identity> {
        Some(Identity {
            user: Arc::from(self.user.as_str()),
            nick: Arc::from(self.nick.as_str()),
            key: Arc::from(self.key.as_str()),
            session: Arc::from(self.session.as_str()),
            kind: UserKind::parse(&self.kind)?,
        })
    }
}

/// A failure of the record store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamsError {
    #[error("stream records unavailable")]
    Unavailable(#[from] ::redis::RedisError),
    #[error("stream record unreadable")]
    Corrupt(#[from] serde_json::Error),
}

/// The resume records of SSE streams.
#[async_trait]
pub(crate) trait Streams: Send + Sync + 'static {
    /// Records that stream `id`'s session is signed in as `resume`, for `ttl`.
    async fn keep(&self, id: &str, resume: &Resume, ttl: Duration) -> Result<(), StreamsError>;
    /// Shortens the record's life to `ttl`, if it still exists (the stream dropped; a
    /// record taken by a resume stays taken).
    async fn expire(&self, id: &str, ttl: Duration) -> Result<(), StreamsError>;
    /// Removes and returns the record: a stream resumes once.
    async fn take(&self, id: &str) -> Result<Option<Resume>, StreamsError>;
    /// Removes the record: the stream was closed for a reason and must not resume.
    async fn forget(&self, id: &str) -> Result<(), StreamsError>;
}

#[cfg(test)]
pub(crate) mod conformance {
    //! The behaviour both implementations share.
    use super::*;

    fn alice() -> Resume {
        Resume {
            user: "guest:1".into(),
            nick: "alice".into(),
            key: "alice".into(),
            session: "s_x".into(),
            kind: "guest".into(),
            token_hash: None,
            expires: None,
        }
    }

    pub(crate) async fn a_record_is_taken_once_and_expires(streams: &dyn Streams) {
        let long = Duration::from_secs(60);
        streams.keep("a", &alice(), long).await.unwrap();
        assert_eq!(streams.take("a").await.unwrap(), Some(alice()));
        assert_eq!(streams.take("a").await.unwrap(), None, "taken once");
        // Expiring a taken record does not bring it back.
        streams.expire("a", long).await.unwrap();
        assert_eq!(streams.take("a").await.unwrap(), None);
        streams.keep("b", &alice(), long).await.unwrap();
        streams.forget("b").await.unwrap();
        assert_eq!(streams.take("b").await.unwrap(), None, "forgotten");
        streams.keep("c", &alice(), long).await.unwrap();
        streams
            .expire("c", Duration::from_millis(50))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(streams.take("c").await.unwrap(), None, "expired");
        let who = alice().identity().unwrap();
        assert_eq!(&*who.nick, "alice");
        assert!(who.is_guest());
    }
}
