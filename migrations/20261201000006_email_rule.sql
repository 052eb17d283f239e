-- Emails compare by one rule, applied in one place (the server: trim, NFKC, lower case) and
-- stored as its sha256: PostgreSQL's lower() folds some letters differently (İ, ẞ), so it no
-- longer decides which account an email names.
DROP INDEX users_email_lower_key;
DROP INDEX users_email_sha256;
CREATE UNIQUE INDEX users_email_key ON users (email_sha256);
