-- Conversation and growth: chat threads and messages (a generation can be asked for in a
-- thread), referrals, invite tokens and user feedback. Adds generation_jobs.thread_id's
-- foreign key.

CREATE TABLE chat_threads (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_threads_user_id_created_at_idx
    ON chat_threads (user_id, created_at DESC, id DESC);
CREATE INDEX chat_threads_user_id_updated_at_idx
    ON chat_threads (user_id, updated_at DESC, id DESC);
SELECT easel_manage_updated_at('chat_threads');

CREATE TABLE chat_messages (
    id         uuid PRIMARY KEY,
    thread_id  uuid NOT NULL REFERENCES chat_threads (id) ON DELETE CASCADE,
    role       text NOT NULL,
    content    text NOT NULL,
    job_id     uuid REFERENCES generation_jobs (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_messages_role_check CHECK (role IN ('user', 'assistant'))
);
CREATE INDEX chat_messages_thread_id_created_at_idx
    ON chat_messages (thread_id, created_at DESC, id DESC);
CREATE INDEX chat_messages_job_id_idx ON chat_messages (job_id) WHERE job_id IS NOT NULL;

CREATE TABLE referrals (
    id          uuid PRIMARY KEY,
    referrer_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    referred_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reward_type text NOT NULL,
    redeemed_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT referrals_reward_type_check CHECK (reward_type IN ('credits', 'pro_days')),
    CONSTRAINT referrals_not_self_check CHECK (referrer_id <> referred_id),
    CONSTRAINT referrals_referred_id_key UNIQUE (referred_id)
);
CREATE INDEX referrals_referrer_id_created_at_idx
    ON referrals (referrer_id, created_at DESC, id DESC);

CREATE TABLE invite_tokens (
    token       text PRIMARY KEY,
    referrer_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        text NOT NULL,
    used_by_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    used_at     timestamptz,
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT invite_tokens_kind_check CHECK (kind IN ('gift', 'pro', 'public')),
    CONSTRAINT invite_tokens_token_check CHECK (char_length(token) BETWEEN 8 AND 128)
);
CREATE INDEX invite_tokens_referrer_id_created_at_idx
    ON invite_tokens (referrer_id, created_at DESC, token DESC);
CREATE INDEX invite_tokens_used_by_id_idx ON invite_tokens (used_by_id)
    WHERE used_by_id IS NOT NULL;

CREATE TABLE feedback (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text NOT NULL,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT feedback_kind_check CHECK (kind ~ '^[a-z][a-z_]{0,31}$'),
    CONSTRAINT feedback_body_check CHECK (char_length(body) BETWEEN 1 AND 10000)
);
CREATE INDEX feedback_user_id_created_at_idx ON feedback (user_id, created_at DESC, id DESC);
CREATE INDEX feedback_created_at_idx ON feedback (created_at DESC, id DESC);

ALTER TABLE generation_jobs
    ADD CONSTRAINT generation_jobs_thread_id_fkey
    FOREIGN KEY (thread_id) REFERENCES chat_threads (id) ON DELETE SET NULL;
