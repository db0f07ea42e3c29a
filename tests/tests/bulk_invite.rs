//! End to end, on both stacks (PostgreSQL + Redis + SMTP, and the embedded SQLite + queue + outbox):
//! upload, process, email, accept.

use std::collections::HashSet;

use diesel::prelude::*;
use invite_shared::db::schema::invitation_links;
use invite_shared::on_conn;
use invite_shared::store::auth;
use invite_tests::app::{Stack, TestApp, people_csv, results_without_member_ids};
use invite_tests::on_both_stacks;
use invite_tests::smtp::ReplyPlan;
use serde_json::{Value, json};

on_both_stacks!(
    a_2000_row_upload_invites_and_emails_every_row_once_with_working_links,
    an_upload_is_accepted_before_any_worker_processes_it,
    the_invitation_email_names_the_workspace_the_inviter_the_link_and_its_expiry,
    accepting_a_link_activates_the_member_and_the_link_cannot_be_used_again,
    an_expired_link_is_gone,
    two_workers_share_one_import_and_send_each_email_once,
    a_backlog_built_while_no_worker_runs_drains_and_never_holds_a_queue_entry_per_row,
    admin_routes_require_a_token_of_an_admin_of_that_workspace,
    the_same_idempotency_key_returns_the_same_import_and_invites_once,
    bad_rows_never_stop_the_others_and_their_reasons_are_in_the_results,
    people_already_in_the_workspace_are_skipped_with_the_reason,
    a_header_without_required_columns_is_rejected_at_once,
    uploads_that_are_not_csv_or_too_large_get_a_clear_4xx,
    the_template_is_a_csv_the_upload_accepts,
    any_bytes_in_a_row_make_that_row_invalid_and_never_stall_the_import,
    malformed_requests_get_the_json_error_shape,
    the_queue_depth_counts_an_import_waiting_for_a_worker,
);

async fn a_2000_row_upload_invites_and_emails_every_row_once_with_working_links(stack: Stack) {
    let app = TestApp::spawn(stack).await;

    let id = app.upload_ok(people_csv(2000)).await;
    let import = app.settled(id).await;

    assert_eq!(import["status"], "completed");
    assert_eq!(
        import["rows"],
        json!({"total": 2000, "processed": 2000, "invited": 2000, "skipped": 0, "invalid": 0})
    );
    assert_eq!(
        import["emails"],
        json!({"pending": 0, "sent": 2000, "failed": 0, "bounced": 0, "complained": 0})
    );
    let messages = app.emails();
    assert_eq!(messages.len(), 2000);
    let recipients: HashSet<String> = messages.iter().map(|m| m.rcpt_to.join(",")).collect();
    assert_eq!(recipients.len(), 2000, "one message per address");
    for message in &messages {
        let token = app.token_in(&message.text_body());
        let shown: Value = app.show_invitation(&token).await.json().await.unwrap();
        assert_eq!(shown["email"], message.rcpt_to[0].as_str());
        assert_eq!(shown["workspace"], "acme");
    }
}

async fn an_upload_is_accepted_before_any_worker_processes_it(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;

    let response = app.upload(people_csv(10)).await;

    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "queued");
    assert_eq!(
        location,
        format!("/api/v1/workspaces/acme/imports/{}", body["id"])
    );
}

async fn the_invitation_email_names_the_workspace_the_inviter_the_link_and_its_expiry(
    stack: Stack,
) {
    let app = TestApp::spawn(stack).await;
    app.post_json("/groups", json!({"name": "Sales"})).await;
    let csv = "first_name;last_name;email address;role;groups\nGrace;Hopper;Grace@Example.com;builder;sales\n";

    let id = app.upload_ok(csv).await;
    app.settled(id).await;

    let message = &app.emails()[0];
    assert_eq!(message.rcpt_to, vec!["grace@example.com".to_owned()]);
    assert!(message.subject().contains("acme"), "{}", message.subject());
    let text = message.text_body();
    assert!(text.contains("Grace"), "{text}");
    assert!(
        text.contains("admin@acme.test"),
        "the inviter is named: {text}"
    );
    assert!(text.contains(&format!("{}/invitations/", app.base)));
    assert!(text.contains("UTC"), "the expiry is stated: {text}");
    assert!(message.html_body().contains(&app.token_in(&text)));
    let grace = app.member("grace@example.com").await;
    assert_eq!(grace["role"], "Builder");
    assert_eq!(grace["groups"], json!(["Sales"]));
    assert_eq!(grace["status"], "invited");
    assert_eq!(grace["email_status"], "sent");
}

async fn accepting_a_link_activates_the_member_and_the_link_cannot_be_used_again(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(people_csv(1)).await;
    app.settled(id).await;
    let token = app.token_in(&app.emails()[0].text_body());

    let first = app.accept_invitation(&token).await;
    let second = app.accept_invitation(&token).await;
    let unknown = app.accept_invitation("no-such-token").await;

    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 409);
    assert_eq!(unknown.status(), 404);
    let members = app.get_json("/members?status=active").await;
    let emails: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert!(emails.contains(&"person0@example.com"), "{members}");
    assert_eq!(app.show_invitation(&token).await.status(), 409);
}

async fn an_expired_link_is_gone(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(people_csv(1)).await;
    app.settled(id).await;
    let token = app.token_in(&app.emails()[0].text_body());
    app.db
        .run(|conn| {
            let past = chrono::Utc::now().naive_utc() - chrono::Duration::hours(1);
            on_conn!(conn, |c| diesel::update(invitation_links::table)
                .set(invitation_links::expires_at.eq(past))
                .execute(c))?;
            Ok(())
        })
        .await
        .unwrap();

    let shown = app.show_invitation(&token).await;
    let accepted = app.accept_invitation(&token).await;

    assert_eq!(shown.status(), 410);
    assert_eq!(accepted.status(), 410);
    let body: Value = accepted.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invitation_expired");
}

async fn two_workers_share_one_import_and_send_each_email_once(stack: Stack) {
    let mut app = TestApp::spawn_with(stack, |s| s.send_batch_size = 20).await;
    app.start_worker().await;
    app.start_worker().await;

    let id = app.upload_ok(people_csv(3000)).await;
    let import = app.settled(id).await;

    assert_eq!(import["rows"]["invited"], 3000);
    assert_eq!(import["emails"]["sent"], 3000);
    let messages = app.emails();
    let recipients: HashSet<String> = messages.iter().map(|m| m.rcpt_to.join(",")).collect();
    assert_eq!(messages.len(), 3000, "no address got a second email");
    assert_eq!(recipients.len(), 3000);
}

async fn a_backlog_built_while_no_worker_runs_drains_and_never_holds_a_queue_entry_per_row(
    stack: Stack,
) {
    let mut app = TestApp::spawn_without_workers(stack).await;
    let id = app.upload_ok(people_csv(20_000)).await;
    let queued = redis_entries(app.redis_prefix()).await;

    app.start_worker().await;
    let import = app.settled(id).await;
    let after = redis_entries(app.redis_prefix()).await;

    assert_eq!(import["status"], "completed");
    assert_eq!(import["rows"]["invited"], 20_000);
    assert_eq!(import["emails"]["sent"], 20_000);
    assert_eq!(app.emails().len(), 20_000);
    if let (Some(queued), Some(after)) = (queued, after) {
        assert!(
            queued <= 10,
            "the waiting import is a handful of Redis entries, not one per row: {queued}"
        );
        // Each wake-up job leaves entries in Redis, and a slower drain (a loaded machine) has
        // more wake-ups: hundreds at most, where one per row would be 20,000.
        assert!(after <= 1_000, "wake-up jobs, not one per row: {after}");
    }
}

/// Every entry (hash field, list item, set member) under the test's Redis key prefix, if on Redis.
async fn redis_entries(prefix: Option<&str>) -> Option<usize> {
    let prefix = prefix?;
    let client = redis::Client::open(invite_tests::app::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut total = 0;
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let size_cmd = match kind.as_str() {
            "hash" => "HLEN",
            "list" => "LLEN",
            "set" => "SCARD",
            "zset" => "ZCARD",
            _ => continue,
        };
        let n: usize = redis::cmd(size_cmd)
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        total += n;
    }
    Some(total)
}

async fn admin_routes_require_a_token_of_an_admin_of_that_workspace(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let other = app.other_workspace().await;
    let other_token = other.token.clone();
    let member_token = app
        .db
        .run(|c| {
            let ws = auth::ensure_workspace(c, "acme")?;
            let account = auth::ensure_account(c, "user@acme.test")?;
            auth::upsert_active_member(
                c,
                ws.id,
                account,
                invite_shared::domain::role::Role::EndUser,
            )?;
            Ok(auth::create_token(c, account)?)
        })
        .await
        .unwrap();
    let (other_import, other_member_id) = (other.import, other.member);

    let status = |token: Option<&str>, path: String| {
        let mut request = app.client.get(app.url(&path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };

    assert_eq!(status(None, "/imports".into()).await, 401);
    assert_eq!(status(Some("not-a-token"), "/imports".into()).await, 401);
    assert_eq!(status(Some(&member_token), "/imports".into()).await, 403);
    assert_eq!(status(Some(&other_token), "/imports".into()).await, 404);
    assert_eq!(
        status(Some(&app.token), format!("/imports/{other_import}")).await,
        404
    );
    assert_eq!(
        status(Some(&app.token), format!("/imports/{other_import}/results")).await,
        404
    );
    assert_eq!(
        status(Some(&app.token), format!("/members/{other_member_id}")).await,
        404
    );
    assert_eq!(status(Some(&app.token), "/imports".into()).await, 200);
}

async fn the_same_idempotency_key_returns_the_same_import_and_invites_once(stack: Stack) {
    let app = TestApp::spawn(stack).await;

    let first = app.upload_with(people_csv(5), Some("upload-42")).await;
    let second = app.upload_with(people_csv(5), Some("upload-42")).await;

    assert_eq!(first.status(), 202);
    assert_eq!(second.status(), 202);
    let first: Value = first.json().await.unwrap();
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    let import = app.settled(first["id"].as_i64().unwrap()).await;
    assert_eq!(import["rows"]["invited"], 5);
    let imports = app.get_json("/imports").await;
    assert_eq!(imports["imports"].as_array().unwrap().len(), 1);
    assert_eq!(app.emails().len(), 5);
}

async fn bad_rows_never_stop_the_others_and_their_reasons_are_in_the_results(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let csv = "First Name,Last Name,Email,User Role,Group,Metadata,Shoe Size\n\
               Ada,Lovelace,ada@example.com,Admin,,,42\n\
               Bob,,not-an-email,End User,,,\n\
               Cy,,cy@example.com,Wizard,,,\n\
               Di,,di@example.com,Builder,Nope,,\n\
               Ed,,ed@example.com,Builder,,[1],\n\
               ,,,,,,\n\
               Ada,Again,ADA@example.com,Admin,,,\n\
               Fay,,fay@example.com,end-user,,\"{\"\"team\"\":1}\",\n";

    let id = app.upload_ok(csv).await;
    let import = app.settled(id).await;

    assert_eq!(
        import["rows"],
        json!({"total": 8, "processed": 8, "invited": 2, "skipped": 1, "invalid": 5})
    );
    assert_eq!(
        import["warnings"],
        json!(["ignored unknown columns: Shoe Size"])
    );
    let results = app.results(id).await;
    let lines: Vec<&str> = results.lines().collect();
    assert_eq!(
        lines[0],
        "row,email,outcome,reason,member_id,email_status,error"
    );
    assert!(
        lines[1].starts_with("2,ada@example.com,invited,,"),
        "{results}"
    );
    assert!(lines[1].ends_with(",sent,"), "{results}");
    assert!(
        lines[2].starts_with("3,not-an-email,invalid,") && lines[2].contains("email"),
        "{results}"
    );
    assert!(
        lines[3].contains("invalid") && lines[3].contains("role"),
        "{results}"
    );
    assert!(
        lines[4].contains("invalid") && lines[4].contains("Nope"),
        "{results}"
    );
    assert!(
        lines[5].contains("invalid") && lines[5].contains("metadata"),
        "{results}"
    );
    assert!(lines[6].starts_with("7,,invalid,"), "{results}");
    assert!(
        lines[7].starts_with("8,ada@example.com,skipped,duplicate_in_file: same email as row 2"),
        "{results}"
    );
    assert!(
        lines[8].starts_with("9,fay@example.com,invited,"),
        "{results}"
    );
    assert_eq!(app.emails().len(), 2);
    // The same file from both stacks.
    insta::assert_snapshot!("results_of_bad_rows", results_without_member_ids(&results));
}

async fn people_already_in_the_workspace_are_skipped_with_the_reason(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let first = app.upload_ok(people_csv(3)).await;
    app.settled(first).await;
    let token = app.token_in(
        &app.emails()
            .iter()
            .find(|m| m.rcpt_to[0] == "person1@example.com")
            .unwrap()
            .text_body(),
    );
    app.accept_invitation(&token).await;

    let second = app.upload_ok(people_csv(4)).await;
    let import = app.settled(second).await;

    assert_eq!(import["rows"]["invited"], 1);
    assert_eq!(import["rows"]["skipped"], 3);
    let results = app.results(second).await;
    assert!(
        results.contains("person0@example.com,skipped,already_invited"),
        "{results}"
    );
    assert!(
        results.contains("person1@example.com,skipped,already_member"),
        "{results}"
    );
    assert!(results.contains("person3@example.com,invited"), "{results}");
}

async fn a_header_without_required_columns_is_rejected_at_once(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;

    let response = app.upload("Name,Phone\nAda,123\n").await;

    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_columns");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Email") && message.contains("User Role"),
        "{message}"
    );
}

async fn uploads_that_are_not_csv_or_too_large_get_a_clear_4xx(stack: Stack) {
    let app = TestApp::spawn_with(stack, |s| s.max_upload_bytes = 2_000).await;

    let binary = app.upload(vec![0xff, 0xfe, 0x00, 0x9c, b'\n', 0x80]).await;
    let empty = app.upload(Vec::new()).await;
    let large = app.upload(people_csv(100)).await;
    let json_body = app.post_json("/imports", json!({"file": "x"})).await;
    let raw = app
        .client
        .post(app.url("/imports"))
        .bearer_auth(&app.token)
        .header("content-type", "text/csv")
        .body(people_csv(2))
        .send()
        .await
        .unwrap();

    assert_eq!(binary.status(), 422);
    assert_eq!(empty.status(), 422);
    assert_eq!(large.status(), 413);
    assert_eq!(json_body.status(), 415);
    assert_eq!(raw.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_smtp_failure_is_retried_and_a_permanent_one_fails_with_the_reply_kept() {
    let app = TestApp::spawn(Stack::Postgres).await;
    app.smtp()
        .reply_for("person0@example.com", ReplyPlan::TransientTimes(2));
    app.smtp()
        .reply_for("person1@example.com", ReplyPlan::Permanent);

    let id = app.upload_ok(people_csv(3)).await;
    let import = app.settled(id).await;

    assert_eq!(
        import["emails"],
        json!({"pending": 0, "sent": 2, "failed": 1, "bounced": 0, "complained": 0})
    );
    let failed = app.get_json("/members?email_status=failed").await;
    let failed = failed["members"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["email"], "person1@example.com");
    assert!(
        failed[0]["last_error"].as_str().unwrap().starts_with("550"),
        "{failed:?}"
    );
    let delivered: Vec<String> = app.emails().iter().map(|m| m.rcpt_to[0].clone()).collect();
    assert_eq!(
        delivered
            .iter()
            .filter(|r| *r == "person0@example.com")
            .count(),
        1
    );
    // Its metrics are checked in tests/tests/metrics.rs, a test binary of their own.
}

async fn the_template_is_a_csv_the_upload_accepts(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    app.post_json("/groups", json!({"name": "Engineering"}))
        .await;
    app.post_json("/groups", json!({"name": "Research"})).await;

    let template = app.get("/imports/template").await;
    assert_eq!(
        template.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let id = app.upload_ok(template.text().await.unwrap()).await;
    let import = app.settled(id).await;

    assert_eq!(import["rows"]["invited"], 1);
}

async fn any_bytes_in_a_row_make_that_row_invalid_and_never_stall_the_import(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let mut csv = b"First Name,Email,User Role\nAda,ada@example.com,Admin\n".to_vec();
    csv.extend_from_slice(b"Nul,nul\0@example.com,Ad\0min\n");
    csv.extend_from_slice(b"\xff\xfe\x00,\x80\x81@x.com,\xc3\n");
    csv.extend_from_slice(b"\"unterminated,quote@example.com,Builder\n");
    csv.extend_from_slice(b"Bob,bob@example.com,Builder\n");

    let id = app.upload_ok(csv).await;
    let import = app.settled(id).await;

    assert_eq!(import["status"], "completed");
    assert_eq!(import["rows"]["invited"], 1, "{import}");
    assert_eq!(
        import["rows"]["processed"], import["rows"]["total"],
        "every row has an outcome: {import}"
    );
    let results = app.results(id).await;
    assert!(results.contains("ada@example.com,invited"), "{results}");
    assert!(
        results.contains("\n3,"),
        "the NUL row has its own outcome: {results}"
    );
    assert!(
        results.contains("\n4,"),
        "the binary row has its own outcome: {results}"
    );
}

async fn malformed_requests_get_the_json_error_shape(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;

    let bad_id = app.get("/imports/not-a-number").await;
    let bad_query = app.get("/members?limit=lots").await;
    let bad_group = app
        .client
        .post(app.url("/groups"))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();

    for (response, status) in [(bad_id, 400), (bad_query, 400), (bad_group, 400)] {
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_whose_queue_job_was_lost_is_enqueued_again() {
    let mut app = TestApp::spawn_with(Stack::Postgres, |s| {
        s.import_lease = std::time::Duration::from_millis(300);
    })
    .await;
    let id = app.upload_ok(people_csv(3)).await;
    // Redis loses the job (a flush, or a failover without persistence).
    let client = redis::Client::open(invite_tests::app::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let prefix = app.redis_prefix().unwrap().to_owned();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    redis::cmd("DEL")
        .arg(keys)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();

    app.start_worker().await;
    let import = app.settled(id).await;

    assert_eq!(import["rows"]["invited"], 3);
    assert_eq!(app.emails().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_from_a_send_that_looked_failed_keeps_working_after_the_retry() {
    let app = TestApp::spawn(Stack::Postgres).await;
    app.smtp().reply_for(
        "person0@example.com",
        ReplyPlan::DeliveredButTransientTimes(1),
    );

    let id = app.upload_ok(people_csv(1)).await;
    app.settled(id).await;

    let emails = app.emails();
    assert_eq!(
        emails.len(),
        2,
        "the server kept the first attempt and the retry"
    );
    let first = app.token_in(&emails[0].text_body());
    let second = app.token_in(&emails[1].text_body());
    assert_ne!(first, second);
    for token in [&first, &second] {
        let shown = app.show_invitation(token).await;
        assert_eq!(
            shown.status(),
            200,
            "every link sent works until acceptance"
        );
    }
    assert_eq!(app.accept_invitation(&first).await.status(), 200);
    assert_eq!(app.accept_invitation(&second).await.status(), 409);
}

async fn the_queue_depth_counts_an_import_waiting_for_a_worker(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let queue = invite_shared::queue::JobQueue::connect(&app.settings)
        .await
        .unwrap();

    app.upload_ok(people_csv(1)).await;
    let depth = queue.depth().await.unwrap();

    let count = |queue: &str, state: &str| {
        depth
            .iter()
            .find(|d| d.queue == queue && d.state == state)
            .map(|d| d.jobs)
    };
    assert_eq!(count("process_import", "pending"), Some(1), "{depth:?}");
    assert_eq!(count("process_import", "running"), Some(0), "{depth:?}");
    assert_eq!(count("send_invites", "pending"), Some(0), "{depth:?}");
    assert_eq!(depth.len(), 8, "two queues, four states: {depth:?}");
}
