DELETE FROM data_upgrades WHERE name = 'member_search_text';
DROP TRIGGER members_search_update;
DROP TRIGGER members_search_delete;
DROP TRIGGER members_search_insert;
DROP TABLE members_search;
ALTER TABLE members DROP COLUMN search_text;
