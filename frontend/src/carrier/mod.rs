//! The two ways protocol frames travel, behind one face: a [`Carrier`] is opened for a
//! [`Transport`], takes our frames as JSON text with [`Carrier::send`], and reports
//! what happens to it as [`Incoming`] through the sink it was given. The WebSocket
//! (`ws`) and the SSE stream with its posts (`sse`) differ only in here: the connection
//! applies frames from either with the same code.
//!
//! A carrier is closed by dropping it: its handlers are detached first, so a replaced
//! carrier never reports anything again.

mod posts;
mod sse;
mod ws;

use std::rc::Rc;

use wasm_bindgen::JsValue;

use crate::transport::Transport;

pub(crate) use ws::Probe;

/// What a carrier reports.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// Frames can go out now (the socket opened; the stream named itself).
    Open,
    /// A server frame, the JSON of one WebSocket text message.
    Frame(String),
    /// The carrier ended: with the server's close code, or `None` when it just broke
    /// (no close frame, a dropped stream, a post with nowhere to go).
    Closed(Option<u16>),
}

/// Where a carrier reports to.
pub(crate) type Sink = Rc<dyn Fn(Incoming)>;

/// Whether frames can go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// Not yet: [`Incoming::Open`] will say when.
    Connecting,
    Open,
    /// Ended, or ending.
    Closed,
}

/// One open (or opening) connection to the server.
pub(crate) enum Carrier {
    Ws(ws::Socket),
    Sse(sse::Stream),
}

impl Carrier {
    /// Opens a carrier of `transport` on this page's server. `max_body` bounds one SSE
    /// post (the server takes at most four frames' worth of bytes).
    pub(crate) fn open(transport: Transport, sink: Sink, max_body: usize) -> Result<Self, JsValue> {
        Ok(match transport {
            Transport::WebSocket => Carrier::Ws(ws::Socket::open(sink, None)?),
            Transport::Sse => Carrier::Sse(sse::Stream::open(sink, max_body)?),
        })
    }

    pub(crate) fn transport(&self) -> Transport {
        match self {
            Carrier::Ws(_) => Transport::WebSocket,
            Carrier::Sse(_) => Transport::Sse,
        }
    }

    pub(crate) fn ready(&self) -> Ready {
        match self {
            Carrier::Ws(s) => s.ready(),
            Carrier::Sse(s) => s.ready(),
        }
    }

    /// Sends one frame if the carrier is open; otherwise it is dropped, as the
    /// connection rebuilds `hello`, joins and resends after every reconnect.
    pub(crate) fn send(&self, json: String) {
        match self {
            Carrier::Ws(s) => s.send(&json),
            Carrier::Sse(s) => s.send(json),
        }
    }
}
