-- Quiet hours in the user's IANA time zone: a push due inside them is held until their end.
ALTER TABLE privacy_settings
    ADD COLUMN time_zone   text NOT NULL DEFAULT 'UTC',
    ADD COLUMN quiet_from  time,
    ADD COLUMN quiet_to    time,
    ADD CONSTRAINT privacy_quiet_hours_whole CHECK ((quiet_from IS NULL) = (quiet_to IS NULL));

-- `held`: waiting for the end of the recipient's quiet hours (due again at `next_attempt_at`).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'sending', 'held', 'delivered', 'failed'));
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'sending', 'held');
