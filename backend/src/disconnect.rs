//! Why the server closes a connection: every reason with its close code and the text
//! the client and the log see. Each reason has its own entry, so an operator can tell an
//! idle peer from a stalled one from a shutdown.

use common::CloseCode;

/// A reason for the server to close a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disconnect {
    /// The server is stopping.
    Shutdown,
    /// Nothing came from the peer for `--idle-timeout`.
    Idle,
    /// The peer took none of what was written to it for `--idle-timeout`.
    StalledWriter,
    /// A `since` replay could not be read after `recovered: true` was promised.
    ReplayFailed,
    /// The shared history was reset (Redis lost its data); rejoining reloads it.
    EpochChanged,
    /// The outbox overflowed: the peer reads slower than its rooms talk.
    SlowConsumer,
    /// This instance fell behind a room's trimmed stream (`--history-max`).
    FellBehind,
    /// The user opened more connections than `--max-connections-per-user`; this was the
    /// oldest.
    Displaced,
    /// The token this connection signed in with was signed out.
    SignedOut,
    /// The token this connection signed in with expired and no fresh one came.
    TokenExpired,
    /// No `hello` within `--hello-timeout`.
    HelloTimeout,
    /// Over `--max-connections`.
    TooManyConnections,
    /// Over `--max-connections-per-ip`.
    TooManyFromAddress,
    /// A binary frame.
    Binary,
    /// A frame over the size limit.
    TooBig,
    /// Another SSE stream resumed this one's session (`Last-Event-ID`).
    Resumed,
}

impl Disconnect {
    /// The close code on the wire.
    pub(crate) const fn code(self) -> CloseCode {
        match self {
            Disconnect::Shutdown
            | Disconnect::Idle
            | Disconnect::StalledWriter
            | Disconnect::ReplayFailed
            | Disconnect::EpochChanged
            | Disconnect::Resumed => CloseCode::GoingAway,
            Disconnect::SlowConsumer | Disconnect::FellBehind => CloseCode::SlowConsumer,
            Disconnect::Displaced => CloseCode::SessionTaken,
            Disconnect::SignedOut | Disconnect::TokenExpired => CloseCode::SignedOut,
            Disconnect::HelloTimeout
            | Disconnect::TooManyConnections
            | Disconnect::TooManyFromAddress => CloseCode::Policy,
            Disconnect::Binary => CloseCode::Unsupported,
            Disconnect::TooBig => CloseCode::TooBig,
        }
    }

    /// The close frame's reason (at most 123 bytes).
    pub(crate) const fn reason(self) -> &'static str {
        match self {
            Disconnect::Shutdown => CloseCode::GoingAway.reason(),
            Disconnect::Idle => "idle: nothing received for the idle timeout",
            Disconnect::StalledWriter => "stalled: nothing read by the client for the idle timeout",
            Disconnect::ReplayFailed => "history replay failed; reconnect to resume",
            Disconnect::EpochChanged => "history was reset; reconnect to reload",
            Disconnect::SlowConsumer => CloseCode::SlowConsumer.reason(),
            Disconnect::FellBehind => {
                "slow consumer: fell behind the room's history; resume with since"
            }
            Disconnect::Displaced => CloseCode::SessionTaken.reason(),
            Disconnect::SignedOut => CloseCode::SignedOut.reason(),
            Disconnect::TokenExpired => "token expired; sign in again",
            Disconnect::HelloTimeout => "hello timeout",
            Disconnect::TooManyConnections => "too many connections",
            Disconnect::TooManyFromAddress => "too many connections from this address",
            Disconnect::Binary => CloseCode::Unsupported.reason(),
            Disconnect::TooBig => CloseCode::TooBig.reason(),
            Disconnect::Resumed => "resumed by a newer stream",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_fit_a_close_frame_and_are_distinct() {
        let all = [
            Disconnect::Shutdown,
            Disconnect::Idle,
            Disconnect::StalledWriter,
            Disconnect::ReplayFailed,
            Disconnect::EpochChanged,
            Disconnect::SlowConsumer,
            Disconnect::FellBehind,
            Disconnect::Displaced,
            Disconnect::SignedOut,
            Disconnect::TokenExpired,
            Disconnect::HelloTimeout,
            Disconnect::TooManyConnections,
            Disconnect::TooManyFromAddress,
            Disconnect::Binary,
            Disconnect::TooBig,
            Disconnect::Resumed,
        ];
        let mut reasons: Vec<&str> = all.iter().map(|d| d.reason()).collect();
        assert!(reasons.iter().all(|r| r.len() <= 123));
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
    }
}
