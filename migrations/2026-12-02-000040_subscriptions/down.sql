-- Grants stay in the ledger (balances must keep equalling it), as bonuses.
UPDATE credit_transactions SET kind = 'bonus' WHERE kind = 'subscription_grant';
ALTER TABLE credit_transactions DROP CONSTRAINT credit_transactions_kind_check;
ALTER TABLE credit_transactions ADD CONSTRAINT credit_transactions_kind_check CHECK (kind IN
    ('signup_bonus', 'purchase', 'usage', 'refund', 'gift_sent', 'gift_received',
     'daily_allowance', 'bonus', 'referral', 'achievement', 'admin_adjustment'));
DROP TABLE subscription_periods;
DROP INDEX subscriptions_payment_id_idx;
DROP INDEX subscriptions_one_trial_per_user_key;
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_gateway_ref_check;
ALTER TABLE subscriptions
    DROP COLUMN source,
    DROP COLUMN current_period_start,
    DROP COLUMN cancel_at_period_end,
    DROP COLUMN pending_plan_id,
    DROP COLUMN price_minor,
    DROP COLUMN currency,
    DROP COLUMN billing_interval,
    DROP COLUMN trial_ends_at,
    DROP COLUMN payment_id,
    DROP COLUMN gateway_item_ref,
    DROP COLUMN usage_window_start,
    DROP COLUMN usage_count,
    DROP COLUMN last_event_at;
ALTER TABLE payment_plans DROP COLUMN trial_days, DROP COLUMN is_vendor_plan;
