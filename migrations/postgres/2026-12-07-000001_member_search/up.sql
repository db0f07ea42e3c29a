-- Finding a member by part of their address or name (docs/product.md, "Finding a member").
-- `search_text` is written by the service, folded in Rust (shared/src/domain/search.rs: accents
-- dropped, lower case, the address as people read it, then the names), so that both databases
-- compare the same bytes; a search is `search_text LIKE '%term%'` with the term folded alike.
-- A trigram GIN index answers such a substring pattern from the index for terms of 3 characters
-- or more, whatever the table's size; pg_trgm ships with PostgreSQL (Debian's postgresql
-- package, `postgresql-contrib` elsewhere) and is a trusted extension since PostgreSQL 13.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE members ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
CREATE INDEX members_search_text ON members USING gin (search_text gin_trgm_ops);

-- Memberships written before: their text is filled once, in batches, by the service
-- (shared/src/store/upgrades.rs).
INSERT INTO data_upgrades (name) VALUES ('member_search_text');
