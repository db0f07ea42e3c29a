//! Types and services shared by the API and the workers: configuration, domain types, the store,
//! job payloads, the mailer, metric names, and the service layer the routes and the CLI call.

pub mod bounce;
pub mod cancels;
pub mod config;
pub mod db;
pub mod domain;
pub mod email;
pub mod health;
pub mod ids;
pub mod intake;
pub mod jobs;
pub mod metrics;
pub mod queue;
pub mod service;
pub mod status;
pub mod store;
pub mod tokens;
pub mod webhooks;
