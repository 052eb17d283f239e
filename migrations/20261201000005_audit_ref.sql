-- Entries about an erased user keep one pseudonym for that user (random, not derived from the
-- id), so that an auditor can still tell which entries concern the same person.
ALTER TABLE audit_log ADD COLUMN target_ref text;
