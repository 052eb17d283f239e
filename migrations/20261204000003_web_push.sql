-- Web Push devices: `token` is the subscription's endpoint URL; its keys (base64url) encrypt
-- each message for the browser (RFC 8291).
ALTER TABLE devices DROP CONSTRAINT devices_platform_check;
ALTER TABLE devices ADD CONSTRAINT devices_platform_check CHECK (platform IN ('ios', 'android', 'webhook', 'web'));
ALTER TABLE devices
    ADD COLUMN web_p256dh  text,
    ADD COLUMN web_auth    text,
    ADD CONSTRAINT devices_web_keys CHECK ((platform = 'web') = (web_p256dh IS NOT NULL AND web_auth IS NOT NULL));
