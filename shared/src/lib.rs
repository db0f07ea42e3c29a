//! Types and services shared by the API and the workers: configuration, domain types, the store,
//! job payloads, the mailer and metric names.

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
pub mod status;
pub mod store;
pub mod support;
pub mod tokens;
