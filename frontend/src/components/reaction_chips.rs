//! A message's reactions: one chip per emoji with its count. Its tooltip and
//! accessible name say who reacted; ours is highlighted (`mine`, `aria-pressed`), and
//! clicking a chip adds or takes back our own reaction.

use leptos::prelude::*;

use crate::connection::Connection;
use crate::state::Chip;

#[component]
pub(crate) fn ReactionChips(offset: u64, chips: Signal<Vec<Chip>>) -> impl IntoView {
    let conn = expect_context::<Connection>();
    view! {
        <Show when=move || chips.with(|c| !c.is_empty())>
            <div class="reactions">
                <For
                    each=move || chips.get()
                    // Keyed by the whole chip: one that changed is replaced, the rest stay.
                    key=|chip| chip.clone()
                    children=move |chip| {
                        let who = chip.who();
                        let label = format!("{} {}: {who}", chip.emoji, chip.count);
                        let emoji = chip.emoji.clone();
                        view! {
                            <button
                                type="button"
                                class="reaction"
                                class:mine=chip.mine
                                aria-pressed=chip.mine.to_string()
                                aria-label=label
                                title=who
                                data-emoji=chip.emoji.clone()
                                on:click=move |_| conn.toggle_reaction(offset, &emoji)
                            >
                                <span class="reaction-emoji">{chip.emoji.clone()}</span>
                                <span class="reaction-count">{chip.count}</span>
                            </button>
                        }
                    }
                />
            </div>
        </Show>
    }
}
