-- Core schema: workspaces, people, memberships, invitations, imports and email deliveries.
-- Timestamps are UTC stored as TIMESTAMP (no zone) so the same Diesel schema serves SQLite too.

CREATE TABLE workspaces (
    id BIGSERIAL PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- A person, global and unique by (lower-cased) email.
CREATE TABLE accounts (
    id BIGSERIAL PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    first_name TEXT,
    last_name TEXT,
    activated_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_hash BYTEA NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE groups (
    id BIGSERIAL PRIMARY KEY,
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE imports (
    id BIGSERIAL PRIMARY KEY,
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_by BIGINT NOT NULL REFERENCES accounts (id),
    file_name TEXT NOT NULL,
    file_size BIGINT NOT NULL,
    idempotency_key TEXT,
    status TEXT NOT NULL,
    error TEXT,
    warnings TEXT,
    rows_total BIGINT NOT NULL DEFAULT 0,
    rows_processed BIGINT NOT NULL DEFAULT 0,
    rows_invited BIGINT NOT NULL DEFAULT 0,
    rows_skipped BIGINT NOT NULL DEFAULT 0,
    rows_invalid BIGINT NOT NULL DEFAULT 0,
    -- Where processing resumes after a crash: the byte offset of the next unread record and its
    -- spreadsheet row number. Advanced in the same transaction as the rows it covers.
    checkpoint_offset BIGINT NOT NULL DEFAULT 0,
    checkpoint_row BIGINT NOT NULL DEFAULT 1,
    -- The worker processing the import holds it until then; renewed with every chunk. A lapsed
    -- lease means that worker died, and the sweeper enqueues the import again.
    lease_until TIMESTAMP,
    -- When a sweeper last re-enqueued the import (at most once per lease period).
    requeued_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    UNIQUE (workspace_id, idempotency_key)
);
CREATE INDEX imports_workspace_created ON imports (workspace_id, id DESC);

-- The uploaded file, in fixed-size pieces so a worker streams it without holding it in memory.
CREATE TABLE import_chunks (
    import_id BIGINT NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (import_id, seq)
);

CREATE TABLE members (
    id BIGSERIAL PRIMARY KEY,
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT,
    import_id BIGINT REFERENCES imports (id) ON DELETE SET NULL,
    invited_by BIGINT REFERENCES accounts (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, account_id)
);
CREATE INDEX members_workspace_status ON members (workspace_id, status, id);
CREATE INDEX members_import ON members (import_id);

CREATE TABLE member_groups (
    member_id BIGINT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (member_id, group_id)
);

-- One row per invitation (a membership's invite, or a later resend).
CREATE TABLE invitations (
    id BIGSERIAL PRIMARY KEY,
    member_id BIGINT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    accepted_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX invitations_member ON invitations (member_id);

-- The links of an invitation: one per send attempt, minted when the email is sent; only the
-- token's SHA-256 is kept. Every link works until it expires or the invitation is accepted, so an
-- email that did arrive although its send looked failed still carries a working link.
CREATE TABLE invitation_links (
    token_hash BYTEA PRIMARY KEY,
    invitation_id BIGINT NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX invitation_links_invitation ON invitation_links (invitation_id);

-- The email for an invitation: the ledger of send attempts that workers claim with a lease.
CREATE TABLE deliveries (
    id BIGSERIAL PRIMARY KEY,
    invitation_id BIGINT NOT NULL UNIQUE REFERENCES invitations (id) ON DELETE CASCADE,
    member_id BIGINT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    import_id BIGINT REFERENCES imports (id) ON DELETE SET NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    -- Start of the retry window (EMAIL_RETRY_WINDOW).
    first_attempt_at TIMESTAMP,
    lease_until TIMESTAMP,
    last_error TEXT,
    last_reply TEXT,
    sent_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE state = 'sending';
CREATE INDEX deliveries_import_state ON deliveries (import_id, state);
CREATE INDEX deliveries_member ON deliveries (member_id);

-- What happened to each row of an import, for the results file.
CREATE TABLE import_rows (
    import_id BIGINT NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    row_number BIGINT NOT NULL,
    email TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    member_id BIGINT,
    PRIMARY KEY (import_id, row_number)
);
CREATE INDEX import_rows_email ON import_rows (import_id, email);
