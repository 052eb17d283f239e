-- Revision 2: privacy by default. New accounts start at `approximate`; `exact` is a choice.
ALTER TABLE privacy_settings ALTER COLUMN precision SET DEFAULT 'approximate';
