-- Bounces and complaints (docs/product.md, "Bounces and complaints").

-- Each report read from the bounce mailbox that named one of our emails, recorded once: `digest`
-- (SHA-256 of the message's bytes, hex) is unique, so a report read twice, by two workers or
-- after a crash between recording it and moving it, is applied once. `kind` is `bounced` (a
-- permanent failure), `delayed` (a temporary one, which changes nothing but this record) or
-- `complained`; `status` the enhanced status code, `diagnostic` the reporting server's words.
CREATE TABLE bounce_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    digest TEXT NOT NULL UNIQUE,
    delivery_id BIGINT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    status TEXT,
    diagnostic TEXT,
    received_at TIMESTAMP NOT NULL
);
CREATE INDEX bounce_reports_delivery ON bounce_reports (delivery_id, id);

-- A report without our return path is matched by the original email's Message-ID.
CREATE INDEX deliveries_message_id ON deliveries (message_id) WHERE message_id IS NOT NULL;

-- A member whose address hard-bounced or complained gets no reminder or resend until support
-- clears it (`suppressed_reason`: `bounced` or `complained`). `address_changed_at`: when
-- support last corrected the address; a report about an email sent before it suppresses nothing.
ALTER TABLE members ADD COLUMN suppressed_reason TEXT;
ALTER TABLE members ADD COLUMN suppressed_at TIMESTAMP;
ALTER TABLE members ADD COLUMN address_changed_at TIMESTAMP;

-- An import's emails that bounced or drew a complaint after they were sent.
ALTER TABLE import_email_tallies ADD COLUMN bounced BIGINT NOT NULL DEFAULT 0;
ALTER TABLE import_email_tallies ADD COLUMN complained BIGINT NOT NULL DEFAULT 0;
