//! Quiet hours: when nothing is pushed to the person's devices. A small dialog from
//! the header; the time zone is the browser's, sent as minutes east of UTC.

use common::Quiet;
use leptos::prelude::*;

use crate::connection::Connection;
use crate::state::{format_time, parse_time, Parts};
use crate::store::Store;

/// The header's "Quiet hours" button and its dialog.
#[component]
pub(crate) fn QuietHours() -> impl IntoView {
    let conn = expect_context::<Connection>();
    let chat = expect_context::<Store>();
    let open = RwSignal::new(false);
    let quiet = Memo::new(move |_| chat.with(Parts::INBOX, |s| s.settings.quiet));
    // The fields start from what the server holds, or 22:00–07:00.
    let from = RwSignal::new(String::new());
    let to = RwSignal::new(String::new());
    let error = RwSignal::new(None::<&'static str>);
    let toggle = move |_| {
        let q = quiet.get_untracked();
        from.set(format_time(q.map_or(22 * 60, |q| q.from)));
        to.set(format_time(q.map_or(7 * 60, |q| q.to)));
        error.set(None);
        open.update(|o| *o = !*o);
    };
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (Some(from), Some(to)) = (
            parse_time(&from.get_untracked()),
            parse_time(&to.get_untracked()),
        ) else {
            error.set(Some("Enter both times."));
            return;
        };
        // `getTimezoneOffset` is minutes *behind* UTC; the server wants minutes east.
        let tz = -(js_sys::Date::new_0().get_timezone_offset() as i16);
        conn.set_quiet(Some(Quiet { from, to, tz }));
        open.set(false);
    };
    let clear = move |_| {
        conn.set_quiet(None);
        open.set(false);
    };
    let summary = move || {
        quiet.get().map_or("Off".to_owned(), |q| {
            format!("{}–{}", format_time(q.from), format_time(q.to))
        })
    };
    view! {
        <div class="quiet-wrap">
            <button
                id="quiet-hours"
                class="quiet-hours"
                type="button"
                aria-haspopup="dialog"
                aria-expanded=move || open.get().to_string()
                title=move || format!("Quiet hours: {}", summary())
                on:click=toggle
            >
                // A crescent, drawn (see the bell).
                <svg class="icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true">
                    <path d="M10.5 1.8A6.3 6.3 0 1 0 14.2 11 5.2 5.2 0 0 1 10.5 1.8z" fill="currentColor" />
                </svg>
                <span class="visually-hidden">"Quiet hours"</span>
            </button>
            <Show when=move || open.get()>
                <form id="quiet-dialog" class="quiet-dialog" role="dialog" aria-label="Quiet hours" on:submit=save>
                    <p class="quiet-help">"No pushed notifications between:"</p>
                    <label>
                        "From "
                        <input type="time" id="quiet-from" required prop:value=move || from.get()
                            on:input=move |ev| from.set(event_target_value(&ev)) />
                    </label>
                    <label>
                        " to "
                        <input type="time" id="quiet-to" required prop:value=move || to.get()
                            on:input=move |ev| to.set(event_target_value(&ev)) />
                    </label>
                    <p class="field-error">{move || error.get()}</p>
                    <div class="quiet-actions">
                        <button type="submit" id="quiet-save">"Save"</button>
                        <button type="button" id="quiet-clear" on:click=clear disabled=move || quiet.get().is_none()>
                            "Turn off"
                        </button>
                    </div>
                </form>
            </Show>
        </div>
    }
}
