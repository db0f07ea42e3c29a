//! Proves the in-process SMTP test server works against lettre's pooled async transport.

use std::time::Duration;

use futures::future::join_all;
use invite_tests::smtp::{ReplyPlan, SmtpServer};
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
        let (reader, writer) = stream.into_split();
        let mut client = RawClient {
            reader: BufReader::new(reader),
            writer,
        };
        let greeting = client.reply().await;
        (client, greeting)
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
