//! Finding a member (`docs/product.md`, "Finding a member"): `GET …/members?q=` finds the members
//! whose address or first or last name contains the term, ignoring case and accents, literally
//! (`%` and `_` are characters), with the list's other filters and its pages, never in another
//! workspace; and a member written before search existed is found once the upgrade has run.

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationVersion;
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::MigrationHarness;
use invite_shared::db::{DbConn, PG_MIGRATIONS, SQLITE_MIGRATIONS};
use invite_shared::domain::search::SearchTerm;
use invite_shared::ids::WorkspaceId;
use invite_shared::store::members::{self, MemberFilter};
use invite_shared::store::upgrades;
use invite_tests::app::{Stack, TestApp, TestDatabase};
use invite_tests::on_both_stacks;
use serde_json::Value;

on_both_stacks!(
    a_term_finds_addresses_and_names_by_any_part,
    accents_and_case_are_ignored_both_ways,
    percent_and_underscore_are_plain_characters,
    a_term_of_one_or_two_characters_finds_too,
    a_search_combines_with_status_and_import,
    a_search_pages_with_the_cursor,
    a_search_never_finds_another_workspaces_members_or_names,
    a_later_import_of_a_member_changes_neither_their_names_nor_what_finds_them,
    an_empty_term_lists_everyone_and_a_long_one_is_refused,
    a_member_written_before_search_existed_is_found_after_the_upgrade,
);

/// The people of the first import: accents, capitals, an international domain, a `%` and a `_`.
const PEOPLE: &str = "First Name,Last Name,Email,User Role\n\
    José,Álvarez,jose.alvarez@example.com,End User\n\
    Anne,Müller,anne@bücher.de,End User\n\
    Annette,MULLER,annette@example.com,End User\n\
    Zoë,Qi,zoe@example.com,End User\n\
    Percy,100% Sure,percy@example.com,End User\n\
    Uma,Under,a_b@example.com,End User\n\
    Xena,Cross,axb@example.com,End User\n";

/// Uploads `csv` to the app's workspace and waits until its emails are out; the import's id.
async fn import(app: &TestApp, csv: &str) -> i64 {
    let id = app.upload_ok(csv.to_owned()).await;
    app.settled(id).await;
    id
}

/// `GET …/members` of workspace `slug` with `query` (each value URL-encoded).
async fn list_in(app: &TestApp, (slug, token): (&str, &str), query: &[(&str, &str)]) -> Value {
    let url = format!("{}/api/v1/workspaces/{slug}/members", app.base);
    let response = app
        .client
        .get(reqwest::Url::parse_with_params(&url, query).unwrap())
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{query:?}");
    response.json().await.unwrap()
}

/// The addresses of a page, sorted.
fn emails(page: &Value) -> Vec<String> {
    let mut found: Vec<String> = page["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap().to_owned())
        .collect();
    found.sort();
    found
}

/// The addresses of the app's workspace's members `q` finds, sorted, with `more` filters.
async fn found_with(app: &TestApp, q: &str, more: &[(&str, &str)]) -> Vec<String> {
    let mut query = vec![("q", q)];
    query.extend_from_slice(more);
    emails(&list_in(app, (&app.workspace, &app.token), &query).await)
}

async fn found(app: &TestApp, q: &str) -> Vec<String> {
    found_with(app, q, &[]).await
}

/// The addresses of workspace `slug`'s members `q` finds, sorted.
async fn found_in(app: &TestApp, workspace: (&str, &str), q: &str) -> Vec<String> {
    emails(&list_in(app, workspace, &[("q", q)]).await)
}

async fn a_term_finds_addresses_and_names_by_any_part(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    import(&app, PEOPLE).await;

    assert_eq!(
        found(&app, "jose.alvarez@example.com").await,
        ["jose.alvarez@example.com"]
    );
    assert_eq!(
        found(&app, "anne@bücher.de").await,
        ["anne@bücher.de"],
        "the exact address"
    );
    assert_eq!(
        found(&app, "jose.al").await,
        ["jose.alvarez@example.com"],
        "a prefix"
    );
    assert_eq!(
        found(&app, "nett").await,
        ["annette@example.com"],
        "part of a first name"
    );
    assert_eq!(
        found(&app, "varez").await,
        ["jose.alvarez@example.com"],
        "part of a last name"
    );
    assert_eq!(
        found(&app, "Anne Müller").await,
        ["anne@bücher.de"],
        "first and last name"
    );
    assert_eq!(
        found(&app, "xn--bcher").await,
        ["anne@bücher.de"],
        "the domain as stored and sent"
    );
    assert!(found(&app, "nobody-has-this").await.is_empty());
}

async fn accents_and_case_are_ignored_both_ways(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    import(&app, PEOPLE).await;

    assert_eq!(
        found(&app, "jose").await,
        ["jose.alvarez@example.com"],
        "José without its accent"
    );
    assert_eq!(
        found(&app, "ZOE").await,
        ["zoe@example.com"],
        "Zoë in capitals"
    );
    let mullers = ["anne@bücher.de", "annette@example.com"];
    assert_eq!(found(&app, "MULLER").await, mullers, "Müller and MULLER");
    assert_eq!(
        found(&app, "müller").await,
        mullers,
        "an accent in the term finds MULLER too"
    );
    assert_eq!(
        found(&app, "mu\u{308}ller").await,
        mullers,
        "a decomposed accent alike"
    );
    assert_eq!(
        found(&app, "bucher").await,
        ["anne@bücher.de"],
        "an accented domain"
    );
    assert_eq!(found(&app, "ÁLVAREZ").await, ["jose.alvarez@example.com"]);
}

async fn percent_and_underscore_are_plain_characters(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    import(&app, PEOPLE).await;

    assert_eq!(
        found(&app, "a_b").await,
        ["a_b@example.com"],
        "`_` is no wildcard"
    );
    assert_eq!(found(&app, "_").await, ["a_b@example.com"]);
    assert_eq!(
        found(&app, "0% s").await,
        ["percy@example.com"],
        "`%` is no wildcard"
    );
    assert_eq!(found(&app, "%").await, ["percy@example.com"]);
    assert!(found(&app, "a%b").await.is_empty());
    assert!(
        found(&app, "\\").await.is_empty(),
        "nor is the escape character"
    );
    assert!(found(&app, "\"").await.is_empty(), "nor a quote");
    assert!(found(&app, "x\"y").await.is_empty());
}

async fn a_term_of_one_or_two_characters_finds_too(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    import(&app, PEOPLE).await;

    assert_eq!(found(&app, "qi").await, ["zoe@example.com"]);
    assert_eq!(found(&app, "Q").await, ["zoe@example.com"]);
    assert_eq!(
        found(&app, "ÜL").await,
        ["anne@bücher.de", "annette@example.com"]
    );
    let every_e = found(&app, "e").await;
    assert_eq!(every_e.len(), 8, "{every_e:?}");
    assert_eq!(found(&app, "É").await, every_e, "one character, folded");
}

async fn a_search_combines_with_status_and_import(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let first = import(&app, PEOPLE).await;
    let second = import(
        &app,
        "First Name,Last Name,Email,User Role\nAnna,Mullerova,anna@example.com,End User\n",
    )
    .await;
    let annette = app.member_id("annette@example.com").await;
    let archived = app.post(&format!("/members/{annette}/archive")).await;
    assert_eq!(archived.status(), 200);

    let all = ["anna@example.com", "anne@bücher.de", "annette@example.com"];
    assert_eq!(found(&app, "mull").await, all);
    assert_eq!(
        found_with(&app, "mull", &[("status", "archived")]).await,
        ["annette@example.com"]
    );
    assert_eq!(
        found_with(&app, "mull", &[("status", "invited")]).await,
        ["anna@example.com", "anne@bücher.de"]
    );
    let first = first.to_string();
    let second = second.to_string();
    assert_eq!(
        found_with(&app, "mull", &[("import", &second)]).await,
        ["anna@example.com"]
    );
    assert_eq!(
        found_with(&app, "mull", &[("import", &first), ("status", "invited")]).await,
        ["anne@bücher.de"]
    );
}

async fn a_search_pages_with_the_cursor(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let mut csv = String::from("First Name,Last Name,Email,User Role\n");
    for i in 0..7 {
        csv.push_str(&format!("Pägé,Number{i},pager{i}@example.com,End User\n"));
    }
    csv.push_str("Other,Person,other@example.com,End User\n");
    import(&app, &csv).await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![("q", "PAGE"), ("limit", "3")];
        if let Some(c) = &cursor {
            query.push(("cursor", c));
        }
        let page = list_in(&app, (&app.workspace, &app.token), &query).await;
        pages += 1;
        let ids: Vec<i64> = page["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_i64().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "id order: {ids:?}");
        seen.extend(emails(&page));
        match page["next_cursor"].as_i64() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 10, "the pages end");
    }
    seen.sort();
    let expected: Vec<String> = (0..7).map(|i| format!("pager{i}@example.com")).collect();
    assert_eq!(seen, expected, "every match once, across {pages} pages");
    assert_eq!(pages, 3);
}

async fn a_search_never_finds_another_workspaces_members_or_names(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    import(&app, PEOPLE).await;
    let globex = app.admin_token("globex").await;
    // Anne is a member of both workspaces, named otherwise there; Secretia only there.
    let csv = "First Name,Last Name,Email,User Role\n\
        Pepe,Elsewhere,anne@bücher.de,End User\n\
        Secretia,Hidden,secretia@example.com,End User\n";
    let upload = app
        .upload_file(("globex", &globex), "people.csv", csv, false)
        .await;
    assert_eq!(upload.status(), 202);
    let id = upload.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    app.settled_in("globex", &globex, id).await;

    for term in ["pepe", "elsewhere", "secretia", "hidden", "globex"] {
        assert!(
            found(&app, term).await.is_empty(),
            "{term} is another workspace's"
        );
    }
    let mullers = ["anne@bücher.de", "annette@example.com"];
    assert_eq!(found(&app, "müller").await, mullers);
    let globex = ("globex", globex.as_str());
    assert_eq!(found_in(&app, globex, "pepe").await, ["anne@bücher.de"]);
    assert_eq!(found_in(&app, globex, "anne@").await, ["anne@bücher.de"]);
    for term in ["müller", "annette", "álvarez", "acme"] {
        assert!(
            found_in(&app, globex, term).await.is_empty(),
            "{term} is acme's"
        );
    }
}

async fn a_later_import_of_a_member_changes_neither_their_names_nor_what_finds_them(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    import(&app, PEOPLE).await;
    // The product keeps a member's names as their first import gave them: a later row of the
    // same person is skipped and changes nothing (`docs/product.md`, "Members and statuses").
    let later = "First Name,Last Name,Email,User Role\nJosefina,Renamed,jose.alvarez@example.com,End User\n";
    import(&app, later).await;

    assert!(found(&app, "renamed").await.is_empty());
    assert_eq!(found(&app, "álvarez").await, ["jose.alvarez@example.com"]);
}

async fn an_empty_term_lists_everyone_and_a_long_one_is_refused(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    import(&app, PEOPLE).await;
    let everyone = emails(&app.get_json("/members").await);

    assert_eq!(found(&app, "").await, everyone);
    assert_eq!(found(&app, "   ").await, everyone);
    assert_eq!(everyone.len(), 8, "seven people and the admin");

    let at_the_limit = "é".repeat(200);
    assert!(found(&app, &at_the_limit).await.is_empty());
    let url = reqwest::Url::parse_with_params(&app.url("/members"), [("q", "é".repeat(201))]);
    let response = app
        .client
        .get(url.unwrap())
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_filter", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("201") && message.contains("200"),
        "{message}"
    );
}

/// The version of the migration that added search: the ones before it make the database the
/// member below is written to.
const SEARCH_MIGRATION: &str = "20261207000001";

/// A workspace with a named member whose address has an international domain, written with the
/// schema from before search.
const BEFORE_SEARCH: &str = "\
    INSERT INTO workspaces (id, slug, name, created_at) VALUES \
        (1, 'old', 'Old', '2026-11-01 00:00:00'), (2, 'other', 'Other', '2026-11-01 00:00:00'); \
    INSERT INTO accounts (id, email, created_at) VALUES \
        (1, 'ute@xn--bcher-kva.de', '2026-11-01 00:00:00'), \
        (2, 'plain@example.com', '2026-11-01 00:00:00'); \
    INSERT INTO members (id, workspace_id, account_id, role, status, first_name, last_name, \
        created_at, updated_at) VALUES \
        (1, 1, 1, 'end_user', 'invited', 'Ute', 'Schröder', '2026-11-01 00:00:00', \
         '2026-11-01 00:00:00'), \
        (2, 2, 1, 'end_user', 'invited', 'Other', 'Name', '2026-11-01 00:00:00', \
         '2026-11-01 00:00:00'), \
        (3, 1, 2, 'end_user', 'invited', NULL, NULL, '2026-11-01 00:00:00', \
         '2026-11-01 00:00:00');";

/// Applies the migrations before search, writes [`BEFORE_SEARCH`], applies the rest.
fn migrate_around_search<C>(conn: &mut C, source: fn() -> diesel_migrations::EmbeddedMigrations)
where
    C: MigrationHarness<C::Backend> + Connection + SimpleConnection,
    diesel_migrations::EmbeddedMigrations: diesel::migration::MigrationSource<C::Backend>,
{
    let search = MigrationVersion::from(SEARCH_MIGRATION.to_owned());
    while let Some(next) = conn
        .pending_migrations(source())
        .unwrap()
        .into_iter()
        .next()
        .filter(|m| m.name().version() < search)
    {
        conn.run_migration(next.as_ref()).unwrap();
    }
    conn.batch_execute(BEFORE_SEARCH).unwrap();
    conn.run_pending_migrations(source()).unwrap();
}

/// The ids of workspace `workspace`'s members `q` finds.
fn ids_found(conn: &mut DbConn, workspace: i64, q: &str) -> Vec<i64> {
    let filter = MemberFilter {
        search: SearchTerm::parse(q).unwrap(),
        ..MemberFilter::default()
    };
    members::list(conn, WorkspaceId(workspace), &filter, 50)
        .unwrap()
        .into_iter()
        .map(|m| m.id.0)
        .collect()
}

async fn a_member_written_before_search_existed_is_found_after_the_upgrade(stack: Stack) {
    let folder = tempfile::tempdir().unwrap();
    let (_database, mut conn) = match stack {
        Stack::Postgres => {
            let (database, url) = TestDatabase::create().unwrap();
            let mut c = PgConnection::establish(&url).unwrap();
            migrate_around_search(&mut c, || PG_MIGRATIONS);
            (Some(database), DbConn::Pg(c))
        }
        Stack::Sqlite => {
            let path = folder.path().join("before-search.db");
            let mut c = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
            migrate_around_search(&mut c, || SQLITE_MIGRATIONS);
            (None, DbConn::Sqlite(c))
        }
    };
    assert!(
        ids_found(&mut conn, 1, "schroder").is_empty(),
        "not before the upgrade has run"
    );

    upgrades::run_pending(&mut conn).unwrap();

    for term in [
        "schroder",
        "SCHRÖDER",
        "ute",
        "bücher",
        "xn--bcher",
        "ute schr",
    ] {
        assert_eq!(ids_found(&mut conn, 1, term), [1], "{term}");
    }
    assert_eq!(ids_found(&mut conn, 1, "plain@"), [3]);
    assert_eq!(ids_found(&mut conn, 1, "e"), [1, 3], "a short term alike");
    assert!(
        ids_found(&mut conn, 1, "other name").is_empty(),
        "workspace 2's names"
    );
    assert_eq!(ids_found(&mut conn, 2, "other name"), [2]);
    assert!(ids_found(&mut conn, 2, "schroder").is_empty());
}
