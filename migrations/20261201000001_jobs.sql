-- Durable jobs: work that outlives the request that asked for it (re-publishing every live user
-- after a policy or zone change). A job is resumed from its cursor after a crash or a deadline.
CREATE TABLE republish_jobs (
    id           uuid        PRIMARY KEY,
    reason       text        NOT NULL,
    after_user   uuid,                        -- the last user re-published (keyset cursor)
    republished  bigint      NOT NULL DEFAULT 0,
    removed      bigint      NOT NULL DEFAULT 0,
    lease_until  timestamptz,                 -- while set and in the future, a runner holds it
    done_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX republish_jobs_open ON republish_jobs (created_at) WHERE done_at IS NULL;
