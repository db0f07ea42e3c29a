-- API tokens as a managed resource: a name and a display prefix (never the secret), an optional
-- expiry, revocation, the last time it was used, and the workspace it was created for (NULL for a
-- token of an account, as `token create` issues them for operators).
ALTER TABLE api_tokens ADD COLUMN workspace_id BIGINT REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN expires_at TIMESTAMP;
ALTER TABLE api_tokens ADD COLUMN revoked_at TIMESTAMP;
ALTER TABLE api_tokens ADD COLUMN last_used_at TIMESTAMP;
CREATE INDEX api_tokens_workspace ON api_tokens (workspace_id);
