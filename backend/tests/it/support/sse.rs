//! The SSE half of the test client: a real `GET /sse` over HTTP/1.1 (hyper), its
//! `text/event-stream` parsed event by event, and `POST /sse/send` for each frame.

use std::net::SocketAddr;
use std::pin::Pin;

use bytes::Bytes;
use hyper::body::Body as _;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::WAIT;

/// The HTTP client the stream and its posts use.
pub type Http = HttpClient<hyper_util::client::legacy::connect::HttpConnector, String>;

/// One event of the stream (comments included: they are the heartbeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Comment(String),
    Data {
        event: Option<String>,
        id: Option<String>,
        data: String,
    },
}

/// Splits a `text/event-stream` into events, however its bytes are chunked.
#[derive(Default)]
pub struct Parser {
    line: Vec<u8>,
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
}

impl Parser {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let line = String::from_utf8(std::mem::take(&mut self.line)).expect("UTF-8 stream");
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    out.push(Event::Data {
                        event: self.event.take(),
                        id: self.id.take(),
                        data,
                    });
                }
                self.event = None;
                self.id = None;
                continue;
            }
            if let Some(comment) = line.strip_prefix(':') {
                out.push(Event::Comment(comment.trim().to_owned()));
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            match field {
                "event" => self.event = Some(value),
                "id" => self.id = Some(value),
                "data" => match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(&value);
                    }
                    None => self.data = Some(value),
                },
                _ => {}
            }
        }
        out
    }
}

/// One open stream.
pub struct Stream {
    pub addr: SocketAddr,
    /// The stream's id, from its `stream` event.
    pub id: String,
    /// Whether the server resumed an earlier stream's session.
    pub resumed: bool,
    /// The last event id seen (what an EventSource would send when reconnecting).
    pub last_id: Option<String>,
    events: mpsc::Receiver<Event>,
    reader: JoinHandle<()>,
    http: Http,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Stream {
    /// Opens `GET /sse` (with `Last-Event-ID: last_id` if given) and reads its `stream`
    /// event.
    pub async fn open(addr: SocketAddr, last_id: Option<&str>) -> Stream {
        let (status, mut stream) = Stream::try_open(addr, last_id, &[]).await;
        assert_eq!(status, 200, "GET /sse");
        match stream.next_event().await {
            Some(Event::Data { event, id, data }) if event.as_deref() == Some("stream") => {
                let v: Value = serde_json::from_str(&data).unwrap();
                stream.id = v["stream"].as_str().unwrap().to_owned();
                stream.resumed = v["resumed"].as_bool().unwrap();
                assert!(
                    id.as_deref().is_some_and(|i| i.starts_with(&stream.id)),
                    "{id:?}"
                );
                stream.last_id = id;
            }
            other => panic!("expected the stream event first, got {other:?}"),
        }
        stream
    }

    /// Opens `GET /sse` with extra headers; the status and the stream, unread.
    pub async fn try_open(
        addr: SocketAddr,
        last_id: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Stream) {
        let http = HttpClient::builder(TokioExecutor::new()).build_http::<String>();
        let mut request =
            hyper::Request::get(format!("http://{addr}/sse")).header("accept", "text/event-stream");
        if let Some(id) = last_id {
            request = request.header("last-event-id", id);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response =
            tokio::time::timeout(WAIT, http.request(request.body(String::new()).unwrap()))
                .await
                .expect("GET /sse timed out")
                .expect("GET /sse");
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let (tx, events) = mpsc::channel(100_000);
        let reader = tokio::spawn(async move {
            let mut parser = Parser::default();
            while let Some(Ok(frame)) =
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                for event in parser.feed(&data) {
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
        });
        let stream = Stream {
            addr,
            id: String::new(),
            resumed: false,
            last_id: None,
            events,
            reader,
            http,
        };
        (status, stream)
    }

    /// The next event, or `None` once the response ended. Panics after [`WAIT`].
    pub async fn next_event(&mut self) -> Option<Event> {
        self.event_within(WAIT)
            .await
            .expect("timed out waiting for an event")
    }

    /// The next event within `wait`, if any (`Err` when none came).
    pub async fn event_within(&mut self, wait: std::time::Duration) -> Result<Option<Event>, ()> {
        match tokio::time::timeout(wait, self.events.recv()).await {
            Err(_) => Err(()),
            Ok(event) => {
                if let Some(Event::Data { id: Some(id), .. }) = &event {
                    self.last_id = Some(id.clone());
                }
                Ok(event)
            }
        }
    }

    /// Posts `body` (a JSON array, or anything) for this stream: (status, body).
    pub async fn post(&self, body: String) -> (u16, Value) {
        post(&self.http, self.addr, Some(&self.id), body, &[]).await
    }
}

/// `POST /sse/send` of `body` for stream `id` (no header when `None`): (status, body as
/// JSON, or `null`).
pub async fn post(
    http: &Http,
    addr: SocketAddr,
    id: Option<&str>,
    body: String,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = hyper::Request::post(format!("http://{addr}/sse/send"))
        .header("content-type", "application/json");
    if let Some(id) = id {
        request = request.header(common::STREAM_HEADER, id);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(WAIT, http.request(request.body(body).unwrap()))
        .await
        .expect("POST timed out")
        .expect("POST /sse/send");
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(Ok(frame)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
    {
        if let Ok(data) = frame.into_data() {
            let data: Bytes = data;
            bytes.extend_from_slice(&data);
        }
    }
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A plain HTTP client for [`post`] from tests that hold no stream.
pub fn http() -> Http {
    HttpClient::builder(TokioExecutor::new()).build_http::<String>()
}

#[test]
fn the_parser_takes_events_however_they_are_split() {
    let text = b"retry: 2000\nid: a,r:1\nevent: stream\ndata: {\"x\":1}\n\n: hb\n\ndata: {}\n\n";
    for cut in 0..text.len() {
        let mut p = Parser::default();
        let mut events = p.feed(&text[..cut]);
        events.extend(p.feed(&text[cut..]));
        assert_eq!(
            events,
            vec![
                Event::Data {
                    event: Some("stream".into()),
                    id: Some("a,r:1".into()),
                    data: "{\"x\":1}".into()
                },
                Event::Comment("hb".into()),
                Event::Data {
                    event: None,
                    id: None,
                    data: "{}".into()
                },
            ],
            "cut at {cut}"
        );
    }
}
