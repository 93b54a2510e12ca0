//! People in the browser (protocol v2): two tabs of one person both live, reading in one
//! tab clearing the other's badge, a private room invisible to an outsider, and an
//! account signing in on a second device to find its rooms and unread counts.

use super::*;

/// Opens a second tab in `b`'s profile (sharing its saved session) on `url`; returns the
/// handles of the first tab and the new one, with the new one current.
async fn second_tab(
    b: &Browser,
    url: &str,
) -> (fantoccini::wd::WindowHandle, fantoccini::wd::WindowHandle) {
    let first = b.window().await.unwrap();
    let opened = b.new_window(true).await.unwrap();
    b.switch_to_window(opened.handle.clone()).await.unwrap();
    b.goto(url).await.unwrap();
    (first, opened.handle)
}

/// The unread badge of `room` in the sidebar, if any.
async fn badge(b: &Browser, room: &str) -> Option<String> {
    js(
        b,
        "const el = document.querySelector(`.joined-rooms .room-item[data-room='${arguments[0]}'] .unread`);\
         return el ? el.textContent : null;",
        vec![json!(room)],
    )
    .await
}

async fn wait_badge(b: &Browser, room: &str, want: Option<&str>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = badge(b, room).await;
        if now.as_deref() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "badge of {room} is {now:?}, not {want:?}; the page shows:\n{}",
            page_text(b).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn two_tabs_of_one_person_stay_live_and_reading_in_one_clears_the_others_badge() {
    require();
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(1000, 700).await;
    let (bob, _p2) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    join_room(&alice, "dev").await;
    sign_in(&bob, &base, "bob").await;
    join_room(&bob, "dev").await;

    // A second tab of alice's: signed in as her from the saved session, with her rooms.
    let (first, second) = second_tab(&alice, &format!("{base}#/r/lobby")).await;
    wait_css(&alice, ".status-connected").await;
    wait_css(&alice, ".joined-rooms .room-item[data-room=dev]").await;

    // Bob speaks in #dev: both of alice's tabs stay connected and show it.
    say(&bob, "to both tabs").await;
    click(&alice, ".room-item[data-room=dev] .room-link").await;
    wait_message(&alice, "to both tabs").await;
    alice.switch_to_window(first.clone()).await.unwrap();
    wait_message(&alice, "to both tabs").await;
    wait_css(&alice, ".status-connected").await;
    assert!(
        !page_text(&alice).await.contains("too many"),
        "the first tab was closed"
    );

    // The first tab goes to the lobby; a message in #dev raises its badge there.
    click(&alice, ".room-item[data-room=lobby] .room-link").await;
    wait_room_on_screen(&alice, "lobby").await;
    say(&bob, "unread for now").await;
    wait_badge(&alice, "dev", Some("1")).await;
    screenshot(&alice, "people-badge-before-read").await;
    // Reading it in the second tab clears the badge in the first.
    alice.switch_to_window(second).await.unwrap();
    wait_message(&alice, "unread for now").await;
    alice.switch_to_window(first).await.unwrap();
    wait_badge(&alice, "dev", None).await;
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn a_private_room_is_invisible_to_an_outsider() {
    require();
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (olga, _p1) = driver.browser(1000, 700).await;
    let (oscar, _p2) = driver.browser(1000, 700).await;
    sign_in(&olga, &base, "olga").await;
    click(&olga, "#new-room").await;
    let name = wait_css(&olga, "#new-room-name").await;
    name.send_keys("ops").await.unwrap();
    let private = wait_css(&olga, "#new-room-private").await;
    if private.prop("checked").await.unwrap().as_deref() != Some("true") {
        private.click().await.unwrap();
    }
    click(&olga, "#new-room-create").await;
    wait_room_on_screen(&olga, "ops").await;
    wait_css(&olga, ".joined-rooms .room-item.private[data-room=ops]").await;
    say(&olga, "the secret plan").await;
    wait_all_acked(&olga).await;
    screenshot(&olga, "people-private-room").await;

    // An outsider following a link to it sees neither the room nor its messages, and
    // the room list does not show it.
    sign_in_at(&oscar, &format!("{base}#/r/ops"), "oscar").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = page_text(&oscar).await;
    assert!(!text.contains("the secret plan"), "{text}");
    assert!(!message_texts(&oscar)
        .await
        .iter()
        .any(|t| t.contains("secret")));
    assert!(!sidebar_rooms(&oscar).await.contains(&"ops".to_owned()));
    let listed: Vec<String> = js(
        &oscar,
        "return Array.from(document.querySelectorAll('[data-room]'), e => e.dataset.room)",
        vec![],
    )
    .await;
    let ops_rows = listed.iter().filter(|r| *r == "ops").count();
    assert_eq!(ops_rows, 0, "ops is listed for an outsider: {listed:?}");
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn an_account_on_a_second_device_finds_its_rooms_and_unread_counts() {
    require();
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (laptop, _p1) = driver.browser(1000, 700).await;
    let (phone, _p2) = driver.browser(1000, 700).await;
    let (bob, _p3) = driver.browser(1000, 700).await;

    // Register on the laptop.
    laptop.goto(&base).await.unwrap();
    click(&laptop, "#tab-register").await;
    wait_css(&laptop, "#register-user")
        .await
        .send_keys("zoe")
        .await
        .unwrap();
    wait_css(&laptop, "#register-password")
        .await
        .send_keys("zoe's long password")
        .await
        .unwrap();
    click(&laptop, "#register-submit").await;
    wait_css(&laptop, ".status-connected").await;
    wait_css(&laptop, "main.room textarea[name=message]").await;
    join_room(&laptop, "dev").await;
    click(&laptop, ".room-item[data-room=lobby] .room-link").await;
    wait_room_on_screen(&laptop, "lobby").await;

    sign_in(&bob, &base, "bob").await;
    join_room(&bob, "dev").await;
    say(&bob, "one").await;
    say(&bob, "two, zoe").await;
    wait_badge(&laptop, "dev", Some("2")).await;

    // A second device (another browser profile): log in, and the rooms and the unread
    // count are there, from the server.
    phone.goto(&base).await.unwrap();
    click(&phone, "#tab-login").await;
    wait_css(&phone, "#login-user")
        .await
        .send_keys("zoe")
        .await
        .unwrap();
    wait_css(&phone, "#login-password")
        .await
        .send_keys("zoe's long password")
        .await
        .unwrap();
    click(&phone, "#login-submit").await;
    wait_css(&phone, ".status-connected").await;
    wait_css(&phone, ".joined-rooms .room-item[data-room=dev]").await;
    wait_badge(&phone, "dev", Some("2")).await;
    let mentions: Option<String> = js(
        &phone,
        "const el = document.querySelector(\".joined-rooms .room-item[data-room='dev']\");\
         return el ? el.dataset.mentions : null;",
        vec![],
    )
    .await;
    assert_eq!(mentions.as_deref(), Some("1"), "\"two, zoe\" mentions her");
    screenshot(&phone, "people-second-device").await;
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn a_host_app_embeds_huddle_with_a_token_in_the_fragment() {
    require();
    const SECRET: &str = "the host application's secret, 32+ bytes";
    let server = TestServer::with(|c| c.jwt_secret = Some(SECRET.to_owned())).await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "emp-42", "name": "Grace", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let driver = Driver::start().await;
    let (b, _p) = driver.browser(1000, 700).await;
    b.goto(&format!("http://{}/#token={token}", server.addr))
        .await
        .unwrap();
    wait_css(&b, ".status-connected").await;
    wait_css(&b, ".me[data-user='emp-42']").await;
    assert!(page_text(&b).await.contains("Grace"));
    // The token leaves the address bar, so it is not bookmarked or shared.
    let url = b.current_url().await.unwrap();
    assert!(!url.as_str().contains(&token), "{url}");
}
