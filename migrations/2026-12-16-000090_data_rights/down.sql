-- Tombstones cannot satisfy the original check: they go first (only if nothing restricts it).
ALTER TABLE users DROP CONSTRAINT users_phone_or_email_check;
ALTER TABLE users ADD CONSTRAINT users_phone_or_email_check
    CHECK (phone IS NOT NULL OR email IS NOT NULL) NOT VALID;
ALTER TABLE album_images DROP COLUMN free_slot;
ALTER TABLE users DROP COLUMN deleted_at;
