//! Every connection of the test's PostgreSQL database cut twice mid-import (a restart, a
//! failover): the chunk in flight rolls back and is applied again from its checkpoint, sends are
//! fenced by their claims, and the counts come out exact.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::Text;
use invite_shared::db::schema::{deliveries, import_rows, invitations, members};
use invite_shared::on_conn;
use invite_tests::app::{Stack, TestApp, people_csv, postgres_admin_url};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

/// Terminates every connection to the app's database but the caller's own.
fn cut_every_connection(app: &TestApp) -> usize {
    let url = app.settings.database_url.as_ref().unwrap().expose_secret();
    let database = url.rsplit('/').next().unwrap().to_owned();
    let mut admin = diesel::PgConnection::establish(&postgres_admin_url()).unwrap();
    #[derive(QueryableByName)]
    struct Terminated {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        #[allow(dead_code)]
        pg_terminate_backend: bool,
    }
    diesel::sql_query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind::<Text, _>(database)
    .load::<Terminated>(&mut admin)
    .unwrap()
    .len()
}

fn processed(import: &Value) -> i64 {
    import["rows"]["processed"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_every_database_connection_twice_mid_import_loses_and_repeats_nothing() {
    let app = TestApp::spawn(Stack::Postgres).await;
    let rows = 20_000;
    let id = app.upload_ok(people_csv(rows)).await;

    app.wait_for_import(id, |i| processed(i) >= 4000).await;
    let first = cut_every_connection(&app);
    let resumed = app.wait_for_import(id, |i| processed(i) >= 12_000).await;
    let second = cut_every_connection(&app);
    let import = app.settled(id).await;

    assert!(
        first > 0 && second > 0,
        "connections were cut: {first}, {second}"
    );
    assert!(
        processed(&resumed) < rows as i64,
        "the second cut came mid-import"
    );
    assert_eq!(import["status"], "completed", "{import}");
    assert_eq!(
        import["rows"],
        json!({"total": rows, "processed": rows, "invited": rows, "skipped": 0, "invalid": 0})
    );
    assert_eq!(
        import["emails"],
        json!({"pending": 0, "sent": rows, "failed": 0})
    );
    let counts = app
        .db
        .run(|c| {
            let counts: QueryResult<[i64; 4]> = on_conn!(c, |c| {
                (|| {
                    Ok([
                        import_rows::table.count().get_result(c)?,
                        members::table.count().get_result(c)?,
                        invitations::table.count().get_result(c)?,
                        deliveries::table.count().get_result(c)?,
                    ])
                })()
            });
            Ok(counts?)
        })
        .await
        .unwrap();
    // One more member: the admin who uploaded.
    assert_eq!(
        counts,
        [rows as i64, rows as i64 + 1, rows as i64, rows as i64],
        "no row applied twice"
    );
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for message in app.emails() {
        *per_recipient.entry(message.rcpt_to.join(",")).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), rows, "every invitee got an email");
    let repeated: usize = per_recipient.values().map(|n| n - 1).sum();
    let bound = 2 * app.settings.smtp_pool_size as usize;
    assert!(
        repeated <= bound,
        "{repeated} repeats, more than sends in flight ({bound})"
    );
}
