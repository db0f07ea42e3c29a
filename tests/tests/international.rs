//! International addresses, from the upload to the SMTP conversation: a domain in Unicode goes out
//! as its A-label to any server; a non-ASCII local part goes out with SMTPUTF8 where the server
//! offers it, and fails at once, in words, where it does not; one person is one address whatever
//! form the file writes it in.

use invite_shared::domain::invitee::NAME_FROM_EMAIL_CELL;
use invite_shared::email::NO_SMTPUTF8;
use invite_tests::app::{Stack, TestApp, results_without_member_ids};
use invite_tests::on_both_stacks;
use invite_tests::smtp::SmtpServer;
use secrecy::SecretString;

on_both_stacks!(
    a_server_with_smtputf8_receives_both_international_forms,
    without_smtputf8_a_utf8_local_part_fails_at_once_and_an_idn_domain_is_sent,
    one_address_in_several_forms_is_one_invitee,
    a_corpus_of_addresses_through_the_upload_gets_exact_results_rows,
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

/// Cells from the standards' clauses (see the unit corpus in `invite_shared::domain::email`), as
/// an admin's file carries them: accepted ones are shown in their Unicode form, refused ones say
/// why, naming an unsafe character.
const CORPUS: &str = "First Name,Last Name,Email,User Role\n\
    Ute,Buch,user@BÜCHER.de,End User\n\
    ,,Ada Lovelace <ada@example.com>,End User\n\
    ,,\"\"\"Hopper, Grace\"\" <grace@example.com>\",End User\n\
    Zed,Zero,zed\u{200B}@example.com,End User\n\
    Rita,Rtl,\u{202E}moc.elpmaxe@atir,End User\n\
    Sam,Semi,sam;x@example.com,End User\n\
    Sly,Slash,sly@exa/mple.com,End User\n\
    Pun,Code,pun@xn--0.tld,End User\n\
    Hy,Phen,hy@yy--0.tld,End User\n\
    Tld,Dash,tld@bad.tld-2,End User\n\
    Loc,Al,printer@office.local,End User\n\
    Quo,Ted,\"\"\"quo ted\"\"@example.com\",End User\n\
    Nobody,Named,<>,End User\n";

async fn a_corpus_of_addresses_through_the_upload_gets_exact_results_rows(stack: Stack) {
    let app = TestApp::spawn(stack).await;

    let id = app.upload_ok(CORPUS).await;
    let import = app.settled(id).await;
    let results = app.results(id).await;

    assert_eq!(import["rows"]["invited"], 3, "{import}\n{results}");
    let ada = app.member("ada@example.com").await;
    assert_eq!(
        (&ada["first_name"], &ada["last_name"]),
        (&"Ada".into(), &"Lovelace".into())
    );
    let grace = app.member("grace@example.com").await;
    assert_eq!(
        (&grace["first_name"], &grace["last_name"]),
        (&"Grace".into(), &"Hopper".into())
    );
    assert!(results.contains(NAME_FROM_EMAIL_CELL), "{results}");
    assert!(results.contains("2,user@bücher.de,invited"), "{results}");
    // The same file from both stacks.
    insta::assert_snapshot!("corpus_results", results_without_member_ids(&results));
}
