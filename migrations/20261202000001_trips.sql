-- Revision 2: travel plans, home bases, calendar feeds, time-boxed exact shares.
--
-- Trips are coarse by construction: others only ever learn the resolution-5 cell. `centre` is
-- that cell's centre as a PostgreSQL point (x = lng, y = lat) and `dates` the inclusive date
-- range; one GiST index over both (core opclasses, no extension) serves the overlap query:
-- "visible trips whose centre lies in a box around this cell and whose dates meet these",
-- which the planner then joins to the caller's connections (primary key of `connections`), or,
-- for a caller with few connections, walks the connections and probes `trips_user`.
CREATE TABLE trips (
    id          uuid PRIMARY KEY,
    user_id     uuid             NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        text,
    lat         double precision NOT NULL,   -- the owner's own point: only the owner reads it
    lng         double precision NOT NULL,
    h3_cell     text             NOT NULL,   -- resolution 5: what others may learn
    centre      point            NOT NULL,   -- centre of h3_cell, (lng, lat)
    starts_on   date             NOT NULL,
    ends_on     date             NOT NULL,
    dates       daterange        GENERATED ALWAYS AS (daterange(starts_on, ends_on, '[]')) STORED,
    visibility  text             NOT NULL DEFAULT 'connections' CHECK (visibility IN ('connections', 'nobody')),
    ical_uid    text,                        -- the UID of the imported VEVENT, for re-imports
    created_at  timestamptz      NOT NULL DEFAULT now(),
    updated_at  timestamptz      NOT NULL DEFAULT now(),
    CHECK (ends_on >= starts_on)
);
CREATE INDEX trips_user ON trips (user_id, starts_on, id);
CREATE INDEX trips_space_time ON trips USING gist (centre, dates) WHERE visibility = 'connections';
CREATE UNIQUE INDEX trips_ical_uid ON trips (user_id, ical_uid) WHERE ical_uid IS NOT NULL;

-- Pairs of trips whose owners were told of their overlap (once per pair, smaller id first).
CREATE TABLE trip_overlap_pairs (
    trip_a      uuid NOT NULL REFERENCES trips (id) ON DELETE CASCADE,
    trip_b      uuid NOT NULL REFERENCES trips (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (trip_a, trip_b),
    CHECK (trip_a < trip_b)
);
CREATE INDEX trip_overlap_pairs_b ON trip_overlap_pairs (trip_b);

-- Home base: the point stays with its owner; others learn the resolution-5 cell when visible.
ALTER TABLE privacy_settings
    ADD COLUMN home_lat      double precision,
    ADD COLUMN home_lng      double precision,
    ADD COLUMN home_cell     text,
    ADD COLUMN home_centre   point,
    ADD COLUMN home_visible  boolean NOT NULL DEFAULT false;
CREATE INDEX privacy_home_centre ON privacy_settings USING gist (home_centre) WHERE home_visible;

-- trip_overlap notifications: the recipient's own trip and the shared (or nearest) dates.
-- The kinds are the contract's whole list, so that either branch's migration may run last.
ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('connection_nearby', 'connection_request', 'connection_accepted', 'trip_overlap'));
ALTER TABLE notifications
    ADD COLUMN trip_id       uuid REFERENCES trips (id) ON DELETE CASCADE,
    ADD COLUMN overlap_from  date,
    ADD COLUMN overlap_to    date;
CREATE INDEX notifications_trip ON notifications (trip_id) WHERE trip_id IS NOT NULL;

-- The secret calendar feed of a user's trips: only a hash of the secret is kept.
CREATE TABLE calendar_feeds (
    user_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_hash  bytea       NOT NULL UNIQUE,   -- sha256 of the secret in the URL
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Exact sharing with one connection until `expires_at`; ended by deleting the row.
CREATE TABLE shares (
    id            uuid PRIMARY KEY,
    from_user_id  uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    to_user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (from_user_id <> to_user_id)
);
CREATE UNIQUE INDEX shares_pair ON shares (from_user_id, to_user_id);
CREATE INDEX shares_to ON shares (to_user_id, expires_at);
