//! Who a connection is once its `hello` succeeded.

use std::sync::Arc;

/// A connection's identity after `hello`: handlers that need one take it, so none can
/// run before it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The nick as the person typed it (shown to others).
    pub(crate) nick: Arc<str>,
    /// The nick's case-folded key (`common::validate::nick_key`): what uniqueness,
    /// de-duplication and the registries go by.
    pub(crate) key: Arc<str>,
    /// The session token that reclaims the nick after a reconnect.
    pub(crate) session: Arc<str>,
}
