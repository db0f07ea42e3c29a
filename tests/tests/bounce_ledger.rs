//! Reports from the bounce mailbox reaching the ledger (`docs/product.md`, "Bounces and
//! complaints") on both stacks: real servers' reports about emails the test sent, read as the
//! bounce reader reads each message. A permanent failure makes the email `bounced` with the
//! server's diagnostic and suppresses the member, a complaint makes it `complained`, a delay is
//! only recorded; each report counts once, and nothing that is not about an email of ours, or
//! not yet about a sent one, changes anything.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use invite_api::commands::{self, MembersQuery};
use invite_shared::db::schema::{bounce_reports, members};
use invite_shared::ids::DeliveryId;
use invite_shared::on_conn;
use invite_shared::service::bounces::Handled;
use invite_shared::store::bounces::Applied;
use invite_tests::app::{Stack, TestApp, people_csv};
use invite_tests::bounces::{
    BOUNCE, COMPLAINT, DELAY, Email, FORGED, MESSAGE_ID_ONLY, OUT_OF_OFFICE, email_to, handle,
};
use invite_tests::on_both_stacks;

on_both_stacks!(
    a_permanent_failure_bounces_the_email_and_suppresses_its_member_once,
    a_delay_is_recorded_and_the_email_stays_sent,
    a_complaint_marks_a_sent_or_bounced_email_complained,
    a_report_naming_only_the_message_id_finds_its_email,
    a_forged_tag_or_a_strangers_message_id_changes_nothing,
    a_report_about_an_email_not_yet_sent_is_left_for_later,
    a_message_that_is_no_report_is_left_alone,
    a_report_about_an_address_since_corrected_suppresses_nothing,
    a_bounce_cancels_the_email_its_member_still_had_queued,
);

const ANN: &str = "person0@example.com";
const BOB: &str = "person1@example.com";

/// The app with one worker, three people invited and every email sent; the import's id.
async fn sent_to_three(stack: Stack) -> (TestApp, i64) {
    let app = TestApp::spawn(stack).await;
    let import = app.upload_ok(people_csv(3)).await;
    app.settled(import).await;
    (app, import)
}

/// Recorded against `email`, whether its state moved or not.
fn recorded(email: &Email, changed: bool) -> Handled {
    Handled::Recorded(Applied::Recorded {
        delivery: DeliveryId(email.id),
        changed,
    })
}

/// The reports recorded: `(delivery, kind, status, diagnostic)` in the order they came.
async fn reports(app: &TestApp) -> Vec<(i64, String, Option<String>, Option<String>)> {
    app.db
        .run(|conn| {
            Ok(on_conn!(conn, |c| bounce_reports::table
                .order(bounce_reports::id)
                .select((
                    bounce_reports::delivery_id,
                    bounce_reports::kind,
                    bounce_reports::status,
                    bounce_reports::diagnostic,
                ))
                .load(c))?)
        })
        .await
        .unwrap()
}

/// Why the member's address is suppressed, if it is.
async fn suppressed(app: &TestApp, address: &str) -> Option<String> {
    let member = app.member_id(address).await;
    app.db
        .run(move |conn| {
            Ok(on_conn!(conn, |c| members::table
                .find(member)
                .select(members::suppressed_reason)
                .first(c))?)
        })
        .await
        .unwrap()
}

/// The addresses `GET …/members?email_status={state}` lists, in id order.
async fn with_email_status(app: &TestApp, state: &str) -> Vec<String> {
    let page = app
        .get_json(&format!("/members?email_status={state}"))
        .await;
    let members = page["members"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"));
    members
        .iter()
        .map(|m| m["email"].as_str().unwrap().to_owned())
        .collect()
}

/// The `email_status` and `error` cells of `address`'s line of the import's results file.
async fn result_line(app: &TestApp, import: i64, address: &str) -> (String, String) {
    let results = app.results(import).await;
    let mut reader = csv::Reader::from_reader(results.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (status, error) = (column("email_status"), column("error"));
    reader
        .records()
        .map(Result::unwrap)
        .find(|r| r.get(column("email")) == Some(address))
        .map(|r| (r[status].to_owned(), r[error].to_owned()))
        .unwrap_or_else(|| panic!("no line for {address}: {results}"))
}

async fn a_permanent_failure_bounces_the_email_and_suppresses_its_member_once(stack: Stack) {
    let (app, import) = sent_to_three(stack).await;
    let sent = email_to(&app, BOB).await;
    let report = BOUNCE.about(&sent);

    let handled = handle(&app, report.clone()).await;

    assert_eq!(handled, recorded(&sent, true));
    let diagnostic = format!("unknown user: \"{BOB}\"");
    // The email's last error leads with the status, as a refused send's reply does.
    let last_error = format!("5.1.1 {diagnostic}");
    let email = email_to(&app, BOB).await;
    assert_eq!(email.state, "bounced");
    assert_eq!(email.last_error.as_deref(), Some(last_error.as_str()));
    let member = app.member(BOB).await;
    assert_eq!(member["email_status"], "bounced");
    assert_eq!(member["last_error"], last_error.as_str());
    assert_eq!(suppressed(&app, BOB).await.as_deref(), Some("bounced"));
    assert_eq!(suppressed(&app, ANN).await, None);
    let after_one = app.settled(import).await;
    assert_eq!(after_one["emails"]["bounced"], 1, "{after_one}");
    assert_eq!(after_one["emails"]["sent"], 2, "{after_one}");
    assert_eq!(after_one["emails"]["complained"], 0, "{after_one}");
    assert_eq!(
        reports(&app).await,
        [(
            sent.id,
            "bounced".to_owned(),
            Some("5.1.1".to_owned()),
            Some(diagnostic.clone())
        )]
    );
    assert_eq!(with_email_status(&app, "bounced").await, [BOB]);
    assert!(
        with_email_status(&app, "sent")
            .await
            .contains(&ANN.to_owned())
    );
    assert_eq!(
        result_line(&app, import, BOB).await,
        ("bounced".to_owned(), last_error.clone())
    );
    let listed = commands::members(
        &app.db,
        &app.workspace,
        MembersQuery {
            search: Some("person1".into()),
            status: None,
            limit: 10,
        },
    )
    .await
    .unwrap();
    assert!(listed.ends_with("\tinvited\tbounced"), "{listed}");

    let again = handle(&app, report).await;

    assert_eq!(again, Handled::Recorded(Applied::Duplicate));
    assert_eq!(reports(&app).await.len(), 1, "recorded once");
    assert_eq!(app.settled(import).await, after_one, "nothing changed");
    assert_eq!(email_to(&app, BOB).await, email);
}

async fn a_delay_is_recorded_and_the_email_stays_sent(stack: Stack) {
    let (app, import) = sent_to_three(stack).await;
    let sent = email_to(&app, ANN).await;

    let handled = handle(&app, DELAY.about(&sent)).await;

    assert_eq!(handled, recorded(&sent, false));
    let recorded = reports(&app).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let (delivery, kind, status, diagnostic) = &recorded[0];
    assert_eq!((*delivery, kind.as_str()), (sent.id, "delayed"));
    assert_eq!(status.as_deref(), Some("4.4.1"));
    let diagnostic = diagnostic.as_deref().unwrap_or_default();
    assert!(diagnostic.contains("Connection timed out"), "{diagnostic}");
    assert_eq!(email_to(&app, ANN).await, sent, "still sent, no error");
    assert_eq!(suppressed(&app, ANN).await, None);
    let emails = &app.settled(import).await["emails"];
    assert_eq!(
        (&emails["sent"], &emails["bounced"]),
        (&3.into(), &0.into())
    );
}

async fn a_complaint_marks_a_sent_or_bounced_email_complained(stack: Stack) {
    let (app, import) = sent_to_three(stack).await;
    let to_ann = email_to(&app, ANN).await;
    let to_bob = email_to(&app, BOB).await;
    assert_eq!(
        handle(&app, BOUNCE.about(&to_bob)).await,
        recorded(&to_bob, true)
    );

    let from_sent = handle(&app, COMPLAINT.about(&to_ann)).await;
    let from_bounced = handle(&app, COMPLAINT.about(&to_bob)).await;

    assert_eq!(from_sent, recorded(&to_ann, true));
    assert_eq!(from_bounced, recorded(&to_bob, true));
    assert_eq!(email_to(&app, ANN).await.state, "complained");
    let bob = email_to(&app, BOB).await;
    assert_eq!(bob.state, "complained");
    assert!(
        bob.last_error
            .unwrap_or_default()
            .starts_with("5.1.1 unknown user"),
        "the bounce's diagnostic stays"
    );
    assert_eq!(suppressed(&app, ANN).await.as_deref(), Some("complained"));
    assert_eq!(
        suppressed(&app, BOB).await.as_deref(),
        Some("bounced"),
        "suppressed first for the bounce"
    );
    let emails = &app.settled(import).await["emails"];
    assert_eq!(emails["complained"], 2, "{emails}");
    assert_eq!(emails["bounced"], 0, "{emails}");
    assert_eq!(emails["sent"], 1, "{emails}");
    assert_eq!(with_email_status(&app, "complained").await, [ANN, BOB]);
    assert!(with_email_status(&app, "bounced").await.is_empty());
    assert_eq!(
        result_line(&app, import, ANN).await,
        ("complained".to_owned(), String::new())
    );
}

async fn a_report_naming_only_the_message_id_finds_its_email(stack: Stack) {
    let (app, import) = sent_to_three(stack).await;
    let sent = email_to(&app, BOB).await;
    assert!(sent.message_id.is_some(), "a sent email has its Message-ID");

    let handled = handle(&app, MESSAGE_ID_ONLY.about(&sent)).await;

    assert_eq!(handled, recorded(&sent, true));
    let email = email_to(&app, BOB).await;
    assert_eq!(email.state, "bounced");
    let error = email.last_error.unwrap_or_default();
    assert!(error.contains("RecipientNotFound"), "{error}");
    assert_eq!(app.settled(import).await["emails"]["bounced"], 1);
}

async fn a_forged_tag_or_a_strangers_message_id_changes_nothing(stack: Stack) {
    let (app, import) = sent_to_three(stack).await;
    let sent = email_to(&app, BOB).await;
    let before = app.settled(import).await;
    let stranger = Email {
        message_id: Some("0123456789abcdef0123456789abcdef".to_owned()),
        ..sent.clone()
    };

    let forged = handle(&app, FORGED.forged_about(&sent)).await;
    let unknown = handle(&app, MESSAGE_ID_ONLY.about(&stranger)).await;

    assert_eq!(forged, Handled::Unmatched);
    assert_eq!(unknown, Handled::Unmatched);
    assert!(reports(&app).await.is_empty());
    assert_eq!(email_to(&app, BOB).await, sent);
    assert_eq!(suppressed(&app, BOB).await, None);
    assert_eq!(app.settled(import).await, before);
}

async fn a_report_about_an_email_not_yet_sent_is_left_for_later(stack: Stack) {
    let mut app = TestApp::spawn_without_workers(stack).await;
    let import = app.upload_ok(people_csv(2)).await;
    app.process_without_sending(import).await;
    let pending = email_to(&app, BOB).await;
    assert_eq!(pending.state, "pending");
    let report = BOUNCE.about(&pending);

    let early = handle(&app, report.clone()).await;

    assert_eq!(early, Handled::NotYetSent);
    assert!(reports(&app).await.is_empty(), "nothing recorded");
    assert_eq!(suppressed(&app, BOB).await, None);
    app.start_worker().await;
    app.settled(import).await;
    let sent = email_to(&app, BOB).await;
    assert_eq!(
        handle(&app, report).await,
        recorded(&sent, true),
        "read again once sent, it counts"
    );
}

async fn a_message_that_is_no_report_is_left_alone(stack: Stack) {
    let (app, import) = sent_to_three(stack).await;
    let before = app.settled(import).await;

    let handled = handle(&app, OUT_OF_OFFICE.to_vec()).await;
    let garbage = handle(&app, b"\x00\xffnot mail at all".to_vec()).await;

    assert_eq!(handled, Handled::NotAReport);
    assert_eq!(garbage, Handled::NotAReport);
    assert!(reports(&app).await.is_empty());
    assert_eq!(app.settled(import).await, before);
}

async fn a_report_about_an_address_since_corrected_suppresses_nothing(stack: Stack) {
    let (app, import) = sent_to_three(stack).await;
    let to_ann = email_to(&app, ANN).await;
    let to_bob = email_to(&app, BOB).await;
    // Bob's address was corrected after his email went out, Ann's before hers did.
    let second = chrono::Duration::seconds(1);
    address_changed(&app, BOB, to_bob.created_at + second).await;
    address_changed(&app, ANN, to_ann.created_at - second).await;

    let bob = handle(&app, BOUNCE.about(&to_bob)).await;
    let ann = handle(&app, BOUNCE.about(&to_ann)).await;

    assert_eq!(bob, recorded(&to_bob, true));
    assert_eq!(ann, recorded(&to_ann, true));
    assert_eq!(
        email_to(&app, BOB).await.state,
        "bounced",
        "the email did bounce"
    );
    assert_eq!(suppressed(&app, BOB).await, None, "not the address now");
    assert_eq!(suppressed(&app, ANN).await.as_deref(), Some("bounced"));
    assert_eq!(app.settled(import).await["emails"]["bounced"], 2);
}

/// Records that support corrected `address`'s member's address at `at`.
async fn address_changed(app: &TestApp, address: &str, at: NaiveDateTime) {
    let member = app.member_id(address).await;
    app.db
        .run(move |conn| {
            Ok(on_conn!(conn, |c| diesel::update(
                members::table.find(member)
            )
            .set(members::address_changed_at.eq(at))
            .execute(c))?)
        })
        .await
        .unwrap();
}

#[test]
fn the_fixtures_name_the_email_they_are_made_about() {
    let email = Email {
        id: 7,
        to: "zoe@example.com".into(),
        message_id: Some("00112233445566778899aabbccddeeff".into()),
        state: "sent".into(),
        last_error: None,
        created_at: NaiveDateTime::default(),
    };
    for fixture in [&BOUNCE, &DELAY, &COMPLAINT, &MESSAGE_ID_ONLY] {
        let text = String::from_utf8(fixture.about(&email)).unwrap();
        assert!(text.contains("zoe@example.com"));
        assert!(text.contains("00112233445566778899aabbccddeeff@invite.example.com"));
        assert!(!text.contains(".invite@invite.example.com"), "{text}");
    }
    let forged = String::from_utf8(FORGED.forged_about(&email)).unwrap();
    assert!(forged.contains("bounces+7-0000000000@bounce.example.com"));
}

async fn a_bounce_cancels_the_email_its_member_still_had_queued(stack: Stack) {
    let (mut app, import) = sent_to_three(stack).await;
    let first = email_to(&app, BOB).await;
    app.stop_workers().await;
    let reminded = app
        .post_json("/members/remind", serde_json::json!({}))
        .await;
    assert_eq!(reminded.status(), 202);
    assert_eq!(
        email_to(&app, BOB).await.state,
        "pending",
        "a reminder queued"
    );

    assert_eq!(
        handle(&app, BOUNCE.about(&first)).await,
        recorded(&first, true)
    );
    app.start_worker().await;
    let settled = app.settled(import).await;

    assert_eq!(email_to(&app, BOB).await.state, "cancelled", "{settled}");
    assert_eq!(email_to(&app, ANN).await.state, "sent", "{settled}");
    let reminders_to_bob = app
        .emails()
        .iter()
        .filter(|m| m.subject().starts_with("Reminder: ") && m.rcpt_to[0] == BOB)
        .count();
    assert_eq!(reminders_to_bob, 0);
}
