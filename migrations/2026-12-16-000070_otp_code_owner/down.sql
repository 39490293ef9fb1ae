DROP INDEX otp_codes_user_id_idx;
ALTER TABLE otp_codes DROP COLUMN user_id;
