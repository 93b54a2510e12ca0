//! Signing in (protocol v2): built-in accounts over HTTP, `hello {token}` with an
//! account token or a host application's JWT, sign-out, refresh and expiry, each row of
//! the contract's tables and each bad input against a real server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Client, TestServer};

const SECRET: &str = "an HS256 secret of at least thirty-two bytes!";

/// `POST path` with a JSON body (and a bearer token); the status and JSON answer.
async fn post(
    server: &TestServer,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        server.addr,
        body.len()
    );
    if let Some(token) = bearer {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let status = raw[9..12].parse().unwrap();
    let json = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

async fn register(server: &TestServer, user: &str, password: &str) -> (u16, Value) {
    post(
        server,
        "/api/auth/register",
        Some(json!({"user": user, "password": password})),
        None,
    )
    .await
}

async fn login(server: &TestServer, user: &str, password: &str) -> (u16, Value) {
    post(
        server,
        "/api/auth/login",
        Some(json!({"user": user, "password": password})),
        None,
    )
    .await
}

/// A connection that sent `hello {token}`; its first answer.
async fn hello_token(server: &TestServer, token: &str) -> (Client, Value) {
    let mut c = server.client().await;
    c.send(json!({"type": "hello", "token": token})).await;
    let answer = c.recv().await;
    (c, answer)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt(claims: &Value, secret: &str) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn register_log_in_and_log_out_as_the_contract_says() {
    let server = TestServer::start().await;
    let (status, body) = register(&server, "alice", "correct horse").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"], "alice");
    let first = body["token"].as_str().unwrap().to_owned();
    assert_eq!(register(&server, "alice", "another pass").await.0, 409);
    let (status, body) = register(&server, "Alice!", "correct horse").await;
    assert_eq!(
        (status, body["error"].clone()),
        (422, json!("invalid_user"))
    );
    let (status, body) = register(&server, "bob", "short").await;
    assert_eq!(
        (status, body["error"].clone()),
        (422, json!("weak_password"))
    );
    // An unknown user and a wrong password answer alike.
    let wrong = login(&server, "alice", "wrong password").await;
    let unknown = login(&server, "nobody", "wrong password").await;
    assert_eq!(wrong.0, 401);
    assert_eq!(wrong.1, unknown.1);
    assert_eq!(wrong.1["error"], "invalid_credentials");
    let (status, body) = login(&server, "alice", "correct horse").await;
    assert_eq!(status, 200, "{body}");
    let second = body["token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    // Both tokens sign in as alice, whose nick is her name.
    let (mut laptop, w) = hello_token(&server, &first).await;
    assert_eq!(
        (w["type"].clone(), w["user"].clone(), w["nick"].clone()),
        (json!("welcome"), json!("alice"), json!("alice"))
    );
    let (mut phone, _) = hello_token(&server, &second).await;
    // Logging out one token closes its connections with 4003 and only those.
    assert_eq!(
        post(&server, "/api/auth/logout", None, Some(&first))
            .await
            .0,
        204
    );
    assert_eq!(laptop.expect_close().await, Some(4003));
    phone.expect_nothing_queued().await;
    let (_c, answer) = hello_token(&server, &first).await;
    assert_eq!(answer["code"], "invalid_token");
    assert_eq!(post(&server, "/api/auth/logout", None, None).await.0, 401);
}

#[tokio::test]
async fn repeated_failures_are_throttled() {
    let server = TestServer::start().await;
    register(&server, "carol", "carol's password").await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(login(&server, "carol", "not it at all").await.0);
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // Even the right password waits now.
    let (status, body) = login(&server, "carol", "carol's password").await;
    assert_eq!(
        (status, body["error"].clone()),
        (429, json!("rate_limited"))
    );
}

#[tokio::test]
async fn closed_registration_refuses_and_a_guest_cannot_take_an_account_name() {
    let server = TestServer::with(|c| c.registration = backend::Registration::Closed).await;
    let (status, body) = register(&server, "dave", "dave's password").await;
    assert_eq!(
        (status, body["error"].clone()),
        (403, json!("registration_closed"))
    );
    let open = TestServer::start().await;
    register(&open, "erin", "erin's password").await;
    let mut guest = open.client().await;
    guest.send(json!({"type": "hello", "nick": "ERIN"})).await;
    guest.expect_error("nick_taken").await;
}

#[tokio::test]
async fn a_host_token_signs_in_refreshes_and_expires() {
    let server = TestServer::with(|c| c.jwt_secret = Some(SECRET.to_owned())).await;
    let token = jwt(
        &json!({"sub": "u-42", "name": "Grace", "exp": now() + 3600}),
        SECRET,
    );
    let (mut c, w) = hello_token(&server, &token).await;
    assert_eq!(
        (w["user"].clone(), w["nick"].clone(), w["session"].clone()),
        (json!("u-42"), json!("Grace"), json!(""))
    );
    // In-band refresh: no answer, the connection stays.
    let fresh = jwt(&json!({"sub": "u-42", "exp": now() + 7200}), SECRET);
    c.send(json!({"type": "hello", "token": fresh})).await;
    c.expect_nothing_queued().await;
    // A token for someone else on the same connection is refused.
    let other = jwt(&json!({"sub": "u-43", "exp": now() + 3600}), SECRET);
    c.send(json!({"type": "hello", "token": other})).await;
    c.expect_error("invalid_token").await;
    // Bad tokens: each refused with invalid_token, and the connection stays for another.
    let header_none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
    let payload = base64_url(&json!({"sub": "x", "exp": now() + 60}).to_string());
    let bad = [
        format!("{header_none}.{payload}."),
        jwt(
            &json!({"sub": "x", "exp": now() + 60}),
            "a different secret, also long enough",
        ),
        jwt(
            &json!({"sub": "x", "exp": now() + 60, "nbf": now() + 600}),
            SECRET,
        ),
        jwt(&json!({"sub": "x"}), SECRET),
        jwt(&json!({"sub": "x", "exp": now() - 600}), SECRET),
        "hk_not_a_token".to_owned(),
    ];
    let mut d = server.client().await;
    for token in bad {
        d.send(json!({"type": "hello", "token": token})).await;
        d.expect_error("invalid_token").await;
    }
    let w = {
        d.send(json!({"type": "hello", "token": jwt(&json!({"sub": "u-44", "exp": now() + 60}), SECRET)})).await;
        d.expect("welcome").await
    };
    assert_eq!(w["nick"], "u-44", "name defaults to sub");
    // A token that expires (within the 60 s allowance for clock skew, so a few seconds
    // from now) closes its connection with 4003.
    let short = jwt(&json!({"sub": "u-45", "exp": now() - 57}), SECRET);
    let (mut e, w) = hello_token(&server, &short).await;
    assert_eq!(w["type"], "welcome");
    let started = std::time::Instant::now();
    assert_eq!(e.expect_close().await, Some(4003));
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn without_a_key_host_tokens_are_refused() {
    let server = TestServer::start().await;
    let token = jwt(&json!({"sub": "u-1", "exp": now() + 60}), SECRET);
    let (_c, answer) = hello_token(&server, &token).await;
    assert_eq!(answer["code"], "invalid_token");
}

fn base64_url(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[tokio::test]
async fn an_es256_host_token_verified_by_a_public_key_file() {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("host.pem");
    std::fs::write(&key, pair.public_key_pem()).unwrap();
    let server = TestServer::with(|c| c.jwt_public_key = Some(key)).await;
    let private = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    let claims = json!({"sub": "emp-7", "name": "Ada", "exp": now() + 600});
    let token = encode(
        &Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &private,
    )
    .unwrap();
    let (_c, w) = hello_token(&server, &token).await;
    assert_eq!(
        (w["user"].clone(), w["nick"].clone()),
        (json!("emp-7"), json!("Ada"))
    );
    // The same claims signed with the public key as an HS256 secret (key confusion).
    let forged = jwt(&claims, &pair.public_key_pem());
    let (_d, answer) = hello_token(&server, &forged).await;
    assert_eq!(answer["code"], "invalid_token");
}

#[tokio::test]
async fn metrics_carry_no_user_names() {
    let server = TestServer::start().await;
    register(&server, "secretname", "secretname's password").await;
    let (_, body) = login(&server, "secretname", "secretname's password").await;
    let (mut c, _) = hello_token(&server, body["token"].as_str().unwrap()).await;
    c.join("lobby").await;
    c.say_acked("lobby", "hello").await;
    let (_, metrics) = crate::support::get(server.addr, "/metrics").await;
    assert!(metrics.contains("huddle_"), "{metrics}");
    assert!(!metrics.contains("secretname"), "{metrics}");
}

#[tokio::test]
async fn huddle_user_add_makes_an_account_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("huddle.db");
    let add = |name: &str, password: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_huddle"))
            .args(["--db", db.to_str().unwrap(), "user", "add", name])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let made = add("frank", "frank's password");
    assert!(made.status.success(), "{made:?}");
    let again = add("frank", "another password");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("taken"),
        "{again:?}"
    );
    let weak = add("gina", "short");
    assert!(
        String::from_utf8_lossy(&weak.stderr).contains("8"),
        "{weak:?}"
    );
    // The account signs in on a server using that database, with registration closed.
    let server = TestServer::on_db(db.clone(), |c| {
        c.registration = backend::Registration::Closed;
    })
    .await;
    let (status, body) = login(&server, "frank", "frank's password").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn one_address_cannot_register_accounts_without_end() {
    let server = TestServer::with(|c| {
        c.ip_join_rate = 1;
        c.ip_join_burst = 2;
    })
    .await;
    assert_eq!(register(&server, "reg1", "password one").await.0, 201);
    assert_eq!(register(&server, "reg2", "password two").await.0, 201);
    let (status, body) = register(&server, "reg3", "password three").await;
    assert_eq!(
        (status, body["error"].clone()),
        (429, json!("rate_limited"))
    );
}

#[tokio::test]
async fn a_host_token_cannot_speak_for_an_account_of_the_same_name() {
    let server = TestServer::with(|c| c.jwt_secret = Some(SECRET.to_owned())).await;
    // Someone registers the name the host application uses for one of its people...
    register(&server, "emp-9", "a long enough password").await;
    // ... and the host's emp-9 is refused rather than made the same user.
    let token = jwt(&json!({"sub": "emp-9", "exp": now() + 600}), SECRET);
    let (_c, answer) = hello_token(&server, &token).await;
    assert_eq!(answer["code"], "invalid_token");
    // The other way round: a host user seen first keeps the name from registration.
    let token = jwt(&json!({"sub": "emp-10", "exp": now() + 600}), SECRET);
    let (_d, w) = hello_token(&server, &token).await;
    assert_eq!(w["user"], "emp-10");
    assert_eq!(
        register(&server, "emp-10", "a long enough password")
            .await
            .0,
        409
    );
}
