//! Two instances behind nginx: the instance under one of two chatting pages is killed and both pages end with every message once.

use super::*;

#[ignore = "needs Chromium, chromedriver, the web bundle, redis-server and nginx; `cargo xtask test` runs it"]
#[tokio::test]
async fn behind_a_load_balancer_a_killed_instance_loses_nothing() {
    require();
    // Both start panicking with what to install when their binary is missing.
    let redis = crate::support::redis::RedisServer::start().await;
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let mut instances = Vec::new();
    for name in ["a", "b"] {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", crate::support::free_port())
            .parse()
            .unwrap();
        let db = dir.path().join(format!("{name}.db"));
        instances.push(Huddle::start(&db, addr, &["--redis", &url]).await);
    }
    let nginx = crate::support::nginx::Nginx::start(&[instances[0].addr, instances[1].addr]).await;
    // One URL for everyone: nginx picks the instance, with no stickiness.
    let base = format!("http://{}/", nginx.addr);
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(900, 700).await;
    let (bob, _p2) = driver.browser(900, 700).await;
    sign_in(&alice, &base, "alice").await;
    // Alice is the only one signed in yet: the instance with a session is hers.
    let hers = if sessions_live(instances[0].addr).await == 1 {
        0
    } else {
        1
    };
    assert_eq!(sessions_live(instances[hers].addr).await, 1);
    sign_in(&bob, &base, "bob").await;

    // Alice keeps talking through the death of her instance.
    let (expected, sender) = keep_talking(&alice, 30);
    wait_message(&bob, "m8").await;
    instances[hers].kill9().await;
    sender.await.unwrap();
    wait_all_acked(&alice).await;

    for (who, b) in [("alice", &alice), ("bob", &bob)] {
        wait_for_all(b, who, &expected).await;
        wait_css(b, ".status-connected").await;
    }
    assert!(welcomes(&alice).await >= 2, "alice never reconnected");
    // She is on the survivor now, under the same nick.
    let survivor = &instances[1 - hers];
    assert!(sessions_live(survivor.addr).await >= 2);
    let mut probe = Client::connect(&survivor.ws_url()).await;
    assert_eq!(probe.hello("probe").await["type"], "welcome");
    let texts: Vec<String> = probe
        .whole_history("lobby")
        .await
        .into_iter()
        .map(|(_, _, _, text)| text)
        .collect();
    assert_eq!(texts, expected);
}
