//! Fuzz target: the notifications API's `Authorization: Bearer` check
//! (`http::api`), which anyone on the network can hammer.
//!
//! The input is a token and a header, split on the first `\n`. Beyond "no panic": a
//! header lets the request in exactly when it is `Bearer` (any case) followed by spaces
//! and exactly the token; the token itself always gets in, and no near miss of it does
//! (one character short, one more, another scheme, no scheme, no header).

#![no_main]

use backend::fuzzing::api_authorized;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (token, header) = text.split_once('\n').unwrap_or((text, ""));
    let Some(allowed) = api_authorized(token, Some(header)) else {
        return; // the server refuses such a token at start-up
    };
    let expected = header
        .trim_matches(|c: char| c == ' ' || c == '\t')
        .split_once(' ')
        .is_some_and(|(scheme, rest)| {
            scheme.eq_ignore_ascii_case("bearer") && rest.trim_start_matches(' ') == token
        });
    assert_eq!(allowed, expected, "token {token:?}, header {header:?}");
    assert_eq!(
        api_authorized(token, Some(&format!("Bearer {token}"))),
        Some(true)
    );
    assert_eq!(api_authorized(token, None), Some(false));
    let short = &token[..token.len() - 1]; // a valid token is ASCII and not empty
    for miss in [
        format!("Bearer {short}"),
        format!("Bearer {token}x"),
        format!("Basic {token}"),
        format!("Bearer{token}"),
        token.to_owned(),
    ] {
        assert_eq!(api_authorized(token, Some(&miss)), Some(false), "{miss:?}");
    }
});
