-- The ledger's order follows the account row lock. `created_at` is the time its transaction
-- started (`now()`), so two concurrent entries of one account may carry times in the other
-- order than their `balance_after`. `seq` comes from a sequence when the row is inserted,
-- which every ledger write does after it locked (updated) the account row, so per account
-- `seq` order is `balance_after` order. `creditHistory` is ordered and paged by it.
ALTER TABLE credit_transactions ADD COLUMN seq bigint;
-- Existing rows keep the order they were listed in.
UPDATE credit_transactions t SET seq = o.n
FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM credit_transactions) o
WHERE o.id = t.id;
ALTER TABLE credit_transactions ALTER COLUMN seq SET NOT NULL;
-- Rows written by a release that does not know `seq` get one too.
ALTER TABLE credit_transactions ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('credit_transactions', 'seq'), coalesce(max(seq), 0) + 1, false)
FROM credit_transactions;
CREATE UNIQUE INDEX credit_transactions_user_id_seq_key ON credit_transactions (user_id, seq DESC);
