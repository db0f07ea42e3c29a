//! The mixed set-ups the README offers: PostgreSQL with the embedded queue (one `invite-api
//! serve` process runs the workers), and SQLite with a real SMTP server.

use invite_tests::app::{Stack, TestApp, people_csv};
use invite_tests::smtp::SmtpServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_with_the_embedded_queue_invites_and_emails_everyone() {
    let data = tempfile::tempdir().unwrap();
    let mut app = TestApp::spawn_with(Stack::Postgres, |s| {
        s.redis_url = None;
        s.data_dir = data.path().to_owned();
    })
    .await;
    assert!(app.redis_prefix().is_none(), "no Redis in this set-up");
    app.start_worker().await;

    let id = app.upload_ok(people_csv(30)).await;
    let import = app.settled(id).await;

    assert_eq!(import["status"], "completed", "{import}");
    assert_eq!(import["emails"]["sent"], 30, "{import}");
    assert_eq!(app.smtp().messages().len(), 30);
    assert!(
        data.path().join("queue.db").exists(),
        "the embedded queue's file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_with_an_smtp_server_invites_and_emails_everyone() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let mut app = TestApp::spawn_with(Stack::Sqlite, |s| {
        s.smtp_url = Some(url.into());
    })
    .await;
    app.start_worker().await;

    let id = app.upload_ok(people_csv(30)).await;
    let import = app.settled(id).await;

    assert_eq!(import["status"], "completed", "{import}");
    assert_eq!(import["emails"]["sent"], 30, "{import}");
    assert_eq!(smtp.messages().len(), 30);
}
