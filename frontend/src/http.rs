//! Plain HTTP requests to this server (the accounts API, the SSE carrier's posts): one
//! small helper, so the fetch glue exists once in the bundle.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// `POST`s `json` (if any) to `path` on this server with the extra `headers`; the
/// answer's status and body text. `Err` only when there is no answer (offline, server
/// down, the request refused by the browser).
pub(crate) async fn post(
    path: &str,
    json: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<(u16, String), JsValue> {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    if let Some(json) = json {
        init.set_body(&JsValue::from_str(json));
    }
    let request = web_sys::Request::new_with_str_and_init(path, &init)?;
    let sent = request.headers();
    if json.is_some() {
        sent.set("Content-Type", "application/json")?;
    }
    for (name, value) in headers {
        sent.set(name, value)?;
    }
    let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
        .await?
        .dyn_into()?;
    let text = JsFuture::from(response.text()?).await?;
    Ok((response.status(), text.as_string().unwrap_or_default()))
}
