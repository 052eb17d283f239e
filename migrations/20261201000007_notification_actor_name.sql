-- A notification shows the actor's display name as it was when the notification was made
-- (a later rename, by anyone, does not rewrite what a user was told).
ALTER TABLE notifications ADD COLUMN actor_display_name text;
UPDATE notifications n SET actor_display_name = u.display_name FROM users u WHERE u.id = n.actor_user_id;
