DROP TABLE content_reports;
ALTER TABLE collections DROP CONSTRAINT collections_hidden_check;
ALTER TABLE albums DROP CONSTRAINT albums_hidden_check;
ALTER TABLE images DROP CONSTRAINT images_hidden_check;
ALTER TABLE characters DROP CONSTRAINT characters_hidden_check;
ALTER TABLE collections DROP COLUMN hidden_at;
ALTER TABLE albums DROP COLUMN hidden_at;
ALTER TABLE images DROP COLUMN hidden_at;
ALTER TABLE characters DROP COLUMN hidden_at;
