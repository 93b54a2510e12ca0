//! The bytes of an SSE stream (`GET /sse`, docs/protocol.md "Server-Sent Events"), in
//! three layers that each take input in whatever pieces the socket gives: the HTTP/1.1
//! response head ([`parse_head`]), the chunked transfer coding ([`Chunked`]) and the
//! `text/event-stream` format ([`EventParser`], the WHATWG HTML "event stream
//! interpretation": `field: value` lines, comments starting with `:`, an event ended by a
//! blank line, LF, CRLF or CR line ends).
//!
//! Receiving is the load generator's bottleneck, so nothing here allocates per event:
//! the chunk decoder hands out slices of its input, and the parser copies only a line
//! split between two reads and the event's fields into buffers it reuses.

/// The UTF-8 byte order mark, which a stream may start with.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What a response head says about the body that follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    pub content_length: Option<usize>,
    /// `Connection: close`: the server closes the connection after this response.
    pub close: bool,
}

/// The longest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;

/// Parses the response head at the start of `buf`: `Ok(None)` until it is all there,
/// else the head and how many bytes it took.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(format!("response head over {MAX_HEAD} bytes"));
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut head = Head {
        status,
        chunked: false,
        content_length: None,
        close: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value
                .split(',')
                .any(|c| c.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = value.parse().map_err(|_| "bad Content-Length")?;
            head.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = value
                .split(',')
                .any(|c| c.trim().eq_ignore_ascii_case("close"));
        }
    }
    Ok(Some((head, end + 4)))
}

/// A chunked body's decoder (RFC 9112 §7.1): chunk sizes, extensions and trailers are
/// read and dropped, the chunks' data is handed on as it arrives.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
    /// The size line read so far.
    size: u64,
    digits: u8,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex digits of a chunk size.
    #[default]
    Size,
    /// Skipping a chunk extension (or spaces) up to the line end.
    Extension,
    /// After the size line's CR.
    SizeLf,
    /// This many bytes of chunk data still to come.
    Data(u64),
    /// After the data: its CRLF.
    DataCr,
    DataLf,
    /// After the last chunk: at the start of a trailer line (or of the final CRLF).
    Trailer,
    /// Inside a trailer field, skipped.
    TrailerLine,
    /// After the final CR.
    EndLf,
    /// The body is over.
    Done,
}

impl Chunked {
    /// Decodes `input`, handing each piece of chunk data to `out`; true once the body
    /// is over (the zero-size chunk and its trailer read). Bytes after the end are
    /// ignored.
    pub fn feed(&mut self, mut input: &[u8], out: &mut impl FnMut(&[u8])) -> Result<bool, String> {
        use ChunkState as S;
        while let Some((&b, rest)) = input.split_first() {
            match self.state {
                S::Data(left) => {
                    let n = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out(&input[..n]);
                    input = &input[n..];
                    let left = left - n as u64;
                    self.state = if left == 0 { S::DataCr } else { S::Data(left) };
                    continue;
                }
                S::Done => return Ok(true),
                S::Size => match (b as char).to_digit(16) {
                    Some(d) => {
                        self.digits += 1;
                        if self.digits > 15 {
                            return Err("chunk size too large".to_owned());
                        }
                        self.size = self.size * 16 + u64::from(d);
                    }
                    None if self.digits == 0 => return Err(bad_chunk(b)),
                    None => match b {
                        b';' | b' ' | b'\t' => self.state = S::Extension,
                        b'\r' => self.state = S::SizeLf,
                        b'\n' => self.size_line_read(),
                        _ => return Err(bad_chunk(b)),
                    },
                },
                S::Extension => match b {
                    b'\r' => self.state = S::SizeLf,
                    b'\n' => self.size_line_read(),
                    _ => {}
                },
                S::SizeLf | S::DataLf | S::EndLf if b != b'\n' => return Err(bad_chunk(b)),
                S::SizeLf => self.size_line_read(),
                S::DataCr => match b {
                    b'\r' => self.state = S::DataLf,
                    b'\n' => self.state = S::Size,
                    _ => return Err(bad_chunk(b)),
                },
                S::DataLf => self.state = S::Size,
                S::Trailer => match b {
                    b'\r' => self.state = S::EndLf,
                    b'\n' => self.state = S::Done,
                    _ => self.state = S::TrailerLine,
                },
                S::TrailerLine => {
                    if b == b'\n' {
                        self.state = S::Trailer;
                    }
                }
                S::EndLf => self.state = S::Done,
            }
            input = rest;
        }
        Ok(self.state == S::Done)
    }

    fn size_line_read(&mut self) {
        self.state = if self.size == 0 {
            ChunkState::Trailer
        } else {
            ChunkState::Data(self.size)
        };
        self.size = 0;
        self.digits = 0;
    }
}

fn bad_chunk(b: u8) -> String {
    format!("bad chunked encoding (byte {b:#04x})")
}

/// The `text/event-stream` parser: feed it the body in any pieces; it calls back with
/// each event's type (`message` when it named none) and data, borrowed from buffers it
/// reuses.
#[derive(Debug, Default)]
pub struct EventParser {
    /// A line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The last piece ended with CR: an LF starting the next one belongs to it.
    after_cr: bool,
    /// Past the start of the stream (where a byte order mark is dropped).
    started: bool,
    /// The event being read: its `data` lines joined with LF, whether it had one, and
    /// its `event` name.
    data: Vec<u8>,
    has_data: bool,
    event: Vec<u8>,
    /// The last `id` field (what a reconnecting client sends as `Last-Event-ID`).
    last_id: Vec<u8>,
}

impl EventParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The stream's last event id so far.
    pub fn last_id(&self) -> &[u8] {
        &self.last_id
    }

    /// Parses `input`, calling `on_event(type, data)` for every event it completes.
    pub fn feed(&mut self, mut input: &[u8], on_event: &mut impl FnMut(&[u8], &[u8])) {
        if !self.started {
            // A byte order mark may start the stream, and is not part of it: wait until
            // three bytes arrived, or fewer that cannot start one.
            self.partial.extend_from_slice(input);
            if self.partial.len() < 3 && BOM.starts_with(&self.partial) {
                return;
            }
            self.started = true;
            let first = std::mem::take(&mut self.partial);
            self.feed(first.strip_prefix(BOM).unwrap_or(&first), on_event);
            return;
        }
        if self.after_cr && !input.is_empty() {
            self.after_cr = false;
            input = input.strip_prefix(b"\n").unwrap_or(input);
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', input) {
            let mut skip = 1;
            if input[end] == b'\r' {
                match input.get(end + 1) {
                    Some(b'\n') => skip = 2,
                    Some(_) => {}
                    // The LF of a CRLF may start the next piece.
                    None => self.after_cr = true,
                }
            }
            if self.partial.is_empty() {
                self.line(&input[..end], on_event);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&input[..end]);
                self.line(&line, on_event);
                line.clear();
                self.partial = line;
            }
            input = &input[end + skip..];
        }
        self.partial.extend_from_slice(input);
    }

    /// One whole line, without its end.
    fn line(&mut self, line: &[u8], on_event: &mut impl FnMut(&[u8], &[u8])) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            return; // a comment (the heartbeat)
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                self.last_id.clear();
                self.last_id.extend_from_slice(value);
            }
            // `retry`, and fields the format does not know, change nothing here.
            _ => {}
        }
    }

    /// A blank line: the event read so far, if it has data, goes out.
    fn dispatch(&mut self, on_event: &mut impl FnMut(&[u8], &[u8])) {
        if self.has_data {
            let kind: &[u8] = if self.event.is_empty() {
                b"message"
            } else {
                &self.event
            };
            on_event(kind, &self.data);
        }
        self.data.clear();
        self.has_data = false;
        self.event.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Events = Vec<(String, String)>;

    /// Parses `pieces` in order; the events and the last id.
    fn parse(pieces: &[&[u8]]) -> (Events, String) {
        let mut p = EventParser::new();
        let mut events = Vec::new();
        for piece in pieces {
            p.feed(piece, &mut |kind, data| {
                events.push((
                    String::from_utf8(kind.to_vec()).unwrap(),
                    String::from_utf8(data.to_vec()).unwrap(),
                ));
            });
        }
        (events, String::from_utf8(p.last_id().to_vec()).unwrap())
    }

    /// What the server writes: the `stream` event, a heartbeat, two messages with ids.
    const STREAM: &str =
        "retry: 2000\nid: S,\nevent: stream\ndata: {\"stream\":\"S\",\"resumed\":false}\n\n\
                          : hb\n\n\
                          id: S,a:7\ndata: {\"type\":\"message\",\"offset\":7}\n\n\
                          data: {\"type\":\"typing\"}\n\n";

    fn expected() -> Events {
        [
            ("stream", r#"{"stream":"S","resumed":false}"#),
            ("message", r#"{"type":"message","offset":7}"#),
            ("message", r#"{"type":"typing"}"#),
        ]
        .iter()
        .map(|(k, d)| ((*k).to_owned(), (*d).to_owned()))
        .collect()
    }

    #[test]
    fn events_come_out_whole_however_the_bytes_are_split() {
        let bytes = STREAM.as_bytes();
        assert_eq!(parse(&[bytes]), (expected(), "S,a:7".to_owned()));
        // Every split into two pieces and into single bytes: mid-field, mid-line,
        // between the two LFs that end an event.
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            assert_eq!(parse(&[a, b]).0, expected(), "split at {at}");
        }
        let bytes_one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse(&bytes_one_by_one).0, expected());
    }

    #[test]
    fn crlf_and_cr_line_ends_and_the_format_rules() {
        let crlf = STREAM.replace('\n', "\r\n");
        let cr = STREAM.replace('\n', "\r");
        for text in [crlf, cr] {
            let bytes = text.as_bytes();
            for at in 0..=bytes.len() {
                let (a, b) = bytes.split_at(at);
                assert_eq!(parse(&[a, b]).0, expected(), "{text:?} split at {at}");
            }
        }
        // Several data lines join with LF; no space after the colon; a field without a
        // colon; an event without data is not dispatched; a byte order mark is dropped,
        // also when split; an id with NUL is ignored.
        let text = "\u{feff}data:a\ndata: b\ndata\n\nevent: x\n\nid: 1\nid: 2\0\ndata: c\n\n";
        let bytes = text.as_bytes();
        let want = vec![
            ("message".to_owned(), "a\nb\n".to_owned()),
            ("message".to_owned(), "c".to_owned()),
        ];
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            assert_eq!(parse(&[a, b]), (want.clone(), "1".to_owned()), "at {at}");
        }
        // An unfinished event is not dispatched.
        assert_eq!(parse(&[b"data: x\n"]).0, vec![]);
    }

    /// `body` in HTTP chunks of `sizes` bytes (the rest in one last chunk), with an
    /// extension and a trailer.
    fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = body;
        for &n in sizes.iter().chain([&usize::MAX]) {
            let n = n.min(rest.len());
            if n == 0 {
                continue;
            }
            out.extend_from_slice(format!("{n:X};ext=1\r\n").as_bytes());
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        out.extend_from_slice(b"0\r\nTrailer: x\r\n\r\n");
        out
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let body = STREAM.as_bytes();
        // Chunk borders mid-line and between the two LFs ending an event.
        let first_event_end = STREAM.find("\n\n").unwrap() + 1;
        let wire = chunked(body, &[5, first_event_end - 5, 17, 1]);
        for at in 0..=wire.len() {
            let (a, b) = wire.split_at(at);
            let mut decoder = Chunked::default();
            let mut parser = EventParser::new();
            let mut events = Vec::new();
            let mut done = false;
            for piece in [a, b] {
                done = decoder
                    .feed(piece, &mut |data| {
                        parser.feed(data, &mut |k, d| {
                            events.push((
                                String::from_utf8(k.to_vec()).unwrap(),
                                String::from_utf8(d.to_vec()).unwrap(),
                            ));
                        });
                    })
                    .unwrap();
            }
            assert!(done, "split at {at}");
            assert_eq!(events, expected(), "split at {at}");
        }
        let mut decoder = Chunked::default();
        assert!(decoder.feed(b"zz\r\n", &mut |_| {}).is_err());
        let mut decoder = Chunked::default();
        assert!(decoder.feed(b"3\r\nabcX", &mut |_| {}).is_err());
    }

    #[test]
    fn response_heads() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n5\r\n";
        let (h, used) = parse_head(head).unwrap().unwrap();
        assert_eq!(
            h,
            Head {
                status: 200,
                chunked: true,
                content_length: None,
                close: false
            }
        );
        assert_eq!(&head[used..], b"5\r\n");
        assert_eq!(parse_head(&head[..20]), Ok(None));
        let (h, _) =
            parse_head(b"HTTP/1.1 202 Accepted\r\nContent-Length: 14\r\nConnection: close\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!((h.status, h.content_length, h.close), (202, Some(14), true));
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }
}
