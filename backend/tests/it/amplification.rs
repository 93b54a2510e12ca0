//! Requests whose answers could be far larger than the request: each is bounded however
//! big the server's data gets.

use crate::support::{TestServer, WAIT};
use backend::{HistoryStore, NewMessage, SqliteStore};
use serde_json::json;

/// A database holding `rooms` rooms of one message each.
async fn many_rooms(db: &std::path::Path, rooms: usize) {
    let store = SqliteStore::open(db).unwrap();
    let names: Vec<String> = (0..rooms).map(|i| format!("room-{i:05}")).collect();
    for chunk in names.chunks(5_000) {
        let batch = chunk
            .iter()
            .map(|room| NewMessage {
                room: room.clone(),
                nick: "filler".into(),
                nick_key: "filler".into(),
                id: "m1".into(),
                text: "x".into(),
            })
            .collect();
        store.append_batch(batch).await.unwrap();
    }
}

#[tokio::test]
async fn list_rooms_of_fifty_thousand_rooms_answers_one_page() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("huddle.db");
    many_rooms(&db, 50_000).await;
    let server = TestServer::on_db(db, |_| {}).await;
    let mut c = server.login("alice").await;

    c.send(json!({"type": "list_rooms"})).await;
    let page = c.expect("rooms").await;
    assert_eq!(page["total"], 50_000);
    assert_eq!(page["rooms"].as_array().unwrap().len(), 100);
    assert!(
        page.to_string().len() < 16 * 1024,
        "{} bytes",
        page.to_string().len()
    );
    assert_eq!(page["next"], "100");

    // Asking for more than a page still gets a page; the last page has no `next`.
    c.send(json!({"type": "list_rooms", "limit": 100_000, "cursor": "49990"}))
        .await;
    let last = c.expect("rooms").await;
    assert_eq!(last["rooms"].as_array().unwrap().len(), 10);
    assert!(last.get("next").is_none(), "{last}");

    // And the answer is quick, page after page (no full scan or sort per request).
    let started = std::time::Instant::now();
    let mut cursor = json!("25000");
    for _ in 0..20 {
        c.send(json!({"type": "list_rooms", "cursor": cursor}))
            .await;
        cursor = c.expect("rooms").await["next"].clone();
    }
    assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
}
