DROP INDEX imports_cancelled_at;
ALTER TABLE imports DROP COLUMN cancelled_at;
