ALTER TABLE members
    ADD CONSTRAINT members_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE,
    ADD CONSTRAINT members_import_id_fkey FOREIGN KEY (import_id) REFERENCES imports (id) ON DELETE SET NULL,
    ADD CONSTRAINT members_invited_by_fkey FOREIGN KEY (invited_by) REFERENCES accounts (id);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
