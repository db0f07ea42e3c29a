-- Upgrades of stored data that SQL cannot do, run once by the service right after the
-- migrations (shared/src/store/upgrades.rs); a row is a task still to run.
CREATE TABLE data_upgrades (
    name TEXT PRIMARY KEY
);

-- Addresses are now stored canonically (NFC, the domain as an IDNA A-label): bring those stored
-- before to that form.
INSERT INTO data_upgrades (name) VALUES ('canonical_addresses');
