-- What a workspace's file says about a person belongs to that workspace's membership: the names
-- move from the global account to every membership of it, so that one workspace's file can never
-- name a person in another workspace. The account keeps only what must be global: the address and
-- whether it was ever activated.
ALTER TABLE members
    ADD COLUMN first_name TEXT,
    ADD COLUMN last_name TEXT;

-- Every membership of an account gets the names the account had, so nothing shown before is lost.
-- Unnamed accounts are left out: their memberships already read NULL, and rewriting them would
-- only add dead rows.
UPDATE members
SET first_name = accounts.first_name,
    last_name = accounts.last_name
FROM accounts
WHERE accounts.id = members.account_id
  AND (accounts.first_name IS NOT NULL OR accounts.last_name IS NOT NULL);

ALTER TABLE accounts
    DROP COLUMN first_name,
    DROP COLUMN last_name;
