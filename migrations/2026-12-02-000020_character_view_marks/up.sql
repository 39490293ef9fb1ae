-- View marks: `character(id)` counts a view only when it writes a new mark for (character,
-- viewer, window), so one viewer adds at most one view per character per window however many
-- times (or aliases) it asks. The viewer is `user:<uuid>` or `ip:<address>`; windows start at
-- multiples of EASEL_VIEW_WINDOW_SECS. The server prunes marks older than two days hourly.
CREATE TABLE character_view_marks (
    character_id uuid NOT NULL REFERENCES characters (id) ON DELETE CASCADE,
    viewer       text NOT NULL,
    window_start timestamptz NOT NULL,
    CONSTRAINT character_view_marks_pkey PRIMARY KEY (character_id, viewer, window_start)
);
CREATE INDEX character_view_marks_window_start_idx ON character_view_marks (window_start);
