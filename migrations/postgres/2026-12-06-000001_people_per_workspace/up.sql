-- What a workspace's file says about a person belongs to that workspace's membership: the names
-- move from the global account to a membership, so that one workspace's file can never name a
-- person in another workspace. The account keeps only what must be global: the address and
-- whether it was ever activated.
ALTER TABLE members
    ADD COLUMN first_name TEXT,
    ADD COLUMN last_name TEXT;

-- An account's names came from the file of the workspace that first imported the person: the
-- import that created the account created its oldest membership in the same transaction. That
-- membership gets them; the others, whose workspaces' files never named the person on the
-- account, read NULL as they always should have. Unnamed accounts are left out.
UPDATE members
SET first_name = accounts.first_name,
    last_name = accounts.last_name
FROM accounts
WHERE accounts.id = members.account_id
  AND (accounts.first_name IS NOT NULL OR accounts.last_name IS NOT NULL)
  AND members.id = (SELECT min(m.id) FROM members m WHERE m.account_id = accounts.id);

ALTER TABLE accounts
    DROP COLUMN first_name,
    DROP COLUMN last_name;
