//! The SSE carrier (docs/protocol.md, "the fallback transport"): an `EventSource` on
//! `/sse` brings the server's frames, `POST /sse/send` takes ours, one post at a time
//! ([`Posts`]).
//!
//! The stream is never left to reconnect by itself: on its `close` event (the server's
//! close frame) and on any `error` it is closed and reported as [`Incoming::Closed`], so
//! the connection's reconnect policy decides, exactly as for a WebSocket, and the next
//! stream starts fresh with `hello`, joins with `since` and resends. (An `EventSource`
//! left alone would reconnect with `Last-Event-ID`, and the server would resume the
//! session on its own, behind the policy's back.)

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use web_sys::{Event, EventSource, MessageEvent};

use super::posts::Posts;
use super::{Incoming, Ready, Sink};

/// What the carrier shares with its handlers and its post in flight.
struct Shared {
    source: EventSource,
    sink: Sink,
    state: RefCell<State>,
}

struct State {
    /// The stream's id, the key of its posts; `None` until its `stream` event.
    id: Option<String>,
    posts: Posts,
    /// Ended: reported once, nothing posted or reported after.
    closed: bool,
}

impl Shared {
    /// Ends the stream and reports it, once.
    fn end(&self, code: Option<u16>) {
        let first = !std::mem::replace(&mut self.state.borrow_mut().closed, true);
        self.source.close();
        if first {
            (self.sink)(Incoming::Closed(code));
        }
    }
}

/// One stream and its handlers.
pub(crate) struct Stream {
    shared: Rc<Shared>,
    _stream: Closure<dyn FnMut(MessageEvent)>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(MessageEvent)>,
    _error: Closure<dyn FnMut(Event)>,
}

/// The value of `key` in the flat JSON object of a `stream` or `close` event, as
/// text: `{"stream":"abc","resumed":false}` has `abc` for `stream`, `false` for
/// `resumed`. The values read here (a stream id, a close code) hold no quotes or
/// escapes and come before any text that could look like the key, so splitting at
/// quotes is all the parsing they need, and far smaller in the bundle than a
/// deserializer per event.
fn field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let mut parts = json.split('"');
    parts.position(|p| p == key)?;
    let after = parts.next()?.trim();
    if after == ":" {
        return parts.next();
    }
    after
        .strip_prefix(':')?
        .split([',', '}'])
        .next()
        .map(str::trim)
}

impl Stream {
    pub(super) fn open(sink: Sink, max_body: usize) -> Result<Self, JsValue> {
        let source = EventSource::new(common::SSE_PATH)?;
        let shared = Rc::new(Shared {
            source,
            sink,
            state: RefCell::new(State {
                id: None,
                posts: Posts::new(max_body),
                closed: false,
            }),
        });
        let data = |ev: &MessageEvent| ev.data().as_string().unwrap_or_default();
        let on = |f: fn(&Rc<Shared>, String)| {
            let shared = shared.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| f(&shared, data(&ev)))
        };
        // The first event names the stream: frames may go out from now on.
        let stream = on(|shared, data| {
            let Some(id) = field(&data, "stream") else {
                return shared.end(None);
            };
            shared.state.borrow_mut().id = Some(id.to_owned());
            (shared.sink)(Incoming::Open);
        });
        let message = on(|shared, data| (shared.sink)(Incoming::Frame(data)));
        // The server's close frame: the code says whether and how to come back.
        let close = on(|shared, data| {
            shared.end(field(&data, "code").and_then(|c| c.parse().ok()));
        });
        let error = {
            let shared = shared.clone();
            Closure::<dyn FnMut(Event)>::new(move |_| shared.end(None))
        };
        let source = &shared.source;
        source.add_event_listener_with_callback("stream", stream.as_ref().unchecked_ref())?;
        source.set_onmessage(Some(message.as_ref().unchecked_ref()));
        source.add_event_listener_with_callback("close", close.as_ref().unchecked_ref())?;
        source.set_onerror(Some(error.as_ref().unchecked_ref()));
        Ok(Stream {
            shared,
            _stream: stream,
            _message: message,
            _close: close,
            _error: error,
        })
    }

    pub(super) fn ready(&self) -> Ready {
        let state = self.shared.state.borrow();
        match (state.closed, &state.id) {
            (true, _) => Ready::Closed,
            (false, None) => Ready::Connecting,
            (false, Some(_)) => Ready::Open,
        }
    }

    pub(super) fn send(&self, json: String) {
        if self.ready() != Ready::Open {
            return;
        }
        self.shared.state.borrow_mut().posts.push(json);
        post_next(&self.shared);
    }
}

/// Posts what waits, unless a post is already out; each answer sends the next.
fn post_next(shared: &Rc<Shared>) {
    let (id, body) = {
        let mut state = shared.state.borrow_mut();
        if state.closed {
            return;
        }
        let Some(body) = state.posts.next_body() else {
            return;
        };
        (state.id.clone().unwrap_or_default(), body)
    };
    let shared = shared.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let answer = crate::http::post(
            common::SSE_SEND_PATH,
            Some(&body),
            &[(common::STREAM_HEADER, &id)],
        )
        .await;
        match answer {
            Ok((202, _)) => {
                shared.state.borrow_mut().posts.answered();
                post_next(&shared);
            }
            // 404 `no_stream`: the stream is gone; no answer: the network or the
            // server is. Either way the frames in this post may not have arrived:
            // reconnecting resends what matters (hello, joins with `since`, unacked
            // sends under their ids). Anything else (400, 413, 503) is no better.
            Ok((status, _)) => {
                leptos::logging::warn!("post refused ({status}): reconnecting");
                shared.end(None);
            }
            Err(err) => {
                leptos::logging::warn!("post failed: {err:?}");
                shared.end(None);
            }
        }
    });
}

impl Drop for Stream {
    /// Closes the stream for good: it reports nothing more, and no post follows.
    fn drop(&mut self) {
        self.shared.state.borrow_mut().closed = true;
        let source = &self.shared.source;
        source.close();
        source.set_onmessage(None);
        source.set_onerror(None);
        let _ = source
            .remove_event_listener_with_callback("stream", self._stream.as_ref().unchecked_ref());
        let _ = source
            .remove_event_listener_with_callback("close", self._close.as_ref().unchecked_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn the_fields_of_the_named_events() {
        let stream = r#"{"stream":"a1B2c3","resumed":false}"#;
        assert_eq!(field(stream, "stream"), Some("a1B2c3"));
        assert_eq!(field(stream, "resumed"), Some("false"));
        let close = r#"{"code": 4001, "reason": "too many connections"}"#;
        assert_eq!(field(close, "code"), Some("4001"));
        assert_eq!(field(close, "reason"), Some("too many connections"));
        assert_eq!(field(r#"{"reason":"x","code":1001}"#, "code"), Some("1001"));
        assert_eq!(field(r#"{"code":1001}"#, "code"), Some("1001"));
        assert_eq!(field(close, "stream"), None);
        assert_eq!(field("not json", "code"), None);
    }
}
