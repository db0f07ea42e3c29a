-- The pg_trgm extension stays: other objects of the database may use it.
DELETE FROM data_upgrades WHERE name = 'member_search_text';
DROP INDEX members_search_text;
ALTER TABLE members DROP COLUMN search_text;
