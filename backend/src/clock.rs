//! Wall-clock time as the protocol carries it.

/// Milliseconds since the Unix epoch (`ts` fields); 0 if the clock is before 1970.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
