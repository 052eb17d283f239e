-- Accounts, tokens, privacy settings and the consent record.
CREATE TABLE users (
    id             uuid PRIMARY KEY,
    email          text        NOT NULL,
    -- sha256(lower(trim(email))), for contact matching without revealing emails
    email_sha256   bytea       NOT NULL,
    display_name   text        NOT NULL,
    password_hash  text        NOT NULL,
    role           text        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    suspended      boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE INDEX users_email_lower_prefix ON users (lower(email) text_pattern_ops);
CREATE INDEX users_email_sha256 ON users (email_sha256);

CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,          -- sha256 of the opaque token; the token itself is never stored
    family_id   uuid        NOT NULL,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,                -- set when rotated
    revoked_at  timestamptz                 -- set for the whole family on reuse or logout
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE privacy_settings (
    user_id                uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sharing                boolean     NOT NULL DEFAULT false,
    precision              text        NOT NULL DEFAULT 'exact' CHECK (precision IN ('exact', 'approximate', 'city')),
    hidden_from            uuid[]      NOT NULL DEFAULT '{}',
    default_ttl_s          integer     NOT NULL DEFAULT 14400,
    paused_until           timestamptz,
    notify_nearby          boolean     NOT NULL DEFAULT true,
    notify_radius_m        integer     NOT NULL DEFAULT 5000,
    discoverable_by_email  boolean     NOT NULL DEFAULT true,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- Every change of `sharing`, with its time: the user's consent record.
CREATE TABLE consent_events (
    id       bigserial PRIMARY KEY,
    user_id  uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sharing  boolean     NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_events_user ON consent_events (user_id, at);

-- The graph. Each connection is stored in both directions so that "all connections of u" is one
-- range scan of the primary key.
CREATE TABLE connections (
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    peer_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    connected_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, peer_id),
    CHECK (user_id <> peer_id)
);
CREATE INDEX connections_by_time ON connections (user_id, connected_at DESC, peer_id DESC);

CREATE TABLE connection_requests (
    id            uuid PRIMARY KEY,
    from_user_id  uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    to_user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (from_user_id, to_user_id),
    CHECK (from_user_id <> to_user_id)
);
CREATE INDEX connection_requests_to ON connection_requests (to_user_id, created_at DESC, id DESC);
CREATE INDEX connection_requests_from ON connection_requests (from_user_id, created_at DESC, id DESC);

CREATE TABLE blocks (
    blocker_id  uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id  uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);
CREATE INDEX blocks_blocked ON blocks (blocked_id);
CREATE INDEX blocks_by_time ON blocks (blocker_id, created_at DESC, blocked_id DESC);

-- The operator's policy: one row.
CREATE TABLE policy (
    id                        boolean PRIMARY KEY DEFAULT true CHECK (id),
    location_sharing_enabled  boolean     NOT NULL DEFAULT true,
    max_ttl_s                 integer     NOT NULL DEFAULT 86400,
    min_precision             text        NOT NULL DEFAULT 'exact' CHECK (min_precision IN ('exact', 'approximate', 'city')),
    notification_cooldown_s   integer     NOT NULL DEFAULT 43200,
    retention_days            integer     NOT NULL DEFAULT 30,
    updated_at                timestamptz NOT NULL DEFAULT now()
);
INSERT INTO policy DEFAULT VALUES;

CREATE TABLE restricted_zones (
    id          uuid PRIMARY KEY,
    name        text        NOT NULL,
    geometry    jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The live location of each user: one row, the system of record behind the Redis index.
CREATE TABLE live_locations (
    user_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    checkin_id   uuid             NOT NULL,
    lat          double precision NOT NULL,   -- raw point: only for the user's own reads and centre
    lng          double precision NOT NULL,
    accuracy_m   double precision,
    pub_lat      double precision NOT NULL,   -- published point: what others may learn
    pub_lng      double precision NOT NULL,
    precision    text             NOT NULL,
    h3_cell      text             NOT NULL,
    indexed      boolean          NOT NULL,
    reason       text,
    recorded_at  timestamptz      NOT NULL,
    expires_at   timestamptz      NOT NULL,
    client_id    text,
    created_at   timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX live_locations_expiry ON live_locations (expires_at);

-- Idempotency of check-ins by (user, client_id) within the TTL.
CREATE TABLE checkin_requests (
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id   text        NOT NULL,
    response    jsonb       NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX checkin_requests_expiry ON checkin_requests (expires_at);
