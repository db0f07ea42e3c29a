DROP INDEX deliveries_import_failed;
CREATE INDEX deliveries_import_state ON deliveries (import_id, state);
DROP TABLE import_email_tallies;
