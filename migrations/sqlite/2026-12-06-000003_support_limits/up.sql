-- Limits on support actions, and the retention of stored uploads.
-- When support last resent, unarchived or copied a link for the member: the per-member cooldown
-- (MEMBER_ACTION_COOLDOWN) is measured from it.
ALTER TABLE members ADD COLUMN last_support_action_at TIMESTAMP;
-- Support-initiated emails (resends, unarchive re-invitations) per workspace and UTC day, for
-- SUPPORT_EMAILS_PER_DAY.
CREATE TABLE workspace_daily_emails (
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    day DATE NOT NULL,
    sent BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, day)
);
-- When the stored file of a finished import was deleted (UPLOAD_RETENTION); its counts and
-- per-row results stay.
ALTER TABLE imports ADD COLUMN upload_deleted_at TIMESTAMP;
-- Finished imports whose file is still stored, oldest first: what housekeeping deletes.
CREATE INDEX imports_upload_retention ON imports (finished_at)
    WHERE upload_deleted_at IS NULL AND finished_at IS NOT NULL;
