//! The bar at the top: app name, room, connection status, the bell and quiet hours,
//! who is signed in (with the sign-out button), and the buttons that only matter now
//! and then (enable notifications, reconnect after 4001).

use leptos::prelude::*;

use crate::components::{Avatar, Bell, QuietHours};
use crate::connection::Connection;
use crate::link::Status;
use crate::notify;
use crate::state::{ChatState, Parts};
use crate::store::Store;
use crate::transport::Transport;
use crate::Ui;

/// The header. Before the first `welcome` the status is shown only while a connection
/// is on its way: someone just arriving, or fixing a refused nick, is waiting for
/// nothing, and "offline" would only alarm them.
#[component]
pub(crate) fn Header() -> impl IntoView {
    let conn = expect_context::<Connection>();
    let chat = expect_context::<Store>();
    let ui = expect_context::<Ui>();
    let status = conn.status;
    let show_status = move || {
        let (welcomed, refused) = chat.with(Parts::SESSION, |s| {
            (s.me.is_some() || s.session_taken, s.refused())
        });
        welcomed || (status.get() != Status::Offline && !refused)
    };
    let label = move || {
        let s = status.get();
        // Only a countdown needs the clock; reading it otherwise would re-render the
        // status every second for nothing.
        let now = match s {
            Status::Reconnecting { retry_at: Some(_) } => conn.clock.get(),
            _ => 0,
        };
        s.label(now)
    };
    let can_ask = RwSignal::new(notify::can_ask());
    let welcomed = move || chat.with(Parts::SESSION, |s| s.me.is_some());
    view! {
        <header class="top">
            <Show when=welcomed>
                <button
                    class="menu-toggle"
                    aria-label="Rooms"
                    aria-controls="sidebar"
                    aria-expanded=move || ui.sidebar_open.get().to_string()
                    on:click=move |_| ui.sidebar_open.update(|o| *o = !*o)
                >
                    "☰"
                    {move || {
                        let n = chat.with(Parts::ROOMS, ChatState::unread_elsewhere);
                        (n > 0)
                            .then(|| {
                                view! {
                                    <span class="unread" aria-label=format!("{n} unread in other rooms")>
                                        {n}
                                    </span>
                                }
                            })
                    }}
                </button>
            </Show>
            <h1>"Huddle"</h1>
            <Show when=show_status>
                // Which transport carries the chat: said in the tooltip, and shown
                // when it is the fallback, which behaves the same but costs more.
                <span
                    class=move || format!("status status-{}", status.get().class())
                    role="status"
                    data-welcomes=move || conn.welcomes.get()
                    data-transport=move || conn.transport.get().attr()
                    title=move || conn.transport.get().badge_title(&label())
                >
                    {move || {
                        let mut shown = label();
                        if conn.transport.get() == Transport::Sse && status.get() == Status::Connected {
                            shown.push_str(" \u{b7} SSE");
                        }
                        shown
                    }}
                </span>
            </Show>
            <Show when=move || welcomed() && can_ask.get()>
                <button
                    class="enable-notifications"
                    title="Get a desktop notification when someone mentions you, even with Huddle closed"
                    on:click=move |_| {
                        notify::ask(move || {
                            can_ask.set(notify::can_ask());
                            // Allowed: this browser also subscribes to Web Push.
                            if notify::granted() {
                                conn.enable_push();
                            }
                        })
                    }
                >
                    "Enable notifications"
                </button>
            </Show>
            <Show when=welcomed>
                <Bell />
                <QuietHours />
            </Show>
            <Show when=move || chat.with(Parts::SESSION, |s| s.session_taken)>
                <button class="reconnect" on:click=move |_| conn.reconnect_now()>
                    "Reconnect here"
                </button>
            </Show>
            {move || {
                chat.with(Parts::SESSION, |s| s.me.clone().map(|nick| (nick, s.user.clone())))
                    .map(|(nick, user)| {
                        let (data_user, title) = (user.clone(), user.clone());
                        view! {
                            <span class="me" data-user=data_user title=title>
                                <Avatar nick=nick.clone() user=user />
                                <bdi class="me-nick">{nick}</bdi>
                            </span>
                            <button id="sign-out" class="sign-out" on:click=move |_| conn.sign_out()>
                                "Sign out"
                            </button>
                        }
                    })
            }}
        </header>
        <Show when=move || chat.with(Parts::SESSION, |s| s.session_taken)>
            <p class="session-taken" role="alert">
                "You have too many Huddle tabs or devices open, so the server closed this \
                 one. Close some, then use \u{201c}Reconnect here\u{201d} to continue in \
                 this tab."
            </p>
        </Show>
    }
}
