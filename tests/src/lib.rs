//! Test helpers shared by the integration suites.

pub mod smtp;

pub mod app;
