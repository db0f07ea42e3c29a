//! `invite-worker`: processes imports and sends invitations from the Redis queue, and serves its
//! Prometheus metrics, `/healthz` and `/readyz` on `METRICS_ADDR`.

use std::sync::Arc;

use anyhow::Context as _;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use invite_shared::config::Settings;
use invite_shared::health::Readiness;
use invite_worker::{Deps, runtime};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_tracing("info");
    let settings = Arc::new(Settings::load()?);
    let metrics = runtime::metrics_handle();
    anyhow::ensure!(
        settings.redis_url.is_some(),
        "invite-worker needs REDIS_URL; without Redis, `invite-api serve` runs the workers itself"
    );
    let shutdown = runtime::shutdown_on_signal();
    let Some((db, queue)) = runtime::connect_dependencies(&settings, &shutdown).await? else {
        return Ok(());
    };
    let deps = Deps::new(settings.clone(), db, queue)?;
    tracing::info!(mailer = deps.mailer.describe(), "invite-worker starting");

    let listener = tokio::net::TcpListener::bind(settings.metrics_addr)
        .await
        .with_context(|| format!("binding METRICS_ADDR {}", settings.metrics_addr))?;
    let (db, queue) = (deps.db.clone(), deps.queue.clone());
    let app = Router::new()
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || async move {
                let readiness = Readiness::check(&db, &queue).await;
                let status = if readiness.ready() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (status, Json(readiness.report()))
            }),
        );
    let (http_settings, stop) = (settings.clone(), shutdown.clone());
    tokio::spawn(async move {
        invite_worker::server::serve(listener, app, &http_settings, stop).await;
    });

    invite_worker::run(deps, shutdown).await
}
