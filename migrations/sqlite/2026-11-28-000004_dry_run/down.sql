ALTER TABLE imports DROP COLUMN dry_run;
