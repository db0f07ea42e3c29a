-- SQLite twin of migrations/postgres: the names move from the global account to its oldest
-- membership, the one whose workspace's file gave them (PostgreSQL's migration says why).
-- `UPDATE … FROM` needs SQLite 3.33 and `DROP COLUMN` 3.35 (the bundled SQLite is 3.51);
-- `DROP COLUMN` also needs a column that no index, constraint, trigger or view names, which
-- neither name column is.
ALTER TABLE members ADD COLUMN first_name TEXT;
ALTER TABLE members ADD COLUMN last_name TEXT;

UPDATE members
SET first_name = accounts.first_name,
    last_name = accounts.last_name
FROM accounts
WHERE accounts.id = members.account_id
  AND (accounts.first_name IS NOT NULL OR accounts.last_name IS NOT NULL)
  AND members.id = (SELECT min(m.id) FROM members m WHERE m.account_id = accounts.id);

ALTER TABLE accounts DROP COLUMN first_name;
ALTER TABLE accounts DROP COLUMN last_name;
