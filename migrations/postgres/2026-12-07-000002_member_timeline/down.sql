DROP INDEX audit_events_target;
ALTER TABLE invitations DROP COLUMN cause;
ALTER TABLE invitations DROP COLUMN opened_at;
DROP INDEX delivery_attempts_delivery;
DROP TABLE delivery_attempts;
