-- Data exports (`requestDataExport`): a zip of everything Easel holds about a user, built in
-- the background, stored in the media store under an unguessable key and downloadable with a
-- random token (shown to its owner only) until it expires. One pending or running export per user.
CREATE TABLE data_exports (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'ready', 'failed')),
    download_token text NOT NULL,
    storage_key text,
    byte_size bigint,
    error text,
    attempts integer NOT NULL DEFAULT 0,
    claimed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    expires_at timestamptz
);
CREATE INDEX data_exports_user_idx ON data_exports (user_id, created_at DESC);
CREATE UNIQUE INDEX data_exports_one_open_idx ON data_exports (user_id)
    WHERE status IN ('pending', 'running');
