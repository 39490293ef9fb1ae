DROP TABLE outbox_messages;
DROP TABLE audit_logs;
DROP TABLE rate_limits;
DROP TABLE sessions;
DROP TABLE otp_codes;
DROP TABLE oauth_accounts;
DROP TABLE vendor_profiles;
DROP TABLE users;
