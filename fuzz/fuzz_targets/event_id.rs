//! Fuzz target: the `Last-Event-ID` a reconnecting EventSource sends, which decides
//! which session a new SSE stream continues and from where (`session::events`).
//!
//! Beyond "no panic": what is accepted names a stream id of the server's shape and at
//! most the allowed rooms, each a valid room name once, and writing it back in the
//! server's own form reads back the same.

#![no_main]

use backend::fuzzing::event_id;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&max, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let max = usize::from(max % 16);
    let Some((stream, rooms)) = event_id(text, max) else {
        return;
    };
    assert!(stream.len() == 32 && stream.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(rooms.len() <= max);
    for (i, (room, _)) in rooms.iter().enumerate() {
        assert!(!room.is_empty() && room.len() <= 64, "{room:?}");
        assert!(room
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'));
        assert!(rooms[..i].iter().all(|(r, _)| r != room), "{room:?} twice");
    }
    let written: String = std::iter::once(stream.clone())
        .chain(rooms.iter().map(|(r, o)| format!("{r}:{o}")))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(event_id(&written, max), Some((stream, rooms)));
});
