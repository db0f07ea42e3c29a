-- The send engine and the support tools.

-- Which claim holds a `sending` delivery: a random value per claim, so an outcome is recorded only
-- while the delivery is still held by the claim that sent it (a late writer never overwrites a
-- re-claim), and the holder renews its leases by it.
ALTER TABLE deliveries ADD COLUMN claim BIGINT;
-- The local part of the email's Message-ID, fixed at the first claim, so a send repeated after a
-- crash carries the same Message-ID as the one that may have gone out.
ALTER TABLE deliveries ADD COLUMN message_id TEXT;
-- Claims take due deliveries per import (fair share); the leading import_id also lets a claim list
-- the imports with pending sends without reading every pending row.
CREATE INDEX deliveries_pending_import ON deliveries (import_id, next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_claim ON deliveries (claim) WHERE state = 'sending';
-- The age of the oldest unsent email (a gauge operators alert on), without reading every row.
CREATE INDEX deliveries_unsent_created ON deliveries (created_at) WHERE state IN ('pending', 'sending');

-- Archiving a member revokes every link of their open invitations, for good: an unarchived member
-- gets a new invitation, and the old links keep answering 410.
ALTER TABLE invitations ADD COLUMN revoked_at TIMESTAMP;
