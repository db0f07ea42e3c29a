-- A dry run validates every row by the same code as a real import and records the same per-row
-- outcomes, but writes no account, member or invitation and sends nothing.
ALTER TABLE imports ADD COLUMN dry_run BOOLEAN NOT NULL DEFAULT FALSE;
