-- A check-in rewrites its user's live row: with room left on each page and no index on a column
-- a check-in changes, the update is HOT (heap-only: no new index entries, pruned in place).
-- The expiry index only served the sweep, which now reads the table (one row per live user).
DROP INDEX IF EXISTS live_locations_expiry;
ALTER TABLE live_locations SET (fillfactor = 70);
