//! The pages in a real headless Chromium, on both stacks: an admin with nothing but a browser
//! bulk-invites people from a CSV file and follows it through, an invitee accepts through the
//! emailed link (and, where the workspace has an `accept_redirect_url`, lands on the workspace's
//! own application, which verifies who they are), the cloud edition tells requested from invited
//! people, an admin adds a webhook endpoint and follows its deliveries, and no page loads anything
//! from outside the service. Every step saves a screenshot under
//! `tests/screenshots/<stack>/<test>/`. Needs `chromedriver` and Chromium: `scripts/test`
//! installs them.

use std::time::Duration;

use diesel::prelude::*;
use invite_shared::config::Edition;
use invite_shared::db::schema::{deliveries, webhook_endpoints};
use invite_shared::ids::DeliveryId;
use invite_shared::on_conn;
use invite_shared::status::ReportKind;
use invite_shared::store::bounces::{self, Finding, Named};
use invite_tests::app::{Stack, TestApp, free_port, named_people_csv, people_csv};
use invite_tests::browser::Browser;
use invite_tests::on_both_stacks;
use invite_tests::smtp::{ReceivedMessage, ReplyPlan, SmtpServer};
use invite_tests::webhooks::Receiver;
use serde_json::{Value, json};

on_both_stacks!(
    an_admin_with_only_a_browser_completes_a_bulk_invite,
    the_emailed_link_opens_a_page_and_accepting_makes_the_member_active,
    cloud_edition_shows_requested_and_invited,
    pages_load_nothing_from_outside_the_service,
    revoking_the_pages_own_token_asks_first_and_signs_the_page_out,
    an_international_address_is_shown_as_written_and_a_refused_one_with_its_reason,
    an_import_is_cancelled_from_its_card_and_its_rows_to_fix_are_downloaded,
    the_remind_button_asks_first_then_reminds_the_filtered_members_and_says_how_many,
    the_search_box_finds_members_as_one_types_with_the_status_filter,
    support_finds_one_person_among_ten_thousand_reads_their_history_reminds_and_cancels,
    support_sees_a_bounce_is_refused_a_resend_and_corrects_the_address,
    accepting_hands_over_to_the_workspaces_application_which_verifies_the_member,
    an_admin_adds_a_webhook_reads_its_secret_once_tests_it_and_replays_it,
);

/// The README's sample file: twelve people to invite, then six rows a spreadsheet gets wrong
/// (rows 14 to 19: an email, a role, no name, metadata that is not an object, a duplicate email
/// and an unknown group).
const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/people.csv");

/// The people of [`SAMPLE`] who are invited.
const INVITED: [&str; 12] = [
    "ada@example.com",
    "grace@example.com",
    "alan@example.com",
    "katherine@example.com",
    "edsger@example.com",
    "barbara@example.com",
    "donald@example.com",
    "frances@example.com",
    "john@example.com",
    "margaret@example.com",
    "tim@example.com",
    "radia@example.com",
];

/// Whose first email the SMTP server refuses for good, on the PostgreSQL stack.
const REFUSED: &str = "donald@example.com";

/// Who gets a second email from the resend button.
const RESENT: &str = "grace@example.com";

/// Whose invitation link is copied, who is archived and unarchived.
const LINKED: &str = "alan@example.com";

async fn an_admin_with_only_a_browser_completes_a_bulk_invite(stack: Stack) {
    // A link copied, then the same person archived and unarchived: no cooldown between them here.
    let mut app = TestApp::spawn_with(stack, |s| s.member_action_cooldown = Duration::ZERO).await;
    app.start_worker().await;
    // Only the SMTP server of the PostgreSQL stack can refuse a message: there one send fails,
    // to be retried from the page; the SQLite stack's outbox takes every message.
    let refused = (stack == Stack::Postgres).then(|| {
        app.smtp().reply_for(REFUSED, ReplyPlan::Permanent);
        REFUSED
    });
    // Chromium takes only a canonical path.
    let file = &std::fs::canonicalize(SAMPLE).unwrap();
    let browser = Browser::start(
        stack,
        "an_admin_with_only_a_browser_completes_a_bulk_invite",
    )
    .await;

    sign_in(&browser, &app).await;
    browser.click("#tab-add").await;
    browser.wait_for("#panel-add #upload-file").await;
    browser.screenshot("add-users-tab").await;
    browser.choose_file("#upload-file", file).await;
    browser.screenshot("file-chosen").await;

    // A dry run first: every row checked, nothing written, nobody emailed.
    let (_, checked) = submit(&browser, "#dry-run-button", ":has(.import-dry-run)").await;
    expect_counts(
        &browser,
        &checked,
        &[("rows-invited", "12"), ("rows-invalid", "5")],
    )
    .await;
    browser.screenshot("dry-run-completed").await;
    assert!(app.emails().is_empty(), "a dry run emails nobody");

    // The real upload, of the same file.
    choose_again_if_cleared(&browser, file).await;
    let (id, uploaded) = submit(&browser, "#upload-button", ":not(:has(.import-dry-run))").await;
    let (sent, failed) = if refused.is_some() {
        ("11", "1")
    } else {
        ("12", "0")
    };
    expect_counts(
        &browser,
        &uploaded,
        &[
            ("rows-invited", "12"),
            ("rows-skipped", "1"),
            ("rows-invalid", "5"),
            ("emails-pending", "0"),
            ("emails-sent", sent),
            ("emails-failed", failed),
        ],
    )
    .await;
    browser.screenshot("upload-completed").await;

    // The six rows not invited, by their row numbers in the file.
    browser
        .click(&format!("{uploaded} button[data-action=\"problems\"]"))
        .await;
    let problems = format!("{uploaded} .problems tr.problem");
    browser.wait_for_count(&problems, |n| n == 6).await;
    browser.screenshot("problems").await;
    assert_eq!(
        browser.texts(&format!("{problems} .problem-row")).await,
        ["14", "15", "16", "17", "18", "19"]
    );
    assert_eq!(
        browser.texts(&format!("{problems} .problem-email")).await,
        [
            "not-an-email",
            "dennis@example.com",
            "nameless@example.com",
            "linus@example.com",
            "ada@example.com",
            "bjarne@example.com"
        ]
    );
    assert_eq!(
        browser.texts(&format!("{problems} .problem-outcome")).await,
        [
            "invalid", "invalid", "invalid", "invalid", "skipped", "invalid"
        ]
    );
    let reasons = browser.texts(&format!("{problems} .problem-reason")).await;
    for (reason, field) in reasons.iter().zip([
        "email",
        "role",
        "name",
        "metadata",
        "same email as row 2",
        "ghosts",
    ]) {
        assert!(
            reason.to_lowercase().contains(field),
            "each reason names what is wrong: {field} in {reasons:?}"
        );
    }

    // Every row's result, downloaded as a file: the header and the file's eighteen rows.
    browser
        .click(&format!("{uploaded} button[data-action=\"results\"]"))
        .await;
    let results = browser
        .wait_for_download(&format!("import-{id}-results.csv"))
        .await;
    browser.screenshot("results-downloaded").await;
    let results = std::fs::read_to_string(results).unwrap();
    assert_eq!(results.lines().count(), 19, "{results}");
    assert!(results.starts_with("row,email,outcome,"), "{results}");

    // The people, invited, with their emails' fate.
    browser.click("#tab-users").await;
    for email in INVITED {
        expect_status(&browser, email, "Invited").await;
        let status = if refused == Some(email) {
            "failed"
        } else {
            "sent"
        };
        browser
            .wait_for_text(&format!("{} .member-email-status", member(email)), |t| {
                t.eq_ignore_ascii_case(status)
            })
            .await;
    }
    if let Some(email) = refused {
        browser
            .wait_for_text(&format!("{} .member-last-error", member(email)), |t| {
                t.starts_with("550")
            })
            .await;
    }
    browser.screenshot("members-invited").await;

    // Resending one invitation emails that person a second time.
    browser
        .click(&format!(
            "{} button[data-action=\"resend\"]",
            member(RESENT)
        ))
        .await;
    browser
        .wait_for_text("#message", |t| t.contains(RESENT))
        .await;
    browser.screenshot("resent").await;
    browser
        .wait_until("a second email to the person resent to", async || {
            (emails_to(&app, RESENT).len() == 2).then_some(())
        })
        .await;

    // A fresh invitation link, shown to copy; then the person archived and brought back.
    browser
        .click(&format!(
            "{} button[data-action=\"copy-link\"]",
            member(LINKED)
        ))
        .await;
    let link = browser
        .wait_until("the copied invitation link", async || {
            let value = browser
                .execute(
                    "return document.querySelector('#copied-link').value;",
                    vec![],
                )
                .await;
            value
                .as_str()
                .filter(|v| v.starts_with(&format!("{}/invitations/", app.base)))
                .map(str::to_owned)
        })
        .await;
    browser.screenshot("link-copied").await;
    assert_eq!(
        reqwest::get(&link).await.unwrap().status(),
        200,
        "the copied link opens the invitation: {link}"
    );
    for (action, status) in [("archive", "Archived"), ("unarchive", "Invited")] {
        browser
            .click(&format!(
                "{} button[data-action=\"{action}\"]",
                member(LINKED)
            ))
            .await;
        expect_status(&browser, LINKED, status).await;
        browser.screenshot(&format!("{action}d")).await;
    }

    // That person's history, newest first: what support did, by whom, back to the import row.
    browser
        .click(&format!(
            "{} button[data-action=\"history\"]",
            member(LINKED)
        ))
        .await;
    let history = browser
        .wait_until("the history down to the import", async || {
            let texts = browser.texts("#history-list .history-text").await;
            let done = texts
                .last()
                .is_some_and(|t| t.starts_with("Added by import"));
            done.then_some(texts)
        })
        .await;
    browser.screenshot("history").await;
    for done in ["Unarchived", "Archived", "Invitation link copied"] {
        let by = format!("{done} by admin@acme.test");
        assert!(history.contains(&by), "{by} in {history:?}");
    }
    let unarchived = history.iter().position(|t| t.starts_with("Unarchived"));
    let archived = history.iter().position(|t| t.starts_with("Archived"));
    assert!(unarchived < archived, "newest first: {history:?}");
    browser.click("#history-close").await;
    let open = browser
        .execute(
            "return document.querySelector('#history-dialog').open;",
            vec![],
        )
        .await;
    assert_eq!(open, Value::Bool(false), "the history closes");

    // A refused send, retried from the page once the server accepts it again.
    let Some(email) = refused else { return };
    browser.click("#tab-add").await;
    browser
        .wait_for(&format!("{uploaded} button[data-action=\"retry\"]"))
        .await;
    browser.screenshot("failed-send").await;
    app.smtp().clear_plan(email);
    browser
        .click(&format!("{uploaded} button[data-action=\"retry\"]"))
        .await;
    browser
        .wait_for_text("#message", |t| {
            t.split(|c: char| !c.is_ascii_digit()).any(|n| n == "1")
                && t.to_lowercase().contains("queued")
        })
        .await;
    browser.screenshot("retry-queued").await;
    // The import's emails: the eleven first sends, the resend, the unarchive's and the retried one.
    expect_counts(
        &browser,
        &uploaded,
        &[
            ("emails-failed", "0"),
            ("emails-pending", "0"),
            ("emails-sent", "14"),
        ],
    )
    .await;
    browser.screenshot("retry-sent").await;
    assert_eq!(emails_to(&app, email).len(), 1);
}

async fn the_emailed_link_opens_a_page_and_accepting_makes_the_member_active(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(people_csv(1)).await;
    app.settled(id).await;
    let browser = Browser::start(
        stack,
        "the_emailed_link_opens_a_page_and_accepting_makes_the_member_active",
    )
    .await;

    open_emailed_link(&browser, &app, "person0@example.com").await;
    browser.screenshot("invitation").await;
    let accept = "form[method=\"post\"] button";
    browser
        .wait_for_text(accept, |t| t.contains("Accept invitation"))
        .await;
    browser.click(accept).await;
    browser
        .wait_for_text("body", |t| t.contains("now a member"))
        .await;
    browser.screenshot("accepted").await;

    sign_in(&browser, &app).await;
    expect_status(&browser, "person0@example.com", "Active").await;
    browser.screenshot("member-active").await;
}

/// A workspace's own application, as small as can be: `/welcome?token=…` verifies the hand-over
/// token server-side with `GET /api/v1/acceptances/{token}` and greets the member by name,
/// escaped. Listens on 127.0.0.1 until dropped; gives its base URL.
async fn application(api_base: String) -> (String, tokio::task::JoinHandle<()>) {
    use axum::extract::{Query, State};
    use axum::response::Html;

    async fn welcome(
        State(api): State<String>,
        Query(query): Query<std::collections::HashMap<String, String>>,
    ) -> Html<String> {
        let token = query.get("token").cloned().unwrap_or_default();
        let url = format!("{api}/api/v1/acceptances/{token}");
        let response = reqwest::get(url).await.unwrap();
        if !response.status().is_success() {
            return Html(format!("<h1>Not verified: {}</h1>", response.status()));
        }
        let member: Value = response.json().await.unwrap();
        let name = format!(
            "{} {}",
            member["first_name"].as_str().unwrap_or_default(),
            member["last_name"].as_str().unwrap_or_default()
        );
        Html(format!(
            "<!doctype html><title>App</title><h1>Welcome, {}</h1><p id=\"role\">{}</p>",
            escape(&name),
            escape(member["role"].as_str().unwrap_or_default())
        ))
    }

    fn escape(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/welcome", axum::routing::get(welcome))
        .with_state(api_base);
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, server)
}

async fn accepting_hands_over_to_the_workspaces_application_which_verifies_the_member(
    stack: Stack,
) {
    let app = TestApp::spawn(stack).await;
    let (application, server) = application(app.base.clone()).await;
    let template = format!("{application}/welcome?member={{member_id}}&email={{email}}");
    let browser = Browser::start(
        stack,
        "accepting_hands_over_to_the_workspaces_application_which_verifies_the_member",
    )
    .await;
    sign_in(&browser, &app).await;
    browser.click("#tab-settings").await;
    // The field is filled from the server first.
    browser.wait_for("#settings-form[data-loaded]").await;
    browser
        .fill("#settings-redirect-url", "http://app.example.com/welcome")
        .await;
    browser.click("#settings-save").await;
    browser
        .wait_for_text("#message", |t| t.contains("https://"))
        .await;
    browser.screenshot("settings-refused").await;
    browser.fill("#settings-redirect-url", &template).await;
    browser.click("#settings-save").await;
    browser
        .wait_for_text("#message", |t| t.contains("Saved"))
        .await;
    browser.screenshot("settings-saved").await;
    let saved = app.get_json("/settings").await;
    assert_eq!(saved["accept_redirect_url"], template.as_str());
    let csv = "First Name,Last Name,Email,User Role\nAda,<b>Lovelace</b>,ada@example.com,Builder\n";
    let id = app.upload_ok(csv).await;
    app.settled(id).await;

    open_emailed_link(&browser, &app, "ada@example.com").await;
    browser.screenshot("invitation").await;
    browser.click("form[method=\"post\"] button").await;
    let heading = browser
        .wait_for_text("h1", |t| t.starts_with("Welcome") || t.starts_with("Not"))
        .await;
    browser.screenshot("application").await;

    assert_eq!(heading, "Welcome, Ada <b>Lovelace</b>", "shown as text");
    assert_eq!(
        browser.count("h1 b").await,
        0,
        "the name's markup is not markup"
    );
    assert_eq!(browser.text("#role").await.as_deref(), Some("Builder"));
    let url = browser.client().current_url().await.unwrap();
    assert!(url.as_str().starts_with(&application), "{url}");
    let member = app.member("ada@example.com").await;
    assert_eq!(member["status"], "active");
    assert!(
        url.as_str().contains(&format!(
            "member={}&email=ada%40example.com&token=",
            member["id"]
        )),
        "{url}"
    );
    server.abort();
}

async fn cloud_edition_shows_requested_and_invited(stack: Stack) {
    let mut app = TestApp::spawn_with(stack, |s| s.edition = Edition::Cloud).await;
    app.start_worker().await;
    // person0 activates an account by accepting globex's invitation; person1 has none.
    app.other_workspace().await;
    let token = link_token(&app, "person0@example.com");
    assert_eq!(app.accept_invitation(&token).await.status(), 200);
    let id = app.upload_ok(people_csv(2)).await;
    app.settled(id).await;
    let browser = Browser::start(stack, "cloud_edition_shows_requested_and_invited").await;

    sign_in(&browser, &app).await;
    expect_status(&browser, "person0@example.com", "Invited").await;
    expect_status(&browser, "person1@example.com", "Requested").await;
    browser.screenshot("invited-and-requested").await;

    browser.select("#status-filter", "requested").await;
    browser
        .wait_until("only requested people listed", async || {
            let listed = browser
                .attributes("#members-table tbody tr[data-email]", "data-email")
                .await;
            (listed == ["person1@example.com"]).then_some(())
        })
        .await;
    browser.screenshot("filtered-requested").await;

    // On a phone-width screen the table's rows stack: nothing needs sideways scrolling.
    browser.client().set_window_size(390, 844).await.unwrap();
    browser.select("#status-filter", "").await;
    browser
        .wait_for_count("#members-table tbody tr[data-email]", |n| n == 3)
        .await;
    let overflow = browser
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await;
    browser.screenshot("phone-width").await;
    assert!(
        overflow.as_i64().is_some_and(|px| px <= 0),
        "the page is wider than a phone's screen by {overflow} px"
    );
}

/// The addresses the members table lists now.
async fn listed(browser: &Browser) -> Vec<String> {
    browser
        .attributes("#members-table tbody tr[data-email]", "data-email")
        .await
}

async fn the_search_box_finds_members_as_one_types_with_the_status_filter(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let csv = "First Name,Last Name,Email,User Role\nJosé,Álvarez,jose@example.com,End User\n\
               Anne,Müller,anne@bücher.de,End User\nZoë,Muller,zoe@example.com,End User\n";
    let id = app.upload_ok(csv.to_owned()).await;
    app.settled(id).await;
    let zoe = app.member_id("zoe@example.com").await;
    assert_eq!(
        app.post(&format!("/members/{zoe}/archive")).await.status(),
        200
    );
    let browser = Browser::start(
        stack,
        "the_search_box_finds_members_as_one_types_with_the_status_filter",
    )
    .await;
    sign_in(&browser, &app).await;
    browser
        .wait_for_count("#members-table tbody tr[data-email]", |n| n == 4)
        .await;

    browser.fill("#members-search", "MULLER").await;
    browser
        .wait_until("both Müllers listed", async || {
            (listed(&browser).await == ["anne@bücher.de", "zoe@example.com"]).then_some(())
        })
        .await;
    browser.screenshot("searched").await;
    browser.select("#status-filter", "archived").await;
    browser
        .wait_until("the archived Muller only", async || {
            (listed(&browser).await == ["zoe@example.com"]).then_some(())
        })
        .await;
    browser.select("#status-filter", "").await;
    browser.fill("#members-search", "jose").await;
    browser
        .wait_until("José, found without his accent", async || {
            (listed(&browser).await == ["jose@example.com"]).then_some(())
        })
        .await;

    browser.fill("#members-search", "nobody here").await;
    let empty = browser
        .wait_for_text("#members-empty", |t| t.contains("nobody here"))
        .await;
    assert!(empty.starts_with("No members match"), "{empty}");
    browser.screenshot("no-match").await;
    // Escape (WebDriver's key U+E00C) empties the box and lists everyone again.
    browser.fill("#members-search", "\u{e00c}").await;
    browser
        .wait_for_count("#members-table tbody tr[data-email]", |n| n == 4)
        .await;
}

/// Support's round in the page: one person found among 10,000 by part of a name typed without its
/// accent, their history opened (the import row, two refusals with the server's reply, then the
/// accepted attempt), everyone who has not accepted reminded, and an import uploaded by mistake
/// cancelled from its card.
async fn support_finds_one_person_among_ten_thousand_reads_their_history_reminds_and_cancels(
    stack: Stack,
) {
    const GRACE: &str = "grace.hopper@navy.example";
    // Grace's first two attempts are refused for now, over a real SMTP conversation on both stacks.
    let smtp = SmtpServer::start().await;
    smtp.reply_for(GRACE, ReplyPlan::TransientTimes(2));
    let url = smtp.url();
    let mut app = TestApp::spawn_with(stack, |s| s.smtp_url = Some(url.into())).await;
    app.start_worker().await;
    let mut csv = people_csv(9_999);
    csv.push_str(&format!("Grace,Hoppér,{GRACE},End User\n"));
    let id = app.upload_ok(csv).await;
    let invited = app.settled(id).await;
    assert_eq!(invited["emails"]["sent"], 10_000, "{invited}");
    // An import uploaded by mistake, waiting for a worker when support sees it.
    app.stop_workers().await;
    let mistake = app.upload_ok(named_people_csv("mistake", 50)).await;
    let browser = Browser::start(
        stack,
        "support_finds_one_person_among_ten_thousand_reads_their_history_reminds_and_cancels",
    )
    .await;
    sign_in(&browser, &app).await;

    browser.fill("#members-search", "hopper").await;
    browser
        .wait_until("only Grace listed", async || {
            (listed(&browser).await == [GRACE]).then_some(())
        })
        .await;
    browser.screenshot("found").await;

    browser
        .click(&format!(
            "{} button[data-action=\"history\"]",
            member(GRACE)
        ))
        .await;
    let history = browser
        .wait_until("the history down to the import row", async || {
            let texts = browser.texts("#history-list .history-text").await;
            let done = texts
                .last()
                .is_some_and(|t| t.starts_with(&format!("Added by import {id}")));
            done.then_some(texts)
        })
        .await;
    let replies = browser.texts("#history-list .history-reply").await;
    browser.screenshot("history").await;
    let attempts: Vec<&String> = history.iter().filter(|t| t.contains(" sent: ")).collect();
    assert_eq!(attempts.len(), 3, "{history:?}");
    assert!(
        attempts[0].ends_with("accepted"),
        "newest first: {history:?}"
    );
    assert!(
        attempts[1..]
            .iter()
            .all(|t| t.ends_with("to be tried again")),
        "{history:?}"
    );
    assert_eq!(
        replies.iter().filter(|r| r.starts_with("451")).count(),
        2,
        "{replies:?}"
    );
    assert!(
        history.last().unwrap().ends_with("row 10001"),
        "{history:?}"
    );
    browser.click("#history-close").await;

    // Everyone who has not accepted: the 10,000 invited; the admin is active.
    browser.fill("#members-search", "\u{e00c}").await;
    browser.select("#status-filter", "invited").await;
    browser
        .execute("window.confirm = () => true;", vec![])
        .await;
    browser.click("#members-remind").await;
    browser
        .wait_for_text("#message", |t| {
            t.contains("10000 members reminded, 0 skipped")
        })
        .await;
    browser.screenshot("reminded").await;

    // The import uploaded by mistake, cancelled from its card.
    browser.click("#tab-add").await;
    let cancel = format!(
        "{} button[data-action=\"cancel\"]",
        import(&mistake.to_string())
    );
    browser.wait_for(&cancel).await;
    browser.click(&cancel).await;
    browser
        .wait_for_exact(
            &format!("{} .import-status", import(&mistake.to_string())),
            "cancelled",
        )
        .await;
    browser.screenshot("cancelled").await;
    let cancelled = app.get_json(&format!("/imports/{mistake}")).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["rows"]["processed"], 0, "{cancelled}");
}

async fn pages_load_nothing_from_outside_the_service(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(people_csv(1)).await;
    app.settled(id).await;
    let browser = Browser::start(stack, "pages_load_nothing_from_outside_the_service").await;

    sign_in(&browser, &app).await;
    expect_status(&browser, "person0@example.com", "Invited").await;
    browser.screenshot("admin-loaded").await;
    assert_everything_from(&browser, &app.base, "/admin").await;

    open_emailed_link(&browser, &app, "person0@example.com").await;
    browser.screenshot("invitation-loaded").await;
    assert_everything_from(&browser, &app.base, "the invitation page").await;
}

/// Opens the invitation link of the first email to `address`, as its recipient would, and waits
/// for the page naming the workspace.
async fn revoking_the_pages_own_token_asks_first_and_signs_the_page_out(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let other: Value = app
        .post_json("/tokens", json!({ "name": "nightly sync" }))
        .await
        .json()
        .await
        .unwrap();
    let other_token = other["token"].as_str().unwrap().to_owned();
    let browser = Browser::start(
        stack,
        "revoking_the_pages_own_token_asks_first_and_signs_the_page_out",
    )
    .await;
    sign_in(&browser, &app).await;
    browser.click("#tab-tokens").await;
    let rows = "#tokens-table tbody tr[data-token-id]";
    browser.wait_for_count(rows, |n| n == 2).await;
    browser.screenshot("tokens-listed").await;
    // The page's confirmations are recorded, and refused at first.
    browser
        .execute(
            "window.asked = []; window.confirm = (m) => { window.asked.push(m); return false; };",
            vec![],
        )
        .await;
    let own = "#tokens-table tr[data-current=\"true\"] button[data-action=\"revoke\"]";

    browser.click(own).await;
    let asked = browser.execute("return window.asked;", vec![]).await;
    assert_eq!(asked.as_array().unwrap().len(), 1, "{asked}");
    assert!(
        asked[0].as_str().unwrap().contains("signs this page out"),
        "{asked}"
    );
    assert_eq!(
        app.get("/tokens").await.status(),
        200,
        "declined: still valid"
    );

    let other_row = format!("#tokens-table tr[data-token-id=\"{}\"]", other["id"]);
    browser
        .click(&format!("{other_row} button[data-action=\"revoke\"]"))
        .await;
    browser
        .wait_for_exact(&format!("{other_row} .token-state"), "Revoked")
        .await;
    browser.screenshot("other-revoked").await;
    let asked = browser.execute("return window.asked;", vec![]).await;
    assert_eq!(
        asked.as_array().unwrap().len(),
        1,
        "another token asks nothing"
    );
    let revoked = app
        .client
        .get(app.url("/tokens"))
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 401);

    browser
        .execute("window.confirm = () => true;", vec![])
        .await;
    browser.click(own).await;
    browser.wait_for("#app[hidden]").await;
    browser.screenshot("signed-out").await;
    assert_eq!(app.get("/tokens").await.status(), 401, "confirmed: revoked");
}

async fn an_international_address_is_shown_as_written_and_a_refused_one_with_its_reason(
    stack: Stack,
) {
    let app = TestApp::spawn(stack).await;
    let csv = "First Name,Last Name,Email,User Role\n\
        Ute,Buch,user@BÜCHER.de,End User\n\
        Zed,Zero,zed\u{200B}@example.com,End User\n";
    let id = app.upload_ok(csv).await;
    app.settled(id).await;
    let browser = Browser::start(
        stack,
        "an_international_address_is_shown_as_written_and_a_refused_one_with_its_reason",
    )
    .await;

    sign_in(&browser, &app).await;
    expect_status(&browser, "user@bücher.de", "Invited").await;
    browser.screenshot("international-member").await;
    browser.click("#tab-add").await;
    let entry = import(&id.to_string());
    browser
        .click(&format!("{entry} button[data-action=\"problems\"]"))
        .await;
    let problems = format!("{entry} .problems tr.problem");
    browser.wait_for_count(&problems, |n| n == 1).await;
    browser.screenshot("refused-address").await;
    let shown = browser.page_text().await;
    assert!(shown.contains("zed\\u{200b}@example.com"), "{shown}");
    assert!(shown.contains("U+200B ZERO WIDTH SPACE"), "{shown}");
}

async fn an_import_is_cancelled_from_its_card_and_its_rows_to_fix_are_downloaded(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let finished = app.upload_ok(std::fs::read(SAMPLE).unwrap()).await;
    app.process_without_sending(finished).await;
    let queued = app.upload_ok(people_csv(3)).await;
    let browser = Browser::start(
        stack,
        "an_import_is_cancelled_from_its_card_and_its_rows_to_fix_are_downloaded",
    )
    .await;
    sign_in(&browser, &app).await;
    browser.click("#tab-add").await;
    let (queued_card, finished_card) = (import(&queued.to_string()), import(&finished.to_string()));
    let cancel = format!("{queued_card} button[data-action=\"cancel\"]");
    browser.wait_for(&cancel).await;
    browser.screenshot("cancel-offered").await;
    browser
        .execute(
            "window.asked = []; window.confirm = (m) => { window.asked.push(m); return true; };",
            vec![],
        )
        .await;

    browser.click(&cancel).await;
    browser
        .wait_for_exact(&format!("{queued_card} .import-status"), "cancelled")
        .await;
    browser.wait_for_count(&cancel, |n| n == 0).await;
    browser.screenshot("cancelled").await;
    let asked = browser.execute("return window.asked;", vec![]).await;
    assert_eq!(asked.as_array().unwrap().len(), 1, "asked first: {asked}");
    let now = app.get_json(&format!("/imports/{queued}")).await;
    assert_eq!(now["status"], "cancelled", "{now}");
    let finished_cancel = format!("{finished_card} button[data-action=\"cancel\"]");
    assert_eq!(
        browser.count(&finished_cancel).await,
        0,
        "a finished import has none"
    );

    browser
        .click(&format!("{finished_card} button[data-action=\"fix\"]"))
        .await;
    let file = browser
        .wait_for_download(&format!("import-{finished}-rows-to-fix.csv"))
        .await;
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("First Name,Last Name,Email,User Role,Group,Metadata,reason"),
        "{text}"
    );
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.records().count(),
        6,
        "the six rows not invited: {text}"
    );
}

async fn open_emailed_link(browser: &Browser, app: &TestApp, address: &str) {
    let link = format!("{}/invitations/{}", app.base, link_token(app, address));
    browser.goto(&link).await;
    browser
        .wait_for_text("h1", |t| t.contains(&app.workspace))
        .await;
}

/// Opens `/admin` and signs in with the app's workspace and admin token.
async fn sign_in(browser: &Browser, app: &TestApp) {
    browser.goto(&format!("{}/admin", app.base)).await;
    browser.wait_for("#signin-form").await;
    browser.fill("#signin-workspace", &app.workspace).await;
    browser.fill("#signin-token", &app.token).await;
    browser.screenshot("sign-in").await;
    browser.click("#signin-submit").await;
    browser
        .wait_for_text("#signed-in-as", |t| !t.is_empty())
        .await;
    browser.screenshot("signed-in").await;
}

/// A page may have emptied its file input after the first submit: a person picks the file again.
async fn choose_again_if_cleared(browser: &Browser, file: &std::path::Path) {
    let chosen = browser
        .execute(
            "return document.querySelector('#upload-file').files.length;",
            vec![],
        )
        .await;
    if chosen == json!(0) {
        browser.choose_file("#upload-file", file).await;
    }
}

/// Every resource the current page loaded came from `base`, and it runs no inline script.
async fn assert_everything_from(browser: &Browser, base: &str, page: &str) {
    let loaded: Value = browser
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name);",
            vec![],
        )
        .await;
    let loaded: Vec<String> = serde_json::from_value(loaded).unwrap();
    let prefix = format!("{base}/");
    let outside: Vec<&String> = loaded.iter().filter(|u| !u.starts_with(&prefix)).collect();
    assert!(
        outside.is_empty(),
        "{page} loaded {outside:?} from outside {base}"
    );
    let inline = browser
        .execute(
            "return Array.from(document.scripts).filter(s => !s.src).map(s => s.text);",
            vec![],
        )
        .await;
    assert_eq!(inline, json!([]), "{page} has inline scripts");
}

/// Clicks `button` and waits for the new import matching `which` (a CSS filter on the imports
/// list entry) to complete; gives its id and the selector of its entry.
async fn submit(browser: &Browser, button: &str, which: &str) -> (String, String) {
    browser.click(button).await;
    let id = browser
        .wait_until(&format!("an import{which} in #imports"), async || {
            browser
                .attributes(
                    &format!("#imports .import[data-import-id]{which}"),
                    "data-import-id",
                )
                .await
                .into_iter()
                .next()
        })
        .await;
    let entry = import(&id);
    browser
        .wait_for_exact(&format!("{entry} .import-status"), "completed")
        .await;
    (id, entry)
}

/// Waits until each count of the import `entry` reads its value.
async fn expect_counts(browser: &Browser, entry: &str, counts: &[(&str, &str)]) {
    for (field, value) in counts {
        browser
            .wait_for_exact(&format!("{entry} .{field}"), value)
            .await;
    }
}

/// The imports list entry of import `id`.
fn import(id: &str) -> String {
    format!("#imports .import[data-import-id=\"{id}\"]")
}

/// Waits until the members table shows `email` with `status`.
async fn expect_status(browser: &Browser, email: &str, status: &str) {
    browser
        .wait_for_exact(&format!("{} .member-status", member(email)), status)
        .await;
}

/// The members table row of `email`.
fn member(email: &str) -> String {
    format!("#members-table tbody tr[data-email=\"{email}\"]")
}

/// The emails sent to `address` so far.
fn emails_to(app: &TestApp, address: &str) -> Vec<ReceivedMessage> {
    app.emails()
        .into_iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(address)))
        .collect()
}

/// The link token of the first email to `address`.
fn link_token(app: &TestApp, address: &str) -> String {
    let emails = emails_to(app, address);
    let email = emails.first().expect("an email to the invitee");
    app.token_in(&email.text_body())
}

async fn the_remind_button_asks_first_then_reminds_the_filtered_members_and_says_how_many(
    stack: Stack,
) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(people_csv(3)).await;
    app.settled(id).await;
    let browser = Browser::start(
        stack,
        "the_remind_button_asks_first_then_reminds_the_filtered_members_and_says_how_many",
    )
    .await;
    sign_in(&browser, &app).await;
    browser
        .wait_for_count("#members-table tbody tr[data-member-id]", |n| n == 4)
        .await;
    browser.select("#status-filter", "invited").await;
    browser
        .wait_for_count("#members-table tbody tr[data-member-id]", |n| n == 3)
        .await;
    browser
        .execute(
            "window.asked = []; window.confirm = (m) => { window.asked.push(m); return false; };",
            vec![],
        )
        .await;

    browser.click("#members-remind").await;
    let asked = browser.execute("return window.asked;", vec![]).await;
    assert!(
        asked[0].as_str().unwrap().contains("every invited member"),
        "{asked}"
    );
    browser
        .execute("window.confirm = () => true;", vec![])
        .await;
    browser.click("#members-remind").await;

    browser
        .wait_for_text("#message", |t| t.contains("3 members reminded, 0 skipped"))
        .await;
    browser.screenshot("reminded").await;
    app.settled(id).await;
    let reminders = app
        .emails()
        .into_iter()
        .filter(|m| m.subject().starts_with("Reminder: "))
        .count();
    assert_eq!(reminders, 3, "declined: nothing; confirmed: one each");
    browser.select("#status-filter", "active").await;
    browser.wait_for("#members-remind[hidden]").await;
}

/// A bounce's diagnostic, with markup that must show as text.
const BOUNCE: &str = "550 5.1.1 <person0@example.com>: <b>no such user</b>";

/// Records a bounce of the sent email of the member with `email`, as the bounce reader does.
async fn bounce(app: &TestApp, email: &str) {
    let member = app.member_id(email).await;
    app.db
        .run(move |conn| {
            let delivery: i64 = on_conn!(conn, |c| deliveries::table
                .filter(deliveries::member_id.eq(member))
                .filter(deliveries::state.eq("sent"))
                .select(deliveries::id)
                .first(c))?;
            let finding = Finding {
                digest: format!("bounce-of-{delivery}"),
                kind: ReportKind::Bounced,
                status: Some("5.1.1".into()),
                diagnostic: Some(BOUNCE.into()),
            };
            bounces::apply(conn, &Named::Delivery(DeliveryId(delivery)), &finding)?;
            Ok(())
        })
        .await
        .unwrap();
}

/// Support's round after a bounce: the bounced member found by their email's status, with the
/// suppressed badge and the bounce's words as text; Resend refused in words; the address
/// corrected in the dialog; the new invitation emailed to the new address, whose link works.
async fn support_sees_a_bounce_is_refused_a_resend_and_corrects_the_address(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(people_csv(2)).await;
    app.settled(id).await;
    bounce(&app, "person0@example.com").await;
    let browser = Browser::start(
        stack,
        "support_sees_a_bounce_is_refused_a_resend_and_corrects_the_address",
    )
    .await;
    sign_in(&browser, &app).await;
    browser
        .wait_for_count("#members-table tbody tr[data-member-id]", |n| n == 3)
        .await;

    browser.select("#email-status-filter", "bounced").await;
    browser
        .wait_until("the bounced member only", async || {
            (listed(&browser).await == ["person0@example.com"]).then_some(())
        })
        .await;
    let row = member("person0@example.com");
    browser
        .wait_for_exact(&format!("{row} .badge-suppressed"), "Suppressed")
        .await;
    browser
        .wait_for_exact(&format!("{row} .member-email-status"), "Bounced")
        .await;
    browser
        .wait_for_exact(&format!("{row} .member-last-error"), BOUNCE)
        .await;
    assert_eq!(
        browser.count(&format!("{row} .member-last-error b")).await,
        0
    );
    assert_eq!(
        browser
            .count(&format!("{row} button[data-action=\"unsuppress\"]"))
            .await,
        1
    );
    browser.screenshot("bounced").await;

    browser
        .execute("window.confirm = () => true;", vec![])
        .await;
    browser.click("#members-remind").await;
    browser
        .wait_for_text("#message", |t| {
            t.contains("0 members reminded, 0 skipped, 1 suppressed") && t.contains("bounced")
        })
        .await;
    browser.screenshot("remind-suppressed").await;
    browser.wait_for(&format!("{row} .badge-suppressed")).await;

    browser
        .click(&format!("{row} button[data-action=\"resend\"]"))
        .await;
    browser
        .wait_for_text("#message", |t| {
            t.contains("bounced") && t.contains("correct the address")
        })
        .await;
    browser.screenshot("resend-refused").await;

    browser
        .click(&format!("{row} button[data-action=\"correct-email\"]"))
        .await;
    browser.wait_for("#email-dialog[open]").await;
    browser.fill("#email-input", "person0@@example.com").await;
    browser.click("#email-save").await;
    browser
        .wait_for_text("#email-error", |t| t.contains("not a valid email address"))
        .await;
    browser.screenshot("invalid-address").await;
    browser
        .fill("#email-input", "person0.fixed@example.com")
        .await;
    browser.screenshot("correcting").await;
    browser.click("#email-save").await;
    browser
        .wait_for_text("#message", |t| {
            t.contains("on its way to person0.fixed@example.com")
        })
        .await;
    browser.select("#email-status-filter", "").await;
    let fixed = member("person0.fixed@example.com");
    browser.wait_for(&fixed).await;
    assert_eq!(
        browser.count(&format!("{fixed} .badge-suppressed")).await,
        0
    );
    browser.screenshot("corrected").await;

    app.settled(id).await;
    assert_eq!(emails_to(&app, "person0.fixed@example.com").len(), 1);
    assert_eq!(emails_to(&app, "person0@example.com").len(), 1);
    open_emailed_link(&browser, &app, "person0.fixed@example.com").await;
    browser.screenshot("new-link").await;
}

/// A webhook description with markup that must show as text.
const HOOK_DESCRIPTION: &str = "<img src=x onerror=alert(1)> CRM sync";

/// The endpoints table's row of endpoint `id`.
fn hook(id: &str) -> String {
    format!("#webhooks-table tr[data-webhook-id=\"{id}\"]")
}

/// Adds an endpoint at `url` from the Webhooks tab, first without an event type (refused in the
/// API's words); the id and the secret the page shows once.
async fn add_webhook(browser: &Browser, url: &str) -> (String, String) {
    browser.click("#tab-webhooks").await;
    browser.wait_for("#webhooks-empty:not([hidden])").await;
    browser.fill("#webhook-url", url).await;
    browser.fill("#webhook-description", HOOK_DESCRIPTION).await;
    browser.click("#webhook-add").await;
    browser
        .wait_for_text("#webhook-error", |t| {
            t == "Subscribe to at least one event type"
        })
        .await;
    browser.screenshot("no-event-refused").await;
    browser.click("#webhook-event-import-completed").await;
    browser.click("#webhook-event-member-accepted").await;
    browser.click("#webhook-add").await;
    browser.wait_for("#webhook-secret-area:not([hidden])").await;
    browser.screenshot("secret-shown-once").await;
    let secret = browser
        .execute(
            "const f = document.querySelector('#webhook-secret'); return [f.value, f.readOnly];",
            vec![],
        )
        .await;
    assert_eq!(secret[1], true, "the secret's field is read-only");
    let secret = secret[0].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let note = browser.text("#webhook-secret-note").await.unwrap();
    assert!(note.contains("will not be shown again"), "{note}");
    let id = browser
        .wait_until("the endpoint listed", async || {
            let ids = browser
                .attributes("#webhooks-table tr[data-webhook-id]", "data-webhook-id")
                .await;
            ids.into_iter().next()
        })
        .await;
    (id, secret)
}

/// Clicks the log's Refresh until its newest attempts' `cell` texts satisfy `done`; the texts.
async fn log_until(browser: &Browser, cell: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let selector = format!("#webhook-log-table tbody tr .{cell}");
    browser
        .wait_until(&format!("the delivery log's {cell}"), async || {
            browser.click("#webhook-log-refresh").await;
            let texts = browser.texts(&selector).await;
            done(&texts).then_some(texts)
        })
        .await
}

/// Marks endpoint `id` disabled for failing, as the worker does at the end of the retry window.
async fn disable(app: &TestApp, id: i64) {
    let at = chrono::Utc::now().naive_utc();
    app.db
        .run(move |conn| {
            on_conn!(conn, |c| diesel::update(webhook_endpoints::table.find(id))
                .set((
                    webhook_endpoints::disabled_at.eq(Some(at)),
                    webhook_endpoints::disabled_reason.eq(Some("every attempt failed for 3 days")),
                ))
                .execute(c))?;
            Ok(())
        })
        .await
        .unwrap();
}

/// The Webhooks tab, end to end: an endpoint added with its secret shown once, its description's
/// markup shown as text; a test event the receiver verifies with the official Standard Webhooks
/// library; the delivery log showing it delivered, and Replay sending it again with the same
/// `webhook-id`; a disabled endpoint enabled; the endpoint deleted after a confirmation.
async fn an_admin_adds_a_webhook_reads_its_secret_once_tests_it_and_replays_it(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let browser = Browser::start(
        stack,
        "an_admin_adds_a_webhook_reads_its_secret_once_tests_it_and_replays_it",
    )
    .await;
    sign_in(&browser, &app).await;
    let (id, secret) = add_webhook(&browser, &url).await;
    let row = hook(&id);
    browser
        .wait_for_exact(&format!("{row} .webhook-description"), HOOK_DESCRIPTION)
        .await;
    assert_eq!(
        browser.count("#panel-webhooks img").await,
        0,
        "markup as text"
    );
    browser
        .wait_for_exact(
            &format!("{row} .webhook-events"),
            "import.completed, member.accepted",
        )
        .await;
    browser
        .wait_for_exact(&format!("{row} .webhook-state"), "Enabled")
        .await;
    assert_eq!(
        browser
            .count(&format!("{row} [data-action=\"enable\"]"))
            .await,
        0
    );
    let listed = app.get_json("/webhooks").await;
    assert!(!listed.to_string().contains(&secret[6..]), "{listed}");
    let mut receiver = Receiver::new(&secret);
    receiver.start(port, "200").await;

    browser
        .click(&format!("{row} button[data-action=\"test\"]"))
        .await;
    let received = receiver.wait_for("the test event", |r| !r.is_empty()).await;
    assert_eq!(received[0]["verified"], true, "{received:?}");
    assert_eq!(received[0]["body"]["type"], "webhook.test");
    let webhook_id = received[0]["webhook_id"].as_str().unwrap().to_owned();
    browser
        .click(&format!("{row} button[data-action=\"log\"]"))
        .await;
    browser.wait_for("#webhook-log-area[data-loaded]").await;
    log_until(&browser, "attempt-state", |s| s == ["Delivered"]).await;
    browser.screenshot("delivered").await;
    let attempt = "#webhook-log-table tbody tr";
    for (cell, text) in [
        ("attempt-event", "webhook.test"),
        ("attempt-webhook-id", webhook_id.as_str()),
        ("attempt-result", "HTTP 200"),
        ("attempt-response", "answered 200"),
    ] {
        browser
            .wait_for_exact(&format!("{attempt} .{cell}"), text)
            .await;
    }

    browser
        .click(&format!("{attempt} button[data-action=\"replay\"]"))
        .await;
    let received = receiver.wait_for("the replay", |r| r.len() == 2).await;
    assert_eq!(received[1]["verified"], true, "{received:?}");
    assert_eq!(
        received[1]["webhook_id"],
        webhook_id.as_str(),
        "the same id"
    );
    let ids = log_until(&browser, "attempt-webhook-id", |ids| ids.len() == 2).await;
    assert_eq!(ids, [webhook_id.clone(), webhook_id.clone()]);
    log_until(&browser, "attempt-state", |s| {
        s == ["Delivered", "Delivered"]
    })
    .await;
    browser.screenshot("replayed").await;

    disable(&app, id.parse().unwrap()).await;
    browser.click("#webhooks-refresh").await;
    browser
        .wait_for_exact(
            &format!("{row} .webhook-state"),
            "Disabled: every attempt failed for 3 days",
        )
        .await;
    browser.screenshot("disabled").await;
    browser
        .click(&format!("{row} button[data-action=\"enable\"]"))
        .await;
    browser
        .wait_for_exact(&format!("{row} .webhook-state"), "Enabled")
        .await;
    assert_eq!(
        app.get_json("/webhooks").await["webhooks"][0]["disabled_at"],
        Value::Null
    );

    browser
        .execute(
            "window.asked = []; window.confirm = (m) => { window.asked.push(m); return window.asked.length > 1; };",
            vec![],
        )
        .await;
    let delete = format!("{row} button[data-action=\"delete\"]");
    browser.click(&delete).await;
    assert_eq!(
        app.get_json("/webhooks").await["webhooks"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "declined"
    );
    browser.click(&delete).await;
    browser.wait_for("#webhooks-empty:not([hidden])").await;
    browser.screenshot("deleted").await;
    let asked = browser.execute("return window.asked;", vec![]).await;
    assert!(asked[1].as_str().unwrap().contains(&url), "{asked}");
    assert_eq!(app.get_json("/webhooks").await["webhooks"], json!([]));
}
