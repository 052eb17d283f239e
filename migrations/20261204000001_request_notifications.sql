-- connection_request and connection_accepted notifications name the request they are about.
-- No foreign key: the request row goes when it is accepted or declined, the list item stays.
ALTER TABLE notifications ADD COLUMN request_id uuid;
