-- Every process reloads the session families revoked within the last access-token lifetime
-- when its event listener (re)connects (src/accounts/revocations.rs).
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
