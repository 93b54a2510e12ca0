//! Fuzz target: the web app's link and mention parser (`frontend/src/text.rs`), which
//! runs in every reader's browser on every message anyone sends.
//!
//! Beyond "no panic": the segments put together are the text; a link starts with its
//! scheme and holds no whitespace; a link's shown text has no bidirectional control
//! left; and a time budget: parsing takes at most a fixed cost plus a linear one per
//! byte, so an input that makes it quadratic fails here instead of freezing a tab.

#![no_main]

#[path = "../../frontend/src/text.rs"]
#[allow(dead_code, unreachable_pub)]
mod text;

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use text::Segment;

/// Generous, so a busy machine does not fail it; a quadratic scan of a 4 KB input
/// takes far longer.
fn budget(len: usize) -> Duration {
    Duration::from_millis(20) + Duration::from_micros(20) * len as u32
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let started = Instant::now();
    let segments = text::linkify(input);
    let mentioned = text::mentions(input, "alice");
    let took = started.elapsed();
    assert!(
        took <= budget(input.len()),
        "{took:?} for {} bytes: slower than linear",
        input.len()
    );
    let _ = mentioned;

    let mut joined = String::new();
    for segment in &segments {
        match segment {
            Segment::Text(t) => {
                assert!(!t.is_empty(), "an empty segment");
                joined.push_str(t);
            }
            Segment::Link(url) => {
                assert!(
                    url.starts_with("http://") || url.starts_with("https://"),
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
