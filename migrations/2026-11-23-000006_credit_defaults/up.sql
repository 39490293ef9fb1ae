-- Credit defaults a fresh install starts with; admins change them through the API.

-- The free daily allowance of each tier (seed 003: FREE gets 3 a day). Charges take it first;
-- it resets at midnight in the user's time zone.
CREATE TABLE tier_allowances (
    tier            text PRIMARY KEY,
    daily_allowance bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tier_allowances_tier_check CHECK (tier IN ('FREE', 'PREMIUM', 'PRO', 'ENTERPRISE')),
    CONSTRAINT tier_allowances_daily_allowance_check CHECK (daily_allowance >= 0)
);
SELECT easel_manage_updated_at('tier_allowances');

INSERT INTO tier_allowances (tier, daily_allowance) VALUES
    ('FREE', 3), ('PREMIUM', 20), ('PRO', 50), ('ENTERPRISE', 200);

-- Seeds 002/003: one-time credit packages.
INSERT INTO credit_packages (id, name, description, credits, bonus_credits, price_minor, currency, sort_order, badge_text) VALUES
    ('0191f000-0000-7000-8000-000000000001', 'Starter', '100 credits to try everything', 100, 0, 499, 'USD', 1, NULL),
    ('0191f000-0000-7000-8000-000000000002', 'Creator', '500 credits and 50 bonus', 500, 50, 1999, 'USD', 2, 'POPULAR'),
    ('0191f000-0000-7000-8000-000000000003', 'Studio', '1,200 credits and 200 bonus', 1200, 200, 3999, 'USD', 3, 'BEST VALUE');

-- Seeds 001/004: subscription plans.
INSERT INTO payment_plans (id, name, display_name, description, tier, price_minor, currency, interval, monthly_credits, monthly_generation_limit, features, sort_order) VALUES
    ('0191f000-0000-7000-8000-000000000101', 'free', 'Free', 'Three free generations a day', 'FREE', 0, 'USD', 'month', 0, NULL, '{"3 generations a day","Public gallery"}', 1),
    ('0191f000-0000-7000-8000-000000000102', 'premium', 'Premium', 'For regular creators', 'PREMIUM', 999, 'USD', 'month', 300, NULL, '{"20 free generations a day","300 credits a month","20% off every operation"}', 2),
    ('0191f000-0000-7000-8000-000000000103', 'pro', 'Pro', 'For studios and vendors', 'PRO', 2999, 'USD', 'month', 1000, NULL, '{"50 free generations a day","1,000 credits a month","40% off every operation","Vendor albums without limits"}', 3),
    ('0191f000-0000-7000-8000-000000000104', 'enterprise', 'Enterprise', 'For teams', 'ENTERPRISE', 29999, 'USD', 'year', 5000, NULL, '{"200 free generations a day","5,000 credits a month","60% off every operation"}', 4);

-- Seed 003 api_credit_configs: a price for every generation kind, with tier multipliers.
INSERT INTO operation_prices (operation, base_cost, tier_multipliers, daily_limit, per_minute_limit, minimum_tier, description) VALUES
    ('generate.character', 2, '{"FREE": 1.0, "PREMIUM": 0.8, "PRO": 0.6, "ENTERPRISE": 0.4}', NULL, 10, NULL, 'Generate character images from a prompt'),
    ('generate.style_transfer', 2, '{"FREE": 1.0, "PREMIUM": 0.8, "PRO": 0.6, "ENTERPRISE": 0.4}', NULL, 10, NULL, 'Restyle an image'),
    ('generate.upscale', 1, '{"FREE": 1.0, "PREMIUM": 0.8, "PRO": 0.6, "ENTERPRISE": 0.4}', NULL, 10, NULL, 'Upscale an image'),
    ('generate.variation', 1, '{"FREE": 1.0, "PREMIUM": 0.8, "PRO": 0.6, "ENTERPRISE": 0.4}', NULL, 10, NULL, 'Variations of an image'),
    ('generate.background_removal', 1, '{"FREE": 1.0, "PREMIUM": 0.8, "PRO": 0.6, "ENTERPRISE": 0.4}', NULL, 10, NULL, 'Remove the background of an image'),
    ('generate.logo', 3, '{"FREE": 1.0, "PREMIUM": 0.8, "PRO": 0.6, "ENTERPRISE": 0.4}', 20, 5, NULL, 'Generate a logo');
