//! A message's reactions: one chip per emoji with its count. Its tooltip and
//! accessible name say who reacted; ours is highlighted (`mine`, `aria-pressed`), and
//! clicking a chip adds or takes back our own reaction.

use leptos::prelude::*;

use crate::connection::Connection;
use crate::state::Chip;

/// Rendered again as a whole when the message's reactions change: a message has a few
/// chips, and a keyed list would cost more code than it saves work.
#[component]
pub(crate) fn ReactionChips(offset: u64, chips: Vec<Chip>) -> impl IntoView {
    let conn = expect_context::<Connection>();
    if chips.is_empty() {
        return ().into_any();
    }
    let chips = chips
        .into_iter()
        .map(|chip| {
            let who = chip.who();
            let label = format!("{} {}: {who}", chip.emoji, chip.count);
            let emoji = chip.emoji.clone();
            let data = chip.emoji.clone();
            view! {
                <button
                    type="button"
                    class="reaction"
                    class:mine=chip.mine
                    aria-pressed=chip.mine.to_string()
                    aria-label=label
                    title=who
                    data-emoji=data
                    on:click=move |_| conn.toggle_reaction(offset, &emoji)
                >
                    <span class="reaction-emoji">{chip.emoji}</span>
                    <span class="reaction-count">{chip.count}</span>
                </button>
            }
        })
        .collect_view();
    view! { <div class="reactions">{chips}</div> }.into_any()
}
