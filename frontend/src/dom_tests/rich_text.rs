//! `RichText`: message text as text nodes, web addresses as safe links.

use leptos::mount::mount_to;
use leptos::prelude::*;
use wasm_bindgen_test::wasm_bindgen_test;
use web_sys::Element;

use super::{all, new_host};
use crate::components::RichText;

/// Mounts `<RichText text>` into a fresh `<div>` in the page and returns the `<p>` it
/// rendered.
fn render_rich_text(text: &str) -> Element {
    let host = new_host();
    let text = text.to_owned();
    // Forgotten so the view stays mounted (and its reactive owner alive) after this
    // function returns; each test uses its own div, so nothing is shared.
    mount_to(host.clone(), move || view! { <RichText text=text /> }).forget();
    assert_eq!(
        host.child_element_count(),
        1,
        "RichText renders one element"
    );
    let p = host.first_element_child().expect("the paragraph");
    assert_eq!(p.tag_name(), "P");
    assert_eq!(p.class_name(), "text");
    p
}

/// The `<a>` elements under `el`.
fn links(el: &Element) -> Vec<Element> {
    all(el, "a")
}

#[wasm_bindgen_test]
fn a_url_becomes_a_link_that_opens_safely() {
    let url = "https://example.com/a?b=1&c=2#d";
    let text = format!("see {url} now");
    let p = render_rich_text(&text);

    let links = links(&p);
    assert_eq!(links.len(), 1);
    let a = &links[0];
    assert_eq!(a.get_attribute("href").as_deref(), Some(url));
    assert_eq!(a.get_attribute("target").as_deref(), Some("_blank"));
    assert_eq!(
        a.get_attribute("rel").as_deref(),
        Some("noopener noreferrer nofollow")
    );
    assert_eq!(a.text_content().as_deref(), Some(url));
    assert_eq!(p.text_content().as_deref(), Some(text.as_str()));
}

#[wasm_bindgen_test]
fn several_links_keep_their_order_and_the_text_between_them() {
    let text = "(https://en.wikipedia.org/wiki/Rust_(language)) and http://a.b/c.";
    let p = render_rich_text(text);

    let hrefs: Vec<_> = links(&p).iter().map(|a| a.get_attribute("href")).collect();
    assert_eq!(
        hrefs,
        [
            Some("https://en.wikipedia.org/wiki/Rust_(language)".to_owned()),
            Some("http://a.b/c".to_owned()),
        ]
    );
    assert_eq!(p.text_content().as_deref(), Some(text));
}

#[wasm_bindgen_test]
fn markup_in_a_message_stays_text() {
    for text in [
        "<img src=x onerror=alert(1)>",
        "<b>x</b>",
        "a <b>bold</b> <img src=x onerror=alert(1)> <script>alert(1)</script> claim",
        "&lt;b&gt; &amp; &#60;",
    ] {
        let p = render_rich_text(text);
        assert_eq!(p.child_element_count(), 0, "{text:?} made elements");
        assert!(p
            .query_selector("img, b, script")
            .expect("selector")
            .is_none());
        assert_eq!(p.text_content().as_deref(), Some(text));
    }
}

#[wasm_bindgen_test]
fn other_schemes_are_not_links() {
    for text in [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/x",
    ] {
        let p = render_rich_text(text);
        assert!(links(&p).is_empty(), "{text:?} made a link");
        assert_eq!(p.text_content().as_deref(), Some(text));
    }
}

#[wasm_bindgen_test]
fn a_link_written_as_html_is_text_around_our_own_link() {
    let text = r#"<a href="javascript:alert(1)">https://x.y</a>"#;
    let p = render_rich_text(text);

    let links = links(&p);
    assert_eq!(links.len(), 1, "only the link RichText made");
    assert_eq!(
        links[0].get_attribute("href").as_deref(),
        Some("https://x.y")
    );
    assert_eq!(p.text_content().as_deref(), Some(text));
}

#[wasm_bindgen_test]
fn a_direction_override_cannot_disguise_a_links_host() {
    // Shown raw, the override would make the end of this URL read "https://google.com".
    let url = "https://evil.example/\u{202e}moc.elgoog//:sptth";
    let p = render_rich_text(&format!("login at {url}"));
    assert_eq!(p.get_attribute("dir").as_deref(), Some("auto"));
    let links = links(&p);
    let a = &links[0];
    assert_eq!(a.get_attribute("dir").as_deref(), Some("ltr"));
    assert_eq!(a.get_attribute("title").as_deref(), Some("evil.example"));
    let shown = a.text_content().unwrap_or_default();
    assert!(!shown.contains('\u{202e}'), "{shown:?}");
    assert!(shown.starts_with("https://evil.example/"), "{shown:?}");
}
