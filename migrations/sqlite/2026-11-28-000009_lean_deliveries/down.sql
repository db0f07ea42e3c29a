CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE state = 'sending';
CREATE INDEX deliveries_member ON deliveries (member_id);
DROP INDEX deliveries_import_failed;
CREATE INDEX deliveries_import_state ON deliveries (import_id, state);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
