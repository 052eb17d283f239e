-- Revision 2: profiles. Each text is visible text of at most 100 characters (checked by the API);
-- `linkedin_url` is stored normalised (`https://www.linkedin.com/in/<lower-case slug>`), so that
-- the LinkedIn import compares it with `= ANY(...)` on this index.
ALTER TABLE users
    ADD COLUMN headline      text,
    ADD COLUMN company       text,
    ADD COLUMN title         text,
    ADD COLUMN avatar_url    text,
    ADD COLUMN linkedin_url  text;
CREATE INDEX users_linkedin_url ON users (linkedin_url) WHERE linkedin_url IS NOT NULL;
