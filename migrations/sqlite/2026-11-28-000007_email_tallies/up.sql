-- An import's emails by state, kept up to date by every statement that creates a delivery or
-- changes its state, so that an import's progress is read from a few rows instead of counted over
-- all of its deliveries. (PostgreSQL spreads each import over 16 rows for concurrent writers;
-- SQLite has one writer at a time and uses row 0.) `unsent` is pending or being sent; cancelled
-- emails are not counted.
CREATE TABLE import_email_tallies (
    import_id BIGINT NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    shard SMALLINT NOT NULL,
    unsent BIGINT NOT NULL DEFAULT 0,
    sent BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (import_id, shard)
);
INSERT INTO import_email_tallies (import_id, shard, unsent, sent, failed)
SELECT import_id, 0,
       sum(CASE WHEN state IN ('pending', 'sending') THEN 1 ELSE 0 END),
       sum(CASE WHEN state = 'sent' THEN 1 ELSE 0 END),
       sum(CASE WHEN state = 'failed' THEN 1 ELSE 0 END)
FROM deliveries
WHERE import_id IS NOT NULL
GROUP BY import_id;
