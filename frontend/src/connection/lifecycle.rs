//! The connection's carrier from opening to end: which transport it uses
//! ([`crate::transport`] decides), when to try again ([`crate::link`] decides), giving
//! up on a carrier that delivers nothing, the WebSocket probes while on SSE, and every
//! server frame applied to the store, whichever carrier brought it. The deadlines are
//! checked by the clock's one-second tick ([`Connection::tick`]) rather than a timer
//! each: a second more or less does not matter to them.
//!
//! Each carrier gets a serial number, and its reports carry it: anything from a carrier
//! already replaced is ignored, so a late event of an old socket or stream can never
//! touch the state of the new one.

use std::rc::Rc;
use std::time::Duration;

use common::{ClientMsg, ErrorCode, ServerMsg};
use leptos::prelude::*;

use super::{now, Connection, HISTORY_RETRY_MS};
use crate::auth;
use crate::carrier::{Carrier, Incoming, Probe, Ready, Sink};
use crate::link::{AfterClose, Status};
use crate::state::{ChatState, Parts};
use crate::transport::{Transport, PROBE_EVERY, PROBE_WAIT, SSE_SILENCE, WS_SILENCE};
use crate::{notify, prefs};

impl Connection {
    /// Says `hello` on the open carrier, or opens one (whose opening says it).
    pub(super) fn say_hello(self) {
        let ready = self
            .link
            .with_value(|l| l.carrier.as_ref().map(Carrier::ready));
        match ready {
            // A carrier whose `hello` was refused stays open: retry on it.
            Some(Ready::Open) => {
                if let Some(hello) = self.chat.with_untracked(ChatState::hello) {
                    self.send(&hello);
                }
            }
            // Its opening will say hello with the nick just chosen.
            Some(Ready::Connecting) => {}
            _ => self.reconnect_now(),
        }
    }

    /// Connects now, forgetting the backoff (also after the session moved elsewhere).
    pub(crate) fn reconnect_now(self) {
        let retry = self.link.try_update_value(|l| {
            l.policy.reset();
            l.retry.take()
        });
        if let Some(retry) = retry.flatten() {
            retry.clear();
        }
        self.chat
            .update(Parts::SESSION, |s| s.session_taken = false);
        self.connect();
    }

    /// Opens a carrier of the transport in use, replacing any other.
    fn connect(self) {
        let status = if self.chat.with_untracked(|s| s.me.is_some()) {
            Status::Reconnecting { retry_at: None }
        } else {
            Status::Connecting
        };
        self.set_status.set(status);
        let at = now();
        let Some((transport, serial)) = self.link.try_update_value(|l| {
            l.serial = l.serial.wrapping_add(1);
            l.heard = false;
            let transport = l.transports.current();
            let wait = match transport {
                Transport::WebSocket => {
                    l.next_probe = None;
                    WS_SILENCE
                }
                Transport::Sse => {
                    // On SSE, probes go out from now on.
                    l.next_probe
                        .get_or_insert(at + PROBE_EVERY.as_millis() as u64);
                    SSE_SILENCE
                }
            };
            l.mute_at = at + wait.as_millis() as u64;
            (transport, l.serial)
        }) else {
            return;
        };
        self.set_transport.set(transport);
        let sink: Sink = Rc::new(move |incoming| self.on_incoming(serial, incoming));
        // The server takes four frames' worth of bytes in one post.
        let max_body = 4 * self.chat.with_untracked(|s| s.limits.max_frame_bytes) as usize;
        match Carrier::open(transport, sink, max_body) {
            Ok(carrier) => {
                let old = self.link.try_update_value(|l| l.carrier.replace(carrier));
                drop(old);
            }
            Err(err) => {
                leptos::logging::warn!("cannot connect: {err:?}");
                self.schedule_reconnect(None);
            }
        }
    }

    /// The clock's tick: gives up on a carrier that delivered nothing in time (a
    /// WebSocket that opens and stays mute is how some proxies break them), and runs
    /// the probes.
    pub(super) fn tick(self, now: u64) {
        let Some((mute, probe_failed, probe_due)) = self.link.try_with_value(|l| {
            let mute = (l.carrier.is_some() && !l.heard && now >= l.mute_at).then_some(l.serial);
            let probe_failed = l.probe.as_ref().is_some_and(|(_, at)| now >= *at);
            let probe_due = l.transports.probing()
                && l.probe.is_none()
                && l.next_probe.is_some_and(|at| now >= at);
            (mute, probe_failed, probe_due)
        }) else {
            return;
        };
        if let Some(serial) = mute {
            self.on_incoming(serial, Incoming::Closed(None));
        }
        if probe_failed {
            self.probed(false);
        }
        if probe_due {
            self.probe(now);
        }
    }

    /// Sends one frame if the carrier is open. Frames that cannot go out now are not
    /// queued here: `hello` and `join` are rebuilt on reconnect and unacked messages
    /// are resent from the store.
    pub(super) fn send(self, msg: &ClientMsg) {
        let Ok(json) = serde_json::to_string(msg) else {
            return;
        };
        self.link.with_value(|l| {
            if let Some(carrier) = &l.carrier {
                carrier.send(json);
            }
        });
    }

    /// A report of carrier `serial`; ignored unless it is the one in use.
    fn on_incoming(self, serial: u32, incoming: Incoming) {
        let current = self
            .link
            .try_with_value(|l| l.serial == serial && l.carrier.is_some())
            .unwrap_or(false);
        if !current {
            return;
        }
        match incoming {
            Incoming::Open => {
                if let Some(hello) = self.chat.with_untracked(ChatState::hello) {
                    self.send(&hello);
                }
            }
            Incoming::Frame(text) => {
                self.heard();
                self.on_frame(&text);
            }
            Incoming::Closed(code) => self.on_closed(code),
        }
    }

    /// The carrier in use delivered a frame: it is not mute, and its transport works.
    fn heard(self) {
        self.link.update_value(|l| {
            l.heard = true;
            if let Some(transport) = l.carrier.as_ref().map(Carrier::transport) {
                l.transports.heard(transport);
            }
        });
    }

    /// A server frame, from either carrier: applied to the store, its effects carried
    /// out.
    fn on_frame(self, text: &str) {
        let msg = match serde_json::from_str::<ServerMsg>(text) {
            Ok(msg) => msg,
            Err(err) => {
                // Newer servers may add frame types; skipping them keeps us compatible.
                leptos::logging::warn!("ignoring frame: {err}");
                return;
            }
        };
        let history_refused = matches!(
            &msg,
            ServerMsg::Error { code: ErrorCode::RateLimited, reference: Some(r), .. } if r == "history"
        );
        let welcomed = matches!(msg, ServerMsg::Welcome { .. });
        if let ServerMsg::Welcome { nick, session, .. } = &msg {
            // A guest's session reclaims the nick next time; a signed-in person's
            // token does that.
            if !self.chat.with_untracked(ChatState::has_token) {
                prefs::save(nick, session);
            }
            self.link.update_value(|l| l.policy.welcomed());
            self.set_status.set(Status::Connected);
            self.welcomes.update(|n| *n += 1);
        }
        let Some(applied) = self.chat.apply(msg, now()) else {
            return;
        };
        if history_refused {
            // Over the server's read budget: ask for the page again in a moment, as
            // scrolling to the top again would.
            let retry = Duration::from_millis(HISTORY_RETRY_MS);
            if let Err(err) = set_timeout_with_handle(move || self.load_older(), retry) {
                leptos::logging::warn!("cannot schedule a history retry: {err:?}");
            }
        }
        if applied.forget_token {
            auth::forget_token();
        }
        for reply in &applied.replies {
            self.send(reply);
        }
        for alert in &applied.alerts {
            notify::alert(alert);
        }
        if welcomed {
            self.resubscribe_push();
        }
        self.flush_reads();
    }

    /// The carrier in use ended, with the server's close code or none.
    fn on_closed(self, code: Option<u16>) {
        let ended = self.link.try_update_value(|l| {
            let carrier = l.carrier.take();
            let transport = carrier.as_ref().map(Carrier::transport);
            // A carrier that brought nothing, not even a close frame, counts
            // against its transport.
            let switched =
                code.is_none() && !l.heard && transport.is_some_and(|t| l.transports.silent(t));
            // To the fallback at once: the WebSocket is no reason to wait for the
            // stream. Back to WebSockets with the backoff: the server is away.
            (
                carrier,
                switched && l.transports.current() == Transport::Sse,
            )
        });
        let Some((carrier, to_sse)) = ended else {
            return;
        };
        drop(carrier);
        self.chat.update(Parts::ALL, ChatState::disconnected);
        let refused = self.chat.with_untracked(ChatState::refused);
        let next = self
            .link
            .try_update_value(|l| l.policy.closed(code, refused, js_sys::Math::random()));
        match next {
            Some(AfterClose::Retry(_)) if to_sse => self.schedule_reconnect(Some(Duration::ZERO)),
            Some(AfterClose::Retry(delay)) => self.schedule_reconnect(Some(delay)),
            Some(AfterClose::SessionTaken) => {
                self.chat.update(Parts::ALL, ChatState::taken_over);
                self.set_status.set(Status::Offline);
            }
            Some(AfterClose::SignedOut) => {
                // The token is dead: forget it, and do not come back with it.
                auth::forget_token();
                self.chat.update(Parts::ALL, ChatState::signed_out);
                self.set_status.set(Status::Offline);
            }
            Some(AfterClose::NickRefused) | None => self.set_status.set(Status::Offline),
        }
    }

    /// Reconnects after `delay`, or after the policy's next delay when `None`.
    fn schedule_reconnect(self, delay: Option<Duration>) {
        let delay = delay.unwrap_or_else(|| {
            match self
                .link
                .try_update_value(|l| l.policy.closed(None, false, js_sys::Math::random()))
            {
                Some(AfterClose::Retry(d)) => d,
                _ => Duration::from_secs(5),
            }
        });
        let retry_at = now() + delay.as_millis() as u64;
        self.set_status.set(Status::Reconnecting {
            retry_at: Some(retry_at),
        });
        match set_timeout_with_handle(move || self.connect(), delay) {
            Ok(handle) => self.link.update_value(|l| l.retry = Some(handle)),
            Err(err) => leptos::logging::warn!("cannot schedule a reconnect: {err:?}"),
        }
    }

    /// Opens a probe (while on SSE, every [`PROBE_EVERY`]), unless the page is not
    /// connecting at all (signed out, refused, closed for newer tabs).
    fn probe(self, now: u64) {
        let wanted = self
            .link
            .try_update_value(|l| {
                l.next_probe = Some(now + PROBE_EVERY.as_millis() as u64);
                l.carrier.is_some() || l.retry.is_some()
            })
            .unwrap_or(false);
        if !wanted {
            return;
        }
        match Probe::start(move |answered| self.probed(answered)) {
            Ok(probe) => {
                let fails_at = now + PROBE_WAIT.as_millis() as u64;
                self.link
                    .update_value(|l| l.probe = Some((probe, fails_at)));
            }
            Err(err) => leptos::logging::warn!("cannot probe: {err:?}"),
        }
    }

    /// The probe out has its answer (`false`: none in time, or its socket closed).
    /// Frames came back: WebSockets work again, so the stream is closed and the page
    /// reconnects on a WebSocket at once, resuming like after any reconnect.
    fn probed(self, answered: bool) {
        let Some((probe, moved, stream, retrying)) = self.link.try_update_value(|l| {
            let probe = l.probe.take();
            let moved = probe.is_some() && answered && l.transports.probe_answered();
            if moved {
                l.next_probe = None;
            }
            let stream = if moved { l.carrier.take() } else { None };
            (probe, moved, stream, l.retry.is_some())
        }) else {
            return;
        };
        drop(probe);
        if moved && (stream.is_some() || retrying) {
            drop(stream);
            self.chat.update(Parts::ALL, ChatState::disconnected);
            self.reconnect_now();
        }
    }

    /// Closes the carrier and cancels any reconnect and probe, keeping the clock.
    pub(super) fn stop(self) {
        let link = self.link.try_update_value(|l| {
            l.policy.reset();
            l.next_probe = None;
            (l.carrier.take(), l.retry.take(), l.probe.take())
        });
        if let Some((carrier, retry, probe)) = link {
            drop((carrier, probe));
            if let Some(retry) = retry {
                retry.clear();
            }
        }
    }

    /// The page goes away: everything stops, the clock too.
    pub(super) fn shut_down(self) {
        self.stop();
        if let Some(ticker) = self.link.try_update_value(|l| l.ticker.take()).flatten() {
            ticker.clear();
        }
    }
}
