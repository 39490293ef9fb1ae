-- Issue #13: referral rewards and invite tokens (expand only: new nullable or defaulted
-- columns, a new table, new indexes; nothing the running release reads changes).
--
-- referrals: which ledger rows (or plan days) paid a referral's reward. A referral is
-- rewarded once: `redeemed_at` is set by a conditional update in the transaction that writes
-- the reward, and the reward columns stay empty until then.
ALTER TABLE referrals
    ADD COLUMN referrer_transaction_id uuid REFERENCES credit_transactions (id) ON DELETE RESTRICT,
    ADD COLUMN referred_transaction_id uuid REFERENCES credit_transactions (id) ON DELETE RESTRICT,
    ADD COLUMN plan_id uuid REFERENCES payment_plans (id) ON DELETE RESTRICT,
    ADD COLUMN plan_days integer,
    ADD CONSTRAINT referrals_referrer_transaction_id_key UNIQUE (referrer_transaction_id),
    ADD CONSTRAINT referrals_referred_transaction_id_key UNIQUE (referred_transaction_id),
    ADD CONSTRAINT referrals_plan_days_check CHECK (plan_days IS NULL OR plan_days > 0),
    ADD CONSTRAINT referrals_reward_after_redeemed_check CHECK (redeemed_at IS NOT NULL
        OR (referrer_transaction_id IS NULL AND referred_transaction_id IS NULL AND plan_days IS NULL));

-- invite_tokens: admin-made tokens, used up to `max_uses` times, once per user. Since this
-- migration `token` holds the SHA-256 (hex) of the token text, which is shown once, at
-- creation; `referrer_id` is who made it. `used_by_id`/`used_at` name the latest redemption
-- (invite_redemptions has them all).
ALTER TABLE invite_tokens
    ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN max_uses integer NOT NULL DEFAULT 1,
    ADD COLUMN use_count integer NOT NULL DEFAULT 0,
    ADD COLUMN credits bigint NOT NULL DEFAULT 0,
    ADD COLUMN plan_id uuid REFERENCES payment_plans (id) ON DELETE RESTRICT,
    ADD COLUMN plan_days integer NOT NULL DEFAULT 0,
    ADD COLUMN role text,
    ADD COLUMN note text,
    ADD COLUMN revoked_at timestamptz,
    ADD COLUMN revoked_by uuid REFERENCES users (id) ON DELETE SET NULL,
    ADD CONSTRAINT invite_tokens_id_key UNIQUE (id),
    ADD CONSTRAINT invite_tokens_max_uses_check CHECK (max_uses BETWEEN 1 AND 1000000),
    ADD CONSTRAINT invite_tokens_use_count_check CHECK (use_count BETWEEN 0 AND max_uses),
    ADD CONSTRAINT invite_tokens_credits_check CHECK (credits BETWEEN 0 AND 1000000000),
    ADD CONSTRAINT invite_tokens_plan_days_check CHECK (plan_days BETWEEN 0 AND 3650
        AND (plan_days = 0) = (plan_id IS NULL)),
    ADD CONSTRAINT invite_tokens_role_check CHECK (role IS NULL OR role = 'vendor'),
    ADD CONSTRAINT invite_tokens_note_check CHECK (note IS NULL OR char_length(note) <= 500);
CREATE INDEX invite_tokens_created_at_idx ON invite_tokens (created_at DESC, id DESC);

-- One row per (token, user): a user redeems a token once.
CREATE TABLE invite_redemptions (
    id             uuid PRIMARY KEY,
    invite_id      uuid NOT NULL REFERENCES invite_tokens (id) ON DELETE RESTRICT,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credits        bigint NOT NULL DEFAULT 0,
    transaction_id uuid REFERENCES credit_transactions (id) ON DELETE RESTRICT,
    plan_id        uuid REFERENCES payment_plans (id) ON DELETE RESTRICT,
    plan_days      integer NOT NULL DEFAULT 0,
    role           text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT invite_redemptions_invite_id_user_id_key UNIQUE (invite_id, user_id),
    CONSTRAINT invite_redemptions_transaction_id_key UNIQUE (transaction_id),
    CONSTRAINT invite_redemptions_credits_check CHECK (credits >= 0),
    CONSTRAINT invite_redemptions_plan_days_check CHECK (plan_days >= 0),
    CONSTRAINT invite_redemptions_role_check CHECK (role IS NULL OR role = 'vendor')
);
CREATE INDEX invite_redemptions_user_id_idx ON invite_redemptions (user_id, created_at DESC);
