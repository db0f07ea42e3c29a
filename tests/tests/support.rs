//! Support tools on both stacks: retry an import's failed sends, resend one member's invitation,
//! copy a link, archive and unarchive — through the HTTP API only, so the tests hold whatever
//! engine sends the emails.

use std::collections::HashSet;
use std::time::Duration;

use diesel::prelude::*;
use invite_shared::config::Edition;
use invite_shared::db::schema::deliveries;
use invite_shared::ids::ImportId;
use invite_shared::on_conn;
use invite_shared::status::DeliveryState;
use invite_shared::store::tallies::{self, Tally};
use invite_tests::app::{Stack, TestApp, people_csv};
use invite_tests::on_both_stacks;
use invite_tests::smtp::ReplyPlan;
use serde_json::{Value, json};

on_both_stacks!(
    a_resend_emails_a_second_link_and_both_links_work,
    resending_to_an_active_member_is_a_conflict_and_sends_nothing,
    resending_to_an_archived_member_is_a_conflict_that_says_to_unarchive_first,
    a_copied_invitation_link_opens_the_invitation_and_sends_no_email,
    copying_an_invitation_link_is_forbidden_on_cloud,
    archiving_revokes_every_earlier_link_and_cancels_the_pending_email,
    unarchiving_invites_again_with_a_new_link_while_the_old_ones_stay_revoked,
    unarchiving_a_member_who_is_not_archived_is_a_conflict,
    a_retry_sends_exactly_the_failed_emails_once_more,
    a_retry_leaves_out_members_archived_since_their_send_failed,
    a_member_resent_after_a_failure_is_listed_by_their_latest_email,
    another_workspaces_member_or_import_is_not_found,
    a_later_upload_of_an_archived_members_address_is_skipped_as_archived,
);

/// The link tokens of every email sent to `email` so far.
fn tokens_to(app: &TestApp, email: &str) -> Vec<String> {
    app.emails()
        .iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r == email))
        .map(|m| app.token_in(&m.text_body()))
        .collect()
}

/// The error code of a JSON error response.
async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Uploads `people_csv(n)` and settles it with the sends to `failing` ended `failed`, then removes
/// the cause, so a retry can succeed. On PostgreSQL the SMTP server refuses those recipients for
/// real (550). The outbox of the embedded stack cannot refuse, so there the arrangement writes the
/// failure into the ledger and takes the emails out of the outbox, as if they had never gone.
async fn upload_with_failed_sends(app: &TestApp, n: usize, failing: &[&str]) -> i64 {
    if let Some(smtp) = smtp_of(app) {
        for address in failing {
            smtp.reply_for(address, ReplyPlan::Permanent);
        }
    }
    let id = app.upload_ok(people_csv(n)).await;
    app.settled(id).await;
    match smtp_of(app) {
        Some(smtp) => {
            for address in failing {
                smtp.reply_for(address, ReplyPlan::TransientTimes(0));
            }
        }
        None => {
            let mut members = Vec::new();
            for address in failing {
                members.push(app.member_id(address).await);
            }
            app.db
                .run(move |conn| {
                    let failed = on_conn!(conn, |c| diesel::update(
                        deliveries::table.filter(deliveries::member_id.eq_any(&members))
                    )
                    .set((
                        deliveries::state.eq("failed"),
                        deliveries::last_error.eq(Some("550 5.1.1 no such user (arranged)")),
                    ))
                    .execute(c))?;
                    let moved =
                        Tally::moved(DeliveryState::Sent, DeliveryState::Failed, failed as i64);
                    tallies::add(conn, ImportId(id), moved)?;
                    Ok(())
                })
                .await
                .unwrap();
            remove_from_outbox(app, failing);
        }
    }
    id
}

fn smtp_of(app: &TestApp) -> Option<&invite_tests::smtp::SmtpServer> {
    app.settings.smtp_url.is_some().then(|| app.smtp())
}

/// Deletes the outbox files addressed to any of `addresses`.
fn remove_from_outbox(app: &TestApp, addresses: &[&str]) {
    for entry in std::fs::read_dir(app.settings.outbox_dir()).unwrap() {
        let path = entry.unwrap().path();
        let to =
            invite_tests::app::recipient_of(&std::fs::read(&path).unwrap()).unwrap_or_default();
        if addresses.contains(&to.as_str()) {
            std::fs::remove_file(path).unwrap();
        }
    }
}

async fn a_resend_emails_a_second_link_and_both_links_work(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(people_csv(1)).await;
    app.settled(id).await;
    let member = app.member_id("person0@example.com").await;

    let response = app.post(&format!("/members/{member}/resend")).await;

    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], member);
    assert_eq!(body["status"], "invited");
    let import = app.settled(id).await;
    assert_eq!(import["emails"]["failed"], 0);
    let tokens = tokens_to(&app, "person0@example.com");
    assert_eq!(tokens.len(), 2, "a second email");
    assert_ne!(tokens[0], tokens[1], "with a new link");
    for token in &tokens {
        assert_eq!(app.show_invitation(token).await.status(), 200);
    }
    assert_eq!(app.accept_invitation(&tokens[1]).await.status(), 200);
    assert_eq!(app.accept_invitation(&tokens[0]).await.status(), 409);
}

async fn resending_to_an_active_member_is_a_conflict_and_sends_nothing(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(people_csv(1)).await;
    app.settled(id).await;
    let token = &tokens_to(&app, "person0@example.com")[0];
    app.accept_invitation(token).await;
    let member = app.member_id("person0@example.com").await;

    let resend = app.post(&format!("/members/{member}/resend")).await;
    let link = app
        .post(&format!("/members/{member}/invitation-link"))
        .await;

    assert_eq!(resend.status(), 409);
    assert_eq!(error_code(resend).await, "member_active");
    assert_eq!(link.status(), 409);
    assert_eq!(error_code(link).await, "member_active");
    // A queued email would keep the import from settling until it was sent.
    app.settled(id).await;
    assert_eq!(app.emails().len(), 1);
}

async fn resending_to_an_archived_member_is_a_conflict_that_says_to_unarchive_first(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(people_csv(1)).await;
    app.settled(id).await;
    let member = app.member_id("person0@example.com").await;
    app.post(&format!("/members/{member}/archive")).await;

    let response = app.post(&format!("/members/{member}/resend")).await;

    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "member_archived");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unarchive them first"),
        "{body}"
    );
    app.settled(id).await;
    assert_eq!(app.emails().len(), 1);
}

async fn a_copied_invitation_link_opens_the_invitation_and_sends_no_email(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(people_csv(1)).await;
    app.settled(id).await;
    let member = app.member_id("person0@example.com").await;

    let response = app
        .post(&format!("/members/{member}/invitation-link"))
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let url = body["url"].as_str().unwrap();
    let token = url
        .strip_prefix(&format!("{}/invitations/", app.base))
        .unwrap_or_else(|| panic!("a link under PUBLIC_URL: {url}"));
    let expires_at = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap())
        .expect("an RFC 3339 expiry");
    let ttl = chrono::Duration::from_std(app.settings.invite_ttl).unwrap();
    let from_now = expires_at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        from_now > ttl - chrono::Duration::minutes(5) && from_now <= ttl,
        "valid for INVITE_TTL: {body}"
    );
    let shown = app.show_invitation(token).await;
    assert_eq!(shown.status(), 200);
    let shown: Value = shown.json().await.unwrap();
    assert_eq!(shown["email"], "person0@example.com");
    assert_ne!(token, tokens_to(&app, "person0@example.com")[0]);
    app.settled(id).await;
    assert_eq!(app.emails().len(), 1, "copying a link emails nobody");
}

async fn copying_an_invitation_link_is_forbidden_on_cloud(stack: Stack) {
    let mut app = TestApp::spawn_with(stack, |s| s.edition = Edition::Cloud).await;
    app.start_worker().await;
    let id = app.upload_ok(people_csv(1)).await;
    app.settled(id).await;
    let member = app.member("person0@example.com").await;
    assert_eq!(member["status"], "requested");

    let response = app
        .post(&format!("/members/{}/invitation-link", member["id"]))
        .await;

    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "self_hosted_only");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("self-hosted") && message.contains("email"),
        "says why: {message}"
    );
}

async fn archiving_revokes_every_earlier_link_and_cancels_the_pending_email(stack: Stack) {
    // A resend and a copied link of one member in a row: no cooldown between them here.
    let mut app = TestApp::spawn_with(stack, |s| s.member_action_cooldown = Duration::ZERO).await;
    app.start_worker().await;
    let id = app.upload_ok(people_csv(1)).await;
    app.settled(id).await;
    let emailed = tokens_to(&app, "person0@example.com")[0].clone();
    let member = app.member_id("person0@example.com").await;
    // With no worker running, a resend leaves a pending email (and its invitation a copied link).
    app.stop_workers().await;
    assert_eq!(
        app.post(&format!("/members/{member}/resend"))
            .await
            .status(),
        202
    );
    let copied: Value = app
        .post(&format!("/members/{member}/invitation-link"))
        .await
        .json()
        .await
        .unwrap();
    let copied = copied["url"].as_str().unwrap().rsplit('/').next().unwrap();

    let response = app.post(&format!("/members/{member}/archive")).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "archived");
    assert_eq!(body["email_status"], "cancelled");
    for token in [emailed.as_str(), copied] {
        let shown = app.show_invitation(token).await;
        assert_eq!(shown.status(), 410);
        assert_eq!(error_code(shown).await, "invitation_revoked");
        assert_eq!(app.accept_invitation(token).await.status(), 410);
    }
    // A worker now finds nothing due: had the email stayed pending, the import would settle only
    // once it was sent.
    app.start_worker().await;
    let import = app.settled(id).await;
    assert_eq!(import["emails"]["pending"], 0);
    assert_eq!(tokens_to(&app, "person0@example.com").len(), 1);
    let again = app.post(&format!("/members/{member}/archive")).await;
    assert_eq!(again.status(), 200, "archiving twice is harmless");
}

async fn unarchiving_invites_again_with_a_new_link_while_the_old_ones_stay_revoked(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(people_csv(1)).await;
    app.settled(id).await;
    let old = tokens_to(&app, "person0@example.com")[0].clone();
    let member = app.member_id("person0@example.com").await;
    app.post(&format!("/members/{member}/archive")).await;

    let response = app.post(&format!("/members/{member}/unarchive")).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "invited");
    app.settled(id).await;
    let tokens = tokens_to(&app, "person0@example.com");
    assert_eq!(tokens.len(), 2, "a new email");
    let new = tokens.iter().find(|t| **t != old).unwrap();
    assert_eq!(app.show_invitation(&old).await.status(), 410);
    assert_eq!(app.show_invitation(new).await.status(), 200);
    assert_eq!(app.accept_invitation(&old).await.status(), 410);
    assert_eq!(app.accept_invitation(new).await.status(), 200);
    assert_eq!(
        app.member_id("person0@example.com").await,
        member,
        "the same membership"
    );
}

async fn unarchiving_a_member_who_is_not_archived_is_a_conflict(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(people_csv(1)).await;
    app.settled(id).await;
    let member = app.member_id("person0@example.com").await;

    let response = app.post(&format!("/members/{member}/unarchive")).await;

    assert_eq!(response.status(), 409);
    assert_eq!(error_code(response).await, "member_not_archived");
    app.settled(id).await;
    assert_eq!(app.emails().len(), 1);
}

/// The addresses of the members whose latest email is in `status`, sorted.
async fn listed(app: &TestApp, status: &str) -> Vec<String> {
    let page = app
        .get_json(&format!("/members?email_status={status}"))
        .await;
    let mut emails: Vec<String> = page["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap().to_owned())
        .collect();
    emails.sort();
    emails
}

async fn a_retry_sends_exactly_the_failed_emails_once_more(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let failing = ["person1@example.com", "person3@example.com"];
    let id = upload_with_failed_sends(&app, 4, &failing).await;
    let failed = app
        .get_json(&format!("/members?email_status=failed&import={id}"))
        .await;
    let failed: HashSet<&str> = failed["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert_eq!(failed, HashSet::from(failing));

    let response = app.post(&format!("/imports/{id}/retry")).await;

    assert_eq!(response.status(), 202);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"requeued": 2})
    );
    let import = app.settled(id).await;
    assert_eq!(
        import["emails"],
        json!({"pending": 0, "sent": 4, "failed": 0, "bounced": 0, "complained": 0})
    );
    for i in 0..4 {
        let address = format!("person{i}@example.com");
        assert_eq!(tokens_to(&app, &address).len(), 1, "one email to {address}");
    }
    for address in failing {
        let member = app.member(address).await;
        assert_eq!(member["email_status"], "sent");
        assert_eq!(member["email_attempts"], 1, "a fresh count: {member}");
    }
    let still_failed = app.get_json("/members?email_status=failed").await;
    assert_eq!(still_failed["members"], json!([]));
    let again = app.post(&format!("/imports/{id}/retry")).await;
    assert_eq!(again.json::<Value>().await.unwrap(), json!({"requeued": 0}));
}

async fn a_member_resent_after_a_failure_is_listed_by_their_latest_email(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = upload_with_failed_sends(&app, 2, &["person1@example.com"]).await;
    let member = app.member_id("person1@example.com").await;

    let response = app.post(&format!("/members/{member}/resend")).await;

    assert_eq!(response.status(), 202);
    app.settled(id).await;
    assert_eq!(
        tokens_to(&app, "person1@example.com").len(),
        1,
        "the resent email"
    );
    // The failed email is still on record, but the member's latest one was sent.
    assert_eq!(listed(&app, "failed").await, Vec::<String>::new());
    assert_eq!(
        listed(&app, "sent").await,
        ["person0@example.com", "person1@example.com"]
    );
    assert_eq!(
        app.member("person1@example.com").await["email_status"],
        "sent"
    );
}

async fn a_retry_leaves_out_members_archived_since_their_send_failed(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id =
        upload_with_failed_sends(&app, 3, &["person1@example.com", "person2@example.com"]).await;
    let archived = app.member_id("person2@example.com").await;
    app.post(&format!("/members/{archived}/archive")).await;

    let response = app.post(&format!("/imports/{id}/retry")).await;

    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"requeued": 1})
    );
    app.settled(id).await;
    assert_eq!(tokens_to(&app, "person1@example.com").len(), 1);
    assert!(tokens_to(&app, "person2@example.com").is_empty());
}

async fn another_workspaces_member_or_import_is_not_found(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let other = app.other_workspace().await;
    let (other_token, other_import, other_member) = (other.token, other.import, other.member);

    let mut statuses = vec![
        app.post(&format!("/imports/{other_import}/retry"))
            .await
            .status(),
    ];
    for action in ["resend", "invitation-link", "archive", "unarchive"] {
        statuses.push(
            app.post(&format!("/members/{other_member}/{action}"))
                .await
                .status(),
        );
    }

    assert!(statuses.iter().all(|s| *s == 404), "{statuses:?}");
    let untouched: Value = app
        .client
        .get(format!(
            "{}/api/v1/workspaces/globex/members/{other_member}",
            app.base
        ))
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(untouched["status"], "invited");
    app.settled_in("globex", &other_token, other_import).await;
    assert_eq!(app.emails().len(), 1);
}

async fn a_later_upload_of_an_archived_members_address_is_skipped_as_archived(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let first = app.upload_ok(people_csv(1)).await;
    app.settled(first).await;
    let member = app.member_id("person0@example.com").await;
    app.post(&format!("/members/{member}/archive")).await;

    let second = app.upload_ok(people_csv(1)).await;
    let import = app.settled(second).await;

    assert_eq!(import["rows"]["skipped"], 1);
    let results = app.results(second).await;
    assert!(
        results.contains(&format!("person0@example.com,skipped,archived,{member}")),
        "{results}"
    );
    assert_eq!(app.emails().len(), 1);
}
