//! The web app's files: embedded in release builds, read from `dist/` in debug builds.
//!
//! Trunk builds the app into `dist/` and `cargo xtask web` adds `.br`/`.gz` siblings; the
//! best encoding the browser accepts is served. Paths that name no file fall back to
//! `index.html`, so app routes like `/r/lobby` load the app.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
// Relative to backend/Cargo.toml: the workspace's dist/.
#[folder = "../dist/"]
#[allow_missing = true]
struct Assets;

const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>Huddle</title>
<h1>Huddle is running</h1>
<p>The WebSocket endpoint is at <code>/ws</code>, but this server was built without the web app.</p>
<p>Build it with <code>cargo xtask run</code> (development) or <code>cargo xtask dist</code>
(one binary with the app embedded).</p>\n";

/// Serves a file of the web app, with the headers every page of it carries.
pub(crate) async fn serve(uri: Uri, headers: HeaderMap) -> Response {
    let (mut resp, page) = find(&uri, &headers);
    harden(resp.headers_mut(), page.as_deref());
    resp
}

/// What every response of the web app says to the browser: never sniff a type, never
/// send the page's address to the sites its links open, never be framed by another
/// site (clickjacking), and, for the page itself, run no script but the app's own: its
/// files from this origin and Trunk's inline loader, allowed by its hash (so an
/// injected inline script or a script from elsewhere never runs), plus compiling the
/// WebAssembly.
fn harden(headers: &mut HeaderMap, page: Option<&[u8]>) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let mut policy = String::from("frame-ancestors 'none'; base-uri 'none'; object-src 'none'");
    if let Some(html) = page {
        policy.push_str("; script-src 'self' 'wasm-unsafe-eval'");
        for hash in inline_script_hashes(html) {
            policy.push_str(&format!(" 'sha256-{hash}'"));
        }
    }
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The base64 SHA-256 of each inline `<script>` of a page, as a script policy names
/// them. Trunk writes the page, so the scan only needs to find its plain tags.
fn inline_script_hashes(html: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let html = String::from_utf8_lossy(html);
    let mut hashes = Vec::new();
    let mut rest = html.as_ref();
    while let Some(start) = rest.find("<script") {
        rest = &rest[start..];
        let Some(open_end) = rest.find('>') else {
            break;
        };
        let tag = &rest[..open_end];
        let body_and_more = &rest[open_end + 1..];
        let Some(close) = body_and_more.find("</script>") else {
            break;
        };
        if !tag.contains(" src=") {
            let digest = sha2::Sha256::digest(&body_and_more.as_bytes()[..close]);
            hashes.push(base64::engine::general_purpose::STANDARD.encode(digest));
        }
        rest = &body_and_more[close..];
    }
    hashes
}

/// The response for `uri`, and the page's HTML when it is the app's page (whose script
/// policy depends on its inline scripts).
fn find(uri: &Uri, headers: &HeaderMap) -> (Response, Option<Vec<u8>>) {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let page = |served: Response| {
        let html = Assets::get("index.html").map(|f| f.data.into_owned());
        (served, html.or_else(|| Some(NOT_BUILT.as_bytes().to_vec())))
    };
    if let Some(resp) = file(path, headers) {
        return if path == "index.html" {
            page(resp)
        } else {
            (resp, None)
        };
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.contains('.') && path != "index.html" {
        return ((StatusCode::NOT_FOUND, "not found\n").into_response(), None);
    }
    page(file("index.html", headers).unwrap_or_else(|| Html(NOT_BUILT).into_response()))
}

fn file(path: &str, headers: &HeaderMap) -> Option<Response> {
    // Never serve the compressed siblings under their own names.
    if path.ends_with(".br") || path.ends_with(".gz") {
        return None;
    }
    let plain = Assets::get(path)?;
    let accepts = |enc: &str| {
        headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|e| e.split(';').next().map(str::trim) == Some(enc))
            })
    };
    let etag = format!("\"{}\"", hex(&plain.metadata.sha256_hash()[..12]));
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return Some(StatusCode::NOT_MODIFIED.into_response());
    }
    let (body, encoding) = [("br", ".br"), ("gzip", ".gz")]
        .into_iter()
        .find_map(|(enc, ext)| {
            accepts(enc)
                .then(|| Assets::get(&format!("{path}{ext}")))
                .flatten()
                .map(|f| (f.data, Some(enc)))
        })
        .unwrap_or((plain.data, None));
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut resp = Response::new(Body::from(body.into_owned()));
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(enc) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Trunk puts a content hash in asset names, so those never change; the page itself
    // must be revalidated to pick up a new build.
    let cache = if looks_hashed(path) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Some(resp)
}

/// Whether a file name carries a content hash (Trunk's `name-<hex>_bg.wasm` style).
/// Trunk prints its 64-bit hash with `{:x}`, unpadded: one build in 16 has 15 digits,
/// one in 256 has 14, so anything from 10 digits up counts.
fn looks_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    name.split(['-', '.', '_'])
        .any(|part| part.len() >= 10 && part.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_are_hashed_and_linked_ones_are_not() {
        let html = b"<html><script type=\"module\">\nimport init from '/a.js';\n</script>\
            <script src=\"/b.js\"></script><script>alert(1)</script></html>";
        let hashes = inline_script_hashes(html);
        assert_eq!(hashes.len(), 2);
        // `printf '\nimport init from '"'"'/a.js'"'"';\n' | sha256sum | xxd -r -p | base64`
        assert_eq!(hashes[0], "nmdLyQ6u69OUSoW4i7ADiAWaKqSloTkmbl/K96XORko=");
        assert!(inline_script_hashes(b"<p>no scripts</p>").is_empty());
        assert!(inline_script_hashes(b"<script>unterminated").is_empty());
    }
}
