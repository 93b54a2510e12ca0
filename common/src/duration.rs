//! Durations as people type them in flags (`250ms`, `30s`, `5m`, or a bare number of
//! seconds): the server's timeouts and the load generator's windows take the same form.

use std::time::Duration;

/// Parses `250ms`, `30s`, `5m` or a bare number of seconds; the error names the forms
/// that are accepted.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (number, unit) = match raw.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => raw.split_at(i),
        None => (raw, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration; write e.g. 30s, 500ms or 2m"))?;
    let too_long = || format!("{raw:?} is too long a duration");
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        // Checked: `999999999999999999m` must be an error, not a wrapped small number.
        "m" => n
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(too_long),
        "h" => n
            .checked_mul(60 * 60)
            .map(Duration::from_secs)
            .ok_or_else(too_long),
        "d" => n
            .checked_mul(24 * 60 * 60)
            .map(Duration::from_secs)
            .ok_or_else(too_long),
        _ => Err(format!("unknown unit in {raw:?}; use ms, s, m, h or d")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3h"), Ok(Duration::from_secs(3 * 3600)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("999999999999999999d").is_err());
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("999999999999999999m").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }
}
