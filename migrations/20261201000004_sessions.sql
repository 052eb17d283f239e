-- Sessions that ended (logout, password change, "log out everywhere", erasure): every instance
-- polls this table and refuses the access tokens of these sessions until they would have expired.
-- A session is a refresh-token family; its id is random, never a user id.
CREATE TABLE session_revocations (
    family_id  uuid        NOT NULL,
    ended_at   timestamptz NOT NULL DEFAULT now(),
    until      timestamptz NOT NULL
);
CREATE INDEX session_revocations_ended ON session_revocations (ended_at);
CREATE INDEX session_revocations_until ON session_revocations (until);
-- the suspended accounts, read by every instance several times a second
CREATE INDEX users_suspended ON users (id) WHERE suspended;
