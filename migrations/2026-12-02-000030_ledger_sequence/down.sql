DROP INDEX credit_transactions_user_id_seq_key;
-- Drops the identity's sequence with the column.
ALTER TABLE credit_transactions DROP COLUMN seq;
