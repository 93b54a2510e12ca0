//! Fuzz target: the web app's link and mention parser (`frontend/src/text.rs`), which
//! runs in every reader's browser on every message anyone sends.
//!
//! Beyond "no panic": the segments put together are the text; a link starts with its
//! scheme (in any case) and holds no whitespace; a link's shown text has no bidirectional control
//! left; and a time budget: parsing takes at most a fixed cost plus a linear one per
//! byte, so an input that makes it quadratic fails here instead of freezing a tab.

#![no_main]

#[path = "../../frontend/src/text.rs"]
#[allow(dead_code, unreachable_pub)]
mod text;

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use text::Segment;

/// A fixed cost plus a linear one per byte: several times what the parser needs, yet
/// far below what a quadratic scan of a few kilobytes takes.
fn budget(len: usize) -> Duration {
    Duration::from_millis(3) + Duration::from_nanos(1500) * len as u32
}

/// The time `linkify` and `mentions` take on `input`; when a run is over the budget it
/// is measured twice more and the fastest counts, so a pause of the machine is not
/// taken for slow code.
fn parse_time(input: &str) -> Duration {
    let once = || {
        let started = Instant::now();
        std::hint::black_box(text::linkify(input));
        std::hint::black_box(text::mentions(input, "alice"));
        started.elapsed()
    };
    let first = once();
    if first <= budget(input.len()) {
        return first;
    }
    first.min(once()).min(once())
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let took = parse_time(input);
    assert!(
        took <= budget(input.len()),
        "{took:?} for {} bytes: slower than linear",
        input.len()
    );
    let segments = text::linkify(input);

    let mut joined = String::new();
    for segment in &segments {
        match segment {
            Segment::Text(t) => {
                assert!(!t.is_empty(), "an empty segment");
                joined.push_str(t);
            }
            Segment::Link(url) => {
                let scheme = url.get(..8).unwrap_or(url).to_ascii_lowercase();
                assert!(
                    scheme.starts_with("http://") || scheme.starts_with("https://"),
                    "{url:?}"
                );
                assert!(!url.chars().any(char::is_whitespace), "{url:?}");
                let shown = text::link_text(url);
                assert!(
                    !shown.chars().any(|c| matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')),
                    "{shown:?}"
                );
                let _ = text::link_host(url);
                joined.push_str(url);
            }
        }
    }
    assert_eq!(joined, input, "segments do not cover the text");
});
