-- Housekeeping deletes events older than `WEBHOOK_RETENTION` (their payloads carry members'
-- addresses) and hand-over tokens long expired, oldest first, a batch at a time.
CREATE INDEX webhook_messages_created ON webhook_messages (created_at, id);
CREATE INDEX acceptance_handovers_expires ON acceptance_handovers (expires_at);
