ALTER TABLE album_images DROP COLUMN free_slot;
ALTER TABLE users DROP COLUMN deleted_at;
