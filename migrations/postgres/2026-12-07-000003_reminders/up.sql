-- Reminders (docs/product.md, "Reminders"): a reminder is an invitation of its own kind, which the
-- sender renders with the reminder template.
ALTER TABLE invitations ADD COLUMN kind TEXT NOT NULL DEFAULT 'invitation';
-- When the member was last reminded and how many reminders they had: REMIND_COOLDOWN counts from
-- the first, REMIND_MAX caps the second. A remind sets both in one conditional update, so two
-- remind calls at once remind a member once.
ALTER TABLE members ADD COLUMN last_reminded_at TIMESTAMP;
ALTER TABLE members ADD COLUMN reminder_count INTEGER NOT NULL DEFAULT 0;
