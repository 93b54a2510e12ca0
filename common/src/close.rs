//! WebSocket close codes the server uses, and what each one asks of a client.

/// A close code sent by the server.
///
/// Codes in 4000–4499 are the application's; like Centrifugo, the web app treats
/// everything as "reconnect" except the codes that [`CloseCode::should_reconnect`]
/// marks terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: a normal close (for example after the client said goodbye).
    Normal,
    /// 1001: the server is shutting down, or the peer was idle too long; reconnect.
    GoingAway,
    /// 1003: the client sent a binary frame; the protocol is text-only.
    Unsupported,
    /// 1008: a policy refused the connection (connection limits in total or per
    /// address, no `hello` in time). A disallowed Origin gets HTTP 403 instead.
    Policy,
    /// 1009: a frame exceeded the maximum frame size.
    TooBig,
    /// 4001: the user opened more connections than the server allows
    /// (`--max-connections-per-user`) and this, the oldest, was closed; do not reconnect
    /// automatically, or the oldest and newest would close each other forever.
    SessionTaken,
    /// 4003: signed out (the token was revoked or expired without a refresh); do not
    /// reconnect with that token.
    SignedOut,
    /// 4008: the client did not read fast enough and its outgoing queue overflowed;
    /// reconnect and resume with `since`.
    SlowConsumer,
}

impl CloseCode {
    /// Every code, for tests and documentation.
    pub const ALL: [CloseCode; 8] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::Unsupported,
        CloseCode::Policy,
        CloseCode::TooBig,
        CloseCode::SessionTaken,
        CloseCode::SignedOut,
        CloseCode::SlowConsumer,
    ];

    /// The numeric code on the wire.
    pub const fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::Unsupported => 1003,
            CloseCode::Policy => 1008,
            CloseCode::TooBig => 1009,
            CloseCode::SessionTaken => 4001,
            CloseCode::SignedOut => 4003,
            CloseCode::SlowConsumer => 4008,
        }
    }

    /// The code for a number, if it is one the server uses.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        CloseCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Whether a client should reconnect on its own after this close.
    ///
    /// Only being displaced (4001) and signing out (4003) are terminal: reconnecting
    /// would displace the newer connection in turn, or use a dead token. Policy and
    /// protocol violations reconnect too (with backoff), because a fresh connection
    /// starts from a clean state.
    pub const fn should_reconnect(self) -> bool {
        !matches!(self, CloseCode::SessionTaken | CloseCode::SignedOut)
    }

    /// A short reason sent in the close frame (at most 123 bytes by the WebSocket rules).
    pub const fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "bye",
            CloseCode::GoingAway => "server shutting down",
            CloseCode::Unsupported => "binary frames are not supported",
            CloseCode::Policy => "refused by policy (for example too many connections)",
            CloseCode::TooBig => "frame too large",
            CloseCode::SessionTaken => "closed for a newer connection of the same user",
            CloseCode::SignedOut => "signed out",
            CloseCode::SlowConsumer => "slow consumer: outgoing queue overflowed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_only_displacement_and_sign_out_are_terminal() {
        for c in CloseCode::ALL {
            assert_eq!(CloseCode::from_code(c.code()), Some(c));
            assert!(c.reason().len() <= 123);
            let terminal = matches!(c, CloseCode::SessionTaken | CloseCode::SignedOut);
            assert_eq!(c.should_reconnect(), !terminal);
        }
        assert_eq!(CloseCode::from_code(1002), None);
    }
}
