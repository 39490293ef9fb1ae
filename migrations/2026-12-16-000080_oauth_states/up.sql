-- Social sign-in (src/accounts/service/oauth.rs): one row per `startOAuth`, holding what
-- `completeOAuth` checks the identity provider's answer against. The state itself is kept
-- only as its SHA-256 hash; the PKCE verifier is sent to the provider's token endpoint, so
-- it is kept as is (it is worthless without the provider's code). A row works once
-- (`consumed_at`) and for about ten minutes (`expires_at`).
CREATE TABLE oauth_states (
    state_hash    text PRIMARY KEY,
    provider      text NOT NULL,
    redirect_uri  text NOT NULL,
    nonce         text NOT NULL,
    pkce_verifier text NOT NULL,
    -- The signed-in user who started it (linking a provider to their account), else null.
    user_id       uuid REFERENCES users (id) ON DELETE CASCADE,
    expires_at    timestamptz NOT NULL,
    consumed_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT oauth_states_provider_check CHECK (provider ~ '^[a-z][a-z0-9_]{0,31}$')
);
CREATE INDEX oauth_states_expires_at_idx ON oauth_states (expires_at);
CREATE INDEX oauth_states_user_id_idx ON oauth_states (user_id) WHERE user_id IS NOT NULL;
