//! Workspace lines, checked from the OpenAPI document the server serves: for every admin operation
//! with an id in its path, an admin of workspace A using an id of workspace B gets 404 and changes
//! nothing of B; and no answer A gets from any admin operation holds anything of B — its people's
//! names or addresses (even of a person both workspaces invited), its upload, group or token.
//!
//! The operations come from the document, so a route added later is checked without editing this
//! file; an id kind this file cannot provide makes the test fail and say so.

use invite_api::openapi::PATH;
use invite_tests::app::{Stack, TestApp};
use invite_tests::on_both_stacks;
use reqwest::Method;
use serde_json::{Value, json};

on_both_stacks!(no_admin_operation_crosses_a_workspace_line);

/// Workspace B's slug.
const B: &str = "globex";

/// B's upload: one person only B invited, and one both workspaces invite (B first, under other
/// names than A gives them).
const B_CSV: &str = "First Name,Last Name,Email,User Role\n\
    Bartholomew,Brightwater,shared@example.com,End User\n\
    Bernadette,Blackwood,b-only@example.com,End User\n";
const B_FILE: &str = "globex-secret-upload.csv";
const B_GROUP: &str = "globex-secret-group";
const B_TOKEN_NAME: &str = "globex-secret-token";
const B_WEBHOOK: &str = "globex-secret-webhook";

/// A's upload: the shared person, under A's names.
const A_CSV: &str = "First Name,Last Name,Email,User Role\n\
    Alice,Anders,shared@example.com,End User\n";

/// What one workspace made, by the kind of id its paths take.
struct Made {
    slug: String,
    token: String,
    import: i64,
    member: i64,
    token_id: i64,
    webhook: i64,
}

impl Made {
    /// The id of this workspace's resource that a path segment `kind` (the segment before
    /// `{id}`) names.
    fn id_for(&self, kind: &str, path: &str) -> i64 {
        match kind {
            "imports" => self.import,
            "members" => self.member,
            "tokens" => self.token_id,
            "webhooks" => self.webhook,
            _ => panic!(
                "{path}: this test has no `{kind}` id of each workspace; make one in \
                 `populate` and name it in `Made::id_for`"
            ),
        }
    }
}

/// Everything of B that must never reach A.
fn b_secrets(b: &Made, b_token_prefix: &str) -> Vec<String> {
    [
        "Bartholomew",
        "Brightwater",
        "Bernadette",
        "Blackwood",
        "b-only@example.com",
        B_FILE,
        B_GROUP,
        B_TOKEN_NAME,
        B_WEBHOOK,
        b_token_prefix,
        &b.token,
        B,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// One documented admin operation.
struct Operation {
    method: Method,
    path: String,
    has_body: bool,
}

impl Operation {
    /// The segment before `{id}`, if the path has an id.
    fn id_kind(&self) -> Option<&str> {
        let segments: Vec<&str> = self.path.split('/').collect();
        let at = segments.iter().position(|s| *s == "{id}")?;
        Some(segments[at - 1])
    }

    /// The path for workspace `slug` with `id` (if it has one).
    fn concrete(&self, slug: &str, id: Option<i64>) -> String {
        let path = self.path.replace("{ws}", slug);
        let path = id.map_or(path.clone(), |id| path.replace("{id}", &id.to_string()));
        // A delivery of the endpoint's own would do as well: the endpoint is what is refused.
        let path = path.replace("{delivery_id}", "1");
        assert!(
            !path.contains('{'),
            "a parameter this test does not fill: {path}"
        );
        path
    }
}

/// The served document's operations on a workspace.
async fn workspace_operations(app: &TestApp) -> Vec<Operation> {
    let document: Value = app
        .client
        .get(format!("{}{PATH}", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut found = Vec::new();
    for (path, entry) in document["paths"].as_object().unwrap() {
        if !path.contains("{ws}") {
            continue;
        }
        for (method, operation) in entry.as_object().unwrap() {
            found.push(Operation {
                method: method.to_uppercase().parse().unwrap(),
                path: path.clone(),
                has_body: operation.get("requestBody").is_some(),
            });
        }
    }
    found
}

/// Calls `operation` at `path` with `token`; a documented body gets `{}` (an id that is not the
/// caller's must be refused whatever the body says).
async fn call(app: &TestApp, operation: &Operation, path: &str, token: &str) -> (u16, String) {
    let mut request = app
        .client
        .request(operation.method.clone(), format!("{}{path}", app.base))
        .bearer_auth(token);
    if operation.has_body {
        request = request.json(&json!({}));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn post_json(app: &TestApp, (slug, token): (&str, &str), path: &str, body: Value) -> Value {
    let response = app
        .client
        .post(format!("{}/api/v1/workspaces/{slug}{path}", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// Uploads `csv` to workspace `slug`, waits for it to settle and returns what it made, with a
/// group and a token of the workspace's own. `member_email` picks the member whose id is used.
async fn populate(
    app: &TestApp,
    (slug, token): (&str, &str),
    (file_name, csv): (&str, &str),
    member_email: &str,
) -> (Made, String) {
    let response = app
        .upload_file((slug, token), file_name, csv.as_bytes().to_vec(), false)
        .await;
    assert_eq!(response.status(), 202, "{slug}: the upload is accepted");
    let import = response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    app.settled_in(slug, token, import).await;
    let members = app
        .get_in((slug, token), "/members")
        .await
        .json::<Value>()
        .await
        .unwrap();
    let member = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == member_email)
        .and_then(|m| m["id"].as_i64())
        .expect("the invitee is a member");
    let group_name = format!("{slug}-secret-group");
    post_json(app, (slug, token), "/groups", json!({ "name": group_name })).await;
    let token_name = format!("{slug}-secret-token");
    let created = post_json(app, (slug, token), "/tokens", json!({ "name": token_name })).await;
    let webhook = json!({
        "url": format!("http://127.0.0.1:9/{slug}-secret-webhook"),
        "events": ["member.archived"],
        "description": format!("{slug}-secret-webhook"),
    });
    let webhook = post_json(app, (slug, token), "/webhooks", webhook).await;
    let made = Made {
        slug: slug.to_owned(),
        token: created["token"].as_str().unwrap().to_owned(),
        import,
        member,
        token_id: created["id"].as_i64().unwrap(),
        webhook: webhook["id"].as_i64().unwrap(),
    };
    (made, created["prefix"].as_str().unwrap().to_owned())
}

async fn no_admin_operation_crosses_a_workspace_line(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let b_admin = app.admin_token(B).await;
    let (b, b_prefix) = populate(&app, (B, &b_admin), (B_FILE, B_CSV), "b-only@example.com").await;
    let (a, _) = populate(
        &app,
        (&app.workspace, &app.token),
        ("a-upload.csv", A_CSV),
        "shared@example.com",
    )
    .await;
    let secrets = b_secrets(&b, &b_prefix);
    let operations = workspace_operations(&app).await;

    let mut crossed = 0;
    for operation in operations.iter().filter(|o| o.id_kind().is_some()) {
        let kind = operation.id_kind().unwrap();
        let path = operation.concrete(&a.slug, Some(b.id_for(kind, &operation.path)));
        let (status, body) = call(&app, operation, &path, &a.token).await;
        assert_eq!(
            status, 404,
            "{} {path} with B's id: {body}",
            operation.method
        );
        assert_leaks_nothing(&secrets, operation, &path, &body);
        crossed += 1;
    }
    assert!(
        crossed >= 8,
        "the document lists {crossed} operations with an id"
    );

    for operation in operations.iter().filter(|o| o.method == Method::GET) {
        let id = operation.id_kind().map(|k| a.id_for(k, &operation.path));
        let path = operation.concrete(&a.slug, id);
        let (status, body) = call(&app, operation, &path, &a.token).await;
        assert_eq!(status, 200, "GET {path} with A's own ids: {body}");
        assert_leaks_nothing(&secrets, operation, &path, &body);
    }

    assert_b_untouched(&app, &b).await;
}

fn assert_leaks_nothing(secrets: &[String], operation: &Operation, path: &str, body: &str) {
    for secret in secrets {
        assert!(
            !body.contains(secret.as_str()),
            "{} {path} answers A with B's {secret:?}: {body}",
            operation.method
        );
    }
}

/// B's member, token and import are as B left them.
async fn assert_b_untouched(app: &TestApp, b: &Made) {
    let b_auth = (b.slug.as_str(), b.token.as_str());
    let member = app
        .get_in(b_auth, &format!("/members/{}", b.member))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(member["status"], "invited", "B's member: {member}");
    let tokens = app
        .get_in(b_auth, "/tokens")
        .await
        .json::<Value>()
        .await
        .unwrap();
    let token = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == b.token_id)
        .expect("B's token is listed by B");
    assert_eq!(token["revoked_at"], Value::Null, "B's token: {token}");
    let webhooks = app
        .get_in(b_auth, "/webhooks")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        webhooks["webhooks"][0]["id"], b.webhook,
        "B's webhook is not deleted: {webhooks}"
    );
    let import = app
        .get_in(b_auth, &format!("/imports/{}", b.import))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(import["status"], "completed", "B's import: {import}");
    assert_eq!(import["emails"]["sent"], 2, "B's import: {import}");
    assert_eq!(
        app.emails().len(),
        3,
        "B's two emails and A's one, no other"
    );
}
