DROP INDEX imports_upload_retention;
ALTER TABLE imports DROP COLUMN upload_deleted_at;
DROP TABLE workspace_daily_emails;
ALTER TABLE members DROP COLUMN last_support_action_at;
