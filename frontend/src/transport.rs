//! Which transport carries the protocol: the WebSocket while it works, Server-Sent
//! Events (docs/protocol.md, "the fallback transport") on networks that break it. Plain
//! Rust, so unit tests drive every decision without a browser; the glue that acts on
//! them is [`crate::connection`], the carriers themselves are [`crate::carrier`].
//!
//! Broken WebSockets come in two kinds, and both look the same from here: the upgrade
//! is refused (a proxy answers 403, the socket never opens), or the socket opens and
//! nothing ever comes through it (a proxy that does not forward frames). So the rule is
//! about what a socket *delivered*: one that ends, or is given up on after
//! [`WS_SILENCE`], without a single frame from the server is silent, and
//! [`SILENT_TO_SWITCH`] silent sockets in a row move the page to SSE, where a
//! background probe ([`PROBE_EVERY`]) brings it back to the WebSocket once one answers.
//! A server that is merely restarting (or a network that is down) also gives silent
//! sockets; but then the stream gets nothing either, and a silent stream sends the page
//! back to trying WebSockets first, so a restart does not leave every page on the
//! fallback. Nothing is lost either way: every switch is a reconnect, with
//! `join {since}` and unacknowledged sends resent under their ids.

use std::time::Duration;

/// A WebSocket that delivers no frame for this long after it was created (no `welcome`
/// or `error` for our `hello`, not even a close frame) is given up on.
pub(crate) const WS_SILENCE: Duration = Duration::from_secs(4);
/// The same for an SSE stream: longer, as nothing better remains to switch to; giving
/// up only hands it to the reconnect policy.
pub(crate) const SSE_SILENCE: Duration = Duration::from_secs(10);
/// How many silent WebSockets in a row make the page switch to SSE: one could be a
/// server restarting, two in a row is a pattern.
pub(crate) const SILENT_TO_SWITCH: u32 = 2;
/// While on SSE, a WebSocket probe is tried this often.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(30);
/// A probe that has no frame back after this long failed.
pub(crate) const PROBE_WAIT: Duration = Duration::from_secs(4);

/// How frames travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Transport {
    /// One WebSocket to `/ws`, frames both ways.
    #[default]
    WebSocket,
    /// An `EventSource` on `/sse` for the server's frames, `POST /sse/send` for ours.
    Sse,
}

impl Transport {
    /// The stable name tests and styles use (`data-transport`).
    pub(crate) const fn attr(self) -> &'static str {
        match self {
            Transport::WebSocket => "ws",
            Transport::Sse => "sse",
        }
    }

    /// Said after the status, in its tooltip and accessible name.
    pub(crate) const fn describe(self) -> &'static str {
        match self {
            Transport::WebSocket => "WebSocket",
            Transport::Sse => "fallback: SSE",
        }
    }

    /// The status badge's tooltip and accessible name: its `label` as a sentence,
    /// with the transport (`Connected (fallback: SSE)`).
    pub(crate) fn badge_title(self, label: &str) -> String {
        let mut title = format!("{label} ({})", self.describe());
        // The labels start with an ASCII letter.
        if let Some(first) = title.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        title
    }
}

/// The transport in use and the evidence for it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Chooser {
    current: Transport,
    /// Silent WebSockets in a row.
    silent: u32,
}

impl Chooser {
    /// The transport the next connection uses.
    pub(crate) const fn current(&self) -> Transport {
        self.current
    }

    /// A carrier of `transport` delivered a frame: that way works.
    pub(crate) fn heard(&mut self, transport: Transport) {
        if transport == Transport::WebSocket {
            self.silent = 0;
        }
    }

    /// A carrier of `transport` ended, or was given up on, without delivering a frame.
    /// Returns `true` when this changes the transport: to SSE after enough silent
    /// WebSockets, back to WebSockets after a silent stream (the server or the network
    /// is away, not just WebSockets).
    pub(crate) fn silent(&mut self, transport: Transport) -> bool {
        if transport != self.current {
            return false;
        }
        if transport == Transport::WebSocket {
            self.silent += 1;
            if self.silent < SILENT_TO_SWITCH {
                return false;
            }
            self.current = Transport::Sse;
        } else {
            self.current = Transport::WebSocket;
        }
        self.silent = 0;
        true
    }

    /// Whether WebSocket probes should run: only while on the fallback.
    pub(crate) fn probing(&self) -> bool {
        self.current == Transport::Sse
    }

    /// A probe's WebSocket got a frame back. Returns `true` when this moves the page
    /// back to the WebSocket.
    pub(crate) fn probe_answered(&mut self) -> bool {
        let switch = self.current == Transport::Sse;
        self.current = Transport::WebSocket;
        self.silent = 0;
        switch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_silent_websockets_in_a_row_switch_to_sse() {
        let mut c = Chooser::default();
        assert_eq!(c.current(), Transport::WebSocket);
        assert!(!c.silent(Transport::WebSocket));
        assert_eq!(c.current(), Transport::WebSocket);
        assert!(!c.probing());
        assert!(c.silent(Transport::WebSocket));
        assert_eq!(c.current(), Transport::Sse);
        assert!(c.probing());
        // A late report of an older socket changes nothing.
        assert!(!c.silent(Transport::WebSocket));
        assert_eq!(c.current(), Transport::Sse);
        // A stream that works keeps the page on SSE.
        c.heard(Transport::Sse);
        assert_eq!(c.current(), Transport::Sse);
    }

    #[test]
    fn a_silent_stream_sends_the_page_back_to_websockets() {
        // A restarting server: two refused sockets, then the stream is refused too.
        let mut c = Chooser::default();
        c.silent(Transport::WebSocket);
        c.silent(Transport::WebSocket);
        assert!(c.silent(Transport::Sse));
        assert_eq!(c.current(), Transport::WebSocket);
        assert!(!c.probing());
        // And it takes two silent sockets again to fall back.
        assert!(!c.silent(Transport::WebSocket));
        assert!(c.silent(Transport::WebSocket));
        assert_eq!(c.current(), Transport::Sse);
    }

    #[test]
    fn a_frame_in_between_resets_the_count() {
        let mut c = Chooser::default();
        for _ in 0..5 {
            assert!(!c.silent(Transport::WebSocket));
            c.heard(Transport::WebSocket);
        }
        assert_eq!(c.current(), Transport::WebSocket);
        // What an SSE stream delivers says nothing about WebSockets.
        assert!(!c.silent(Transport::WebSocket));
        c.heard(Transport::Sse);
        assert!(c.silent(Transport::WebSocket));
    }

    #[test]
    fn an_answered_probe_moves_back_and_starts_counting_afresh() {
        let mut c = Chooser::default();
        c.silent(Transport::WebSocket);
        c.silent(Transport::WebSocket);
        assert!(c.probe_answered());
        assert_eq!(c.current(), Transport::WebSocket);
        assert!(!c.probing());
        // A late answer while already back is no switch.
        assert!(!c.probe_answered());
        // Two more silent sockets are needed to fall back again.
        assert!(!c.silent(Transport::WebSocket));
        assert!(c.silent(Transport::WebSocket));
    }

    #[test]
    fn names_for_the_badge() {
        assert_eq!(Transport::WebSocket.attr(), "ws");
        assert_eq!(Transport::Sse.attr(), "sse");
        assert_eq!(
            Transport::Sse.badge_title("connected"),
            "Connected (fallback: SSE)"
        );
        assert_eq!(
            Transport::WebSocket.badge_title("reconnecting in 3 s"),
            "Reconnecting in 3 s (WebSocket)"
        );
        assert_eq!(Transport::WebSocket.badge_title(""), " (WebSocket)");
        assert_eq!(Transport::default(), Transport::WebSocket);
    }
}
