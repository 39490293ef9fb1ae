-- Image chat (issue #14): soft-deleted threads ordered by their latest activity, a per-thread
-- event sequence (messages, job progress, thread changes) that subscribers replay from, the
-- images and the idempotency key of a message.
--
-- Expand only. `chat_messages.seq` is NOT NULL after its backfill: no released code writes
-- chat_messages (the table had no API), so no running release can insert a row without it.

ALTER TABLE chat_threads
    ADD COLUMN last_activity_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN deleted_at       timestamptz,
    ADD COLUMN last_seq         bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT chat_threads_last_seq_check CHECK (last_seq >= 0),
    ADD CONSTRAINT chat_threads_title_check CHECK (char_length(title) BETWEEN 1 AND 200) NOT VALID;
UPDATE chat_threads SET last_activity_at = updated_at;
-- A user's threads by latest activity (the list, and the trash).
CREATE INDEX chat_threads_user_id_last_activity_at_idx
    ON chat_threads (user_id, last_activity_at DESC, id DESC);
-- The purge of threads deleted long ago.
CREATE INDEX chat_threads_deleted_at_idx ON chat_threads (deleted_at)
    WHERE deleted_at IS NOT NULL;

ALTER TABLE chat_messages
    ADD COLUMN seq             bigint,
    ADD COLUMN image_ids       uuid[] NOT NULL DEFAULT '{}',
    ADD COLUMN idempotency_key text,
    ADD COLUMN request_hash    text,
    ADD CONSTRAINT chat_messages_image_ids_check CHECK (array_position(image_ids, NULL) IS NULL);
UPDATE chat_messages m SET seq = n.seq
    FROM (SELECT id, row_number() OVER (PARTITION BY thread_id ORDER BY created_at, id) AS seq
          FROM chat_messages) n
    WHERE m.id = n.id;
UPDATE chat_threads t SET last_seq = coalesce((SELECT max(seq) FROM chat_messages m
                                               WHERE m.thread_id = t.id), 0);
ALTER TABLE chat_messages
    ALTER COLUMN seq SET NOT NULL,
    ADD CONSTRAINT chat_messages_thread_id_seq_key UNIQUE (thread_id, seq),
    ADD CONSTRAINT chat_messages_thread_id_idempotency_key_key UNIQUE (thread_id, idempotency_key);

-- What a thread's subscribers are told, in the thread's own order: `seq` comes from
-- chat_threads.last_seq, taken under the thread's row lock in the transaction of the change,
-- so sequence order is commit order within a thread.
CREATE TABLE chat_events (
    thread_id  uuid NOT NULL REFERENCES chat_threads (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    kind       text NOT NULL,
    message_id uuid REFERENCES chat_messages (id) ON DELETE CASCADE,
    job_id     uuid REFERENCES generation_jobs (id) ON DELETE SET NULL,
    job_status text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (thread_id, seq),
    CONSTRAINT chat_events_kind_check CHECK (kind IN ('message', 'job', 'thread')),
    CONSTRAINT chat_events_message_check CHECK ((kind = 'message') = (message_id IS NOT NULL)),
    CONSTRAINT chat_events_job_status_check CHECK ((kind = 'job') = (job_status IS NOT NULL))
);
CREATE INDEX chat_events_message_id_idx ON chat_events (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX chat_events_job_id_idx ON chat_events (job_id) WHERE job_id IS NOT NULL;
INSERT INTO chat_events (thread_id, seq, kind, message_id, created_at)
    SELECT thread_id, seq, 'message', id, created_at FROM chat_messages;
