DROP INDEX acceptance_handovers_expires;
DROP INDEX webhook_messages_created;
