-- Reminders (docs/product.md, "Reminders"): a reminder is an invitation whose cause is
-- `reminder`, which the sender renders with the reminder template.
-- When the member was last reminded and how many reminders they had: REMIND_COOLDOWN counts from
-- the first, REMIND_MAX caps the second. A remind sets both in one conditional update, so two
-- remind calls at once remind a member once.
ALTER TABLE members ADD COLUMN last_reminded_at TIMESTAMP;
ALTER TABLE members ADD COLUMN reminder_count INTEGER NOT NULL DEFAULT 0;
