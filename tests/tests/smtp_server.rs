//! Proves the in-process SMTP test server works against lettre's pooled async transport,
//! including the ways it can be made to misbehave (outages, 421, slow replies) and its timings.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use futures::future::join_all;
use invite_tests::smtp::{ReplyPlan, SmtpServer, max_in_any_window};
use lettre::message::MultiPart;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Generous upper bound for anything in these tests to happen.
const WAIT: Duration = Duration::from_secs(20);

/// A pooled, plaintext, unauthenticated transport to the test server.
fn transport(server: &SmtpServer) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port())
        .timeout(Some(WAIT))
        .build()
}

/// The subject, text and HTML used for message `i`.
fn content(i: usize) -> (String, String, String) {
    let subject = format!("Einladung für Jürgen №{i}");
    // The line starting with "." exercises dot-stuffing end to end.
    let text = format!("Hallo Jürgen {i},\r\n.a line starting with a dot\r\nbis bald");
    let html = format!("<p>Hallo <b>Jürgen</b> {i}</p><p>.dot</p>");
    (subject, text, html)
}

/// A multipart/alternative message to `to` with the content for `i`.
fn message(to: &str, i: usize) -> Message {
    let (subject, text, html) = content(i);
    Message::builder()
        .from("Inviter <noreply@example.com>".parse().unwrap())
        .to(to.parse().unwrap())
        .subject(subject)
        .multipart(MultiPart::alternative_plain_html(text, html))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_messages_are_received_intact() {
    let server = SmtpServer::start().await;
    assert_eq!(server.url(), format!("smtp://127.0.0.1:{}", server.port()));
    let mailer = transport(&server);

    let sends = (0..50).map(|i| {
        let mailer = mailer.clone();
        async move {
            let to = format!("user{i}@example.com");
            mailer.send(message(&to, i)).await
        }
    });
    for (i, result) in join_all(sends).await.into_iter().enumerate() {
        let response = result.unwrap_or_else(|e| panic!("message {i} failed: {e}"));
        assert!(response.is_positive(), "message {i}: {response:?}");
    }

    let messages = server.wait_for(50, WAIT).await.unwrap();
    assert_eq!(messages.len(), 50);
    assert_eq!(server.rejected(), 0);
    for i in 0..50 {
        let to = format!("user{i}@example.com");
        let msg = messages
            .iter()
            .find(|m| m.rcpt_to == [to.clone()])
            .unwrap_or_else(|| panic!("no message for {to}"));
        let (subject, text, html) = content(i);
        assert_eq!(msg.mail_from, "noreply@example.com");
        assert_eq!(msg.subject(), subject);
        assert_eq!(msg.text_body(), text);
        assert_eq!(msg.html_body(), html);
    }
}

#[tokio::test]
async fn transient_plan_fails_then_succeeds() {
    let server = SmtpServer::start().await;
    server.reply_for("Retry@Example.com", ReplyPlan::TransientTimes(2));
    let mailer = transport(&server);

    for attempt in 1..=2 {
        let err = mailer
            .send(message("retry@example.com", 7))
            .await
            .expect_err("scripted transient failure");
        assert!(err.is_transient(), "attempt {attempt}: {err:?}");
        assert!(!err.is_permanent(), "attempt {attempt}: {err:?}");
        assert_eq!(err.status().map(u16::from), Some(451), "{err:?}");
        assert_eq!(server.rejected(), attempt);
        assert!(server.messages().is_empty());
    }

    mailer.send(message("retry@example.com", 7)).await.unwrap();
    let messages = server.wait_for(1, WAIT).await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].subject(), content(7).0);
    assert_eq!(server.rejected(), 2);
}

#[tokio::test]
async fn permanent_plan_always_fails() {
    let server = SmtpServer::start().await;
    server.reply_for("nobody@example.com", ReplyPlan::Permanent);
    let mailer = transport(&server);

    for attempt in 1..=3 {
        let err = mailer
            .send(message("nobody@example.com", 1))
            .await
            .expect_err("scripted permanent failure");
        assert!(err.is_permanent(), "attempt {attempt}: {err:?}");
        assert!(!err.is_transient(), "attempt {attempt}: {err:?}");
        assert_eq!(err.status().map(u16::from), Some(550), "{err:?}");
    }
    assert_eq!(server.rejected(), 3);

    // Other recipients are unaffected, and the pool recovers from the aborted connections.
    mailer
        .send(message("somebody@example.com", 2))
        .await
        .unwrap();
    let messages = server.wait_for(1, WAIT).await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].rcpt_to, ["somebody@example.com"]);
}

#[tokio::test]
async fn wait_for_times_out_with_the_count() {
    let server = SmtpServer::start().await;
    let err = server
        .wait_for(1, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("got 0"), "{err}");
}

/// A raw SMTP client that reads one reply at a time.
struct RawClient {
    /// Buffered server output.
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    /// Client output.
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl RawClient {
    /// Connects and returns the greeting.
    async fn connect(server: &SmtpServer) -> (Self, String) {
        let stream = TcpStream::connect(("127.0.0.1", server.port()))
            .await
            .unwrap();
        Self::greeted(stream).await
    }

    /// Wraps a connected stream and returns the greeting.
    async fn greeted(stream: TcpStream) -> (Self, String) {
        let (reader, writer) = stream.into_split();
        let mut client = RawClient {
            reader: BufReader::new(reader),
            writer,
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    /// Asserts the server closed the connection: end of file, or a reset.
    async fn assert_closed(&mut self) {
        let mut rest = String::new();
        match self.reader.read_line(&mut rest).await {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("connection still open: {other:?} {rest:?}"),
        }
    }

    /// Reads one (possibly multi-line) reply, lines joined with "\n".
    async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            assert!(line.ends_with("\r\n"), "bad reply line {line:?}");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// Sends raw bytes.
    async fn send(&mut self, raw: &str) {
        self.writer.write_all(raw.as_bytes()).await.unwrap();
    }

    /// Sends one command and returns its reply.
    async fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }
}

#[tokio::test]
async fn raw_protocol_sequencing_pipelining_and_unstuffing() {
    let server = SmtpServer::start().await;
    let (mut c, greeting) = RawClient::connect(&server).await;
    assert!(greeting.starts_with("220 "), "{greeting}");

    let ehlo = c.cmd("EHLO client.test").await;
    for ext in ["PIPELINING", "8BITMIME", "SIZE"] {
        assert!(ehlo.contains(ext), "{ehlo}");
    }
    assert!(
        !ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert!(c.cmd("VRFY someone").await.starts_with("502 "));
    assert!(c.cmd("RCPT TO:<a@example.com>").await.starts_with("503 "));
    assert!(c.cmd("DATA").await.starts_with("503 "));
    assert!(c.cmd("NOOP").await.starts_with("250 "));
    assert!(c.cmd("HELO client.test").await.starts_with("250 "));

    // A pipelined transaction, the first of two on this connection.
    c.send("MAIL FROM:<a@example.com> BODY=8BITMIME\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n")
        .await;
    for expected in ["250 ", "250 ", "250 ", "354 "] {
        let reply = c.reply().await;
        assert!(reply.starts_with(expected), "{reply}");
    }
    c.send("Subject: one\r\n\r\n..leading dot\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250 "));

    // RSET discards a transaction in progress.
    assert!(c.cmd("MAIL FROM:<x@example.com>").await.starts_with("250 "));
    assert!(c.cmd("RSET").await.starts_with("250 "));
    assert!(c.cmd("MAIL FROM:<>").await.starts_with("250 "));
    assert!(c.cmd("RCPT TO:<d@example.com>").await.starts_with("250 "));
    assert!(c.cmd("DATA").await.starts_with("354 "));
    c.send("Subject: two\r\n\r\nbody\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250 "));
    assert!(c.cmd("QUIT").await.starts_with("221 "));

    let messages = server.wait_for(2, WAIT).await.unwrap();
    assert_eq!(messages[0].mail_from, "a@example.com");
    assert_eq!(messages[0].rcpt_to, ["b@example.com", "c@example.com"]);
    assert_eq!(messages[0].data, "Subject: one\r\n\r\n.leading dot\r\n");
    assert_eq!(messages[0].subject(), "one");
    assert_eq!(messages[0].text_body().trim_end(), ".leading dot");
    assert_eq!(messages[1].mail_from, "");
    assert_eq!(messages[1].rcpt_to, ["d@example.com"]);
    assert_eq!(messages[1].subject(), "two");
}

/// The kind of the first I/O error in `err`'s source chain.
fn io_error_kind(err: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cause = e.source();
    }
    None
}

#[tokio::test]
async fn go_down_refuses_and_come_back_serves_on_the_same_url() {
    let server = SmtpServer::start().await;
    let url = server.url();
    let mailer = transport(&server);
    mailer.send(message("a@example.com", 1)).await.unwrap();
    let (mut live, greeting) = RawClient::connect(&server).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    assert!(live.cmd("EHLO client.test").await.starts_with("250"));

    server.go_down().await;
    server.go_down().await; // Idempotent.
    live.assert_closed().await;
    let refused = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .expect_err("connection while down");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    // The pooled connection is dead and a new one is refused.
    let err = mailer
        .send(message("b@example.com", 2))
        .await
        .expect_err("send while down");
    assert!(!err.is_permanent(), "{err:?}");
    assert_eq!(err.status(), None, "{err:?}");
    assert_eq!(
        io_error_kind(&err),
        Some(ErrorKind::ConnectionRefused),
        "{err:?}"
    );

    server.come_back().await;
    server.come_back().await; // Idempotent.
    assert_eq!(server.url(), url);
    // The transport built before the outage still points at the right port.
    mailer.send(message("c@example.com", 3)).await.unwrap();
    let messages = server.wait_for(2, WAIT).await.unwrap();
    let rcpts: Vec<_> = messages.iter().map(|m| m.rcpt_to.concat()).collect();
    assert_eq!(rcpts, ["a@example.com", "c@example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn come_back_rebinds_while_a_client_keeps_retrying() {
    let server = SmtpServer::start().await;
    let port = server.port();
    for round in 0..5 {
        server.go_down().await;
        let (first_refusal, refused) = tokio::sync::oneshot::channel();
        // Retries as fast as it can, from the outage until the server is back.
        let client = tokio::spawn(async move {
            let mut first_refusal = Some(first_refusal);
            let mut refusals = 0_u64;
            loop {
                match TcpStream::connect(("127.0.0.1", port)).await {
                    Ok(stream) => return (stream, refusals),
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                        refusals += 1;
                        if let Some(tx) = first_refusal.take() {
                            let _ = tx.send(());
                        }
                        tokio::task::yield_now().await;
                    }
                    Err(e) => panic!("round {round}: unexpected connect error {e}"),
                }
            }
        });
        refused.await.expect("client saw a refusal");
        server.come_back().await;
        let (stream, refusals) = tokio::time::timeout(WAIT, client)
            .await
            .expect("client connected after come_back")
            .unwrap();
        assert!(refusals >= 1);
        let (mut c, greeting) = RawClient::greeted(stream).await;
        assert!(greeting.starts_with("220 "), "round {round}: {greeting}");
        assert!(c.cmd("QUIT").await.starts_with("221 "));
    }
}

#[tokio::test]
async fn go_down_ends_a_session_waiting_for_a_slow_reply_without_recording_it() {
    let server = SmtpServer::start().await;
    server.set_reply_delay(Duration::from_secs(3600));
    let (mut c, _) = RawClient::connect(&server).await;
    assert!(c.cmd("EHLO client.test").await.starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@example.com>").await.starts_with("250 "));
    assert!(
        c.cmd("RCPT TO:<slow@example.com>")
            .await
            .starts_with("250 ")
    );
    assert!(c.cmd("DATA").await.starts_with("354 "));
    c.send("Subject: slow\r\n\r\nbody\r\n.\r\n").await;

    // Whether or not the server has read the final "." yet, it never answers.
    server.go_down().await;
    c.assert_closed().await;
    assert!(server.messages().is_empty());
    assert!(server.attempts_to("slow@example.com").is_empty());

    server.come_back().await;
    server.set_reply_delay(Duration::ZERO);
    transport(&server)
        .send(message("slow@example.com", 1))
        .await
        .unwrap();
    assert_eq!(server.attempts_to("slow@example.com").len(), 1);
}

#[tokio::test]
async fn unavailable_answers_421_then_recovers() {
    let server = SmtpServer::start().await;
    let mailer = transport(&server);
    mailer.send(message("a@example.com", 1)).await.unwrap();

    server.set_unavailable(true);
    // Through the pooled session (refused at MAIL FROM) or a new one (refused at the
    // greeting), whichever the pool picks: each send is refused once.
    for attempt in 1..=3 {
        let err = mailer
            .send(message("b@example.com", 2))
            .await
            .expect_err("send while unavailable");
        assert!(err.is_transient(), "attempt {attempt}: {err:?}");
        assert!(!err.is_permanent(), "attempt {attempt}: {err:?}");
        assert_eq!(err.status().map(u16::from), Some(421), "{err:?}");
        assert_eq!(server.refused_421(), attempt);
    }
    assert_eq!(server.rejected(), 0);
    assert!(server.attempts_to("b@example.com").is_empty());

    server.set_unavailable(false);
    mailer.send(message("b@example.com", 2)).await.unwrap();
    assert_eq!(server.wait_for(2, WAIT).await.unwrap().len(), 2);
    assert_eq!(server.refused_421(), 3);
}

#[tokio::test]
async fn unavailable_refuses_greeting_and_next_mail_from_on_the_wire() {
    let server = SmtpServer::start().await;
    let (mut live, _) = RawClient::connect(&server).await;
    assert!(live.cmd("EHLO client.test").await.starts_with("250"));
    let (mut pipelining, _) = RawClient::connect(&server).await;
    assert!(pipelining.cmd("EHLO client.test").await.starts_with("250"));

    server.set_unavailable(true);
    let (mut fresh, greeting) = RawClient::connect(&server).await;
    assert_eq!(greeting, "421 4.3.2 Service not available");
    fresh.assert_closed().await;

    // A live session still answers other commands, then refuses the next transaction.
    assert!(live.cmd("NOOP").await.starts_with("250 "));
    assert_eq!(
        live.cmd("MAIL FROM:<a@example.com>").await,
        "421 4.3.2 Service not available"
    );
    live.assert_closed().await;

    // Pipelined commands after the refused MAIL FROM do not turn the close into a reset.
    pipelining
        .send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        .await;
    assert_eq!(pipelining.reply().await, "421 4.3.2 Service not available");
    let mut rest = String::new();
    assert_eq!(pipelining.reader.read_line(&mut rest).await.unwrap(), 0);

    assert_eq!(server.refused_421(), 3);
    server.set_unavailable(false);
    let (_, greeting) = RawClient::connect(&server).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    assert_eq!(server.refused_421(), 3);
}

#[tokio::test]
async fn attempts_and_accepted_times_record_every_end_of_data_reply() {
    let server = SmtpServer::start().await;
    server.reply_for("Flaky@Example.com", ReplyPlan::TransientTimes(1));
    server.reply_for("gone@example.com", ReplyPlan::Permanent);
    server.reply_for("lost@example.com", ReplyPlan::DeliveredButTransientTimes(1));
    let mailer = transport(&server);
    let before = Instant::now();

    mailer
        .send(message("flaky@example.com", 1))
        .await
        .unwrap_err();
    mailer.send(message("flaky@example.com", 1)).await.unwrap();
    mailer
        .send(message("gone@example.com", 2))
        .await
        .unwrap_err();
    mailer
        .send(message("lost@example.com", 3))
        .await
        .unwrap_err();
    mailer.send(message("fine@example.com", 4)).await.unwrap();

    let flaky = server.attempts_to("FLAKY@example.com");
    assert_eq!(flaky.len(), 2);
    assert!(before <= flaky[0] && flaky[0] <= flaky[1], "{flaky:?}");
    let gone = server.attempts_to("gone@example.com");
    let lost = server.attempts_to("lost@example.com");
    let fine = server.attempts_to("fine@example.com");
    assert_eq!((gone.len(), lost.len(), fine.len()), (1, 1, 1));
    assert!(flaky[1] <= gone[0] && gone[0] <= lost[0] && lost[0] <= fine[0]);
    assert!(server.attempts_to("never@example.com").is_empty());

    // Only the 250s, with the same instants as their attempts; the message kept under
    // DeliveredButTransientTimes was answered 451.
    assert_eq!(server.accepted_times(), [flaky[1], fine[0]]);
    assert_eq!(server.messages().len(), 3);
    assert_eq!(server.rejected(), 2);
}

#[tokio::test]
async fn attempts_are_recorded_once_per_recipient_and_for_oversize_messages() {
    let server = SmtpServer::start().await;
    let (mut c, _) = RawClient::connect(&server).await;
    assert!(c.cmd("EHLO client.test").await.starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@example.com>").await.starts_with("250 "));
    for rcpt in ["<b@example.com>", "<B@example.com>", "<c@example.com>"] {
        assert!(c.cmd(&format!("RCPT TO:{rcpt}")).await.starts_with("250 "));
    }
    assert!(c.cmd("DATA").await.starts_with("354 "));
    c.send("Subject: one\r\n\r\nbody\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250 "));

    assert!(c.cmd("MAIL FROM:<a@example.com>").await.starts_with("250 "));
    assert!(c.cmd("RCPT TO:<big@example.com>").await.starts_with("250 "));
    assert!(c.cmd("DATA").await.starts_with("354 "));
    let line = format!("{}\r\n", "x".repeat(998));
    for _ in 0..(11 * 1024 * 1024 / line.len()) {
        c.send(&line).await;
    }
    c.send(".\r\n").await;
    assert!(c.reply().await.starts_with("552 "));

    let b = server.attempts_to("b@example.com");
    assert_eq!(b.len(), 1);
    assert_eq!(server.attempts_to("c@example.com"), b);
    assert_eq!(server.accepted_times(), b);
    assert_eq!(server.attempts_to("big@example.com").len(), 1);
}

#[tokio::test]
async fn clear_plan_removes_a_scripted_reply() {
    let server = SmtpServer::start().await;
    let mailer = transport(&server);
    server.reply_for("x@example.com", ReplyPlan::TransientTimes(3));
    mailer.send(message("x@example.com", 1)).await.unwrap_err();
    assert_eq!(
        server.clear_plan("X@example.com"),
        Some(ReplyPlan::TransientTimes(2))
    );
    assert_eq!(server.clear_plan("x@example.com"), None);
    mailer.send(message("x@example.com", 1)).await.unwrap();

    server.reply_for("x@example.com", ReplyPlan::Permanent);
    mailer.send(message("x@example.com", 2)).await.unwrap_err();
    assert_eq!(
        server.clear_plan("x@example.com"),
        Some(ReplyPlan::Permanent)
    );
    mailer.send(message("x@example.com", 3)).await.unwrap();
    assert_eq!(server.wait_for(2, WAIT).await.unwrap().len(), 2);
    assert_eq!(server.rejected(), 2);
}

#[tokio::test]
async fn reply_delay_holds_the_end_of_data_reply_back() {
    const DELAY: Duration = Duration::from_millis(300);
    let server = SmtpServer::start().await;
    let mailer = transport(&server);
    server.set_reply_delay(DELAY);
    let start = Instant::now();
    mailer.send(message("a@example.com", 1)).await.unwrap();
    assert!(start.elapsed() >= DELAY, "{:?}", start.elapsed());
    // The outcome is recorded after the delay.
    let accepted = server.accepted_times();
    assert!(accepted[0].duration_since(start) >= DELAY, "{accepted:?}");

    server.set_reply_delay(Duration::ZERO);
    mailer.send(message("b@example.com", 2)).await.unwrap();
    assert_eq!(server.accepted_times().len(), 2);
}

#[test]
fn max_in_any_window_counts_the_busiest_half_open_window() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let second = Duration::from_secs(1);

    assert_eq!(max_in_any_window(&[], second), 0);
    assert_eq!(max_in_any_window(&[at(0)], second), 1);
    // Ten a second, evenly spaced: the eleventh is exactly one second after the first.
    let steady: Vec<_> = (0..=20).map(|i| at(i * 100)).collect();
    assert_eq!(max_in_any_window(&steady, second), 10);
    // A burst in the middle, given out of order.
    let bursty = [at(3000), at(1500), at(0), at(1700), at(1600), at(2499)];
    assert_eq!(max_in_any_window(&bursty, second), 4);
    // Half-open: a time exactly `window` after the first is outside.
    assert_eq!(max_in_any_window(&bursty, Duration::from_millis(999)), 3);
    assert_eq!(max_in_any_window(&bursty, Duration::from_millis(200)), 2);
    assert_eq!(max_in_any_window(&bursty, Duration::from_millis(201)), 3);
    // Equal instants, and degenerate windows.
    assert_eq!(
        max_in_any_window(&[at(5), at(5), at(5)], Duration::from_nanos(1)),
        3
    );
    assert_eq!(max_in_any_window(&steady, Duration::ZERO), 0);
    assert_eq!(max_in_any_window(&steady, Duration::MAX), steady.len());
}

#[tokio::test]
async fn max_in_any_window_over_accepted_times() {
    let server = SmtpServer::start().await;
    let mailer = transport(&server);
    for i in 0..5 {
        mailer
            .send(message(&format!("u{i}@example.com"), i))
            .await
            .unwrap();
    }
    let times = server.accepted_times();
    assert_eq!(times.len(), 5);
    assert!(times.is_sorted());
    assert_eq!(max_in_any_window(&times, Duration::from_secs(3600)), 5);
}
