ALTER TABLE imports DROP COLUMN worker_id;
ALTER TABLE deliveries DROP COLUMN worker_id;
DROP INDEX workers_heartbeat;
DROP TABLE workers;
