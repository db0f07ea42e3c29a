-- Fewer index entries per email. A delivery gets a new row version when it is written, claimed and
-- recorded (its state is in the partial indexes' predicates, so none of these is a HOT update),
-- and each version adds an entry to every full index and to each partial index it matches.
--
-- A member's deliveries are found through its invitations (invitations_member, then the unique
-- invitation_id), so this index only cost three entries per email.
DROP INDEX deliveries_member;
-- Finding the sends whose lease ran out reads deliveries_claim, which holds the same rows (those
-- being sent, a few per send slot); this one cost an entry per claim and per lease renewal.
DROP INDEX deliveries_leased;
