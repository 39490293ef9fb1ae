DELETE FROM operation_prices WHERE operation IN ('generate.character', 'generate.style_transfer',
    'generate.upscale', 'generate.variation', 'generate.background_removal', 'generate.logo');
DELETE FROM payment_plans WHERE id IN ('0191f000-0000-7000-8000-000000000101',
    '0191f000-0000-7000-8000-000000000102', '0191f000-0000-7000-8000-000000000103',
    '0191f000-0000-7000-8000-000000000104');
DELETE FROM credit_packages WHERE id IN ('0191f000-0000-7000-8000-000000000001',
    '0191f000-0000-7000-8000-000000000002', '0191f000-0000-7000-8000-000000000003');
DROP TABLE tier_allowances;
