-- An import's emails by state, kept up to date by every statement that creates a delivery or
-- changes its state, so that an import's progress is read from a few rows instead of counted over
-- all of its deliveries (that count took 12-25 ms at 100,000 deliveries, grew with the import,
-- and the admin's page asks for it every second). A writer adds its changes to one of 16 rows
-- per import, picked at random, so concurrent writers seldom wait for each other's row; readers
-- add the rows up. `unsent` is pending or being sent; cancelled emails are not counted.
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
       count(*) FILTER (WHERE state IN ('pending', 'sending')),
       count(*) FILTER (WHERE state = 'sent'),
       count(*) FILTER (WHERE state = 'failed')
FROM deliveries
WHERE import_id IS NOT NULL
GROUP BY import_id;

-- The (import_id, state) index served those counts. Each of a delivery's two state changes (claim,
-- outcome) inserted an entry into it; retrying an import's failed sends needs only these.
DROP INDEX deliveries_import_state;
CREATE INDEX deliveries_import_failed ON deliveries (import_id) WHERE state = 'failed';
