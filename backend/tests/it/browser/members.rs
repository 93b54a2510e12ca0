//! The member list of a crowd (a room above `--announce-limit`): the first page with
//! everyone counted, "Show more" paging in the rest; a small room listed whole as before.
//! Takes `target/e2e/members-crowd.png` (before "Show more") and
//! `members-crowd-all.png` (after).

use super::*;

/// The nicks shown in the member list, in order.
async fn listed(b: &Browser) -> Vec<String> {
    js(
        b,
        "return [...document.querySelectorAll('.presence li bdi')].map(e => e.textContent)",
        vec![],
    )
    .await
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn a_crowds_member_list_pages_in_and_a_small_rooms_is_whole() {
    require();
    // A fourth member makes a crowd.
    let server = TestServer::with(|c| c.announce_limit = 3).await;
    let base = format!("http://{}/", server.addr);
    let _bob = server.member("bob", "lobby").await;
    let mut hall = Vec::new();
    for nick in ["zack", "carol", "dan", "erin", "fay", "gus"] {
        let mut c = server.member(nick, "hall").await;
        c.expect_nothing_queued().await;
        hall.push(c);
    }
    let driver = Driver::start().await;
    let (alice, _p) = driver.browser(1280, 800).await;
    sign_in(&alice, &base, "alice").await;
    // The lobby is small: everyone listed, in the order they came, nothing to page.
    wait_for(
        &alice,
        "the lobby's two members",
        WAIT,
        "return document.querySelectorAll('.presence li').length === 2",
        vec![],
    )
    .await;
    assert_eq!(listed(&alice).await, ["bob", "alice"]);
    assert!(alice.find(Locator::Css(".more-members")).await.is_err());

    // The hall is a crowd: its first page (three, in nick order), all seven counted.
    let field = wait_css(&alice, ".join-room input[name=room]").await;
    field.send_keys(&format!("hall{ENTER}")).await.unwrap();
    wait_room_on_screen(&alice, "hall").await;
    let more = wait_css(&alice, ".more-members").await;
    assert_eq!(listed(&alice).await, ["alice", "carol", "dan"]);
    let count: String = js(
        &alice,
        "return document.querySelector('.presence .count').textContent",
        vec![],
    )
    .await;
    assert_eq!(count, "7");
    assert_eq!(more.text().await.unwrap(), "Show more (3 of 7)");
    let dir = screenshot_dir(false);
    let (path, ..) = screenshot_to(&alice, &dir, "members-crowd.png").await;
    eprintln!("wrote {}", path.display());

    more.click().await.unwrap();
    wait_for(
        &alice,
        "every member of the hall",
        WAIT,
        "return document.querySelectorAll('.presence li').length === 7 \
         && !document.querySelector('.more-members')",
        vec![],
    )
    .await;
    assert_eq!(
        listed(&alice).await,
        ["alice", "carol", "dan", "erin", "fay", "gus", "zack"]
    );
    let (path, ..) = screenshot_to(&alice, &dir, "members-crowd-all.png").await;
    eprintln!("wrote {}", path.display());
    alice.close().await.unwrap();
}
