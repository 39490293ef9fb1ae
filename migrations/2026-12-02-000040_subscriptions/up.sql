-- Issue #13: plans that can be bought, renewed, changed, cancelled, tried and gifted.
-- Expand only: new columns have defaults or are nullable, so a running older version keeps
-- working while this one rolls out.

ALTER TABLE payment_plans
    ADD COLUMN trial_days integer NOT NULL DEFAULT 0,
    ADD COLUMN is_vendor_plan boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT payment_plans_trial_days_check CHECK (trial_days BETWEEN 0 AND 365);
-- Seed 001: the Pro plan is the one sold to vendors ("Vendor albums without limits").
UPDATE payment_plans SET is_vendor_plan = true WHERE id = '0191f000-0000-7000-8000-000000000103';

ALTER TABLE subscriptions
    -- Where it came from: a paid checkout, an admin gift, an invite token, a referral reward.
    ADD COLUMN source text NOT NULL DEFAULT 'checkout',
    ADD COLUMN current_period_start timestamptz,
    ADD COLUMN cancel_at_period_end boolean NOT NULL DEFAULT false,
    -- A downgrade waits for the end of the paid period.
    ADD COLUMN pending_plan_id uuid REFERENCES payment_plans (id) ON DELETE RESTRICT,
    -- The price the subscriber agreed to: later plan price changes do not touch it.
    ADD COLUMN price_minor bigint,
    ADD COLUMN currency text,
    ADD COLUMN billing_interval text,
    ADD COLUMN trial_ends_at timestamptz,
    -- The checkout payment that started it.
    ADD COLUMN payment_id uuid REFERENCES payments (id) ON DELETE RESTRICT,
    -- The gateway's subscription item (Stripe: `si_...`), needed to change the price.
    ADD COLUMN gateway_item_ref text,
    -- `monthlyGenerationLimit`: generations counted in the month that started at
    -- usage_window_start (months roll from the subscription's start).
    ADD COLUMN usage_window_start timestamptz,
    ADD COLUMN usage_count integer NOT NULL DEFAULT 0,
    -- The newest gateway event applied: an older one arriving late changes nothing.
    ADD COLUMN last_event_at timestamptz,
    ADD CONSTRAINT subscriptions_source_check
        CHECK (source IN ('checkout', 'gift', 'invite', 'referral')),
    ADD CONSTRAINT subscriptions_billing_interval_check
        CHECK (billing_interval IN ('month', 'year')),
    ADD CONSTRAINT subscriptions_price_minor_check CHECK (price_minor >= 0),
    ADD CONSTRAINT subscriptions_usage_count_check CHECK (usage_count >= 0),
    -- Bought means billed by a gateway, under its reference; given means neither.
    ADD CONSTRAINT subscriptions_gateway_ref_check CHECK ((gateway IS NULL) = (gateway_ref IS NULL)),
    ADD CONSTRAINT subscriptions_source_gateway_check
        CHECK ((source = 'checkout') = (gateway IS NOT NULL)),
    ADD CONSTRAINT subscriptions_pending_plan_id_check CHECK (pending_plan_id <> plan_id);
-- A trial is offered once per user.
CREATE UNIQUE INDEX subscriptions_one_trial_per_user_key
    ON subscriptions (user_id) WHERE trial_ends_at IS NOT NULL;
CREATE INDEX subscriptions_payment_id_idx ON subscriptions (payment_id)
    WHERE payment_id IS NOT NULL;

-- One row per paid period of a subscription: the plan's monthly credits are granted once
-- per period, whatever the number or order of the gateway's deliveries.
CREATE TABLE subscription_periods (
    subscription_id uuid NOT NULL REFERENCES subscriptions (id) ON DELETE RESTRICT,
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    plan_id         uuid NOT NULL REFERENCES payment_plans (id) ON DELETE RESTRICT,
    credits         bigint NOT NULL,
    -- The `subscription_grant` ledger entry (none when the plan grants no credits).
    transaction_id  uuid REFERENCES credit_transactions (id) ON DELETE RESTRICT,
    -- The gateway's invoice, when it names one.
    invoice_ref     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, period_start),
    CONSTRAINT subscription_periods_credits_check CHECK (credits >= 0),
    CONSTRAINT subscription_periods_order_check CHECK (period_end > period_start),
    CONSTRAINT subscription_periods_transaction_id_key UNIQUE (transaction_id)
);
CREATE INDEX subscription_periods_user_id_idx ON subscription_periods (user_id);

ALTER TABLE credit_transactions DROP CONSTRAINT credit_transactions_kind_check;
ALTER TABLE credit_transactions ADD CONSTRAINT credit_transactions_kind_check CHECK (kind IN
    ('signup_bonus', 'purchase', 'usage', 'refund', 'gift_sent', 'gift_received',
     'daily_allowance', 'bonus', 'referral', 'achievement', 'admin_adjustment',
     'subscription_grant'));
