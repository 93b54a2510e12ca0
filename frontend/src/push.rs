//! Web Push: the browser glue that lets alerts reach someone whose Huddle tabs are all
//! closed. The page registers the service worker (`/sw.js`, from `frontend/sw.js`),
//! subscribes with the server's VAPID key (`GET /api/push/key`) and hands the
//! subscription to the server (`push_subscribe`); the worker shows the pushed alerts
//! and, when one is clicked, asks an open tab to go to its room (a `message` this
//! module listens for) or opens a new one.
//!
//! Everything here is best effort: a browser without service workers or a push
//! service (an embedded browser, an insecure origin, no network) still gets the bell
//! and, while a tab is open, desktop notifications (`notify`).

use common::{ClientMsg, PushKeys};
use js_sys::Reflect;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{PushManager, PushSubscriptionOptionsInit, ServiceWorkerRegistration};

/// Where the service worker is served: the site root, so its scope is the whole app.
const WORKER: &str = "/sw.js";

/// A string field of a JS object (`""` when missing). The page reads the few JSON
/// fields here through the objects themselves rather than with serde: every serde
/// type costs the WebAssembly bundle kilobytes.
fn field(object: &JsValue, name: &str) -> String {
    Reflect::get(object, &JsValue::from_str(name))
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}

/// Whether this browser can take Web Push here (a service worker container and the
/// Push API; both need a secure context, which `localhost` and `127.0.0.1` are).
pub(crate) fn supported() -> bool {
    let window = leptos::prelude::window();
    js_sys::Reflect::has(&window.navigator(), &JsValue::from_str("serviceWorker")).unwrap_or(false)
        && js_sys::Reflect::has(&window, &JsValue::from_str("PushManager")).unwrap_or(false)
}

/// Registers the service worker (again: the browser keeps one registration per scope
/// and checks the script for updates) and waits until it is active.
async fn registration() -> Result<ServiceWorkerRegistration, JsValue> {
    let container = leptos::prelude::window().navigator().service_worker();
    JsFuture::from(container.register(WORKER)).await?;
    // `ready` resolves with the registration once its worker is active, which a push
    // subscription needs.
    JsFuture::from(container.ready()?).await?.dyn_into()
}

/// Subscribes this browser (after the person allowed notifications) and returns the
/// `push_subscribe` frame for the server.
pub(crate) async fn subscribe() -> Result<ClientMsg, JsValue> {
    let registration = registration().await?;
    let manager = registration.push_manager()?;
    if let Some(frame) = current(&manager).await? {
        return Ok(frame);
    }
    let key = server_key().await?;
    let options = PushSubscriptionOptionsInit::new();
    options.set_user_visible_only(true);
    // The base64url text is accepted as is.
    options.set_application_server_key(&JsValue::from_str(&key));
    let subscription = JsFuture::from(manager.subscribe_with_options(&options)?).await?;
    frame_of(&subscription)
}

/// The subscription `manager` holds, as a frame.
async fn current(manager: &PushManager) -> Result<Option<ClientMsg>, JsValue> {
    let found = JsFuture::from(manager.get_subscription()?).await?;
    if found.is_null() || found.is_undefined() {
        return Ok(None);
    }
    frame_of(&found).map(Some)
}

/// `push_subscribe` from a `PushSubscription`, through its JSON form (`toJSON()`:
/// the keys come out base64url-encoded, as the server expects them).
fn frame_of(subscription: &JsValue) -> Result<ClientMsg, JsValue> {
    let to_json: js_sys::Function =
        Reflect::get(subscription, &JsValue::from_str("toJSON"))?.dyn_into()?;
    let json = to_json.call0(subscription)?;
    let keys = Reflect::get(&json, &JsValue::from_str("keys"))?;
    let (endpoint, p256dh, auth) = (
        field(&json, "endpoint"),
        field(&keys, "p256dh"),
        field(&keys, "auth"),
    );
    if endpoint.is_empty() || p256dh.is_empty() || auth.is_empty() {
        return Err(JsValue::from_str(
            "a push subscription without endpoint or keys",
        ));
    }
    Ok(ClientMsg::PushSubscribe {
        endpoint,
        keys: PushKeys { p256dh, auth },
    })
}

/// The server's VAPID public key.
async fn server_key() -> Result<String, JsValue> {
    let window = leptos::prelude::window();
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str("/api/push/key"))
        .await?
        .dyn_into()?;
    if !response.ok() {
        return Err(JsValue::from_str("the server offers no push key"));
    }
    let json = JsFuture::from(response.json()?).await?;
    Some(field(&json, "key"))
        .filter(|k| !k.is_empty())
        .ok_or_else(|| JsValue::from_str("the server's push key is missing"))
}

/// Listens for the service worker asking this tab to open a room (a notification was
/// clicked): going to the hash is what opening a link to it does.
pub(crate) fn listen() {
    if !supported() {
        return;
    }
    let container = leptos::prelude::window().navigator().service_worker();
    let on_message =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(|ev: web_sys::MessageEvent| {
            // `{type: "huddle-open", hash: "#/r/<room>/<offset>"}`, built by the worker.
            let data = ev.data();
            let hash = field(&data, "hash");
            if field(&data, "type") == "huddle-open" && hash.starts_with("#/r/") {
                let _ = leptos::prelude::window().location().set_hash(&hash);
            }
        });
    container.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // Listens for the life of the page.
    on_message.forget();
}
