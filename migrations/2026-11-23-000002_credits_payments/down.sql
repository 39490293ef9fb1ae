DROP TABLE credit_transactions;
DROP TABLE payment_events;
DROP TABLE payments;
DROP TABLE subscriptions;
DROP TABLE payment_plans;
DROP TABLE operation_prices;
DROP TABLE credit_packages;
DROP TABLE credit_accounts;
