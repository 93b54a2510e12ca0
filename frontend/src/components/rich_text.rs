//! A message's text, with its web addresses as links.

use leptos::prelude::*;

use crate::text::{link_host, link_text, linkify, Segment};

/// The text as a paragraph: plain text as text nodes and `http(s)` URLs as links that
/// open in a new tab. Nothing is ever parsed as HTML, so markup in a message shows as
/// typed. The links get `noopener noreferrer` (the new tab cannot reach back to the
/// app, and the linked site does not learn the app's address) and `nofollow` (links
/// posted by anyone vouch for nothing). The paragraph takes its direction from its own
/// text (`dir="auto"`), so right-to-left text cannot reorder the page around it, and a
/// link shows its URL left to right with any direction control made visible, and its
/// real host as its tooltip.
#[component]
pub(crate) fn RichText(text: String) -> impl IntoView {
    let segments = linkify(&text);
    if !segments.iter().any(|s| matches!(s, Segment::Link(_))) {
        // Most messages have no link: one text node, and the string is moved, not copied.
        return view! { <p class="text" dir="auto">{text}</p> }.into_any();
    }
    let parts = segments
        .into_iter()
        .map(|segment| match segment {
            Segment::Text(t) => t.to_owned().into_any(),
            Segment::Link(url) => {
                let href = url.to_owned();
                let host = link_host(url).to_owned();
                view! {
                    <a href=href target="_blank" rel="noopener noreferrer nofollow" dir="ltr" title=host>
                        {link_text(url)}
                    </a>
                }
                .into_any()
            }
        })
        .collect_view();
    view! { <p class="text" dir="auto">{parts}</p> }.into_any()
}
