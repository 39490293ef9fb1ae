-- Data rights: deleted accounts stay as tombstones (their ledger and payment rows are legal
-- records, RESTRICTed to the user), and an album image remembers whether it took one image of
-- its vendor's free gallery quota, so deleting the image gives that image back.
ALTER TABLE users ADD COLUMN deleted_at timestamptz;
ALTER TABLE album_images ADD COLUMN free_slot boolean NOT NULL DEFAULT false;
