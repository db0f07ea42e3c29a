//! International addresses against a real MTA: Debian's Postfix on loopback, from a configuration
//! of its own (`invite_tests::postfix`). With SMTPUTF8 offered, a Unicode domain arrives as its
//! A-label and a UTF-8 local part as itself, both delivered and readable; without it, the A-label
//! address is still delivered and the UTF-8 one fails at its first attempt, in words.
//!
//! The MTA side needs only one store, so these run on PostgreSQL. Postfix starts as root: run as
//! another user, each test prints that it was skipped.

use invite_shared::email::NO_SMTPUTF8;
use invite_tests::app::{Stack, TestApp};
use invite_tests::postfix::{self, Postfix};
use invite_tests::smtp::ReceivedMessage;
use secrecy::SecretString;

const INTERNATIONAL: &str = "First Name,Last Name,Email,User Role\n\
    Ute,Buch,user@bücher.de,End User\n\
    Jörg,Jäger,jörg@example.com,End User\n";

/// A Postfix offering SMTPUTF8 or not, and an app on PostgreSQL with a worker sending to it.
async fn spawn_with_postfix(smtputf8: bool) -> (TestApp, Postfix) {
    let mta = Postfix::start(smtputf8);
    let url = mta.url();
    let mut app = TestApp::spawn_with(Stack::Postgres, |s| {
        s.smtp_url = Some(SecretString::from(url));
    })
    .await;
    app.start_worker().await;
    (app, mta)
}

/// The envelope recipients of `messages`, in order.
fn recipients(messages: &[ReceivedMessage]) -> Vec<&str> {
    messages
        .iter()
        .flat_map(|m| m.rcpt_to.iter().map(String::as_str))
        .collect()
}

/// The delivered message is the invitation: its subject, and a link that opens the invitation.
async fn assert_readable_invitation(app: &TestApp, message: &ReceivedMessage) {
    assert!(!message.subject().is_empty(), "{}", message.data);
    let token = app.token_in(&message.text_body());
    let page = app.show_invitation(&token).await;
    assert_eq!(
        page.status(),
        200,
        "the delivered link opens the invitation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_smtputf8_postfix_delivers_the_a_label_and_the_utf8_local_part() {
    if !postfix::runnable() {
        return;
    }
    let (app, mta) = spawn_with_postfix(true).await;

    let id = app.upload_ok(INTERNATIONAL).await;
    let import = app.settled(id).await;

    assert_eq!(import["emails"]["sent"], 2, "{import}");
    for email in ["user@bücher.de", "jörg@example.com"] {
        let member = app.member(email).await;
        assert_eq!(member["email_status"], "sent", "{member}");
    }
    let delivered = mta.delivered(2);
    assert_eq!(
        recipients(&delivered),
        ["jörg@example.com", "user@xn--bcher-kva.de"],
        "the envelope recipients Postfix delivered to"
    );
    let log = mta.log();
    assert!(log.contains("to=<user@xn--bcher-kva.de>"), "{log}");
    assert!(log.contains("to=<jörg@example.com>"), "{log}");
    for message in &delivered {
        assert_readable_invitation(&app, message).await;
    }
    mta.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtputf8_postfix_gets_the_a_label_and_the_utf8_local_part_fails_at_once() {
    if !postfix::runnable() {
        return;
    }
    let (app, mta) = spawn_with_postfix(false).await;

    let id = app.upload_ok(INTERNATIONAL).await;
    let import = app.settled(id).await;

    assert_eq!(import["emails"]["sent"], 1, "{import}");
    assert_eq!(import["emails"]["failed"], 1, "{import}");
    let delivered = mta.delivered(1);
    assert_eq!(recipients(&delivered), ["user@xn--bcher-kva.de"]);
    assert_readable_invitation(&app, &delivered[0]).await;
    let member = app.member("jörg@example.com").await;
    assert_eq!(member["email_status"], "failed", "{member}");
    assert_eq!(
        member["email_attempts"], 1,
        "failed at the first attempt: {member}"
    );
    assert_eq!(member["last_error"], NO_SMTPUTF8, "{member}");
    let log = mta.log();
    assert!(
        !log.contains("jörg"),
        "the UTF-8 address never reached Postfix: {log}"
    );
    mta.stop();
}
