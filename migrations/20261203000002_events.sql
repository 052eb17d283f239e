-- Revision 2: events (conference mode). A venue is a point and a radius; who is "at" the event is
-- decided from each attendee's live check-in (raw point, live_locations) on the server.
-- An event goes with its organiser (erasure deletes the events they organised, and with them
-- every attendance); an attendance goes with its attendee.
CREATE TABLE events (
    id            uuid PRIMARY KEY,
    name          text             NOT NULL,
    lat           double precision NOT NULL,
    lng           double precision NOT NULL,
    radius_m      integer          NOT NULL CHECK (radius_m BETWEEN 50 AND 5000),
    starts_at     timestamptz      NOT NULL,
    ends_at       timestamptz      NOT NULL,
    organizer_id  uuid             NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    join_code     text             NOT NULL,
    created_at    timestamptz      NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX events_organizer ON events (organizer_id);

CREATE TABLE event_attendees (
    event_id   uuid        NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, user_id)
);
CREATE INDEX event_attendees_user ON event_attendees (user_id, event_id);
