//! Whether a new connection becomes a session: a WebSocket and an SSE stream take the
//! same places under `--max-connections` and the per-address limit, and one over a
//! limit still opens, to be told why it ends (1008) in terms a client can act on.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::disconnect::Disconnect;
use crate::peers::PeerSlot;
use crate::session::{self, link::Link, Resumption};
use crate::state::AppState;

/// The places a connection took when its request came in.
pub(super) struct Admission {
    /// Within `--max-connections`.
    permit: Option<OwnedSemaphorePermit>,
    /// Within the per-address limit; taken only within the total, which keeps the live
    /// entries of the per-address table within `--max-connections`.
    slot: Option<PeerSlot>,
    /// Keeps shutdown waiting until this session has said goodbye.
    _token: TaskTrackerToken,
}

impl Admission {
    pub(super) fn take(state: &AppState, client_ip: IpAddr) -> Self {
        let token = state.sessions.token();
        let permit = Arc::clone(&state.connection_slots).try_acquire_owned().ok();
        let slot = permit
            .as_ref()
            .and_then(|_| state.peers.try_connect(client_ip));
        Admission {
            permit,
            slot,
            _token: token,
        }
    }

    /// Serves `link` as a session until it ends if it was admitted; otherwise closes it
    /// with the limit it is over.
    pub(super) async fn serve(
        self,
        link: Link,
        state: AppState,
        peer: SocketAddr,
        resume: Option<Resumption>,
    ) {
        // Counted as open until this future ends, however it ends.
        let _open = state.metrics.connection_opened();
        let why = match (&self.permit, &self.slot) {
            (Some(_), Some(_)) => {
                // Boxed so the caller's task stays the size of the refusal path.
                Box::pin(session::run(link, state, peer, resume)).await;
                return;
            }
            (None, _) => Disconnect::TooManyConnections,
            (Some(_), None) => Disconnect::TooManyFromAddress,
        };
        state.metrics.closed(why.code());
        Box::pin(session::refuse(link, why, peer)).await;
    }
}
