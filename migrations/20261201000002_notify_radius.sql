-- The largest notify radius in use bounds arrival detection; this partial index answers
-- max(notify_radius_m) from its last entry instead of a scan of every user.
CREATE INDEX privacy_notify_radius ON privacy_settings (notify_radius_m) WHERE notify_nearby AND sharing;
