-- Finding a member by part of their address or name (docs/product.md, "Finding a member").
-- `search_text` is written by the service, folded in Rust (shared/src/domain/search.rs: accents
-- dropped, lower case, the address as people read it, then the names), so that both databases
-- compare the same bytes.
ALTER TABLE members ADD COLUMN search_text TEXT NOT NULL DEFAULT '';

-- SQLite cannot index a substring pattern (`LIKE '%term%'`) in a B-tree: an FTS5 index with the
-- trigram tokenizer answers a term of 3 characters or more as a phrase of its trigrams. It is an
-- external-content index over `members.search_text` (it stores no second copy of the text), kept
-- in step by the triggers below; a shorter term falls back to `LIKE` on the column.
CREATE VIRTUAL TABLE members_search USING fts5(
    search_text,
    content = 'members',
    content_rowid = 'id',
    tokenize = 'trigram'
);

-- Index the rows there are (their text still empty), so that the update trigger's 'delete' of a
-- row's old text always finds what the index holds.
INSERT INTO members_search (members_search) VALUES ('rebuild');

CREATE TRIGGER members_search_insert AFTER INSERT ON members BEGIN
    INSERT INTO members_search (rowid, search_text) VALUES (new.id, new.search_text);
END;

CREATE TRIGGER members_search_delete AFTER DELETE ON members BEGIN
    INSERT INTO members_search (members_search, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
END;

CREATE TRIGGER members_search_update AFTER UPDATE OF search_text ON members BEGIN
    INSERT INTO members_search (members_search, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
    INSERT INTO members_search (rowid, search_text) VALUES (new.id, new.search_text);
END;

-- Memberships written before: their text is filled once, in batches, by the service
-- (shared/src/store/upgrades.rs); the update trigger indexes each.
INSERT INTO data_upgrades (name) VALUES ('member_search_text');
