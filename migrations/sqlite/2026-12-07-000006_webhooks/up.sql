-- Signed webhooks (docs/product.md, "Webhooks").

-- Where a workspace's events go. `events`: the subscribed event types, comma-separated, each
-- one the product knows (checked when written). `secret`: the signing key's bytes, base64; it
-- must be kept to sign, is shown once (as `whsec_…`) when the endpoint is made, and never again.
-- `failing_since`: the first failed attempt since the last delivered one; an endpoint failing
-- for `WEBHOOK_RETRY_WINDOW` is disabled (`disabled_at`, `disabled_reason`).
CREATE TABLE webhook_endpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    disabled_at TIMESTAMP,
    disabled_reason TEXT,
    failing_since TIMESTAMP
);
CREATE INDEX webhook_endpoints_workspace ON webhook_endpoints (workspace_id, id);

-- The outbox: one row per event, written in the transaction of the change it reports.
-- `msg_id` (`msg_…`) is the `webhook-id` header, the same on every attempt and replay.
CREATE TABLE webhook_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    msg_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- One per message and endpoint, claimed under a lease like an email delivery: `claim` fences
-- the outcome, a lapsed `lease_until` hands it to another worker (at-least-once). Retried with
-- backoff from `first_attempt_at` for `WEBHOOK_RETRY_WINDOW`, then `failed`.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id BIGINT NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    endpoint_id BIGINT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    first_attempt_at TIMESTAMP,
    claim BIGINT,
    lease_until TIMESTAMP,
    last_status TEXT,
    delivered_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (message_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (lease_until) WHERE state = 'sending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

-- The delivery log: every attempt, with the HTTP status or the error in words, how long it
-- took, and the first 256 bytes of the answer (lossy UTF-8).
CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    endpoint_id BIGINT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    at TIMESTAMP NOT NULL,
    http_status INTEGER,
    error TEXT,
    latency_ms BIGINT NOT NULL,
    response TEXT
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id);
