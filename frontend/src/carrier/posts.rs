//! The SSE carrier's outgoing frames: one `POST /sse/send` in flight at a time, the
//! frames written meanwhile batched into the next one. Plain Rust, unit-tested.
//!
//! The server hands a POST's frames to the session in array order, after those of
//! every POST answered before it was sent (docs/protocol.md), so waiting for each
//! answer is what keeps our frames in the order we wrote them, as a WebSocket would.

use common::MAX_POSTED_FRAMES;

/// Frames waiting to be posted, and whether a POST is out.
#[derive(Debug)]
pub(crate) struct Posts {
    /// Each frame's JSON, oldest first.
    waiting: Vec<String>,
    in_flight: bool,
    /// The most bytes one body may have (the server's limit: four frames' worth).
    max_body: usize,
}

impl Posts {
    pub(crate) fn new(max_body: usize) -> Self {
        Posts {
            waiting: Vec::new(),
            in_flight: false,
            max_body,
        }
    }

    /// Queues a frame behind those already written.
    pub(crate) fn push(&mut self, frame: String) {
        self.waiting.push(frame);
    }

    /// The next body to post (a JSON array of the oldest waiting frames: at most
    /// [`MAX_POSTED_FRAMES`], and no more than `max_body` bytes unless one frame alone
    /// is larger), or `None` while a POST is out or nothing waits. The POST is then out
    /// until [`Posts::answered`].
    pub(crate) fn next_body(&mut self) -> Option<String> {
        if self.in_flight || self.waiting.is_empty() {
            return None;
        }
        // The brackets, then each frame and its comma.
        let mut len = 1;
        let mut count = 0;
        for frame in &self.waiting {
            len += frame.len() + 1;
            if count == MAX_POSTED_FRAMES || (count > 0 && len > self.max_body) {
                break;
            }
            count += 1;
        }
        let body = format!(
            "[{}]",
            self.waiting.drain(..count).collect::<Vec<_>>().join(",")
        );
        self.in_flight = true;
        Some(body)
    }

    /// The POST out was accepted: the next may go.
    pub(crate) fn answered(&mut self) {
        self.in_flight = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(i: usize) -> String {
        format!(r#"{{"type":"typing","room":"r{i}"}}"#)
    }

    #[test]
    fn one_post_at_a_time_and_what_waited_goes_next_in_order() {
        let mut p = Posts::new(1 << 20);
        assert_eq!(p.next_body(), None);
        p.push(frame(1));
        assert_eq!(p.next_body(), Some(format!("[{}]", frame(1))));
        p.push(frame(2));
        p.push(frame(3));
        // The first is still out.
        assert_eq!(p.next_body(), None);
        p.answered();
        let body = p.next_body().unwrap();
        assert_eq!(body, format!("[{},{}]", frame(2), frame(3)));
        let parsed: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed.len(), 2);
        p.answered();
        assert_eq!(p.next_body(), None);
    }

    #[test]
    fn a_batch_holds_at_most_64_frames() {
        let mut p = Posts::new(1 << 20);
        for i in 0..150 {
            p.push(frame(i));
        }
        let mut seen = Vec::new();
        while let Some(body) = p.next_body() {
            let frames: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
            assert!(frames.len() <= MAX_POSTED_FRAMES);
            seen.extend(
                frames
                    .into_iter()
                    .map(|f| f["room"].as_str().unwrap().to_owned()),
            );
            p.answered();
        }
        let want: Vec<String> = (0..150).map(|i| format!("r{i}")).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn a_batch_stays_under_the_body_limit_but_a_big_frame_still_goes() {
        let big = format!(r#"{{"type":"send","text":"{}"}}"#, "x".repeat(100));
        let mut p = Posts::new(260);
        p.push(big.clone());
        p.push(big.clone());
        p.push(big.clone());
        let first = p.next_body().unwrap();
        assert_eq!(first, format!("[{big},{big}]"));
        assert!(first.len() <= 260);
        p.answered();
        assert_eq!(p.next_body().unwrap(), format!("[{big}]"));
        p.answered();
        // Alone over the limit: sent anyway (the server then says why).
        let mut tiny = Posts::new(10);
        tiny.push(big.clone());
        assert_eq!(tiny.next_body().unwrap(), format!("[{big}]"));
    }
}
