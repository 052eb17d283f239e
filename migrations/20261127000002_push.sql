-- Push notifications: registered devices, and the outbox (notifications and their per-device
-- deliveries). Everything goes with its user (ON DELETE CASCADE).

CREATE TABLE devices (
    id                  uuid PRIMARY KEY,
    user_id             uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platform            text        NOT NULL CHECK (platform IN ('ios', 'android', 'webhook')),
    token               text        NOT NULL,   -- APNs token, FCM token, or the webhook URL
    locale              text,
    active              boolean     NOT NULL DEFAULT true,
    deactivated_reason  text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform, token)                    -- a token belongs to one user at a time
);
CREATE INDEX devices_user ON devices (user_id, created_at DESC, id DESC);

CREATE TABLE notifications (
    id             uuid PRIMARY KEY,
    user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,   -- the recipient
    actor_user_id  uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,   -- who arrived
    kind           text        NOT NULL CHECK (kind IN ('connection_nearby')),
    distance_m     integer     NOT NULL,      -- rounded as the recipient's nearby list shows it
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_user ON notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_actor ON notifications (actor_user_id);
CREATE INDEX notifications_created ON notifications (created_at);

-- One row per notification and active device. `pending` rows are due at `next_attempt_at`;
-- `sending` rows belong to the worker holding `lease_token` until `lease_until` (copied to
-- `next_attempt_at`, so that one index finds both kinds of due rows).
CREATE TABLE deliveries (
    id               uuid PRIMARY KEY,
    notification_id  uuid        NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    device_id        uuid        NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    lease_token      uuid,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX deliveries_notification ON deliveries (notification_id);
CREATE INDEX deliveries_device ON deliveries (device_id);
CREATE INDEX deliveries_lease ON deliveries (lease_token) WHERE lease_token IS NOT NULL;
