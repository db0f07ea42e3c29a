//! International addresses, from the upload to the SMTP conversation: a domain in Unicode goes out
//! as its A-label to any server; a non-ASCII local part goes out with SMTPUTF8 where the server
//! offers it, and fails at once, in words, where it does not; one person is one address whatever
//! form the file writes it in.

use invite_shared::email::NO_SMTPUTF8;
use invite_tests::app::{Stack, TestApp};
use invite_tests::on_both_stacks;
use invite_tests::smtp::SmtpServer;
use secrecy::SecretString;

on_both_stacks!(
    a_server_with_smtputf8_receives_both_international_forms,
    without_smtputf8_a_utf8_local_part_fails_at_once_and_an_idn_domain_is_sent,
    one_address_in_several_forms_is_one_invitee,
);

const INTERNATIONAL: &str = "First Name,Last Name,Email,User Role\n\
    Ute,Buch,user@bücher.de,End User\n\
    Jörg,Jäger,jörg@example.com,End User\n";

/// An app of `stack` that sends to an SMTP server of its own (offering SMTPUTF8 or not), on the
/// embedded stack too.
async fn spawn_sending(stack: Stack, smtputf8: bool) -> (TestApp, SmtpServer) {
    let smtp = SmtpServer::start().await;
    smtp.set_smtputf8(smtputf8);
    let url = smtp.url();
    let mut app = TestApp::spawn_with(stack, |s| s.smtp_url = Some(SecretString::from(url))).await;
    app.start_worker().await;
    (app, smtp)
}

/// Every `RCPT TO` the server saw, sorted.
fn recipients(smtp: &SmtpServer) -> Vec<String> {
    let mut all: Vec<String> = smtp
        .messages()
        .into_iter()
        .flat_map(|m| m.rcpt_to)
        .collect();
    all.sort();
    all
}

async fn a_server_with_smtputf8_receives_both_international_forms(stack: Stack) {
    let (app, smtp) = spawn_sending(stack, true).await;

    let id = app.upload_ok(INTERNATIONAL).await;
    let import = app.settled(id).await;

    assert_eq!(import["emails"]["sent"], 2, "{import}");
    assert_eq!(
        recipients(&smtp),
        ["jörg@example.com", "user@xn--bcher-kva.de"]
    );
}

async fn without_smtputf8_a_utf8_local_part_fails_at_once_and_an_idn_domain_is_sent(stack: Stack) {
    let (app, smtp) = spawn_sending(stack, false).await;

    let id = app.upload_ok(INTERNATIONAL).await;
    let import = app.settled(id).await;

    assert_eq!(import["emails"]["sent"], 1, "{import}");
    assert_eq!(import["emails"]["failed"], 1, "{import}");
    assert_eq!(recipients(&smtp), ["user@xn--bcher-kva.de"]);
    let member = app.member("jörg@example.com").await;
    assert_eq!(member["email_status"], "failed", "{member}");
    assert_eq!(
        member["email_attempts"], 1,
        "failed at the first attempt: {member}"
    );
    assert_eq!(member["last_error"], NO_SMTPUTF8, "{member}");
}

async fn one_address_in_several_forms_is_one_invitee(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let csv = "First Name,Last Name,Email,User Role\n\
        Ute,Buch,user@bücher.de,End User\n\
        Ute,Buch,USER@xn--bcher-kva.de,End User\n\
        Ute,Buch,user@bu\u{308}cher.de,End User\n\
        Jörg,Jäger,jörg@example.com,End User\n\
        Jörg,Jäger,jo\u{308}rg@example.com,End User\n";

    let id = app.upload_ok(csv).await;
    let import = app.settled(id).await;

    assert_eq!(import["rows"]["invited"], 2, "{import}");
    assert_eq!(import["rows"]["skipped"], 3, "{import}");
    let again = app.upload_ok(INTERNATIONAL).await;
    let import = app.settled(again).await;
    assert_eq!(import["rows"]["invited"], 0, "already invited: {import}");
    assert_eq!(import["rows"]["skipped"], 2, "{import}");
}
