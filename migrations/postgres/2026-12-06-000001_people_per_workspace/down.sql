-- Back to one pair of names per account: each account takes the names of its oldest named
-- membership (the other workspaces' names are lost, as the older schema cannot hold them).
ALTER TABLE accounts
    ADD COLUMN first_name TEXT,
    ADD COLUMN last_name TEXT;

UPDATE accounts
SET first_name = named.first_name,
    last_name = named.last_name
FROM (
    SELECT DISTINCT ON (account_id) account_id, first_name, last_name
    FROM members
    WHERE first_name IS NOT NULL OR last_name IS NOT NULL
    ORDER BY account_id, id
) AS named
WHERE named.account_id = accounts.id;

ALTER TABLE members
    DROP COLUMN first_name,
    DROP COLUMN last_name;
