//! A member's timeline (`GET …/members/{id}/events`) on both stacks, each sending over real SMTP
//! to the test server, which answers as scripted: every invitation, email, send attempt with the
//! server's reply, support action with its admin, report from the bounce mailbox, the first
//! opening of a link and the acceptance, newest first, a page at a time, and nothing of another
//! workspace.

use std::time::Duration;

use invite_tests::app::{Stack, TestApp};
use invite_tests::bounces::{BOUNCE, DELAY, email_to, handle};
use invite_tests::on_both_stacks;
use invite_tests::smtp::{ReplyPlan, SmtpServer};
use serde_json::Value;

on_both_stacks!(
    a_members_story_is_told_newest_first_with_every_reply_and_admin,
    pages_of_the_timeline_hold_every_event_exactly_once,
    another_workspaces_member_has_no_timeline_here,
    a_delay_then_a_bounce_are_told_after_the_send,
);

const ADA: &str = "ada@example.com";

/// Bob on row 2, Ada on row 3.
const CSV: &str = "First Name,Last Name,Email,User Role\n\
    Bob,Babbage,bob@example.com,End User\n\
    Ada,Lovelace,ada@example.com,End User\n";

/// The app sending over SMTP on either stack (the SQLite stack to a server of its own), with no
/// cooldown between support actions and no worker yet.
struct Story {
    app: TestApp,
    own_smtp: Option<SmtpServer>,
}

impl Story {
    async fn start(stack: Stack) -> Story {
        let own_smtp = match stack {
            Stack::Postgres => None,
            Stack::Sqlite => Some(SmtpServer::start().await),
        };
        let url = own_smtp.as_ref().map(SmtpServer::url);
        let app = TestApp::spawn_with(stack, |s| {
            s.member_action_cooldown = Duration::ZERO;
            if let Some(url) = url {
                s.smtp_url = Some(url.into());
            }
        })
        .await;
        Story { app, own_smtp }
    }

    fn smtp(&self) -> &SmtpServer {
        self.own_smtp.as_ref().unwrap_or_else(|| self.app.smtp())
    }

    /// Runs a worker until every email of `import` is settled, then stops it, so the next support
    /// action is recorded before anything it queues is sent.
    async fn send_all(&mut self, import: i64) {
        self.app.start_worker().await;
        self.app.settled(import).await;
        self.app.stop_workers().await;
    }

    /// Posts a support action on `member`, asserting `status`.
    async fn act(&self, member: i64, action: &str, status: u16) {
        let response = self.app.post(&format!("/members/{member}/{action}")).await;
        assert_eq!(response.status(), status, "{action}");
    }

    /// The link of the latest email to `to`.
    fn latest_link(&self, to: &str) -> String {
        let messages = self.smtp().messages();
        let last = messages
            .iter()
            .rfind(|m| m.rcpt_to.iter().any(|r| r == to))
            .expect("an email");
        self.app.token_in(&last.text_body())
    }

    /// One page of the member's timeline.
    async fn page(&self, member: i64, query: &str) -> Value {
        let response = self
            .app
            .get(&format!("/members/{member}/events{query}"))
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Every event of the member's timeline, in one page.
    async fn events(&self, member: i64) -> Vec<Value> {
        let page = self.page(member, "?limit=500").await;
        assert_eq!(page["next_cursor"], Value::Null, "one page holds them");
        page["events"].as_array().unwrap().clone()
    }
}

/// An event in words: its kind and what tells it apart, the reply by its code alone.
fn told(event: &Value) -> String {
    let kind = event["kind"].as_str().unwrap();
    let text = |key: &str| event[key].as_str().unwrap_or("null").to_owned();
    match kind {
        "imported" => format!("imported {} row {}", text("file_name"), event["row"]),
        "invited" => format!("invited by {}", text("cause")),
        "email" => format!("email {} after {}", text("state"), event["attempts"]),
        "send_attempt" => format!("{} {}", text("result"), &text("reply")[..3]),
        "resend" | "archive" | "unarchive" | "invitation_link" => {
            format!("{kind} by {}", text("actor"))
        }
        "bounce_report" => format!("{} {}", text("report"), text("status")),
        _ => kind.to_owned(),
    }
}

async fn a_members_story_is_told_newest_first_with_every_reply_and_admin(stack: Stack) {
    let mut story = Story::start(stack).await;
    story.smtp().reply_for(ADA, ReplyPlan::TransientTimes(2));
    let import = story.app.upload_ok(CSV).await;
    story.send_all(import).await;
    let ada = story.app.member_id(ADA).await;
    story.act(ada, "resend", 202).await;
    story.send_all(import).await;
    story.act(ada, "archive", 200).await;
    story.act(ada, "unarchive", 200).await;
    story.send_all(import).await;
    let link = story.latest_link(ADA);
    assert_eq!(story.app.show_invitation(&link).await.status(), 200);
    assert_eq!(story.app.show_invitation(&link).await.status(), 200);
    assert_eq!(story.app.accept_invitation(&link).await.status(), 200);

    let events = story.events(ada).await;

    let told: Vec<String> = events.iter().map(told).collect();
    assert_eq!(
        told,
        [
            "accepted",
            "opened",
            "accepted 250",
            "unarchive by admin@acme.test",
            "email sent after 1",
            "invited by unarchive",
            "archive by admin@acme.test",
            "accepted 250",
            "resend by admin@acme.test",
            "email sent after 1",
            "invited by resend",
            "accepted 250",
            "retried 451",
            "retried 451",
            "email sent after 3",
            "invited by import",
            "imported people.csv row 3",
        ]
    );
    let times: Vec<&str> = events.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(times.is_sorted_by(|a, b| a >= b), "newest first: {times:?}");
    let retried = &events[12]["reply"];
    assert_eq!(
        retried, "451 4.3.0 try later",
        "the server's reply, as it said it"
    );
    let last_invitation = &events[5]["invitation_id"];
    assert_eq!(&events[0]["invitation_id"], last_invitation, "accepted");
    assert_eq!(&events[1]["invitation_id"], last_invitation, "opened");
    assert_eq!(events[16]["import_id"], import);
    assert_eq!(
        kept_attempts(&story.app).await,
        2,
        "only Ada's two refused attempts: the sends accepted at once (Bob's, the resend's, the \
         unarchive's) wrote no attempt row"
    );
}

/// How many rows `delivery_attempts` holds, over every email.
async fn kept_attempts(app: &TestApp) -> i64 {
    use diesel::prelude::*;
    use invite_shared::db::schema::delivery_attempts;
    app.db
        .run(|conn| {
            Ok(invite_shared::on_conn!(conn, |c| delivery_attempts::table
                .count()
                .get_result(c))?)
        })
        .await
        .unwrap()
}

async fn pages_of_the_timeline_hold_every_event_exactly_once(stack: Stack) {
    let mut story = Story::start(stack).await;
    story.smtp().reply_for(ADA, ReplyPlan::TransientTimes(1));
    let import = story.app.upload_ok(CSV).await;
    // Two resends before anything is sent: the first two emails are superseded unsent.
    story.app.process_without_sending(import).await;
    let ada = story.app.member_id(ADA).await;
    story.act(ada, "resend", 202).await;
    story.act(ada, "resend", 202).await;
    story.act(ada, "invitation-link", 200).await;
    story.send_all(import).await;
    let all = story.events(ada).await;

    let mut paged = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = story.page(ada, &query).await;
        paged.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
        assert!(paged.len() <= all.len(), "pages never end: {paged:?}");
    }

    assert_eq!(paged, all);
    let told: Vec<String> = all.iter().map(told).collect();
    assert_eq!(
        told.iter()
            .filter(|t| *t == "email superseded after 0")
            .count(),
        2,
        "{told:?}"
    );
    assert!(told.contains(&"invitation_link by admin@acme.test".to_owned()));
    assert!(told.contains(&"retried 451".to_owned()), "{told:?}");
}

async fn another_workspaces_member_has_no_timeline_here(stack: Stack) {
    let mut story = Story::start(stack).await;
    story.app.start_worker().await;
    let theirs = story.app.other_workspace().await;
    let import = story.app.upload_ok(CSV).await;
    story.app.settled(import).await;
    let ours = story.app.member_id(ADA).await;

    let across = story
        .app
        .get(&format!("/members/{}/events", theirs.member))
        .await;
    let back = story
        .app
        .client
        .get(format!(
            "{}/api/v1/workspaces/globex/members/{ours}/events",
            story.app.base
        ))
        .bearer_auth(&theirs.token)
        .send()
        .await
        .unwrap();
    let bad_cursor = story
        .app
        .get(&format!("/members/{ours}/events?cursor=yesterday"))
        .await;

    assert_eq!(across.status(), 404);
    assert_eq!(back.status(), 404);
    assert_eq!(bad_cursor.status(), 400);
    let body: Value = bad_cursor.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
}

async fn a_delay_then_a_bounce_are_told_after_the_send(stack: Stack) {
    let mut story = Story::start(stack).await;
    let import = story.app.upload_ok(CSV).await;
    story.send_all(import).await;
    let ada = story.app.member_id(ADA).await;
    let email = email_to(&story.app, ADA).await;
    handle(&story.app, DELAY.about(&email)).await;
    handle(&story.app, BOUNCE.about(&email)).await;

    let events = story.events(ada).await;
    let first = story.page(ada, "?limit=1").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = story.page(ada, &format!("?limit=1&cursor={cursor}")).await;

    let told: Vec<String> = events.iter().map(told).collect();
    assert_eq!(
        told,
        [
            "bounced 5.1.1",
            "delayed 4.4.1",
            "accepted 250",
            "email bounced after 1",
            "invited by import",
            "imported people.csv row 3",
        ]
    );
    assert_eq!(events[0]["email_id"], email.id);
    assert_eq!(events[0]["diagnostic"], format!("unknown user: \"{ADA}\""));
    let delay = events[1]["diagnostic"].as_str().unwrap();
    assert!(delay.contains("Connection timed out"), "{delay}");
    assert!(cursor.contains(".report."), "{cursor}");
    assert_eq!(first["events"][0], events[0]);
    assert_eq!(second["events"][0], events[1], "the page after a report");
}
