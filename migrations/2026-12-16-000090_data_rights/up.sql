-- Data rights: deleted accounts stay as tombstones (their ledger and payment rows are legal
-- records, RESTRICTed to the user), and an album image remembers whether it took one image of
-- its vendor's free gallery quota, so deleting the image gives that image back.
ALTER TABLE users ADD COLUMN deleted_at timestamptz;
ALTER TABLE album_images ADD COLUMN free_slot boolean NOT NULL DEFAULT false;

-- A tombstone has neither phone nor email. The check only gets looser (every row the running
-- release writes still passes), so this is an expand step; NOT VALID + VALIDATE keeps the
-- table's lock short.
ALTER TABLE users DROP CONSTRAINT users_phone_or_email_check;
ALTER TABLE users ADD CONSTRAINT users_phone_or_email_check
    CHECK (phone IS NOT NULL OR email IS NOT NULL OR deleted_at IS NOT NULL) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT users_phone_or_email_check;
