-- Hand-over to the workspace's application (docs/product.md, "Hand-over to your application").

-- Where an accepted invitation sends the browser: a URL template with the placeholders
-- {member_id}, {email} and {workspace}; NULL keeps the service's own welcome page.
ALTER TABLE workspaces ADD COLUMN accept_redirect_url TEXT;

-- The short-lived tokens handed to the application with that redirect, one per acceptance. Only
-- the SHA-256 of a token is kept, as for invitation links. `used_at` is set by the one lookup that
-- redeems it: a token verifies once.
CREATE TABLE acceptance_handovers (
    token_hash BLOB PRIMARY KEY,
    member_id BIGINT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    accepted_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX acceptance_handovers_member ON acceptance_handovers (member_id);
