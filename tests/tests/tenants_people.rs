//! What a workspace's file says about a person belongs to that workspace (`docs/product.md`,
//! "Members and statuses"): two workspaces import the same address under different names, and
//! each one's member list, results file, invitation page and invitation email (its `To` name,
//! greeting and inviter) show the names its own file gave, never the other's. On PostgreSQL the
//! emails cross a real SMTP conversation; on SQLite they are read from the outbox.

use invite_shared::store::auth;
use invite_tests::app::{Stack, TestApp};
use invite_tests::on_both_stacks;
use invite_tests::smtp::ReceivedMessage;
use serde_json::Value;

on_both_stacks!(each_workspace_shows_the_names_its_own_file_gave);

/// The person both workspaces invite.
const TARGET: &str = "target@corp.example.com";
/// An admin of both workspaces, named differently by each, who invites [`TARGET`] in each.
const BOSS: &str = "boss@corp.example.com";

/// What a browser sends when it follows a link.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// One workspace and the names its files give.
#[derive(Clone, Copy)]
struct Tenant {
    slug: &'static str,
    /// The names its file gives [`BOSS`].
    boss: (&'static str, &'static str),
    /// The names its file gives [`TARGET`].
    target: (&'static str, &'static str),
}

/// Imports first, and names the target with a lure that must never reach the other workspace.
const ALPHA: Tenant = Tenant {
    slug: "alpha",
    boss: ("Mallory", "Evil"),
    target: ("Free crypto at evil.example", "Now"),
};

const BETA: Tenant = Tenant {
    slug: "beta",
    boss: ("Barbara", "Boss"),
    target: ("Grace", "Hopper"),
};

/// A CSV of one person.
fn one_row((first, last): (&str, &str), email: &str, role: &str) -> String {
    format!("First Name,Last Name,Email,User Role\n{first},{last},{email},{role}\n")
}

/// Uploads `csv` to workspace `slug` and waits until its emails are out; the import's id.
async fn import(app: &TestApp, slug: &str, token: &str, csv: String) -> i64 {
    let response = app
        .upload_file((slug, token), "people.csv", csv, false)
        .await;
    assert_eq!(response.status(), 202, "the upload to {slug} was accepted");
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let import = app.settled_in(slug, token, id).await;
    assert_eq!(import["rows"]["invited"], 1, "{import}");
    id
}

/// An API token of [`BOSS`] as an admin of `slug` (the operators' `token create`).
async fn boss_token(app: &TestApp, slug: &'static str) -> String {
    app.db
        .run(move |c| Ok(auth::create_admin_token(c, slug, BOSS)?))
        .await
        .unwrap()
}

/// The names workspace `slug`'s member list shows for `email`.
async fn listed_names(app: &TestApp, slug: &str, token: &str, email: &str) -> (String, String) {
    let page: Value = app
        .get_in((slug, token), "/members?limit=500")
        .await
        .json()
        .await
        .unwrap();
    let member = page["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == email)
        .unwrap_or_else(|| panic!("{email} is not a member of {slug}: {page}"));
    let name = |key: &str| member[key].as_str().unwrap_or_default().to_owned();
    (name("first_name"), name("last_name"))
}

/// The one invitation email workspace `slug` sent [`TARGET`] (its subject ends with the
/// workspace's name, which is its slug).
fn email_from(app: &TestApp, slug: &str) -> ReceivedMessage {
    let mut to_target: Vec<ReceivedMessage> = app
        .emails()
        .into_iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r == TARGET))
        .filter(|m| m.subject().ends_with(&format!("to join {slug}")))
        .collect();
    assert_eq!(to_target.len(), 1, "one email from {slug} to the target");
    to_target.remove(0)
}

/// The invitation page of `token`, as a browser gets it.
async fn invitation_page(app: &TestApp, token: &str) -> String {
    let response = app
        .client
        .get(format!("{}/invitations/{token}", app.base))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn each_workspace_shows_the_names_its_own_file_gave(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    // Each workspace's own admin imports BOSS as an admin, under the names its file gives…
    for tenant in [ALPHA, BETA] {
        let admin = app.admin_token(tenant.slug).await;
        import(
            &app,
            tenant.slug,
            &admin,
            one_row(tenant.boss, BOSS, "Admin"),
        )
        .await;
    }
    // …and BOSS then invites TARGET in each: alpha first, so its names came first.
    let mut imports = Vec::new();
    for tenant in [ALPHA, BETA] {
        let token = boss_token(&app, tenant.slug).await;
        let csv = one_row(tenant.target, TARGET, "End User");
        let id = import(&app, tenant.slug, &token, csv).await;
        imports.push((tenant, token, id));
    }

    for (tenant, token, id) in &imports {
        let other = if tenant.slug == ALPHA.slug {
            BETA
        } else {
            ALPHA
        };
        let own = |(first, last): (&str, &str)| (first.to_owned(), last.to_owned());
        let slug = tenant.slug;

        assert_eq!(
            listed_names(&app, slug, token, TARGET).await,
            own(tenant.target),
            "{slug}'s member list"
        );
        assert_eq!(
            listed_names(&app, slug, token, BOSS).await,
            own(tenant.boss),
            "{slug}'s member list"
        );

        let results = app
            .get_in((slug, token), &format!("/imports/{id}/results"))
            .await
            .text()
            .await
            .unwrap();
        let line = results.lines().find(|l| l.contains(TARGET)).unwrap();
        assert!(line.contains(",invited,"), "{slug}'s results: {results}");

        let email = email_from(&app, slug);
        let (first, _) = tenant.target;
        let inviter = format!("{} {}", tenant.boss.0, tenant.boss.1);
        assert_eq!(email.to_name(), first, "{slug}'s To: {}", email.data);
        assert_eq!(
            email.subject(),
            format!("{inviter} invited you to join {slug}")
        );
        let text = email.text_body();
        assert!(text.starts_with(&format!("Hi {first},")), "{text}");
        assert!(
            text.contains(&format!("{inviter} has invited you")),
            "{text}"
        );
        let html = email.html_body();
        assert!(html.contains(&format!("Hi {first},")), "{html}");
        let named = format!("<strong>{inviter}</strong> has invited you");
        assert!(html.contains(&named), "{html}");

        let page = invitation_page(&app, &app.token_in(&text)).await;
        assert!(page.contains(&format!("Hi {first},")), "{page}");
        assert!(page.contains(&format!("{inviter} invited you")), "{page}");

        for shown in [&results, &email.data, &text, &html, &page] {
            for foreign in [other.target.0, other.boss.0, other.boss.1] {
                assert!(
                    !shown.contains(foreign),
                    "{slug} shows {other}'s {foreign:?}: {shown}",
                    other = other.slug
                );
            }
        }
    }
}
