//! When to reconnect, and what the header says about it: the socket's policy as plain
//! Rust, so unit tests drive it without a browser. [`crate::connection`] is the glue
//! that applies it to a real `WebSocket`.

use std::time::Duration;

use common::CloseCode;

/// The first retry waits up to this long …
const FIRST: Duration = Duration::from_millis(500);
/// … doubling per failed attempt, up to this cap.
const CAP: Duration = Duration::from_secs(30);
/// Never retry sooner than this, so a `random()` of 0 cannot make a tight loop.
const FLOOR: Duration = Duration::from_millis(100);

/// The connection as the header shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// The first connection is being opened.
    Connecting,
    /// The server welcomed us.
    Connected,
    /// The connection dropped; the next attempt is at `retry_at` (ms since the
    /// epoch), or under way when `None`.
    Reconnecting { retry_at: Option<u64> },
    /// Not connected and not trying: nobody signed in yet, a refused nick or token,
    /// signed out, or closed for the user's newer connections.
    Offline,
}

impl Status {
    /// The CSS class suffix (`status-…`).
    pub(crate) const fn class(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Connected => "connected",
            Status::Reconnecting { .. } => "reconnecting",
            Status::Offline => "offline",
        }
    }

    /// The words shown in the header at time `now` (ms since the epoch).
    pub(crate) fn label(self, now: u64) -> String {
        match self {
            Status::Connecting => "connecting…".to_owned(),
            Status::Connected => "connected".to_owned(),
            Status::Reconnecting { retry_at: Some(at) } if at > now => {
                format!("reconnecting in {} s", (at - now).div_ceil(1000))
            }
            Status::Reconnecting { .. } => "reconnecting…".to_owned(),
            Status::Offline => "offline".to_owned(),
        }
    }
}

/// What to do after the socket closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterClose {
    /// Try again after this long.
    Retry(Duration),
    /// The user has too many connections open and this, the oldest, was closed (4001):
    /// reconnecting would close the next oldest, and the tabs would fight forever.
    /// Wait for the person.
    SessionTaken,
    /// Signed out (4003): the token no longer works. Back to the sign-in screen.
    SignedOut,
    /// The server refused our nick and we were never welcomed: retrying would only
    /// repeat it. The nick form is shown.
    NickRefused,
}

/// Counts failed attempts between welcomes and decides on the next step.
#[derive(Debug, Default, Clone)]
pub(crate) struct Reconnect {
    attempt: u32,
}

impl Reconnect {
    /// The server welcomed us: the next drop starts the backoff from the beginning.
    pub(crate) fn welcomed(&mut self) {
        self.attempt = 0;
    }

    /// The person asked to connect now.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The socket closed with `code` (None: no close frame, e.g. a network drop).
    /// `nick_refused`: the last `hello` was refused and nothing was ever welcomed.
    /// `random` is uniform in 0..1.
    pub(crate) fn closed(
        &mut self,
        code: Option<u16>,
        nick_refused: bool,
        random: f64,
    ) -> AfterClose {
        let code = code.and_then(CloseCode::from_code);
        if code == Some(CloseCode::SignedOut) {
            return AfterClose::SignedOut;
        }
        if code.is_some_and(|c| !c.should_reconnect()) {
            return AfterClose::SessionTaken;
        }
        if nick_refused {
            return AfterClose::NickRefused;
        }
        let delay = backoff(self.attempt, random);
        self.attempt = self.attempt.saturating_add(1);
        AfterClose::Retry(delay)
    }
}

/// Exponential backoff with full jitter: uniform in `0..min(CAP, FIRST * 2^attempt)`,
/// so the clients of a restarted server spread out instead of returning in waves.
pub(crate) fn backoff(attempt: u32, random: f64) -> Duration {
    let ceiling = FIRST.saturating_mul(1 << attempt.min(16)).min(CAP);
    ceiling.mul_f64(random.clamp(0.0, 1.0)).max(FLOOR)
}

/// The WebSocket URL on the page's own host: `wss` when the page came over https.
pub(crate) fn ws_url(page_protocol: &str, host: &str) -> String {
    let scheme = if page_protocol == "https:" {
        "wss"
    } else {
        "ws"
    };
    format!("{scheme}://{host}{}", common::WS_PATH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_follows_the_page() {
        assert_eq!(ws_url("http:", "127.0.0.1:3000"), "ws://127.0.0.1:3000/ws");
        assert_eq!(ws_url("https:", "chat.example"), "wss://chat.example/ws");
    }

    #[test]
    fn backoff_is_fully_jittered_exponential_and_capped() {
        assert_eq!(backoff(0, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(3, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(3, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(30, 1.0), CAP);
        assert_eq!(backoff(u32::MAX, 0.25), Duration::from_millis(7500));
        assert_eq!(backoff(5, 0.0), FLOOR);
    }

    #[test]
    fn drops_retry_with_growing_delays_until_welcomed() {
        let mut r = Reconnect::default();
        let delays: Vec<_> = (0..8)
            .map(|_| match r.closed(None, false, 1.0) {
                AfterClose::Retry(d) => d.as_millis(),
                other => panic!("expected a retry, got {other:?}"),
            })
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        r.welcomed();
        assert_eq!(
            r.closed(Some(1001), false, 1.0),
            AfterClose::Retry(Duration::from_millis(500))
        );
        // Server restarts (1001), slow-consumer closes (4008) and errors all retry.
        for code in [1000, 1006, 1011, 1012, 4008] {
            assert!(
                matches!(r.closed(Some(code), false, 0.5), AfterClose::Retry(_)),
                "{code}"
            );
        }
    }

    #[test]
    fn too_many_connections_sign_out_or_a_refused_nick_stops() {
        let mut r = Reconnect::default();
        assert_eq!(r.closed(Some(4001), false, 0.5), AfterClose::SessionTaken);
        assert_eq!(r.closed(Some(4003), false, 0.5), AfterClose::SignedOut);
        assert_eq!(r.closed(Some(1000), true, 0.5), AfterClose::NickRefused);
    }

    #[test]
    fn the_status_counts_down() {
        let s = Status::Reconnecting {
            retry_at: Some(10_000),
        };
        assert_eq!(s.label(7_100), "reconnecting in 3 s");
        assert_eq!(s.label(10_000), "reconnecting…");
        assert_eq!(Status::Connected.label(0), "connected");
        assert_eq!(s.class(), "reconnecting");
    }
}
