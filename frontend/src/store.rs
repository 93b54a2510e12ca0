//! The chat store the page reads: [`ChatState`] kept without reactivity of its own, and
//! one trigger per [`Parts`] of the page. Reading a part subscribes to that part only,
//! and a change wakes only the parts it touched (a server frame's are
//! [`Applied::changed`](crate::state::Applied)), so a `typing` frame re-runs the typing
//! line and nothing else, and a message does not recompute the member list.

use leptos::prelude::*;

use common::ServerMsg;

use crate::state::{Applied, ChatState, Parts};

/// A cheap, copyable handle to the store; `provide_context`ed by the app.
#[derive(Clone, Copy)]
pub(crate) struct Store {
    state: StoredValue<ChatState, LocalStorage>,
    parts: StoredValue<[Trigger; Parts::COUNT]>,
}

impl Store {
    pub(crate) fn new(state: ChatState) -> Self {
        Store {
            state: StoredValue::new_local(state),
            parts: StoredValue::new(std::array::from_fn(|_| Trigger::new())),
        }
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
        Some(out)
    }

    /// Applies a server frame that arrived at `now` and wakes what it changed; the rest
    /// of what it produced is the caller's to act on. `None` once the app is gone.
    pub(crate) fn apply(&self, msg: ServerMsg, now: u64) -> Option<Applied> {
        let applied = self.state.try_update_value(|s| s.apply(msg, now))?;
        self.changed(applied.changed);
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
