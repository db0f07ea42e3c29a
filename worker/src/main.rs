//! `invite-worker`: processes imports and sends invitations from the Redis queue, and serves its
//! Prometheus metrics on `METRICS_ADDR`.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;
use invite_shared::config::Settings;
use invite_shared::db::Db;
use invite_shared::queue::JobQueue;
use invite_worker::{Deps, runtime};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_tracing("info");
    let settings = Arc::new(Settings::load()?);
    let metrics = runtime::metrics_handle();
    let db = Db::connect(&settings.database_url(), settings.db_pool_size)?;
    db.migrate().await?;
    anyhow::ensure!(
        settings.redis_url.is_some(),
        "invite-worker needs REDIS_URL; without Redis, `invite-api serve` runs the workers itself"
    );
    let queue = JobQueue::connect(&settings).await?;
    let deps = Deps::new(settings.clone(), db, queue)?;
    tracing::info!(mailer = deps.mailer.describe(), "invite-worker starting");

    let listener = tokio::net::TcpListener::bind(settings.metrics_addr)
        .await
        .with_context(|| format!("binding METRICS_ADDR {}", settings.metrics_addr))?;
    let app = Router::new().route(
        "/metrics",
        get(move || std::future::ready(metrics.render())),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    invite_worker::run(deps, runtime::shutdown_on_signal()).await
}
