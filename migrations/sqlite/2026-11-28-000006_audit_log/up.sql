-- Who did what: uploads, dry runs, retries, resends, copied links, archives and token changes.
-- The actor is an account, or NULL for an operator at the command line; targets are ids, never
-- a token.
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    actor_account_id BIGINT REFERENCES accounts (id) ON DELETE SET NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX audit_events_workspace ON audit_events (workspace_id, id);
