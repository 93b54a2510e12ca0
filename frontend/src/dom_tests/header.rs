//! The header's status badge: which transport carries the chat, in a stable attribute
//! (`data-transport`, what the end-to-end fallback tests read), the tooltip (also its
//! accessible description), and in its text when it is the SSE fallback.

use leptos::prelude::*;
use wasm_bindgen_test::wasm_bindgen_test;

use super::{flush, mount, ME};
use crate::components::Header;
use crate::link::Status;
use crate::transport::Transport;

#[wasm_bindgen_test]
async fn the_badge_says_which_transport_is_in_use() {
    let page = mount(&["lobby"], || view! { <Header /> });
    page.apply([super::welcome(ME)]);
    page.conn.show(Status::Connected, Transport::WebSocket);
    flush().await;
    let badge = page.one(".status");
    assert_eq!(badge.get_attribute("data-transport").as_deref(), Some("ws"));
    assert_eq!(
        badge.get_attribute("title").as_deref(),
        Some("Connected (WebSocket)")
    );
    assert_eq!(page.text(".status"), "connected");

    page.conn.show(Status::Connected, Transport::Sse);
    flush().await;
    let badge = page.one(".status-connected");
    assert_eq!(
        badge.get_attribute("data-transport").as_deref(),
        Some("sse")
    );
    assert_eq!(
        badge.get_attribute("title").as_deref(),
        Some("Connected (fallback: SSE)")
    );
    assert_eq!(page.text(".status"), "connected \u{b7} SSE");

    // While reconnecting the words are about that; the transport stays in the name.
    page.conn
        .show(Status::Reconnecting { retry_at: None }, Transport::Sse);
    flush().await;
    assert_eq!(page.text(".status"), "reconnecting…");
    assert_eq!(
        page.one(".status").get_attribute("title").as_deref(),
        Some("Reconnecting… (fallback: SSE)")
    );
}
