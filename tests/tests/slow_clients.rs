//! Clients that would hold the server: a header that never ends, a body that pauses or trickles,
//! more connections than the limit, a JSON body over its limit, a request that takes too long.
//! Each is cut off within its configured limit while other clients are answered. Raw sockets, so
//! the test controls every byte and its timing.

use std::time::{Duration, Instant};

use invite_tests::app::{Stack, TestApp, people_csv};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The longest any test here waits for the server; the limits under test are 1 s.
const BOUND: Duration = Duration::from_secs(10);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.settings.api_addr).await.unwrap()
}

/// Everything the server sends until it closes the connection (EOF or reset).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.expect("the server closes the connection");
    String::from_utf8_lossy(&received).into_owned()
}

/// One whole response on a kept-alive connection (headers, then `Content-Length` bytes).
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")?
                        .parse()
                        .ok()
                })
                .unwrap_or(0usize);
            if body.len() >= length {
                return text;
            }
        }
        let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {text}");
        received.extend_from_slice(&buf[..n]);
    }
}

/// A `GET /healthz` on a connection of its own answers 200 (through the test's client).
async fn assert_served(app: &TestApp) {
    let response = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// A connection that has sent the head of a `POST` to the workspace route `route` (with the admin
/// token) announcing a body of `length` bytes, which the test then sends itself.
async fn posting(app: &TestApp, route: &str, content_type: &str, length: usize) -> TcpStream {
    let path = app.url(route).replace(&app.base, "");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n",
        app.token
    );
    let mut stream = connect(app).await;
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Sends `body` a byte every `pause` on `stream`, whose head is sent, while a normal request is
/// answered; returns what the server sent until it closed the connection, and how long that took.
async fn trickle(
    app: &TestApp,
    stream: TcpStream,
    body: Vec<u8>,
    pause: Duration,
) -> (String, Duration) {
    let started = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let pacer = tokio::spawn(async move {
        for byte in body {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            // The trickle's own pace.
            tokio::time::sleep(pause).await;
        }
    });

    assert_served(app).await;
    let mut answer = String::new();
    tokio::time::timeout(BOUND, reader.read_to_string(&mut answer))
        .await
        .expect("the server closes the connection")
        .ok();
    pacer.abort();
    (answer, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_in_the_middle_of_its_header_is_cut_off() {
    let app = TestApp::spawn_with(Stack::Sqlite, |s| {
        s.http_header_timeout = Duration::from_secs(1);
    })
    .await;
    let mut silent = connect(&app).await;
    silent
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    let started = Instant::now();

    assert_served(&app).await;
    read_until_closed(&mut silent).await;

    let held = started.elapsed();
    assert!(held < Duration::from_secs(3), "held {held:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_over_its_limit_gets_431() {
    let app = TestApp::spawn_without_workers(Stack::Sqlite).await;
    let mut large = connect(&app).await;
    let padding = "a".repeat(invite_worker::server::MAX_HEAD_BYTES);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: test\r\nX-Pad: {padding}\r\n\r\n");
    // The server may close before it has read everything; its answer is what counts.
    let _ = large.write_all(request.as_bytes()).await;

    let answer = read_until_closed(&mut large).await;

    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_left_idle_is_closed_after_the_header_timeout() {
    let app = TestApp::spawn_with(Stack::Sqlite, |s| {
        s.http_header_timeout = Duration::from_secs(1);
    })
    .await;
    let mut idle = connect(&app).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    let started = Instant::now();

    let after = read_until_closed(&mut idle).await;

    let held = started.elapsed();
    assert!(held < Duration::from_secs(3), "held {held:?}");
    assert!(!after.contains("200"), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_trickled_at_one_byte_a_second_is_cut_off_after_the_grace_period() {
    let app = TestApp::spawn_with(Stack::Sqlite, |s| {
        s.http_body_min_rate = 100;
        s.http_body_min_rate_grace = Duration::from_secs(1);
        s.http_body_idle_timeout = Duration::from_secs(5);
    })
    .await;
    let upload = posting(&app, "/imports", "text/csv", 1_000_000).await;
    let body = people_csv(10).into_bytes();

    let (answer, held) = trickle(&app, upload, body, Duration::from_secs(1)).await;

    assert!(held < Duration::from_secs(3), "held {held:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    assert_eq!(app.get_json("/imports").await["imports"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_cut_off_after_the_idle_timeout() {
    let app = TestApp::spawn_with(Stack::Sqlite, |s| {
        s.http_body_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stalled = posting(&app, "/groups", "application/json", 100).await;
    stalled.write_all(br#"{"name":"#).await.unwrap();
    let started = Instant::now();

    assert_served(&app).await;
    let answer = read_until_closed(&mut stalled).await;

    let held = started.elapsed();
    assert!(held < Duration::from_secs(3), "held {held:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_not_answered_within_the_request_timeout_gets_503() {
    let app = TestApp::spawn_with(Stack::Sqlite, |s| {
        s.http_request_timeout = Duration::from_secs(1);
        // Fast enough for the body rules: only the total time is over.
        s.http_body_min_rate = 0;
    })
    .await;
    let body = br#"{"name":"a group whose name takes its time"}"#;
    let slow = posting(&app, "/groups", "application/json", body.len()).await;

    let pause = Duration::from_millis(200);
    let (answer, held) = trickle(&app, slow, body.to_vec(), pause).await;

    assert!(held < Duration::from_secs(3), "held {held:?}");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"timeout\""), "{answer}");
}

/// An upload of a small CSV sent in four pieces 500 ms apart: 2 s in all, twice the 1 s limits
/// of the tests that use it. Stops sending if the server closed the connection.
async fn steady_upload(app: &TestApp) -> TcpStream {
    let csv = people_csv(3);
    let mut upload = posting(app, "/imports", "text/csv", csv.len()).await;
    for piece in csv.as_bytes().chunks(csv.len() / 4 + 1) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if upload.write_all(piece).await.is_err() {
            break;
        }
    }
    upload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_slower_than_the_request_timeout_but_steady_is_accepted() {
    let app = TestApp::spawn_with(Stack::Sqlite, |s| {
        s.http_request_timeout = Duration::from_secs(1);
        s.http_body_min_rate = 0;
    })
    .await;
    let mut upload = steady_upload(&app).await;
    let answer = read_response(&mut upload).await;

    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let app = TestApp::spawn_with(Stack::Sqlite, |s| s.http_max_connections = 2).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut kept_alive = connect(&app).await;
        kept_alive.write_all(request).await.unwrap();
        assert!(
            read_response(&mut kept_alive)
                .await
                .starts_with("HTTP/1.1 200")
        );
        held.push(kept_alive);
    }

    let mut third = connect(&app).await;
    third.write_all(request).await.unwrap();
    let mut buf = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond the limit: {early:?}");
    drop(held.pop());
    let answer = read_response(&mut third).await;

    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_body_over_its_limit_gets_413_and_uploads_keep_theirs() {
    let app = TestApp::spawn_with(Stack::Sqlite, |s| s.json_body_limit = 1024).await;
    let big = "x".repeat(2048);
    let csv = people_csv(200);
    assert!(csv.len() > 8 * 1024);

    let refused = app.post_json("/groups", json!({ "name": big })).await;
    let multipart = app.upload(csv.clone()).await;
    let raw = app
        .client
        .post(app.url("/imports"))
        .bearer_auth(&app.token)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();

    assert_eq!(refused.status(), 413);
    let error: Value = refused.json().await.unwrap();
    assert!(error["error"]["message"].is_string(), "{error}");
    assert_eq!(multipart.status(), 202);
    assert_eq!(raw.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_longer_than_the_upload_timeout_gets_503() {
    let app = TestApp::spawn_with(Stack::Sqlite, |s| {
        s.http_upload_timeout = Duration::from_secs(1);
        s.http_body_min_rate = 0;
    })
    .await;
    let mut upload = steady_upload(&app).await;
    let answer = read_until_closed(&mut upload).await;

    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"timeout\""), "{answer}");
    let listed = app.get_json("/imports").await;
    assert_eq!(listed["imports"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_its_responses_is_cut_off() {
    let app = TestApp::spawn_with(Stack::Sqlite, |s| {
        s.http_body_idle_timeout = Duration::from_secs(1);
        // Long enough that only the stalled write can end the connection within the bound.
        s.http_header_timeout = Duration::from_secs(60);
    })
    .await;
    let mut client = connect(&app).await;
    // 200 answers of the 79 KB document: more than the kernel's buffers on both sides hold.
    let requests = b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: test\r\n\r\n".repeat(200);
    client.write_all(&requests).await.unwrap();

    // The client reads nothing for three times the limit, then reads what is left.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    let received = read_until_closed(&mut client).await;

    let answers = received.matches("HTTP/1.1 200").count();
    assert!(answers < 200, "all {answers} answers were written");
    assert!(started.elapsed() < BOUND);
    assert_served(&app).await;
}
