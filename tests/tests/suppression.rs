//! What support does after a bounce or a complaint, on both stacks: a suppressed member is shown
//! as such, resends and unarchives to them are refused in words, reminders count them apart,
//! support unsuppresses the address or corrects it (one new invitation, to the new address only,
//! other workspaces untouched), through the HTTP API and the command line's twins.

use diesel::prelude::*;
use invite_shared::db::schema::deliveries;
use invite_shared::domain::email::InviteeEmail;
use invite_shared::ids::{DeliveryId, MemberId};
use invite_shared::on_conn;
use invite_shared::status::ReportKind;
use invite_shared::store::bounces::{self, Applied, Finding, Named};
use invite_tests::app::{Stack, TestApp, people_csv};
use invite_tests::on_both_stacks;
use serde_json::{Value, json};

on_both_stacks!(
    a_bounced_member_is_shown_suppressed_and_a_resend_is_refused_in_words,
    a_complained_member_is_refused_an_unarchive_until_unsuppressed,
    reminders_skip_suppressed_members_and_count_them_apart,
    unsuppressing_clears_the_suppression_once_and_a_resend_goes_out_again,
    correcting_a_bounced_address_sends_one_invitation_to_the_new_address_only,
    a_correction_to_a_taken_or_invalid_address_or_of_an_active_member_is_refused,
    a_correction_is_held_to_the_cooldown_of_a_resend,
    another_workspaces_member_can_be_neither_unsuppressed_nor_corrected,
    the_command_line_twins_unsuppress_and_correct_an_address,
);

/// What the reporting server said about the bounced emails; its `<…>` must show as text.
const DIAGNOSTIC: &str = "550 5.1.1 <person0@example.com>: Recipient address rejected";

/// Records a report of `kind` about the latest sent email of the member with `email`, as the
/// bounce reader does.
async fn report(app: &TestApp, email: &str, kind: ReportKind) {
    let member = app.member_id(email).await;
    let applied = app
        .db
        .run(move |conn| {
            let delivery: i64 = on_conn!(conn, |c| deliveries::table
                .filter(deliveries::member_id.eq(member))
                .filter(deliveries::state.eq("sent"))
                .order(deliveries::id.desc())
                .select(deliveries::id)
                .first(c))?;
            let finding = Finding {
                digest: format!("report-of-{delivery}"),
                kind,
                status: Some("5.1.1".into()),
                diagnostic: Some(DIAGNOSTIC.into()),
            };
            Ok(bounces::apply(
                conn,
                &Named::Delivery(DeliveryId(delivery)),
                &finding,
            )?)
        })
        .await
        .unwrap();
    assert!(
        matches!(applied, Applied::Recorded { changed: true, .. }),
        "{applied:?}"
    );
}

/// The link tokens of every email sent to `email` so far.
fn tokens_to(app: &TestApp, email: &str) -> Vec<String> {
    app.emails()
        .iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r == email))
        .map(|m| app.token_in(&m.text_body()))
        .collect()
}

/// A response's status and JSON body.
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// The workspace's audit entries of `action`, oldest first, as `(action, target)`.
async fn audited(app: &TestApp, action: &str) -> Vec<String> {
    let log = app.get_json("/audit").await;
    let mut targets: Vec<String> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| e["target"].as_str().unwrap().to_owned())
        .collect();
    targets.reverse();
    targets
}

/// Uploads `people_csv(n)`, waits until every email went out, and bounces the first person's.
async fn with_bounced_person0(app: &TestApp, n: usize) -> (i64, i64) {
    let import = app.upload_ok(people_csv(n)).await;
    app.settled(import).await;
    report(app, "person0@example.com", ReportKind::Bounced).await;
    (import, app.member_id("person0@example.com").await)
}

async fn a_bounced_member_is_shown_suppressed_and_a_resend_is_refused_in_words(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let (import, member) = with_bounced_person0(&app, 2).await;

    let shown = app.member("person0@example.com").await;
    let (status, refusal) = answer(app.post(&format!("/members/{member}/resend")).await).await;
    let retried = app.post(&format!("/imports/{import}/retry")).await;

    assert_eq!(shown["suppressed"], "bounced");
    assert_eq!(shown["email_status"], "bounced");
    assert_eq!(shown["last_error"], DIAGNOSTIC);
    assert_eq!(
        app.member("person1@example.com").await["suppressed"],
        Value::Null
    );
    assert_eq!(status, 409);
    assert_eq!(refusal["error"]["code"], "suppressed");
    let words = refusal["error"]["message"].as_str().unwrap();
    assert!(words.contains("bounced"), "{words}");
    assert!(words.contains("correct the address"), "{words}");
    assert!(words.contains("unsuppress"), "{words}");
    assert_eq!(
        retried.json::<Value>().await.unwrap(),
        json!({"requeued": 0}),
        "a bounced email is not failed: a retry never sends it again"
    );
    let listed = app.get_json("/members?email_status=bounced").await;
    assert_eq!(listed["members"].as_array().unwrap().len(), 1, "{listed}");
    app.settled(import).await;
    assert_eq!(tokens_to(&app, "person0@example.com").len(), 1);
}

async fn a_complained_member_is_refused_an_unarchive_until_unsuppressed(stack: Stack) {
    let mut app = TestApp::spawn_with(stack, |s| {
        s.member_action_cooldown = std::time::Duration::ZERO;
    })
    .await;
    app.start_worker().await;
    let import = app.upload_ok(people_csv(1)).await;
    app.settled(import).await;
    report(&app, "person0@example.com", ReportKind::Complained).await;
    let member = app.member_id("person0@example.com").await;
    app.post(&format!("/members/{member}/archive")).await;

    let (status, refusal) = answer(app.post(&format!("/members/{member}/unarchive")).await).await;
    let unsuppressed = app.post(&format!("/members/{member}/unsuppress")).await;
    let unarchived = app.post(&format!("/members/{member}/unarchive")).await;

    assert_eq!(status, 409);
    assert_eq!(refusal["error"]["code"], "suppressed");
    let words = refusal["error"]["message"].as_str().unwrap();
    assert!(words.contains("abuse"), "{words}");
    assert!(words.contains("unsuppress"), "{words}");
    assert_eq!(unsuppressed.status(), 200);
    assert_eq!(unarchived.status(), 200);
    app.settled(import).await;
    assert_eq!(tokens_to(&app, "person0@example.com").len(), 2);
}

async fn reminders_skip_suppressed_members_and_count_them_apart(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let (import, _) = with_bounced_person0(&app, 3).await;
    report(&app, "person1@example.com", ReportKind::Complained).await;

    let (status, reminded) = answer(app.post_json("/members/remind", json!({})).await).await;

    assert_eq!(status, 202);
    // The admin who uploaded is active: skipped, as before.
    assert_eq!(
        reminded,
        json!({"reminded": 1, "skipped": 1, "suppressed": 2})
    );
    app.settled(import).await;
    let reminders: Vec<String> = app
        .emails()
        .iter()
        .filter(|m| m.subject().starts_with("Reminder: "))
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    assert_eq!(reminders, ["person2@example.com"]);
    assert_eq!(
        audited(&app, "remind").await,
        ["members: 1 reminded, 1 skipped, 2 suppressed"]
    );
}

async fn unsuppressing_clears_the_suppression_once_and_a_resend_goes_out_again(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let (import, member) = with_bounced_person0(&app, 1).await;

    let (first, cleared) = answer(app.post(&format!("/members/{member}/unsuppress")).await).await;
    let (again, unchanged) = answer(app.post(&format!("/members/{member}/unsuppress")).await).await;
    let resent = app.post(&format!("/members/{member}/resend")).await;

    assert_eq!((first, again), (200, 200));
    assert_eq!(cleared["suppressed"], Value::Null);
    assert_eq!(cleared["id"], member);
    assert_eq!(unchanged["suppressed"], Value::Null);
    assert_eq!(
        audited(&app, "unsuppress").await,
        [format!("member {member}")],
        "audited once"
    );
    assert_eq!(resent.status(), 202);
    app.settled(import).await;
    assert_eq!(tokens_to(&app, "person0@example.com").len(), 2);
    let events = app.get_json(&format!("/members/{member}/events")).await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"unsuppress"), "{kinds:?}");
}

async fn correcting_a_bounced_address_sends_one_invitation_to_the_new_address_only(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let other = app.other_workspace().await;
    let globex_tokens = tokens_to(&app, "person0@example.com");
    let (import, member) = with_bounced_person0(&app, 1).await;
    let old_token = tokens_to(&app, "person0@example.com")
        .into_iter()
        .find(|t| !globex_tokens.contains(t))
        .expect("acme's invitation");

    let (status, corrected) = answer(
        app.post_json(
            &format!("/members/{member}/email"),
            json!({"email": " Person0.Fixed@Example.COM "}),
        )
        .await,
    )
    .await;

    assert_eq!(status, 202, "{corrected}");
    assert_eq!(corrected["id"], member);
    assert_eq!(corrected["email"], "person0.fixed@example.com");
    assert_eq!(corrected["suppressed"], Value::Null);
    assert_eq!(corrected["status"], "invited");
    assert_eq!(corrected["first_name"], "First0");
    app.settled(import).await;
    let new_tokens = tokens_to(&app, "person0.fixed@example.com");
    assert_eq!(
        new_tokens.len(),
        1,
        "exactly one invitation to the new address"
    );
    assert_eq!(
        tokens_to(&app, "person0@example.com").len(),
        2,
        "nothing more to the old address"
    );
    assert_eq!(app.show_invitation(&old_token).await.status(), 410);
    assert_eq!(app.accept_invitation(&new_tokens[0]).await.status(), 200);
    assert_eq!(
        app.member("person0.fixed@example.com").await["status"],
        "active"
    );
    let found = app.get_json("/members?q=fixed").await;
    assert_eq!(
        found["members"][0]["id"], member,
        "found by the new address"
    );
    // Another workspace's membership of the old address is untouched, and its link works.
    let globex = app
        .get_in(
            ("globex", &other.token),
            &format!("/members/{}", other.member),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(globex["email"], "person0@example.com");
    assert_eq!(globex["status"], "invited");
    assert_eq!(app.show_invitation(&globex_tokens[0]).await.status(), 200);
    let audit = app.get("/audit").await.text().await.unwrap();
    assert!(
        !audit.contains("fixed"),
        "no address in the audit log: {audit}"
    );
    assert_eq!(
        audited(&app, "address_change").await,
        [format!("member {member}")]
    );
    let events = app.get_json(&format!("/members/{member}/events")).await;
    let events = events["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["kind"] == "address_change"));
    assert!(events.iter().any(|e| e["cause"] == "address_change"));
}

async fn a_correction_to_a_taken_or_invalid_address_or_of_an_active_member_is_refused(
    stack: Stack,
) {
    let app = TestApp::spawn(stack).await;
    let import = app.upload_ok(people_csv(2)).await;
    app.settled(import).await;
    let (person0, person1) = (
        app.member_id("person0@example.com").await,
        app.member_id("person1@example.com").await,
    );
    let change = |member: i64, email: &str| {
        let body = json!({ "email": email });
        let path = format!("/members/{member}/email");
        let app = &app;
        async move { answer(app.post_json(&path, body).await).await }
    };

    let taken = change(person0, "PERSON1@example.com").await;
    let unchanged = change(person0, "person0@EXAMPLE.com").await;
    let invalid = change(person0, "person0@@example.com").await;
    let (missing, _) = answer(
        app.post_json(&format!("/members/{person0}/email"), json!({}))
            .await,
    )
    .await;
    let token = &tokens_to(&app, "person1@example.com")[0];
    app.accept_invitation(token).await;
    let active = change(person1, "someone.else@example.com").await;

    assert_eq!(
        (taken.0, &taken.1["error"]["code"]),
        (409, &json!("email_taken"))
    );
    assert_eq!(
        (unchanged.0, &unchanged.1["error"]["code"]),
        (409, &json!("email_unchanged"))
    );
    assert_eq!(
        (invalid.0, &invalid.1["error"]["code"]),
        (422, &json!("invalid_email"))
    );
    assert_eq!(
        invalid.1["error"]["message"],
        InviteeEmail::parse("person0@@example.com").unwrap_err(),
        "the words of an import's results"
    );
    assert_eq!(
        (active.0, &active.1["error"]["code"]),
        (409, &json!("member_active"))
    );
    assert_eq!(missing, 422, "a body without an address");
    app.settled(import).await;
    assert_eq!(app.emails().len(), 2, "nothing sent");
    assert_eq!(
        app.member("person0@example.com").await["id"],
        person0,
        "the address unchanged"
    );
}

async fn a_correction_is_held_to_the_cooldown_of_a_resend(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let (import, member) = with_bounced_person0(&app, 1).await;

    let first = app
        .post_json(
            &format!("/members/{member}/email"),
            json!({"email": "first.fix@example.com"}),
        )
        .await;
    let second = app
        .post_json(
            &format!("/members/{member}/email"),
            json!({"email": "second.fix@example.com"}),
        )
        .await;

    assert_eq!(first.status(), 202);
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
    app.settled(import).await;
    assert!(tokens_to(&app, "second.fix@example.com").is_empty());
    assert_eq!(
        app.member("first.fix@example.com").await["id"],
        member,
        "the first correction stands"
    );
}

async fn another_workspaces_member_can_be_neither_unsuppressed_nor_corrected(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let other = app.other_workspace().await;

    let unsuppress = app
        .post(&format!("/members/{}/unsuppress", other.member))
        .await;
    let correct = app
        .post_json(
            &format!("/members/{}/email", other.member),
            json!({"email": "taken.over@example.com"}),
        )
        .await;

    assert_eq!(unsuppress.status(), 404);
    assert_eq!(correct.status(), 404);
    let untouched = app
        .get_in(
            ("globex", &other.token),
            &format!("/members/{}", other.member),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(untouched["email"], "person0@example.com");
    assert_eq!(app.emails().len(), 1);
}

async fn the_command_line_twins_unsuppress_and_correct_an_address(stack: Stack) {
    let mut app = TestApp::spawn_with(stack, |s| {
        s.member_action_cooldown = std::time::Duration::from_secs(3600);
    })
    .await;
    app.start_worker().await;
    let (import, member) = with_bounced_person0(&app, 1).await;
    let (settings, slug, id) = (&app.settings, app.workspace.as_str(), MemberId(member));

    let refused = invite_api::commands::resend(settings, &app.db, slug, id)
        .await
        .unwrap_err();
    let unsuppressed = invite_api::commands::unsuppress(&app.db, slug, id)
        .await
        .unwrap();
    let new = InviteeEmail::parse("cli.fix@example.com").unwrap();
    // The operator is held to no cooldown: a resend right before does not stop the correction.
    invite_api::commands::resend(settings, &app.db, slug, id)
        .await
        .unwrap();
    let corrected = invite_api::commands::change_email(settings, &app.db, slug, (id, new))
        .await
        .unwrap();

    let refused = format!("{refused:#}");
    assert!(refused.contains("bounced"), "{refused}");
    assert!(refused.contains("invite-api change-email"), "{refused}");
    assert!(
        unsuppressed.contains("no longer suppressed"),
        "{unsuppressed}"
    );
    assert!(corrected.contains("address corrected"), "{corrected}");
    assert!(
        !corrected.contains("cli.fix@example.com"),
        "masked: {corrected}"
    );
    app.settled(import).await;
    assert_eq!(tokens_to(&app, "cli.fix@example.com").len(), 1);
    assert_eq!(
        audited(&app, "address_change").await,
        [format!("member {member}")]
    );
}
