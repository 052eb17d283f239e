-- The audit log of administrator actions. Rows are only ever inserted by the API; erasure of a
-- user replaces their id in old rows with NULL (the entry stays, the person does not).
CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    actor_user_id   uuid,
    action          text        NOT NULL,
    target_user_id  uuid,
    detail          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_newest ON audit_log (id DESC);
CREATE INDEX audit_log_target ON audit_log (target_user_id, id DESC);
CREATE INDEX audit_log_actor ON audit_log (actor_user_id);
