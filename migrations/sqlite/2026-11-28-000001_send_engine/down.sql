ALTER TABLE invitations DROP COLUMN revoked_at;
DROP INDEX deliveries_unsent_created;
DROP INDEX deliveries_claim;
DROP INDEX deliveries_pending_import;
ALTER TABLE deliveries DROP COLUMN message_id;
ALTER TABLE deliveries DROP COLUMN claim;
