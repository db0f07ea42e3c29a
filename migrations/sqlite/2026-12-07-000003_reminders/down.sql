ALTER TABLE members DROP COLUMN reminder_count;
ALTER TABLE members DROP COLUMN last_reminded_at;
