-- Read state of notifications, and connections muted by a user (no notifications about them).
ALTER TABLE notifications ADD COLUMN read_at timestamptz;
CREATE INDEX notifications_unread ON notifications (user_id, created_at DESC, id DESC) WHERE read_at IS NULL;

CREATE TABLE connection_mutes (
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    muted_id   uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, muted_id)
);
CREATE INDEX connection_mutes_muted ON connection_mutes (muted_id);
