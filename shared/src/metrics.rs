//! Metric names and the few helpers that record them. Labels are small closed sets: never an email,
//! token or id.

/// Imports finished, by `status` (completed | failed).
pub const IMPORTS_TOTAL: &str = "invites_imports_total";
/// Imports being processed right now, in this process.
pub const IMPORTS_IN_PROGRESS: &str = "invites_imports_in_progress";
/// Wall time of an import run, start (or resume) to finish.
pub const IMPORT_DURATION: &str = "invites_import_duration_seconds";
/// Rows processed, by `outcome` (invited | skipped | invalid).
pub const ROWS_TOTAL: &str = "invites_rows_total";
/// Failing fields of invalid rows, by `field`.
pub const ROW_ERRORS_TOTAL: &str = "invites_row_errors_total";
/// Send attempts, by `result` (sent | retried | failed).
pub const EMAILS_TOTAL: &str = "invites_emails_total";
/// Time of one SMTP send.
pub const EMAIL_SEND_DURATION: &str = "invites_email_send_duration_seconds";
/// SMTP replies by `class` (2xx | 4xx | 5xx | error).
pub const SMTP_REPLIES_TOTAL: &str = "invites_smtp_replies_total";
/// Pauses of all sending because the mail server was unavailable.
pub const SMTP_PAUSES_TOTAL: &str = "invites_smtp_pauses_total";
/// Deliveries waiting to be sent (all imports).
pub const EMAILS_PENDING: &str = "invites_emails_pending";
/// Jobs being handled by this worker right now.
pub const WORKER_BUSY: &str = "invites_worker_busy";

/// Registers descriptions so `/metrics` explains each series.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(IMPORTS_TOTAL, "Imports finished, by status");
    describe_gauge!(
        IMPORTS_IN_PROGRESS,
        "Imports being processed by this process"
    );
    describe_histogram!(IMPORT_DURATION, metrics::Unit::Seconds, "Import run time");
    describe_counter!(ROWS_TOTAL, "Rows processed, by outcome");
    describe_counter!(ROW_ERRORS_TOTAL, "Failing fields of invalid rows, by field");
    describe_counter!(EMAILS_TOTAL, "Invitation send attempts, by result");
    describe_histogram!(
        EMAIL_SEND_DURATION,
        metrics::Unit::Seconds,
        "Time of one send"
    );
    describe_counter!(SMTP_REPLIES_TOTAL, "SMTP replies, by class");
    describe_counter!(
        SMTP_PAUSES_TOTAL,
        "Pauses of all sending because the mail server was unavailable"
    );
    describe_gauge!(EMAILS_PENDING, "Deliveries waiting to be sent");
    describe_gauge!(WORKER_BUSY, "Jobs this worker is handling now");
}
