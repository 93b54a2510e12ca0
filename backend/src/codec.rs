//! JSON at the edge: the only module that turns frames into text and back.

use axum::extract::ws::Utf8Bytes;
use common::{decode_client, ClientMsg, DecodeError, ServerMsg};

/// An encoded server frame. Cloning shares the bytes, so a broadcast encodes once and
/// hands the same buffer to every recipient.
pub type Frame = Utf8Bytes;

/// Encodes a server frame.
pub fn encode(msg: &ServerMsg) -> Frame {
    // Serializing these plain structs to a String cannot fail: no maps with non-string
    // keys, no custom Serialize impls that error.
    let json = serde_json::to_string(msg).unwrap_or_else(|e| {
        tracing::error!(error = %e, "failed to encode a server frame");
        String::from(r#"{"type":"error","code":"internal","message":"encoding failed"}"#)
    });
    Utf8Bytes::from(json)
}

/// Decodes a client text frame.
pub fn decode(text: &str) -> Result<ClientMsg, DecodeError> {
    decode_client(text)
}
