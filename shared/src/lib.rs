//! Types and services shared by the API and the workers: configuration, domain types, the store,
//! job payloads, the mailer and metric names.

pub mod domain;
pub mod email;
