//! Metric names and the few helpers that record them. Labels are small closed sets: never an email,
//! token or id — except a webhook endpoint's id, bounded by 20 per workspace, which says whose
//! receiver fails.

use crate::status::{ImportStatus, RowOutcome};

/// Imports finished, by `status` (completed | failed).
pub const IMPORTS_TOTAL: &str = "invites_imports_total";
/// Imports being processed right now, all workers (read from the database).
pub const IMPORTS_IN_PROGRESS: &str = "invites_imports_in_progress";
/// Wall time of an import run, start (or resume) to finish.
pub const IMPORT_DURATION: &str = "invites_import_duration_seconds";
/// Rows processed, by `outcome` (invited | skipped | invalid).
pub const ROWS_TOTAL: &str = "invites_rows_total";
/// Failing fields of invalid rows, by `field`.
pub const ROW_ERRORS_TOTAL: &str = "invites_row_errors_total";
/// Invitation emails by what became of them, `result`: a send attempt `sent`, `retried` or
/// `failed`, or a sent email reported `bounced` or `complained` from the bounce mailbox (once per
/// email, however often the report is read).
pub const EMAILS_TOTAL: &str = "invites_emails_total";
/// Time of one SMTP send.
pub const EMAIL_SEND_DURATION: &str = "invites_email_send_duration_seconds";
/// Time of one group commit of send outcomes, retries included: how long a send's slot waits after
/// the send before it is free again.
pub const EMAIL_RECORD_DURATION: &str = "invites_email_record_duration_seconds";
/// SMTP replies by `class` (2xx | 4xx | 5xx | error).
pub const SMTP_REPLIES_TOTAL: &str = "invites_smtp_replies_total";
/// Pauses of all sending because the mail server was unavailable.
pub const SMTP_PAUSES_TOTAL: &str = "invites_smtp_pauses_total";
/// Deliveries waiting to be sent (all imports; read from the database).
pub const EMAILS_PENDING: &str = "invites_emails_pending";
/// Registered processes that claim work (workers, or `serve` on the embedded stack) whose heartbeat
/// is younger than `WORKER_DEAD_AFTER` (read from the database).
pub const WORKERS_ALIVE: &str = "invites_workers_alive";
/// Age of the oldest delivery waiting to be sent (0 when none; read from the database).
pub const OLDEST_PENDING_AGE: &str = "invites_oldest_pending_email_age_seconds";
/// Jobs in the queue, by `queue` (process_import | send_invites) and `state` (pending | scheduled |
/// running | dead).
pub const QUEUE_JOBS: &str = "invites_queue_jobs";
/// HTTP requests answered by `invite-api`, by `route` template, `method` and `status` class.
pub const HTTP_REQUESTS_TOTAL: &str = "invites_http_requests_total";
/// Time to answer an HTTP request, by `route` template and `method`.
pub const HTTP_REQUEST_DURATION: &str = "invites_http_request_duration_seconds";
/// Size of accepted uploads.
pub const UPLOAD_BYTES: &str = "invites_upload_bytes";
/// Counter of requests answered 429, by `limit` (`auth_failures`, `uploads`, `imports_in_flight`,
/// `member_cooldown`, `workspace_daily_quota`).
pub const RATE_LIMITED_TOTAL: &str = "invites_rate_limited_total";
/// Members a remind call went through, by `result`: `reminded` (a reminder email queued) or
/// `skipped` (matched but not eligible: accepted, archived, within `REMIND_COOLDOWN` of their last
/// reminder, or at `REMIND_MAX`).
pub const REMINDERS_TOTAL: &str = "invites_reminders_total";
/// The `result` values of [`REMINDERS_TOTAL`].
pub const REMINDER_RESULTS: [&str; 3] = ["reminded", "skipped", "suppressed"];
/// Workbook conversions by `result`: `converted`, `refused` (in words: too large, unreadable),
/// `exhausted` (the child ran out of memory or time), `busy` (no free slot) or `failed` (the
/// child could not be run or set up: the server's fault).
pub const WORKBOOK_CONVERSIONS_TOTAL: &str = "invites_workbook_conversions_total";
/// The `result` values of [`WORKBOOK_CONVERSIONS_TOTAL`].
pub const WORKBOOK_CONVERSION_RESULTS: [&str; 5] =
    ["converted", "refused", "exhausted", "busy", "failed"];

/// Webhook delivery attempts by `endpoint` (the endpoint's id: never its URL) and `result`:
/// `delivered` (2xx), `retried` (anything else, to be tried again) or `failed` (out of
/// `WEBHOOK_RETRY_WINDOW`).
pub const WEBHOOK_DELIVERIES_TOTAL: &str = "invites_webhook_deliveries_total";
/// Time of one webhook POST, by `endpoint` (its id), whatever its answer.
pub const WEBHOOK_LATENCY: &str = "invites_webhook_latency_seconds";
/// Histogram buckets of [`WEBHOOK_LATENCY`]: 5 ms to 10 s (`WEBHOOK_TIMEOUT`'s default).
pub const WEBHOOK_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Histogram buckets of [`EMAIL_SEND_DURATION`]: 5 ms to 30 s.
pub const SEND_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Histogram buckets of [`EMAIL_RECORD_DURATION`]: 1 ms to 30 s (a database outage).
pub const RECORD_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];
/// Histogram buckets of [`IMPORT_DURATION`]: 1 s to 2 h.
pub const IMPORT_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];
/// Histogram buckets of [`HTTP_REQUEST_DURATION`]: 1 ms to 30 s (uploads of large files).
pub const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Histogram buckets of [`UPLOAD_BYTES`]: 1 KiB to 256 MiB.
pub const UPLOAD_BUCKETS: &[f64] = &[
    1024.0,
    16384.0,
    131072.0,
    1048576.0,
    8388608.0,
    67108864.0,
    268435456.0,
];
/// Jobs being handled by this worker right now.
pub const WORKER_BUSY: &str = "invites_worker_busy";

/// The `status` values of [`IMPORTS_TOTAL`]: how an import run can end.
pub const IMPORT_STATUSES: [&str; 2] = [
    ImportStatus::Completed.as_str(),
    ImportStatus::Failed.as_str(),
];
/// The `outcome` values of [`ROWS_TOTAL`].
pub const ROW_OUTCOMES: [&str; 3] = [
    RowOutcome::Invited.as_str(),
    RowOutcome::Skipped.as_str(),
    RowOutcome::Invalid.as_str(),
];
/// The `field` values of [`ROW_ERRORS_TOTAL`]: each column's field, plus `name` (neither name
/// given) and `row` (an empty or oversized row).
pub const ROW_ERROR_FIELDS: [&str; 8] = [
    "first_name",
    "last_name",
    "name",
    "email",
    "role",
    "groups",
    "metadata",
    "row",
];
/// The `result` values of [`EMAILS_TOTAL`].
pub const EMAIL_RESULTS: [&str; 5] = ["sent", "retried", "failed", "bounced", "complained"];
/// Messages of the bounce mailbox the bounce reader handled, by `result`: `recorded` (a report
/// applied to its email), `duplicate` (a report recorded before, by this worker or another),
/// `unmatched` (a report naming no email of ours), `not_a_report`, or `retry` (its email not yet
/// recorded as sent, or the database unavailable: read again later).
pub const BOUNCE_REPORTS_TOTAL: &str = "invites_bounce_reports_total";
/// The `result` values of [`BOUNCE_REPORTS_TOTAL`].
pub const BOUNCE_REPORT_RESULTS: [&str; 5] = [
    "recorded",
    "duplicate",
    "unmatched",
    "not_a_report",
    "retry",
];
/// The `class` values of [`SMTP_REPLIES_TOTAL`]; `error` is a failure without a reply.
pub const SMTP_REPLY_CLASSES: [&str; 4] = ["2xx", "4xx", "5xx", "error"];
/// The `limit` values of [`RATE_LIMITED_TOTAL`].
pub const RATE_LIMITS: [&str; 5] = [
    "auth_failures",
    "uploads",
    "imports_in_flight",
    "member_cooldown",
    "workspace_daily_quota",
];

/// Exports each series of a counter whose label values are a closed set at 0, so that `rate()`,
/// alerts and dashboards see it before its first event.
fn export_at_zero(name: &'static str, label: &'static str, values: &[&'static str]) {
    for value in values {
        metrics::counter!(name, label => *value).increment(0);
    }
}

/// Registers descriptions so `/metrics` explains each series.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(IMPORTS_TOTAL, "Imports finished, by status");
    describe_gauge!(IMPORTS_IN_PROGRESS, "Imports being processed, all workers");
    describe_histogram!(IMPORT_DURATION, metrics::Unit::Seconds, "Import run time");
    describe_counter!(ROWS_TOTAL, "Rows processed, by outcome");
    describe_counter!(ROW_ERRORS_TOTAL, "Failing fields of invalid rows, by field");
    describe_emails();
    describe_gauge!(EMAILS_PENDING, "Deliveries waiting to be sent");
    describe_gauge!(
        WORKERS_ALIVE,
        "Processes that claim work whose heartbeat is younger than WORKER_DEAD_AFTER"
    );
    describe_gauge!(
        OLDEST_PENDING_AGE,
        metrics::Unit::Seconds,
        "Age of the oldest delivery waiting to be sent"
    );
    describe_gauge!(QUEUE_JOBS, "Jobs in the queue, by queue and state");
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests answered, by route template, method and status class"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time to answer an HTTP request"
    );
    describe_histogram!(
        UPLOAD_BYTES,
        metrics::Unit::Bytes,
        "Size of accepted uploads"
    );
    describe_counter!(
        RATE_LIMITED_TOTAL,
        "Requests answered 429 by an abuse limit, by limit"
    );
    describe_gauge!(WORKER_BUSY, "Jobs this worker is handling now");
    describe_counter!(
        WORKBOOK_CONVERSIONS_TOTAL,
        "Workbook conversions in child processes, by result"
    );
    export_at_zero(IMPORTS_TOTAL, "status", &IMPORT_STATUSES);
    export_at_zero(ROWS_TOTAL, "outcome", &ROW_OUTCOMES);
    export_at_zero(ROW_ERRORS_TOTAL, "field", &ROW_ERROR_FIELDS);
    export_at_zero(RATE_LIMITED_TOTAL, "limit", &RATE_LIMITS);
    describe_counter!(
        REMINDERS_TOTAL,
        "Members matched by remind calls, by result (reminded, skipped, or suppressed: not reminded \
         because their address bounced or complained)"
    );
    export_at_zero(REMINDERS_TOTAL, "result", &REMINDER_RESULTS);
    describe_webhooks();
    export_at_zero(
        WORKBOOK_CONVERSIONS_TOTAL,
        "result",
        &WORKBOOK_CONVERSION_RESULTS,
    );
}

/// Registers the descriptions of sending and of what became of the emails sent, and exports
/// their closed label sets at 0.
fn describe_emails() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        EMAILS_TOTAL,
        "Invitation send attempts by result, and sent emails reported bounced or complained"
    );
    describe_histogram!(
        EMAIL_SEND_DURATION,
        metrics::Unit::Seconds,
        "Time of one send"
    );
    describe_histogram!(
        EMAIL_RECORD_DURATION,
        metrics::Unit::Seconds,
        "Time of one group commit of send outcomes"
    );
    describe_counter!(SMTP_REPLIES_TOTAL, "SMTP replies, by class");
    describe_counter!(
        SMTP_PAUSES_TOTAL,
        "Pauses of all sending because the mail server was unavailable"
    );
    metrics::counter!(SMTP_PAUSES_TOTAL).increment(0);
    export_at_zero(EMAILS_TOTAL, "result", &EMAIL_RESULTS);
    export_at_zero(SMTP_REPLIES_TOTAL, "class", &SMTP_REPLY_CLASSES);
    describe_counter!(
        BOUNCE_REPORTS_TOTAL,
        "Messages of the bounce mailbox handled by the bounce reader, by result"
    );
    export_at_zero(BOUNCE_REPORTS_TOTAL, "result", &BOUNCE_REPORT_RESULTS);
}

/// Registers the webhook sender's descriptions (their series exist per endpoint, so none is
/// exported before its first attempt).
fn describe_webhooks() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        WEBHOOK_DELIVERIES_TOTAL,
        "Webhook delivery attempts, by endpoint id and result"
    );
    describe_histogram!(
        WEBHOOK_LATENCY,
        metrics::Unit::Seconds,
        "Time of one webhook POST, by endpoint id"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::header::Column;

    #[test]
    fn every_column_has_its_row_error_series() {
        for column in Column::ALL {
            assert!(ROW_ERROR_FIELDS.contains(&column.field()), "{column:?}");
        }
    }
}
