-- Credits and payments: per-user credit account (a cache of the ledger), the append-only
-- ledger, catalogue (packages, operation prices, plans), subscriptions, payments and the
-- webhook inbox. Ledger rows and payments are kept forever: their user foreign keys RESTRICT.
-- credit_transactions.job_id gets its foreign key in the `generation` migration.

CREATE TABLE credit_accounts (
    user_id             uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    balance             bigint NOT NULL DEFAULT 0,
    reserved            bigint NOT NULL DEFAULT 0,
    daily_allowance     bigint NOT NULL DEFAULT 0,
    daily_used          bigint NOT NULL DEFAULT 0,
    daily_reset_on      date NOT NULL DEFAULT current_date,
    total_purchased     bigint NOT NULL DEFAULT 0,
    total_spent         bigint NOT NULL DEFAULT 0,
    total_earned        bigint NOT NULL DEFAULT 0,
    last_transaction_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT credit_accounts_balance_check CHECK (balance >= 0),
    CONSTRAINT credit_accounts_reserved_check CHECK (reserved >= 0),
    CONSTRAINT credit_accounts_daily_allowance_check CHECK (daily_allowance >= 0),
    CONSTRAINT credit_accounts_daily_used_check CHECK (daily_used >= 0),
    CONSTRAINT credit_accounts_totals_check
        CHECK (total_purchased >= 0 AND total_spent >= 0 AND total_earned >= 0)
);
SELECT easel_manage_updated_at('credit_accounts');

CREATE TABLE credit_packages (
    id                  uuid PRIMARY KEY,
    name                text NOT NULL,
    description         text,
    credits             bigint NOT NULL,
    bonus_credits       bigint NOT NULL DEFAULT 0,
    price_minor         bigint NOT NULL,
    currency            text NOT NULL,
    is_active           boolean NOT NULL DEFAULT true,
    sort_order          integer NOT NULL DEFAULT 0,
    badge_text          text,
    gateway_product_ids jsonb NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT credit_packages_credits_check CHECK (credits > 0),
    CONSTRAINT credit_packages_bonus_credits_check CHECK (bonus_credits >= 0),
    CONSTRAINT credit_packages_price_minor_check CHECK (price_minor >= 0),
    CONSTRAINT credit_packages_currency_check CHECK (char_length(currency) = 3)
);
CREATE INDEX credit_packages_active_sort_order_idx
    ON credit_packages (sort_order, id) WHERE is_active;
SELECT easel_manage_updated_at('credit_packages');

CREATE TABLE operation_prices (
    operation        text PRIMARY KEY,
    base_cost        bigint NOT NULL,
    tier_multipliers jsonb NOT NULL DEFAULT '{}',
    daily_limit      integer,
    per_minute_limit integer,
    minimum_tier     text,
    is_enabled       boolean NOT NULL DEFAULT true,
    description      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT operation_prices_operation_check
        CHECK (operation ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
    CONSTRAINT operation_prices_base_cost_check CHECK (base_cost >= 0),
    CONSTRAINT operation_prices_daily_limit_check CHECK (daily_limit >= 0),
    CONSTRAINT operation_prices_per_minute_limit_check CHECK (per_minute_limit >= 0),
    CONSTRAINT operation_prices_minimum_tier_check
        CHECK (minimum_tier IN ('FREE', 'PREMIUM', 'PRO', 'ENTERPRISE')),
    CONSTRAINT operation_prices_tier_multipliers_check
        CHECK (jsonb_typeof(tier_multipliers) = 'object')
);
SELECT easel_manage_updated_at('operation_prices');

CREATE TABLE payment_plans (
    id                       uuid PRIMARY KEY,
    name                     text NOT NULL,
    display_name             text NOT NULL,
    description              text,
    tier                     text NOT NULL DEFAULT 'PREMIUM',
    price_minor              bigint NOT NULL,
    currency                 text NOT NULL,
    interval                 text NOT NULL,
    monthly_credits          bigint NOT NULL DEFAULT 0,
    monthly_generation_limit integer,
    features                 text[] NOT NULL DEFAULT '{}',
    gateway_product_ids      jsonb NOT NULL DEFAULT '{}',
    is_active                boolean NOT NULL DEFAULT true,
    sort_order               integer NOT NULL DEFAULT 0,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_plans_tier_check CHECK (tier IN ('FREE', 'PREMIUM', 'PRO', 'ENTERPRISE')),
    CONSTRAINT payment_plans_price_minor_check CHECK (price_minor >= 0),
    CONSTRAINT payment_plans_currency_check CHECK (char_length(currency) = 3),
    CONSTRAINT payment_plans_interval_check CHECK (interval IN ('month', 'year')),
    CONSTRAINT payment_plans_monthly_credits_check CHECK (monthly_credits >= 0),
    CONSTRAINT payment_plans_monthly_generation_limit_check CHECK (monthly_generation_limit >= 0),
    CONSTRAINT payment_plans_features_check CHECK (array_position(features, NULL) IS NULL),
    CONSTRAINT payment_plans_name_key UNIQUE (name)
);
SELECT easel_manage_updated_at('payment_plans');

CREATE TABLE subscriptions (
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    plan_id            uuid NOT NULL REFERENCES payment_plans (id) ON DELETE RESTRICT,
    status             text NOT NULL DEFAULT 'active',
    current_period_end timestamptz NOT NULL,
    gateway            text,
    gateway_ref        text,
    cancelled_at       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscriptions_status_check
        CHECK (status IN ('trial', 'active', 'past_due', 'cancelled', 'expired')),
    CONSTRAINT subscriptions_gateway_check CHECK (gateway IN
        ('sandbox', 'stripe', 'zarinpal', 'khalti', 'esewa', 'razorpay', 'polar', 'binance')),
    CONSTRAINT subscriptions_gateway_gateway_ref_key UNIQUE (gateway, gateway_ref)
);
-- At most one live subscription per user.
CREATE UNIQUE INDEX subscriptions_user_id_key
    ON subscriptions (user_id) WHERE status IN ('trial', 'active', 'past_due');
CREATE INDEX subscriptions_user_id_created_at_idx
    ON subscriptions (user_id, created_at DESC, id DESC);
CREATE INDEX subscriptions_plan_id_idx ON subscriptions (plan_id);
CREATE INDEX subscriptions_current_period_end_idx
    ON subscriptions (current_period_end) WHERE status IN ('trial', 'active', 'past_due');
SELECT easel_manage_updated_at('subscriptions');

CREATE TABLE payments (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    package_id      uuid REFERENCES credit_packages (id) ON DELETE RESTRICT,
    plan_id         uuid REFERENCES payment_plans (id) ON DELETE RESTRICT,
    gateway         text NOT NULL,
    amount_minor    bigint NOT NULL,
    currency        text NOT NULL,
    status          text NOT NULL DEFAULT 'pending',
    gateway_ref     text,
    checkout_url    text,
    gateway_data    jsonb NOT NULL DEFAULT '{}',
    credits_granted bigint NOT NULL DEFAULT 0,
    idempotency_key text,
    request_hash    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    paid_at         timestamptz,
    expires_at      timestamptz,
    CONSTRAINT payments_package_or_plan_check CHECK (num_nonnulls(package_id, plan_id) = 1),
    CONSTRAINT payments_gateway_check CHECK (gateway IN
        ('sandbox', 'stripe', 'zarinpal', 'khalti', 'esewa', 'razorpay', 'polar', 'binance')),
    CONSTRAINT payments_amount_minor_check CHECK (amount_minor >= 0),
    CONSTRAINT payments_currency_check CHECK (char_length(currency) = 3),
    CONSTRAINT payments_status_check CHECK (status IN
        ('pending', 'completed', 'failed', 'cancelled', 'expired', 'refunded')),
    CONSTRAINT payments_credits_granted_check CHECK (credits_granted >= 0),
    CONSTRAINT payments_gateway_gateway_ref_key UNIQUE (gateway, gateway_ref),
    CONSTRAINT payments_user_id_idempotency_key_key UNIQUE (user_id, idempotency_key)
);
CREATE INDEX payments_user_id_created_at_idx ON payments (user_id, created_at DESC, id DESC);
CREATE INDEX payments_package_id_idx ON payments (package_id) WHERE package_id IS NOT NULL;
CREATE INDEX payments_plan_id_idx ON payments (plan_id) WHERE plan_id IS NOT NULL;
CREATE INDEX payments_pending_expires_at_idx ON payments (expires_at) WHERE status = 'pending';
SELECT easel_manage_updated_at('payments');

CREATE TABLE payment_events (
    id               uuid PRIMARY KEY,
    gateway          text NOT NULL,
    event_id         text NOT NULL,
    payment_id       uuid REFERENCES payments (id) ON DELETE RESTRICT,
    payload          jsonb NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    processed_at     timestamptz,
    processing_error text,
    CONSTRAINT payment_events_gateway_check CHECK (gateway IN
        ('sandbox', 'stripe', 'zarinpal', 'khalti', 'esewa', 'razorpay', 'polar', 'binance')),
    CONSTRAINT payment_events_gateway_event_id_key UNIQUE (gateway, event_id)
);
CREATE INDEX payment_events_payment_id_idx ON payment_events (payment_id)
    WHERE payment_id IS NOT NULL;
CREATE INDEX payment_events_unprocessed_idx ON payment_events (received_at)
    WHERE processed_at IS NULL;

CREATE TABLE credit_transactions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    kind            text NOT NULL,
    amount          bigint NOT NULL,
    balance_after   bigint NOT NULL,
    allowance_used  integer NOT NULL DEFAULT 0,
    description     text NOT NULL,
    job_id          uuid,
    payment_id      uuid REFERENCES payments (id) ON DELETE RESTRICT,
    counterparty_id uuid REFERENCES users (id) ON DELETE SET NULL,
    performed_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    refund_of_id    uuid REFERENCES credit_transactions (id) ON DELETE RESTRICT,
    idempotency_key text,
    request_hash    text,
    metadata        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT credit_transactions_kind_check CHECK (kind IN
        ('signup_bonus', 'purchase', 'usage', 'refund', 'gift_sent', 'gift_received',
         'daily_allowance', 'bonus', 'referral', 'achievement', 'admin_adjustment')),
    CONSTRAINT credit_transactions_balance_after_check CHECK (balance_after >= 0),
    CONSTRAINT credit_transactions_allowance_used_check CHECK (allowance_used >= 0),
    CONSTRAINT credit_transactions_refund_of_id_check CHECK (refund_of_id IS NULL OR kind = 'refund'),
    CONSTRAINT credit_transactions_user_id_idempotency_key_key UNIQUE (user_id, idempotency_key),
    CONSTRAINT credit_transactions_refund_of_id_key UNIQUE (refund_of_id)
);
CREATE INDEX credit_transactions_user_id_created_at_idx
    ON credit_transactions (user_id, created_at DESC, id DESC);
CREATE INDEX credit_transactions_job_id_idx ON credit_transactions (job_id)
    WHERE job_id IS NOT NULL;
-- A completed payment grants credits exactly once.
CREATE UNIQUE INDEX credit_transactions_payment_id_key ON credit_transactions (payment_id)
    WHERE kind = 'purchase';
CREATE INDEX credit_transactions_payment_id_idx ON credit_transactions (payment_id)
    WHERE payment_id IS NOT NULL;
CREATE INDEX credit_transactions_counterparty_id_idx ON credit_transactions (counterparty_id)
    WHERE counterparty_id IS NOT NULL;
CREATE INDEX credit_transactions_performed_by_idx ON credit_transactions (performed_by)
    WHERE performed_by IS NOT NULL;
