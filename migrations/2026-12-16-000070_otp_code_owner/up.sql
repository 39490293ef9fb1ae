-- The account a code or link was sent for (issue #15): a password reset names the account it
-- resets; `addEmail`/`addPhone` send to an address or number that is not the account's yet,
-- so the confirmation must know whose it is. Null for sign-in codes. Expand-only: a nullable
-- column; old code neither reads nor writes it.
ALTER TABLE otp_codes ADD COLUMN user_id uuid REFERENCES users (id) ON DELETE CASCADE;
CREATE INDEX otp_codes_user_id_idx ON otp_codes (user_id) WHERE user_id IS NOT NULL;
