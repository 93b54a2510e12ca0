//! Reading message text: where the links are, and whether it mentions someone.
//!
//! Plain string scanning, no DOM and no regex crate (a regex engine would add tens of
//! kilobytes to the WebAssembly for two small patterns), so it is unit-tested natively.
//! The DOM side is [`crate::components::RichText`].

/// A piece of a message: text to show as is, or a URL to show as a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    /// Plain text, rendered as a text node.
    Text(&'a str),
    /// An `http://` or `https://` URL, rendered as a link to itself.
    Link(&'a str),
}

/// The schemes that become links. Only these: anything else (`javascript:`, `data:`,
/// scheme-relative `//host`) stays text, so a link can never run script.
const SCHEMES: [&str; 2] = ["http://", "https://"];

/// Characters that end a sentence rather than a URL when they come last
/// ("see https://example.com."). Closing brackets are kept when they balance an opening
/// one inside the URL, as in `https://en.wikipedia.org/wiki/Rust_(language)`.
const TRAILING: &[char] = &['.', ',', ';', ':', '!', '?', ')', ']', '}', '\''];

/// Characters that reorder the text around them (bidirectional embeddings, overrides,
/// isolates and marks). In a link's text they could make it read as another address.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// How a link's URL is shown: as typed, except that every bidirectional control shows
/// as `\u{fffd}` instead of reordering what follows, so the host reads as the host.
pub(crate) fn link_text(url: &str) -> String {
    url.chars()
        .map(|c| if is_bidi_control(c) { '\u{fffd}' } else { c })
        .collect()
}

/// The host a link opens (what the browser will connect to), for its tooltip: the part
/// after the scheme up to the first `/`, `?` or `#`, without credentials.
pub(crate) fn link_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.rsplit('@').next().unwrap_or_default()
}

/// Splits `text` into text and links, in order. Adjacent text is never split, and no
/// segment is empty.
pub(crate) fn linkify(text: &str) -> Vec<Segment<'_>> {
    let mut segments = Vec::new();
    // Where the text not yet pushed starts.
    let mut text_start = 0;
    // Where to look for the next scheme.
    let mut from = 0;
    while let Some((start, scheme_len)) = find_scheme(text, from) {
        let url = trim_trailing(url_run(&text[start..]));
        if url.len() == scheme_len {
            // A bare `http://` links nowhere: keep it as text and look further on.
            from = start + scheme_len;
            continue;
        }
        if start > text_start {
            segments.push(Segment::Text(&text[text_start..start]));
        }
        segments.push(Segment::Link(url));
        text_start = start + url.len();
        from = text_start;
    }
    if text_start < text.len() {
        segments.push(Segment::Text(&text[text_start..]));
    }
    segments
}

/// The first `http://` or `https://` (any letter case) at or after byte `from`, as its
/// byte offset and the scheme's length.
fn find_scheme(text: &str, from: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    // Every match starts with the ASCII `h`, so it always lies on a char boundary.
    (from..bytes.len()).find_map(|i| {
        SCHEMES.iter().find_map(|scheme| {
            bytes
                .get(i..i + scheme.len())
                .filter(|b| b.eq_ignore_ascii_case(scheme.as_bytes()))
                .map(|_| (i, scheme.len()))
        })
    })
}

/// The URL-looking run at the start of `s`: up to whitespace or a character that cannot
/// be in a URL written in prose (`<`, `>`, `"`).
fn url_run(s: &str) -> &str {
    let end = s
        .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Drops sentence punctuation from the end of `url`, keeping closing brackets that
/// balance an opening one.
fn trim_trailing(url: &str) -> &str {
    // Counted once and kept up to date as characters are dropped: counting again for
    // each dropped character would make a URL ending in a long run of `)` quadratic.
    const CLOSING: &str = ")]}";
    let (mut opened, mut closed) = ([0usize; 3], [0usize; 3]);
    for c in url.chars() {
        match c {
            '(' => opened[0] += 1,
            '[' => opened[1] += 1,
            '{' => opened[2] += 1,
            ')' => closed[0] += 1,
            ']' => closed[1] += 1,
            '}' => closed[2] += 1,
            _ => {}
        }
    }
    let mut end = url.len();
    while let Some(last) = url[..end].chars().next_back() {
        if !TRAILING.contains(&last) {
            break;
        }
        if let Some(k) = CLOSING.find(last) {
            if closed[k] <= opened[k] {
                break;
            }
            closed[k] -= 1;
        }
        end -= last.len_utf8();
    }
    &url[..end]
}

pub(crate) use common::text::mentions;

#[cfg(test)]
mod tests {
    use super::Segment::{Link, Text};

    #[test]
    fn a_link_shows_its_real_host_and_no_reordering() {
        let url = "https://evil.example/\u{202e}moc.elgoog//:sptth";
        assert_eq!(
            link_text(url),
            "https://evil.example/\u{fffd}moc.elgoog//:sptth"
        );
        assert_eq!(link_host(url), "evil.example");
        assert_eq!(link_host("http://user:pw@a.b:8080/x?y#z"), "a.b:8080");
        assert_eq!(link_host("https://c.d"), "c.d");
        assert_eq!(
            link_text("https://plain.example/"),
            "https://plain.example/"
        );
    }
    use super::*;

    #[test]
    fn text_without_links_is_one_segment() {
        assert_eq!(linkify("hello there"), vec![Text("hello there")]);
    }

    #[test]
    fn empty_text_has_no_segments() {
        assert_eq!(linkify(""), vec![]);
    }

    #[test]
    fn a_link_alone() {
        assert_eq!(
            linkify("https://example.com"),
            vec![Link("https://example.com")]
        );
        assert_eq!(linkify("http://a.b/c"), vec![Link("http://a.b/c")]);
    }

    #[test]
    fn a_link_in_text() {
        assert_eq!(
            linkify("see https://example.com/a?b=1&c=2#d now"),
            vec![
                Text("see "),
                Link("https://example.com/a?b=1&c=2#d"),
                Text(" now"),
            ]
        );
    }

    #[test]
    fn several_links() {
        assert_eq!(
            linkify("http://a.com and https://b.org/x, https://c.net"),
            vec![
                Link("http://a.com"),
                Text(" and "),
                Link("https://b.org/x"),
                Text(", "),
                Link("https://c.net"),
            ]
        );
    }

    #[test]
    fn links_separated_only_by_whitespace() {
        assert_eq!(
            linkify("http://a.com\nhttp://b.com\thttp://c.com"),
            vec![
                Link("http://a.com"),
                Text("\n"),
                Link("http://b.com"),
                Text("\t"),
                Link("http://c.com"),
            ]
        );
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        assert_eq!(
            linkify("HTTPS://EXAMPLE.COM and Http://x.y"),
            vec![
                Link("HTTPS://EXAMPLE.COM"),
                Text(" and "),
                Link("Http://x.y"),
            ]
        );
    }

    #[test]
    fn trailing_punctuation_is_not_part_of_the_link() {
        for p in [
            ".", ",", ";", ":", "!", "?", ")", "]", "}", "'", "...", "!?", ").",
        ] {
            let text = format!("go to https://example.com/page{p}");
            assert_eq!(
                linkify(&text),
                vec![Text("go to "), Link("https://example.com/page"), Text(p)],
                "{text:?}"
            );
        }
    }

    #[test]
    fn punctuation_inside_the_link_stays() {
        assert_eq!(
            linkify("https://example.com/a.b,c;d:e!f?g'h"),
            vec![Link("https://example.com/a.b,c;d:e!f?g'h")]
        );
        assert_eq!(
            linkify("http://localhost:3000/"),
            vec![Link("http://localhost:3000/")]
        );
    }

    #[test]
    fn balanced_parentheses_are_kept() {
        assert_eq!(
            linkify("https://en.wikipedia.org/wiki/Rust_(language)"),
            vec![Link("https://en.wikipedia.org/wiki/Rust_(language)")]
        );
        assert_eq!(
            linkify("(see https://en.wikipedia.org/wiki/Rust_(language))."),
            vec![
                Text("(see "),
                Link("https://en.wikipedia.org/wiki/Rust_(language)"),
                Text(")."),
            ]
        );
        assert_eq!(
            linkify("(https://example.com)"),
            vec![Text("("), Link("https://example.com"), Text(")")]
        );
        assert_eq!(
            linkify("[https://example.com/a[1]]"),
            vec![Text("["), Link("https://example.com/a[1]"), Text("]")]
        );
    }

    #[test]
    fn links_end_at_characters_not_found_in_prose_urls() {
        assert_eq!(
            linkify("<https://example.com>"),
            vec![Text("<"), Link("https://example.com"), Text(">")]
        );
        assert_eq!(
            linkify(r#"href="https://example.com/x"></a>"#),
            vec![
                Text("href=\""),
                Link("https://example.com/x"),
                Text("\"></a>"),
            ]
        );
    }

    #[test]
    fn a_bare_scheme_is_text() {
        assert_eq!(linkify("http://"), vec![Text("http://")]);
        assert_eq!(linkify("try https:// now"), vec![Text("try https:// now")]);
        assert_eq!(linkify("https://."), vec![Text("https://.")]);
        assert_eq!(
            linkify("http:// then http://a.b"),
            vec![Text("http:// then "), Link("http://a.b")]
        );
    }

    #[test]
    fn other_schemes_are_never_links() {
        for text in [
            "javascript:alert(1)",
            "JavaScript:alert(document.cookie)",
            "data:text/html,<script>alert(1)</script>",
            "//evil.example/x",
            "ftp://files.example/x",
            "mailto:a@b.c",
            "www.example.com",
            "http:/example.com",
            "https:example.com",
            "http ://example.com",
        ] {
            assert_eq!(linkify(text), vec![Text(text)], "{text:?}");
        }
    }

    #[test]
    fn a_link_inside_another_scheme_is_only_the_http_part() {
        // The href is still an http(s) URL, so this is harmless.
        assert_eq!(
            linkify("javascript:http://x.y"),
            vec![Text("javascript:"), Link("http://x.y")]
        );
    }

    #[test]
    fn unicode_around_and_inside_links() {
        assert_eq!(
            linkify("café → https://example.com/ñandú — ok 🎉"),
            vec![
                Text("café → "),
                Link("https://example.com/ñandú"),
                Text(" — ok 🎉"),
            ]
        );
        assert_eq!(
            linkify("日本語https://例え.jp/パス"),
            vec![Text("日本語"), Link("https://例え.jp/パス")]
        );
        // Unicode whitespace (a no-break space, an ideographic space) ends a link.
        assert_eq!(
            linkify("https://a.b\u{a0}x https://c.d\u{3000}y"),
            vec![
                Link("https://a.b"),
                Text("\u{a0}x "),
                Link("https://c.d"),
                Text("\u{3000}y"),
            ]
        );
        assert_eq!(
            linkify("🎉https://a.b/🎉!"),
            vec![Text("🎉"), Link("https://a.b/🎉"), Text("!")]
        );
    }

    #[test]
    fn a_long_run_of_closing_brackets_is_trimmed_in_linear_time() {
        // Counting the brackets again for each one dropped took 3.9 s for this.
        let text = format!("http://a{}", ")".repeat(16_000));
        let started = std::time::Instant::now();
        assert_eq!(linkify(&text)[0], Segment::Link("http://a"));
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
    }

    #[test]
    fn segments_cover_the_text_exactly() {
        for text in [
            "",
            "plain",
            "a https://b.c/(d) e. http:// f https://g.h.",
            "((https://x.y/(z)))",
            "é http://ü/ö ü",
        ] {
            let joined: String = linkify(text)
                .iter()
                .map(|s| match s {
                    Text(t) | Link(t) => *t,
                })
                .collect();
            assert_eq!(joined, text);
            assert!(linkify(text)
                .iter()
                .all(|s| !matches!(s, Text("") | Link(""))));
        }
    }

    #[test]
    fn a_whole_word_is_a_mention() {
        assert!(mentions("alice", "alice"));
        assert!(mentions("hi alice!", "alice"));
        assert!(mentions("alice, look", "alice"));
        assert!(mentions("(alice)", "alice"));
        assert!(mentions("bob\nalice", "alice"));
        assert!(mentions("thanks alice.", "alice"));
    }

    #[test]
    fn an_at_sign_and_letter_case_do_not_matter() {
        assert!(mentions("@Alice: x", "alice"));
        assert!(mentions("@alice", "alice"));
        assert!(mentions("hey ALICE", "alice"));
        assert!(mentions("hey alice", "Alice"));
        assert!(mentions("cc @aLiCe@bob", "alice"));
    }

    #[test]
    fn part_of_a_longer_word_is_not_a_mention() {
        assert!(!mentions("malice", "alice"));
        assert!(!mentions("alice_b", "alice"));
        assert!(!mentions("alice-b", "alice"));
        assert!(!mentions("b-alice", "alice"));
        assert!(!mentions("alice2", "alice"));
        assert!(!mentions("_alice", "alice"));
        assert!(!mentions("malice and alicent", "alice"));
    }

    #[test]
    fn a_later_whole_word_still_counts() {
        assert!(mentions("malice, alice", "alice"));
        assert!(mentions("alice_b or alice", "alice"));
    }

    #[test]
    fn non_ascii_letters_are_word_characters() {
        assert!(!mentions("éalice", "alice"));
        assert!(!mentions("aliceé", "alice"));
        assert!(mentions("« alice »", "alice"));
        assert!(mentions("🎉alice🎉", "alice"));
    }

    #[test]
    fn non_ascii_nicks() {
        assert!(mentions("salut @Zoë !", "zoë"));
        assert!(mentions("こんにちは 太郎 さん", "太郎"));
        // Only ASCII letters are compared without regard to case.
        assert!(!mentions("ZOË", "zoë"));
        assert!(!mentions("zoëlle", "zoë"));
    }

    #[test]
    fn nicks_with_punctuation_or_spaces() {
        assert!(mentions("hi bob-smith!", "bob-smith"));
        assert!(mentions("hi mary ann", "mary ann"));
        assert!(!mentions("hi bob-smithy", "bob-smith"));
    }

    #[test]
    fn empty_text_or_nick_is_never_a_mention() {
        assert!(!mentions("", "alice"));
        assert!(!mentions("alice", ""));
        assert!(!mentions("", ""));
        assert!(!mentions("al", "alice"));
    }
}
