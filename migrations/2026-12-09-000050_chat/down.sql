DROP TABLE chat_events;

ALTER TABLE chat_messages
    DROP CONSTRAINT chat_messages_thread_id_idempotency_key_key,
    DROP CONSTRAINT chat_messages_thread_id_seq_key,
    DROP CONSTRAINT chat_messages_image_ids_check,
    DROP COLUMN request_hash,
    DROP COLUMN idempotency_key,
    DROP COLUMN image_ids,
    DROP COLUMN seq;

DROP INDEX chat_threads_deleted_at_idx;
DROP INDEX chat_threads_user_id_last_activity_at_idx;
ALTER TABLE chat_threads
    DROP CONSTRAINT chat_threads_title_check,
    DROP CONSTRAINT chat_threads_last_seq_check,
    DROP COLUMN last_seq,
    DROP COLUMN deleted_at,
    DROP COLUMN last_activity_at;
