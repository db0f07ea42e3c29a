ALTER TABLE members DROP COLUMN reminder_count;
ALTER TABLE members DROP COLUMN last_reminded_at;
ALTER TABLE invitations DROP COLUMN kind;
