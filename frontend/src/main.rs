//! Entry point of the web app: everything else lives in the library.

fn main() {
    // Panics show up in the browser console with their message instead of "unreachable".
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(frontend::App);
}
