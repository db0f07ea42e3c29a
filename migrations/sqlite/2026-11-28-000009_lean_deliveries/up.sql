-- Fewer index entries per email (PostgreSQL's migrations explain each; they dropped
-- deliveries_due and replaced deliveries_import_state earlier). A claim and an outcome rewrite
-- the entries of every index whose columns they change, and a new delivery enters all of them.
--
-- Claims walk deliveries_pending_import; nothing reads this one.
DROP INDEX deliveries_due;
-- An import's emails are counted from its tallies; retrying its failed sends needs only these.
DROP INDEX deliveries_import_state;
CREATE INDEX deliveries_import_failed ON deliveries (import_id) WHERE state = 'failed';
-- A member's deliveries are found through its invitations.
DROP INDEX deliveries_member;
-- Lapsed leases are found through deliveries_claim, which holds the same rows.
DROP INDEX deliveries_leased;
