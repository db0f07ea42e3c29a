-- When an import was cancelled. Every worker's send engine reads the imports cancelled lately
-- from here every few seconds, in case it missed the cancel's notice (Redis pub/sub is
-- fire-and-forget), so a missed notice costs seconds of sending, never the whole batch.
-- Cancelling a completed import keeps its finished_at, so that column cannot say it.
ALTER TABLE imports ADD COLUMN cancelled_at TIMESTAMP;
CREATE INDEX imports_cancelled_at ON imports (cancelled_at) WHERE cancelled_at IS NOT NULL;
