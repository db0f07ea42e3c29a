-- Worker liveness: every process that claims work registers here and writes its heartbeat every
-- WORKER_HEARTBEAT_INTERVAL. A process whose heartbeat is older than WORKER_DEAD_AFTER is dead:
-- housekeeping deletes its row and hands back its claims at once, rather than after their leases.
CREATE TABLE workers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Host and process id, for operators.
    name TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    heartbeat_at TIMESTAMP NOT NULL
);
CREATE INDEX workers_heartbeat ON workers (heartbeat_at);

-- The process holding a claim, next to the claim value (which fences outcomes): no foreign key,
-- since a claim may outlive its process's row until housekeeping hands it back. Not indexed: the
-- sends in progress are found by the partial index deliveries_claim, and a hand-back is rare.
ALTER TABLE deliveries ADD COLUMN worker_id BIGINT;
ALTER TABLE imports ADD COLUMN worker_id BIGINT;
