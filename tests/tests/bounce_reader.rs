//! The bounce reader against real servers: Debian's Postfix returns an email to an unknown user
//! in a DSN of its own, sent to the email's VERP return path and delivered into a Maildir that
//! Debian's Dovecot serves over IMAP (`invite_tests::postfix`, `invite_tests::dovecot`).
//!
//! No database is involved (the reader's callback is the ledger's later), so these run once, not
//! per stack. Postfix and Dovecot start as root: run as another user, each test prints that it
//! was skipped.

use std::time::Duration;

use invite_shared::bounce::report::{Action, StatusClass};
use invite_shared::bounce::{MailboxReader, MailboxUrl, Outcome, Report, ReturnPaths, parse};
use invite_shared::ids::DeliveryId;
use invite_tests::dovecot::{self, Dovecot};
use invite_tests::postfix::{BOUNCE_LOCAL, Postfix};
use lettre::address::Envelope;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The bounce domain, and the key of its return paths (the unit tests' fixtures use the same).
const BOUNCE_DOMAIN: &str = "bounce.example.com";
const KEY: &[u8] = b"a test key of enough bytes";

/// How long a delivery or a report may take before a test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// A reply that is not a report: it stays in the inbox.
const OUT_OF_OFFICE: &[u8] = b"From: Grace <grace@example.com>\r\n\
    To: bounces@bounce.example.com\r\n\
    Subject: Automatic reply: You are invited\r\n\
    Message-ID: <ooo-1@example.com>\r\n\
    Auto-Submitted: auto-replied\r\n\
    \r\n\
    I am out of the office until Monday.\r\n";

fn return_paths() -> ReturnPaths {
    ReturnPaths::new(&format!("{BOUNCE_LOCAL}@{BOUNCE_DOMAIN}"), KEY).unwrap()
}

/// Sends a small email through Postfix with `sender` as its envelope sender.
async fn send(mta: &Postfix, sender: &str, recipient: &str) {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&mta.url())
        .expect("Postfix's URL")
        .build();
    let envelope = Envelope::new(
        Some(sender.parse().unwrap()),
        vec![recipient.parse().unwrap()],
    )
    .unwrap();
    let body = format!(
        "From: Acme <no-reply@invite.example.com>\r\nTo: <{recipient}>\r\n\
         Subject: You are invited\r\nMessage-ID: <delivery-42@invite.example.com>\r\n\r\nHello.\r\n"
    );
    transport
        .send_raw(&envelope, body.as_bytes())
        .await
        .expect("Postfix accepts the email");
}

/// A reader of `imap` running in a task until `cancel` fires, sending each message's bytes and
/// report to the returned channel; reports are processed, the rest left alone.
fn spawn_reader(
    imap: &Dovecot,
    poll_interval: Duration,
    cancel: &CancellationToken,
) -> (
    tokio::task::JoinHandle<MailboxReader>,
    UnboundedReceiver<(Vec<u8>, Report)>,
) {
    let url = MailboxUrl::parse(&imap.url()).unwrap();
    let (seen, reports) = unbounded_channel();
    let cancel = cancel.clone();
    let task = tokio::spawn(async move {
        let mut reader = MailboxReader::new(url, poll_interval);
        let handle = move |_uid, raw: Vec<u8>| {
            let seen = seen.clone();
            async move {
                let report = parse(&raw);
                let outcome = match report {
                    Report::NotAReport => Outcome::NotAReport,
                    _ => Outcome::Processed,
                };
                let _ = seen.send((raw, report));
                outcome
            }
        };
        reader.run(&cancel, handle).await;
        reader
    });
    (task, reports)
}

/// The next message the reader saw, within the deadline.
async fn next_seen(
    reports: &mut UnboundedReceiver<(Vec<u8>, Report)>,
    deadline: Instant,
    logs: impl Fn() -> String,
) -> (Vec<u8>, Report) {
    tokio::time::timeout_at(deadline, reports.recv())
        .await
        .unwrap_or_else(|_| panic!("no message reached the reader in time; logs:\n{}", logs()))
        .expect("the reader is running")
}

/// Waits until `folder` holds `count` messages.
async fn wait_for_count(imap: &Dovecot, folder: &str, count: u32) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found = imap.count(folder).await;
        if found == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{folder} holds {found} messages, not {count}; Dovecot logged:\n{}",
            imap.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfixs_dsn_for_an_unknown_user_is_read_over_imap_and_names_its_delivery() {
    if !dovecot::runnable() {
        return;
    }
    let mta = Postfix::start_bouncing(BOUNCE_DOMAIN);
    let imap = Dovecot::start(Some(&mta.mail_root()));
    let paths = return_paths();
    imap.append("INBOX", OUT_OF_OFFICE).await;
    send(
        &mta,
        &paths.address(DeliveryId(42)),
        "nobody-here@example.com",
    )
    .await;
    let logs = || format!("Postfix:\n{}\nDovecot:\n{}", mta.log(), imap.log());

    let cancel = CancellationToken::new();
    let (reader, mut seen) = spawn_reader(&imap, Duration::from_millis(200), &cancel);
    let deadline = Instant::now() + DEADLINE;
    let (raw, dsn) = loop {
        match next_seen(&mut seen, deadline, logs).await {
            (raw, Report::Dsn(dsn)) => break (raw, dsn),
            (_, Report::NotAReport) => {}
            (_, other) => panic!("not the DSN: {other:?}"),
        }
    };
    if let Ok(path) = std::env::var("BOUNCE_DSN_FIXTURE") {
        // Refreshes shared/src/bounce/fixtures/postfix-3.7-real.eml.
        std::fs::write(path, &raw).unwrap();
    }

    assert_eq!(dsn.recipients.len(), 1, "{dsn:?}");
    let recipient = &dsn.recipients[0];
    assert_eq!(recipient.action, Action::Failed);
    assert_eq!(recipient.class, StatusClass::Permanent);
    assert_eq!(recipient.status.as_deref(), Some("5.1.1"));
    assert_eq!(
        recipient.diagnostic.as_deref(),
        Some("unknown user: \"nobody-here@example.com\"")
    );
    assert_eq!(dsn.origin.delivery(&paths), Some(DeliveryId(42)));

    wait_for_count(&imap, "Processed", 1).await;
    assert_eq!(imap.count("INBOX").await, 1, "the reply is left alone");
    cancel.cancel();
    let first = reader.await.unwrap();

    // A second reader finds nothing to process; started where the first one stopped, it does
    // not even fetch the reply again.
    let url = MailboxUrl::parse(&imap.url()).unwrap();
    let mut second = MailboxReader::new(url.clone(), Duration::from_secs(1));
    let pass = second
        .read_once(|_, raw| async move {
            assert_eq!(parse(&raw), Report::NotAReport);
            Outcome::NotAReport
        })
        .await
        .unwrap();
    assert_eq!((pass.processed, pass.not_reports), (0, 1), "{pass:?}");
    let mut resumed = MailboxReader::new(url, Duration::from_secs(1)).with_cursor(first.cursor());
    let pass = resumed
        .read_once(|_, _| async { panic!("nothing is new") })
        .await
        .unwrap();
    assert_eq!(pass, Default::default());
    assert_eq!(imap.count("Processed").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_idle_a_message_arriving_after_the_reader_started_is_read_without_polling() {
    if !dovecot::runnable() {
        return;
    }
    let imap = Dovecot::start(None);
    imap.append("INBOX", OUT_OF_OFFICE).await;
    let cancel = CancellationToken::new();
    // Polling once an hour: only IDLE can bring the second message within the deadline.
    let (reader, mut seen) = spawn_reader(&imap, Duration::from_secs(3600), &cancel);
    let deadline = Instant::now() + DEADLINE;
    let (_, first) = next_seen(&mut seen, deadline, || imap.log()).await;
    assert_eq!(first, Report::NotAReport);

    let report = include_bytes!("../../shared/src/bounce/fixtures/postfix.eml");
    imap.append("INBOX", report).await;
    let (_, second) = next_seen(&mut seen, deadline, || imap.log()).await;

    let Report::Dsn(dsn) = second else {
        panic!("not the DSN: {second:?}");
    };
    assert_eq!(dsn.origin.delivery(&return_paths()), Some(DeliveryId(42)));
    wait_for_count(&imap, "Processed", 1).await;
    cancel.cancel();
    reader.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_retry_is_fetched_again_and_one_too_large_is_never_fetched() {
    if !dovecot::runnable() {
        return;
    }
    let imap = Dovecot::start(None);
    let mut huge = OUT_OF_OFFICE.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 1024 * 1024 + 1));
    imap.append("INBOX", &huge).await;
    let report = include_bytes!("../../shared/src/bounce/fixtures/postfix.eml");
    imap.append("INBOX", report).await;
    let url = MailboxUrl::parse(&imap.url()).unwrap();
    let mut reader = MailboxReader::new(url, Duration::from_secs(1));

    let pass = reader
        .read_once(|_, raw| async move {
            assert!(
                raw.len() < 1024 * 1024,
                "the large message is never fetched"
            );
            Outcome::Retry
        })
        .await
        .unwrap();
    assert_eq!((pass.oversized, pass.processed, pass.retry), (1, 0, true));
    assert_eq!(imap.count("INBOX").await, 2);

    let pass = reader
        .read_once(|_, raw| async move {
            assert!(matches!(parse(&raw), Report::Dsn(_)));
            Outcome::Processed
        })
        .await
        .unwrap();
    assert_eq!((pass.oversized, pass.processed, pass.retry), (0, 1, false));
    assert_eq!(imap.count("INBOX").await, 1, "the large message stays");
    assert_eq!(imap.count("Processed").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_kept_for_later_too_long_is_left_alone() {
    if !dovecot::runnable() {
        return;
    }
    let imap = Dovecot::start(None);
    let report = include_bytes!("../../shared/src/bounce/fixtures/postfix.eml");
    imap.append("INBOX", report).await;
    let url = MailboxUrl::parse(&imap.url()).unwrap();
    // Kept no time at all: the next pass finds it kept too long.
    let mut reader = MailboxReader::new(url, Duration::from_secs(1)).retrying_for(Duration::ZERO);

    let pass = reader
        .read_once(|_, _| async { Outcome::Retry })
        .await
        .unwrap();
    assert_eq!((pass.retry, pass.expired), (true, 0));

    // One last look, still not ready: left alone from then on.
    let pass = reader
        .read_once(|_, _| async { Outcome::Retry })
        .await
        .unwrap();
    assert_eq!((pass.processed, pass.retry, pass.expired), (0, false, 1));
    let pass = reader
        .read_once(|uid, _| async move { panic!("message {uid} fetched again") })
        .await
        .unwrap();
    assert_eq!(pass.expired, 0, "forgotten");
    assert_eq!(imap.count("INBOX").await, 1, "left where it is");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_retry_does_not_hold_back_those_after_it() {
    if !dovecot::runnable() {
        return;
    }
    let imap = Dovecot::start(None);
    let report = include_bytes!("../../shared/src/bounce/fixtures/postfix.eml");
    for _ in 0..3 {
        imap.append("INBOX", report).await;
    }
    let url = MailboxUrl::parse(&imap.url()).unwrap();
    let mut reader = MailboxReader::new(url, Duration::from_secs(1));

    // The first message's email is not recorded as sent yet; the two after it are ready.
    let pass = reader
        .read_once(|uid, _| async move {
            if uid == 1 {
                Outcome::Retry
            } else {
                Outcome::Processed
            }
        })
        .await
        .unwrap();
    assert_eq!((pass.processed, pass.retry), (2, true));
    assert_eq!(imap.count("INBOX").await, 1, "only the one to retry waits");

    let pass = reader
        .read_once(|uid, _| async move {
            assert_eq!(uid, 1, "only the message kept for later is fetched again");
            Outcome::Processed
        })
        .await
        .unwrap();
    assert_eq!((pass.processed, pass.retry), (1, false));
    assert_eq!(imap.count("INBOX").await, 0);
    assert_eq!(imap.count("Processed").await, 3);
}
