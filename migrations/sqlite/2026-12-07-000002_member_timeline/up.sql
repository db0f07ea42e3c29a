-- A member's timeline (docs/product.md, "A member's timeline").

-- The unsuccessful send attempts of each email, with the mail server's reply (or the error in
-- words): written by the statement that records the outcome, and only for an attempt that was
-- not accepted, so an email accepted at its first attempt writes nothing here. The accepted
-- attempt is the delivery's own `sent_at` and `last_reply`. At most 50 are kept per email.
CREATE TABLE delivery_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id BIGINT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    at TIMESTAMP NOT NULL,
    reply TEXT NOT NULL,
    -- TRUE for a failure that is tried again (4xx, the server unavailable), FALSE for the one
    -- that made the email `failed`.
    temporary BOOLEAN NOT NULL
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);

-- When a link of the invitation was first opened (its page shown for a valid link).
ALTER TABLE invitations ADD COLUMN opened_at TIMESTAMP;
-- What made the invitation: `import`, `resend`, `unarchive` or `invitation_link`; NULL for
-- invitations made before it was recorded that were not the member's first.
ALTER TABLE invitations ADD COLUMN cause TEXT;
UPDATE invitations SET cause = 'import'
    WHERE id IN (SELECT min(id) FROM invitations GROUP BY member_id);
UPDATE invitations SET cause = 'invitation_link'
    WHERE cause IS NULL AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.invitation_id = invitations.id);

-- A member's support actions, found without reading the workspace's whole log.
CREATE INDEX audit_events_target ON audit_events (workspace_id, target, id);
