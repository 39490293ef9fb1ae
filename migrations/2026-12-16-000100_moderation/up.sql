-- Moderation (issue #15). Expand only: new nullable columns, a new table.
--
-- `hidden_at`: when a moderator hid the row (resolveReport with HIDE_CONTENT). Hiding also
-- makes the row private, so every read path that shows public rows to others leaves it out;
-- the CHECK keeps it private (neither its owner nor any code path can make it public again
-- while it is hidden). Every row starts with hidden_at NULL, so the constraints hold for the
-- rows old releases write; they are validated separately (no long lock on big tables).
ALTER TABLE characters ADD COLUMN hidden_at timestamptz;
ALTER TABLE images ADD COLUMN hidden_at timestamptz;
ALTER TABLE albums ADD COLUMN hidden_at timestamptz;
ALTER TABLE collections ADD COLUMN hidden_at timestamptz;

ALTER TABLE characters ADD CONSTRAINT characters_hidden_check
    CHECK (hidden_at IS NULL OR NOT is_public) NOT VALID;
ALTER TABLE images ADD CONSTRAINT images_hidden_check
    CHECK (hidden_at IS NULL OR NOT is_public) NOT VALID;
ALTER TABLE albums ADD CONSTRAINT albums_hidden_check
    CHECK (hidden_at IS NULL OR NOT is_public) NOT VALID;
ALTER TABLE collections ADD CONSTRAINT collections_hidden_check
    CHECK (hidden_at IS NULL OR NOT is_public) NOT VALID;
ALTER TABLE characters VALIDATE CONSTRAINT characters_hidden_check;
ALTER TABLE images VALIDATE CONSTRAINT images_hidden_check;
ALTER TABLE albums VALIDATE CONSTRAINT albums_hidden_check;
ALTER TABLE collections VALIDATE CONSTRAINT collections_hidden_check;

-- A user's report of content (or of another user), and how an admin resolved it.
-- `target_owner_id` is who the target belonged to when reported (the user warned or
-- suspended); a user's warnings are the reports resolved with `warn_user` against them.
CREATE TABLE content_reports (
    id              uuid PRIMARY KEY,
    reporter_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    target_type     text NOT NULL,
    target_id       uuid NOT NULL,
    target_owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reason          text NOT NULL,
    details         text,
    status          text NOT NULL DEFAULT 'open',
    resolution      text,
    resolution_note text,
    resolved_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    resolved_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT content_reports_target_type_check
        CHECK (target_type IN ('character', 'image', 'album', 'collection', 'user')),
    CONSTRAINT content_reports_reason_check
        CHECK (reason IN ('spam', 'nsfw', 'harassment', 'copyright', 'other')),
    CONSTRAINT content_reports_status_check CHECK (status IN ('open', 'resolved')),
    CONSTRAINT content_reports_resolution_check
        CHECK (resolution IN ('dismiss', 'hide_content', 'warn_user', 'suspend_user')),
    CONSTRAINT content_reports_resolved_check
        CHECK ((status = 'open') = (resolution IS NULL AND resolved_at IS NULL))
);
-- One open report per reporter and target: reporting again answers the open one.
CREATE UNIQUE INDEX content_reports_reporter_id_target_key
    ON content_reports (reporter_id, target_type, target_id) WHERE status = 'open';
-- The admins' queue (newest first, by status).
CREATE INDEX content_reports_status_created_at_idx
    ON content_reports (status, created_at DESC, id DESC);
CREATE INDEX content_reports_created_at_idx ON content_reports (created_at DESC, id DESC);
-- A user's warnings.
CREATE INDEX content_reports_warned_idx
    ON content_reports (target_owner_id) WHERE resolution = 'warn_user';
