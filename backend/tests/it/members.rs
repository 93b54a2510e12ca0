//! Member lists by the page (an addition to the protocol): a crowd's `joined` (a room
//! above `--announce-limit`) carries the first page of its members, the total and a
//! cursor, and `members {room, after?, limit?}` pages through the rest, in nick order,
//! each member once. A small announce limit makes a crowd of a few clients.

use serde_json::{json, Value};

use crate::support::redis::{require, RedisServer};
use crate::support::{Client, TestServer};

/// The announce limit of these tests' servers: a fourth member makes a crowd.
const LIMIT: u64 = 3;

async fn crowd_server() -> TestServer {
    TestServer::with(|c| c.announce_limit = LIMIT).await
}

/// Clients that said hello as `nicks` and joined `room`, in that order, each join
/// announced (if at all) before the next one starts.
async fn fill(server: &TestServer, room: &str, nicks: &[&str]) -> Vec<Client> {
    let mut clients = Vec::new();
    for nick in nicks {
        let mut c = server.member(nick, room).await;
        // The session announces a join after answering it; its next answer comes
        // after that, so the lists others get are the ones each join makes.
        c.expect_nothing_queued().await;
        clients.push(c);
    }
    clients
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Asks for one page; the `members` answer (nothing else may come first: a crowd sends
/// its members no announcements).
async fn page(c: &mut Client, room: &str, after: Option<&str>, limit: Option<u64>) -> Value {
    let mut frame = json!({"type": "members", "room": room});
    if let Some(after) = after {
        frame["after"] = json!(after);
    }
    if let Some(limit) = limit {
        frame["limit"] = json!(limit);
    }
    c.send(frame).await;
    let answer = c.expect("members").await;
    assert_eq!(answer["room"], room, "{answer}");
    answer
}

/// Every page from `after` on, `limit` at a time, checking each page's cursor and
/// total; the nicks in the order received.
async fn walk(
    c: &mut Client,
    room: &str,
    after: Option<&str>,
    limit: u64,
    total: u64,
) -> Vec<String> {
    let mut after = after.map(str::to_owned);
    let mut all = Vec::new();
    loop {
        let p = page(c, room, after.as_deref(), Some(limit)).await;
        assert_eq!(p["total"], total, "{p}");
        let nicks = strings(&p["nicks"]);
        assert!(nicks.len() as u64 <= limit, "{p}");
        all.extend(nicks.iter().cloned());
        match p.get("next") {
            None => return all,
            Some(next) => {
                assert_eq!(nicks.last().map(String::as_str), next.as_str(), "{p}");
                after = next.as_str().map(str::to_owned);
            }
        }
    }
}

fn sorted(nicks: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = nicks.iter().map(|n| (*n).to_owned()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_room_at_the_limit_is_listed_whole_and_a_crowd_by_the_page() {
    let server = crowd_server().await;
    let mut first = fill(&server, "hall", &["zed", "amy"]).await;
    // The third member makes a room at the limit: the list as v1 sends it, whole and in
    // the order the members came, with neither a count nor a cursor.
    let mut kim = server.login("kim").await;
    let joined = kim.join("hall").await;
    assert_eq!(
        joined,
        json!({"type": "joined", "room": "hall", "head": 0, "epoch": joined["epoch"],
               "nicks": ["zed", "amy", "kim"]}),
    );
    kim.expect_nothing_queued().await;
    // A fourth makes a crowd: the first page (the announce limit's worth) in nick order,
    // the total, and where to continue.
    let mut bea = server.login("bea").await;
    let joined = bea.join("hall").await;
    assert_eq!(joined["nicks"], json!(["amy", "bea", "kim"]), "{joined}");
    assert_eq!(joined["members"], 4, "{joined}");
    assert_eq!(joined["next"], "kim", "{joined}");
    let rest = page(&mut bea, "hall", Some("kim"), None).await;
    assert_eq!(
        rest,
        json!({"type": "members", "room": "hall", "nicks": ["zed"], "total": 4})
    );
    // A member of the room before it was a crowd may page too; it got the arrivals
    // below the limit as before, and the crowd's arrival not at all.
    let zed = &mut first[0];
    assert_eq!(
        zed.next_of("presence").await["nicks"],
        json!(["zed", "amy"])
    );
    assert_eq!(
        zed.next_of("presence").await["nicks"],
        json!(["zed", "amy", "kim"])
    );
    zed.expect_nothing_queued().await;
    let all = walk(zed, "hall", None, 2, 4).await;
    assert_eq!(all, ["amy", "bea", "kim", "zed"]);
    kim.expect_nothing_queued().await;
}

#[tokio::test]
async fn pages_list_every_member_once_in_nick_order() {
    let server = crowd_server().await;
    let nicks = [
        "walt", "Zoe", "abe", "mia", "kai", "Bob", "lena", "ugo", "ida", "cy", "Émile",
    ];
    let _members = fill(&server, "hall", &nicks).await;
    let mut late = server.login("nils").await;
    let joined = late.join("hall").await;
    let mut everyone: Vec<&str> = nicks.to_vec();
    everyone.push("nils");
    let want = sorted(&everyone);
    assert_eq!(joined["members"], 12, "{joined}");
    assert_eq!(strings(&joined["nicks"]), want[..3], "{joined}");
    // Walking on from `joined` gets the rest; walking from the start, in pages of any
    // size, gets everyone: each once, in code point order ("Zoe" before "abe", "Émile"
    // last).
    let rest = walk(&mut late, "hall", joined["next"].as_str(), 4, 12).await;
    assert_eq!(rest, want[3..]);
    for size in [1, 5, 12, 100] {
        assert_eq!(
            walk(&mut late, "hall", None, size, 12).await,
            want,
            "pages of {size}"
        );
    }
    assert_eq!(want.last().map(String::as_str), Some("Émile"));
}

#[tokio::test]
async fn a_cursor_survives_members_coming_and_going() {
    let server = crowd_server().await;
    let mut members = fill(&server, "hall", &["ann", "ben", "cat", "dan", "eve"]).await;
    let reader = &mut members[4];
    let first = page(reader, "hall", None, Some(2)).await;
    assert_eq!(first["nicks"], json!(["ann", "ben"]));
    assert_eq!(first["next"], "ben");
    // Between two pages "ben" (the cursor itself) leaves and "abe" (before it) comes.
    members[1]
        .send(json!({"type": "leave", "room": "hall"}))
        .await;
    members[1].next_of("left").await;
    let _abe = server.member("abe", "hall").await;
    let reader = &mut members[4];
    let second = page(reader, "hall", Some("ben"), Some(2)).await;
    assert_eq!(
        second,
        json!({"type": "members", "room": "hall", "nicks": ["cat", "dan"], "total": 5, "next": "dan"})
    );
}

#[tokio::test]
async fn a_cursor_past_the_end_gets_an_empty_last_page() {
    let server = crowd_server().await;
    let mut members = fill(&server, "hall", &["ann", "ben"]).await;
    let c = &mut members[1];
    let p = page(c, "hall", Some("zzzz"), None).await;
    assert_eq!(
        p,
        json!({"type": "members", "room": "hall", "nicks": [], "total": 2})
    );
    // Not a crowd: still answered, the whole list on one page.
    let p = page(c, "hall", None, None).await;
    assert_eq!(
        p,
        json!({"type": "members", "room": "hall", "nicks": ["ann", "ben"], "total": 2})
    );
}

#[tokio::test]
async fn a_big_rooms_joiner_gets_a_small_frame_and_pages_are_capped() {
    // An announce limit above a page: the first page is then a whole page (100), not
    // the announce limit's worth.
    let server = TestServer::with(|c| c.announce_limit = 120).await;
    let mut nicks = Vec::new();
    for i in 0..129 {
        nicks.push(format!("member-with-a-long-name-{i:03}"));
    }
    let refs: Vec<&str> = nicks.iter().map(String::as_str).collect();
    let _members = fill(&server, "big", &refs).await;
    let mut late = server.login("late").await;
    late.send(json!({"type": "join", "room": "big"})).await;
    let joined = late.expect("joined").await;
    let listed = strings(&joined["nicks"]);
    assert_eq!(listed.len(), 100, "{joined}");
    assert_eq!(joined["members"], 130);
    assert_eq!(joined["next"].as_str(), listed.last().map(String::as_str));
    let bytes = joined.to_string().len();
    assert!(
        bytes < 3500,
        "{bytes} bytes (the whole list alone is ~3.9 KB)"
    );
    // Beyond the cap is the cap; 0 is 1; none is the cap.
    let p = page(&mut late, "big", None, Some(1000)).await;
    assert_eq!(strings(&p["nicks"]).len(), 100);
    assert_eq!(p["total"], 130);
    let p = page(&mut late, "big", None, Some(0)).await;
    assert_eq!(p["nicks"], json!(["late"]));
    assert_eq!(p["next"], "late");
    let p = page(&mut late, "big", None, None).await;
    assert_eq!(strings(&p["nicks"]), listed);
}

#[tokio::test]
async fn members_needs_a_joined_room_and_a_well_formed_request() {
    let server = crowd_server().await;
    let _members = fill(&server, "hall", &["ann", "ben", "cat", "dan"]).await;
    let mut owner = server.login("olga").await;
    owner
        .send(json!({"type": "create_room", "room": "ops", "private": true}))
        .await;
    owner.expect("room_created").await;
    let mut out = server.login("oscar").await;
    let refused = [
        // Not joined: the public room exists, the connection is not in it.
        (json!({"type": "members", "room": "hall"}), "not_joined"),
        // A private room it may not see: the same wall as `join` or `history`.
        (json!({"type": "members", "room": "ops"}), "forbidden"),
        (json!({"type": "members"}), "invalid_room"),
        (json!({"type": "members", "room": 7}), "invalid_room"),
        (
            json!({"type": "members", "room": "Not A Room"}),
            "invalid_room",
        ),
        (
            json!({"type": "members", "room": "hall", "after": 5}),
            "bad_json",
        ),
        (
            json!({"type": "members", "room": "hall", "limit": -1}),
            "bad_json",
        ),
        (
            json!({"type": "members", "room": "hall", "limit": "10"}),
            "bad_json",
        ),
        (
            json!({"type": "members", "room": "hall", "after": "x".repeat(33)}),
            "bad_json",
        ),
    ];
    for (frame, code) in refused {
        out.send(frame.clone()).await;
        let e = out.expect_error(code).await;
        assert_eq!(e["ref"], "members", "{frame} → {e}");
    }
    // The owner, a member of the private room, may list it.
    owner.join("ops").await;
    let p = page(&mut owner, "ops", None, None).await;
    assert_eq!(p["nicks"], json!(["olga"]));
    // Before hello, like any other frame.
    let mut fresh = server.client().await;
    fresh.send(json!({"type": "members", "room": "hall"})).await;
    assert_eq!(fresh.expect_error("hello_required").await["ref"], "members");
    // Every refusal left the connection open.
    out.expect_nothing_queued().await;
}

#[tokio::test]
async fn pages_draw_on_the_read_budget() {
    // One name a second, bursts of five.
    let server = TestServer::with(|c| {
        c.announce_limit = LIMIT;
        c.read_rate = 1;
    })
    .await;
    let mut members = fill(&server, "hall", &["ann", "ben", "cat", "dan", "eve"]).await;
    let c = &mut members[4];
    let p = page(c, "hall", None, Some(5)).await;
    assert_eq!(strings(&p["nicks"]).len(), 5);
    c.send(json!({"type": "members", "room": "hall"})).await;
    assert_eq!(c.expect_error("rate_limited").await["ref"], "members");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let p = page(c, "hall", Some("dan"), None).await;
    assert_eq!(p["nicks"], json!(["eve"]));
}

#[ignore = "needs redis-server; `cargo xtask test` runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_span_the_instances_of_a_cluster() {
    require();
    let redis = RedisServer::start().await;
    let servers = redis.instances(3, |c| c.announce_limit = 2).await;
    let _a = fill(&servers[0], "hall", &["eel", "ant"]).await;
    let mut b = fill(&servers[1], "hall", &["fox", "bee"]).await;
    let _c = fill(&servers[2], "hall", &["cat"]).await;
    let mut late = servers[0].login("late").await;
    let joined = late.join("hall").await;
    assert_eq!(joined["nicks"], json!(["ant", "bee"]), "{joined}");
    assert_eq!(
        (joined["members"].as_u64(), joined["next"].as_str()),
        (Some(6), Some("bee"))
    );
    let want = sorted(&["ant", "bee", "cat", "eel", "fox", "late"]);
    assert_eq!(walk(&mut late, "hall", Some("bee"), 2, 6).await, want[2..]);
    // The same order and total from another instance, for a member there.
    let bee = &mut b[1];
    assert_eq!(walk(bee, "hall", None, 4, 6).await, want);
}
