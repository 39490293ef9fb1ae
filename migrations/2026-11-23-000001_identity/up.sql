-- Identity and access: users (one table for users, vendors and admins), vendor profiles,
-- social logins, OTP codes, refresh-token sessions, rate-limit windows, audit log, outbox.

CREATE TABLE users (
    id                     uuid PRIMARY KEY,
    phone                  text,
    email                  text,
    username               text,
    password_hash          text,
    display_name           text,
    avatar_url             text,
    bio                    text,
    role                   text NOT NULL DEFAULT 'user',
    subscription_tier      text NOT NULL DEFAULT 'FREE',
    account_status         text NOT NULL DEFAULT 'active',
    phone_verified_at      timestamptz,
    email_verified_at      timestamptz,
    preferred_language     text NOT NULL DEFAULT 'en',
    timezone               text NOT NULL DEFAULT 'UTC',
    profile_visibility     text NOT NULL DEFAULT 'public',
    allow_gallery_showcase boolean NOT NULL DEFAULT true,
    content_filter_level   text NOT NULL DEFAULT 'moderate',
    referral_code          text,
    last_login_at          timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_phone_or_email_check CHECK (phone IS NOT NULL OR email IS NOT NULL),
    CONSTRAINT users_phone_format_check CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    CONSTRAINT users_email_format_check CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    CONSTRAINT users_username_format_check CHECK (username ~ '^[a-zA-Z0-9_]{3,30}$'),
    CONSTRAINT users_role_check CHECK (role IN ('user', 'vendor', 'admin')),
    CONSTRAINT users_subscription_tier_check
        CHECK (subscription_tier IN ('FREE', 'PREMIUM', 'PRO', 'ENTERPRISE')),
    CONSTRAINT users_account_status_check
        CHECK (account_status IN ('active', 'suspended', 'banned', 'deleted')),
    CONSTRAINT users_preferred_language_check
        CHECK (preferred_language ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$'),
    CONSTRAINT users_timezone_check CHECK (char_length(timezone) BETWEEN 1 AND 64),
    CONSTRAINT users_profile_visibility_check CHECK (profile_visibility IN ('public', 'private')),
    CONSTRAINT users_content_filter_level_check
        CHECK (content_filter_level IN ('strict', 'moderate', 'off')),
    CONSTRAINT users_phone_key UNIQUE (phone),
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_referral_code_key UNIQUE (referral_code)
);
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE INDEX users_created_at_id_idx ON users (created_at DESC, id DESC);
SELECT easel_manage_updated_at('users');

CREATE TABLE vendor_profiles (
    user_id                uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    business_name          text NOT NULL,
    contact_info           jsonb NOT NULL DEFAULT '{}',
    social_links           jsonb NOT NULL DEFAULT '{}',
    is_verified            boolean NOT NULL DEFAULT false,
    free_gallery_remaining integer NOT NULL DEFAULT 10,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT vendor_profiles_business_name_check CHECK (char_length(business_name) >= 1),
    CONSTRAINT vendor_profiles_free_gallery_remaining_check CHECK (free_gallery_remaining >= 0)
);
SELECT easel_manage_updated_at('vendor_profiles');

CREATE TABLE oauth_accounts (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider         text NOT NULL,
    provider_user_id text NOT NULL,
    email            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT oauth_accounts_provider_check CHECK (provider ~ '^[a-z][a-z0-9_]{0,31}$'),
    CONSTRAINT oauth_accounts_provider_provider_user_id_key UNIQUE (provider, provider_user_id)
);
CREATE INDEX oauth_accounts_user_id_idx ON oauth_accounts (user_id);

CREATE TABLE otp_codes (
    id            uuid PRIMARY KEY,
    destination   text NOT NULL,
    purpose       text NOT NULL,
    code_hash     text NOT NULL,
    expires_at    timestamptz NOT NULL,
    consumed_at   timestamptz,
    attempt_count integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT otp_codes_purpose_check
        CHECK (purpose IN ('login', 'phone_verify', 'password_reset', 'email_verify')),
    CONSTRAINT otp_codes_attempt_count_check CHECK (attempt_count >= 0)
);
CREATE INDEX otp_codes_destination_purpose_created_at_idx
    ON otp_codes (destination, purpose, created_at DESC);
CREATE INDEX otp_codes_expires_at_idx ON otp_codes (expires_at);

CREATE TABLE sessions (
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id          uuid NOT NULL,
    refresh_token_hash text NOT NULL,
    user_agent         text,
    ip                 inet,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    last_used_at       timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    revoked_at         timestamptz,
    rotation_counter   integer NOT NULL DEFAULT 0,
    CONSTRAINT sessions_rotation_counter_check CHECK (rotation_counter >= 0),
    CONSTRAINT sessions_refresh_token_hash_key UNIQUE (refresh_token_hash)
);
CREATE INDEX sessions_user_id_created_at_idx ON sessions (user_id, created_at DESC, id DESC);
CREATE INDEX sessions_family_id_idx ON sessions (family_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
SELECT easel_manage_updated_at('sessions');

CREATE TABLE rate_limits (
    key          text NOT NULL,
    window_start timestamptz NOT NULL,
    count        integer NOT NULL DEFAULT 0,
    CONSTRAINT rate_limits_pkey PRIMARY KEY (key, window_start),
    CONSTRAINT rate_limits_count_check CHECK (count >= 0)
);
CREATE INDEX rate_limits_window_start_idx ON rate_limits (window_start);

CREATE TABLE audit_logs (
    id          uuid PRIMARY KEY,
    actor_id    uuid REFERENCES users (id) ON DELETE SET NULL,
    actor_type  text NOT NULL,
    action      text NOT NULL,
    resource    text,
    resource_id text,
    ip          inet,
    metadata    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_logs_actor_type_check
        CHECK (actor_type IN ('system', 'user', 'vendor', 'admin'))
);
CREATE INDEX audit_logs_actor_id_created_at_idx
    ON audit_logs (actor_id, created_at DESC, id DESC) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_logs_resource_idx ON audit_logs (resource, resource_id);
CREATE INDEX audit_logs_created_at_idx ON audit_logs (created_at DESC, id DESC);

CREATE TABLE outbox_messages (
    id              uuid PRIMARY KEY,
    channel         text NOT NULL,
    destination     text NOT NULL,
    template        text NOT NULL,
    subject         text,
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    CONSTRAINT outbox_messages_channel_check CHECK (channel IN ('sms', 'email')),
    CONSTRAINT outbox_messages_status_check CHECK (status IN ('pending', 'sent', 'failed')),
    CONSTRAINT outbox_messages_attempts_check CHECK (attempts >= 0)
);
CREATE INDEX outbox_messages_next_attempt_at_idx
    ON outbox_messages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_messages_destination_created_at_idx
    ON outbox_messages (destination, created_at DESC);
SELECT easel_manage_updated_at('outbox_messages');
