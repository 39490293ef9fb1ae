-- Generation: the job queue (claimed with FOR UPDATE SKIP LOCKED, leased, reaped) and its
-- status history. Also adds the foreign keys from earlier tables that point at jobs.
-- generation_jobs.thread_id gets its foreign key in the `conversation_growth` migration.

CREATE TABLE generation_jobs (
    id                    uuid PRIMARY KEY,
    user_id               uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    character_id          uuid REFERENCES characters (id) ON DELETE SET NULL,
    thread_id             uuid,
    kind                  text NOT NULL,
    provider              text NOT NULL,
    model                 text,
    prompt                text,
    negative_prompt       text,
    params                jsonb NOT NULL DEFAULT '{}',
    input_image_ids       uuid[] NOT NULL DEFAULT '{}',
    output_count          integer NOT NULL DEFAULT 1,
    status                text NOT NULL DEFAULT 'queued',
    priority              integer NOT NULL DEFAULT 5,
    attempts              integer NOT NULL DEFAULT 0,
    max_attempts          integer NOT NULL DEFAULT 3,
    lease_owner           text,
    lease_expires_at      timestamptz,
    provider_job_id       text,
    cost_credits          bigint NOT NULL DEFAULT 0,
    charge_transaction_id uuid REFERENCES credit_transactions (id) ON DELETE RESTRICT,
    idempotency_key       text,
    request_hash          text,
    error                 jsonb,
    cancel_requested_at   timestamptz,
    deadline_at           timestamptz,
    queued_at             timestamptz NOT NULL DEFAULT now(),
    started_at            timestamptz,
    completed_at          timestamptz,
    processing_ms         integer,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT generation_jobs_kind_check CHECK (kind IN
        ('character_generation', 'style_transfer', 'upscale', 'variation',
         'background_removal', 'logo')),
    CONSTRAINT generation_jobs_input_image_ids_check
        CHECK (array_position(input_image_ids, NULL) IS NULL),
    CONSTRAINT generation_jobs_output_count_check CHECK (output_count BETWEEN 1 AND 4),
    CONSTRAINT generation_jobs_status_check CHECK (status IN
        ('queued', 'processing', 'succeeded', 'failed', 'cancelled', 'timed_out')),
    CONSTRAINT generation_jobs_priority_check CHECK (priority BETWEEN 1 AND 10),
    CONSTRAINT generation_jobs_attempts_check CHECK (attempts >= 0),
    CONSTRAINT generation_jobs_max_attempts_check CHECK (max_attempts >= 1),
    CONSTRAINT generation_jobs_cost_credits_check CHECK (cost_credits >= 0),
    CONSTRAINT generation_jobs_processing_ms_check CHECK (processing_ms >= 0),
    CONSTRAINT generation_jobs_user_id_idempotency_key_key UNIQUE (user_id, idempotency_key),
    CONSTRAINT generation_jobs_charge_transaction_id_key UNIQUE (charge_transaction_id)
);
CREATE INDEX generation_jobs_user_id_created_at_idx
    ON generation_jobs (user_id, created_at DESC, id DESC);
-- The queue: workers claim the highest priority, oldest queued job.
CREATE INDEX generation_jobs_queued_idx
    ON generation_jobs (priority DESC, queued_at) WHERE status = 'queued';
-- The reaper: expired leases of running jobs.
CREATE INDEX generation_jobs_lease_expires_at_idx
    ON generation_jobs (lease_expires_at) WHERE status = 'processing';
CREATE INDEX generation_jobs_character_id_idx ON generation_jobs (character_id)
    WHERE character_id IS NOT NULL;
CREATE INDEX generation_jobs_thread_id_idx ON generation_jobs (thread_id)
    WHERE thread_id IS NOT NULL;
-- Retention purge (GENERATION_RETENTION_DAYS).
CREATE INDEX generation_jobs_created_at_idx ON generation_jobs (created_at);
SELECT easel_manage_updated_at('generation_jobs');

CREATE TABLE job_events (
    id         bigserial PRIMARY KEY,
    job_id     uuid NOT NULL REFERENCES generation_jobs (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status     text NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT job_events_status_check CHECK (status IN
        ('queued', 'processing', 'succeeded', 'failed', 'cancelled', 'timed_out'))
);
CREATE INDEX job_events_job_id_id_idx ON job_events (job_id, id);
CREATE INDEX job_events_user_id_id_idx ON job_events (user_id, id);

-- Jobs are purged after the retention period; images and ledger rows outlive them.
ALTER TABLE images
    ADD CONSTRAINT images_job_id_fkey
    FOREIGN KEY (job_id) REFERENCES generation_jobs (id) ON DELETE SET NULL;
ALTER TABLE credit_transactions
    ADD CONSTRAINT credit_transactions_job_id_fkey
    FOREIGN KEY (job_id) REFERENCES generation_jobs (id) ON DELETE SET NULL;
