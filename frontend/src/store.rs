//! The chat store the page reads: [`ChatState`] kept without reactivity of its own, and
//! one trigger per [`Parts`] of the page. Reading a part subscribes to that part only,
//! and a change wakes only the parts it touched (a server frame's are
//! [`Applied::changed`](crate::state::Applied)), so a `typing` frame re-runs the typing
//! line and nothing else, and a message does not recompute the member list.
//!
//! Rows that change in place (an edit, a deletion, a reaction) have triggers of their
//! own, keyed by room and offset: a row and the quotes of its replies [`Store::watch`]
//! one while they are on the page, and a change wakes exactly the rows it touched
//! ([`ChatState::take_touched`]).

use std::collections::HashMap;

use leptos::prelude::*;

use common::ServerMsg;

use crate::state::{Applied, ChatState, Parts};

/// A cheap, copyable handle to the store; `provide_context`ed by the app.
#[derive(Clone, Copy)]
pub(crate) struct Store {
    state: StoredValue<ChatState, LocalStorage>,
    parts: StoredValue<[Trigger; Parts::COUNT]>,
    /// The triggers of the rows on the page, with how many views watch each.
    rows: StoredValue<RowTriggers, LocalStorage>,
}

/// The trigger of each watched row, by room and offset, with how many views watch it.
type RowTriggers = HashMap<(String, u64), (ArcTrigger, usize)>;

impl Store {
    pub(crate) fn new(state: ChatState) -> Self {
        Store {
            state: StoredValue::new_local(state),
            parts: StoredValue::new(std::array::from_fn(|_| Trigger::new())),
            rows: StoredValue::new_local(HashMap::new()),
        }
    }

    /// The trigger of the message at `offset` of `room`, for a view showing it; the
    /// view's owner gives it back when it goes.
    pub(crate) fn watch(&self, room: &str, offset: u64) -> ArcTrigger {
        let key = (room.to_owned(), offset);
        let trigger = self
            .rows
            .try_update_value(|rows| {
                let entry = rows
                    .entry(key.clone())
                    .or_insert_with(|| (ArcTrigger::new(), 0));
                entry.1 += 1;
                entry.0.clone()
            })
            .unwrap_or_default();
        let rows = self.rows;
        on_cleanup(move || {
            rows.try_update_value(|rows| {
                if let Some(entry) = rows.get_mut(&key) {
                    entry.1 -= 1;
                    if entry.1 == 0 {
                        rows.remove(&key);
                    }
                }
            });
        });
        trigger
    }

    /// Wakes the rows the last change touched.
    fn wake_rows(&self) {
        let touched = self
            .state
            .try_update_value(ChatState::take_touched)
            .unwrap_or_default();
        if touched.is_empty() {
            return;
        }
        self.rows.try_with_value(|rows| {
            for key in &touched {
                if let Some((trigger, _)) = rows.get(key) {
                    trigger.notify();
                }
            }
        });
    }

    /// Reads the state, subscribing the running effect or memo to `parts`.
    pub(crate) fn with<T>(&self, parts: Parts, f: impl FnOnce(&ChatState) -> T) -> T {
        self.parts.with_value(|triggers| {
            for (i, trigger) in triggers.iter().enumerate() {
                if parts.has(i) {
                    trigger.track();
                }
            }
        });
        self.state.with_value(f)
    }

    /// Reads the state without subscribing (event handlers, one-off reads).
    pub(crate) fn with_untracked<T>(&self, f: impl FnOnce(&ChatState) -> T) -> T {
        self.state.with_value(f)
    }

    /// Changes the state, then wakes what shows `parts`. `None` once the app is gone
    /// (a socket callback after unmount).
    pub(crate) fn update<T>(&self, parts: Parts, f: impl FnOnce(&mut ChatState) -> T) -> Option<T> {
        let out = self.state.try_update_value(f)?;
        self.changed(parts);
        self.wake_rows();
        Some(out)
    }

    /// Applies a server frame that arrived at `now` and wakes what it changed; the rest
    /// of what it produced is the caller's to act on. `None` once the app is gone.
    pub(crate) fn apply(&self, msg: ServerMsg, now: u64) -> Option<Applied> {
        let applied = self.state.try_update_value(|s| s.apply(msg, now))?;
        self.changed(applied.changed);
        self.wake_rows();
        Some(applied)
    }

    /// Wakes what shows `parts`.
    pub(crate) fn changed(&self, parts: Parts) {
        self.parts.try_with_value(|triggers| {
            for (i, trigger) in triggers.iter().enumerate() {
                if parts.has(i) {
                    trigger.notify();
                }
            }
        });
    }
}
