//! The WebSocket carrier, and the probe that tells, while the page is on SSE, whether
//! WebSockets work again.

use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};

use super::{Incoming, Ready, Sink};
use crate::link::ws_url;

/// `/ws` on this page's host.
fn url() -> String {
    let location = window().location();
    ws_url(
        &location.protocol().unwrap_or_default(),
        &location.host().unwrap_or_default(),
    )
}

fn window() -> web_sys::Window {
    web_sys::window().expect("a window")
}

/// A WebSocket and the handlers it reports through (kept as long as the socket is).
pub(crate) struct Socket {
    socket: WebSocket,
    _open: Closure<dyn FnMut(Event)>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    /// Opens `/ws`, reporting to `sink`; `greeting` is sent as soon as it opens.
    pub(super) fn open(sink: Sink, greeting: Option<&'static str>) -> Result<Self, JsValue> {
        let socket = WebSocket::new(&url())?;
        let open = {
            let (sink, socket) = (sink.clone(), socket.clone());
            Closure::<dyn FnMut(Event)>::new(move |_| {
                if let Some(greeting) = greeting {
                    let _ = socket.send_with_str(greeting);
                }
                sink(Incoming::Open);
            })
        };
        let message = {
            let sink = sink.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
                // The protocol is text-only; anything else is not ours to interpret.
                if let Some(text) = ev.data().as_string() {
                    sink(Incoming::Frame(text));
                }
            })
        };
        let close = Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
            // 1005/1006: no close frame (the network dropped, the server died, or the
            // upgrade was refused).
            sink(Incoming::Closed(
                Some(ev.code()).filter(|c| !matches!(c, 1005 | 1006)),
            ));
        });
        socket.set_onopen(Some(open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(close.as_ref().unchecked_ref()));
        Ok(Socket {
            socket,
            _open: open,
            _message: message,
            _close: close,
        })
    }

    pub(super) fn ready(&self) -> Ready {
        match self.socket.ready_state() {
            WebSocket::CONNECTING => Ready::Connecting,
            WebSocket::OPEN => Ready::Open,
            _ => Ready::Closed,
        }
    }

    pub(super) fn send(&self, json: &str) {
        if self.ready() == Ready::Open {
            if let Err(err) = self.socket.send_with_str(json) {
                leptos::logging::warn!("send failed: {err:?}");
            }
        }
    }
}

impl Drop for Socket {
    /// Stops listening to the socket, and closes it.
    fn drop(&mut self) {
        let socket = &self.socket;
        socket.set_onopen(None);
        socket.set_onmessage(None);
        socket.set_onclose(None);
        let _ = socket.close_with_code(common::CloseCode::Normal.code());
    }
}

/// A WebSocket opened only to see whether frames come through it: it sends
/// `{"type":"probe"}` (any frame before `hello` is answered, with `hello_required`),
/// and any frame back means WebSockets work. It is closed when dropped.
pub(crate) struct Probe(#[allow(dead_code, reason = "held to be dropped")] Socket);

impl Probe {
    /// Starts a probe; `answered(true)` once a frame comes back, `answered(false)` if
    /// the socket closes first. The caller drops it when done or tired of waiting.
    pub(crate) fn start(answered: impl Fn(bool) + 'static) -> Result<Self, JsValue> {
        let sink: Sink = std::rc::Rc::new(move |incoming| match incoming {
            Incoming::Open => {}
            Incoming::Frame(_) => answered(true),
            Incoming::Closed(_) => answered(false),
        });
        Socket::open(sink, Some(r#"{"type":"probe"}"#)).map(Probe)
    }
}
