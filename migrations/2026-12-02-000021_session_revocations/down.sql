DROP INDEX sessions_revoked_at_idx;
