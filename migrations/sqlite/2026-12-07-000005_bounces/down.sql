ALTER TABLE import_email_tallies DROP COLUMN complained;
ALTER TABLE import_email_tallies DROP COLUMN bounced;
ALTER TABLE members DROP COLUMN address_changed_at;
ALTER TABLE members DROP COLUMN suppressed_at;
ALTER TABLE members DROP COLUMN suppressed_reason;
DROP INDEX deliveries_message_id;
DROP INDEX bounce_reports_delivery;
DROP TABLE bounce_reports;
