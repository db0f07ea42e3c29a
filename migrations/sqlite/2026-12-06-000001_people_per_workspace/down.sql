-- Back to one pair of names per account: each account takes the names of its oldest named
-- membership (the other workspaces' names are lost, as the older schema cannot hold them).
ALTER TABLE accounts ADD COLUMN first_name TEXT;
ALTER TABLE accounts ADD COLUMN last_name TEXT;

UPDATE accounts
SET (first_name, last_name) = (
    SELECT first_name, last_name
    FROM members
    WHERE members.account_id = accounts.id
      AND (first_name IS NOT NULL OR last_name IS NOT NULL)
    ORDER BY id
    LIMIT 1
);

ALTER TABLE members DROP COLUMN first_name;
ALTER TABLE members DROP COLUMN last_name;
