// @generated automatically by Diesel CLI.

diesel::table! {
    album_images (album_id, image_id) {
        album_id -> Uuid,
        image_id -> Uuid,
        position -> Int4,
        added_at -> Timestamptz,
        free_slot -> Bool,
    }
}

diesel::table! {
    albums (id) {
        id -> Uuid,
        owner_id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        cover_image_id -> Nullable<Uuid>,
        is_public -> Bool,
        image_count -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        hidden_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_logs (id) {
        id -> Uuid,
        actor_id -> Nullable<Uuid>,
        actor_type -> Text,
        action -> Text,
        resource -> Nullable<Text>,
        resource_id -> Nullable<Text>,
        ip -> Nullable<Inet>,
        metadata -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    character_images (character_id, image_id) {
        character_id -> Uuid,
        image_id -> Uuid,
        position -> Int4,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    character_likes (character_id, user_id) {
        character_id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    character_ratings (id) {
        id -> Uuid,
        character_id -> Uuid,
        user_id -> Uuid,
        rating -> Int4,
        review_text -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    character_view_marks (character_id, viewer, window_start) {
        character_id -> Uuid,
        viewer -> Text,
        window_start -> Timestamptz,
    }
}

diesel::table! {
    characters (id) {
        id -> Uuid,
        owner_id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        prompt -> Text,
        negative_prompt -> Nullable<Text>,
        style_type -> Text,
        art_style -> Nullable<Text>,
        mood -> Nullable<Text>,
        color_palette -> Array<Text>,
        model_version -> Text,
        seed -> Nullable<Int8>,
        cfg_scale -> Numeric,
        steps -> Int4,
        sampler -> Text,
        primary_image_id -> Nullable<Uuid>,
        status -> Text,
        error_message -> Nullable<Text>,
        tags -> Array<Text>,
        is_public -> Bool,
        is_featured -> Bool,
        allow_commercial_use -> Bool,
        license_type -> Text,
        view_count -> Int8,
        like_count -> Int8,
        download_count -> Int8,
        share_count -> Int8,
        parent_character_id -> Nullable<Uuid>,
        version_number -> Int4,
        variant_type -> Nullable<Text>,
        published_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        hidden_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    chat_events (thread_id, seq) {
        thread_id -> Uuid,
        seq -> Int8,
        kind -> Text,
        message_id -> Nullable<Uuid>,
        job_id -> Nullable<Uuid>,
        job_status -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    chat_messages (id) {
        id -> Uuid,
        thread_id -> Uuid,
        role -> Text,
        content -> Text,
        job_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        seq -> Int8,
        image_ids -> Array<Uuid>,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Text>,
    }
}

diesel::table! {
    chat_threads (id) {
        id -> Uuid,
        user_id -> Uuid,
        title -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        last_activity_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        last_seq -> Int8,
    }
}

diesel::table! {
    collection_characters (collection_id, character_id) {
        collection_id -> Uuid,
        character_id -> Uuid,
        position -> Int4,
        added_at -> Timestamptz,
    }
}

diesel::table! {
    collections (id) {
        id -> Uuid,
        owner_id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        cover_image_id -> Nullable<Uuid>,
        tags -> Array<Text>,
        is_public -> Bool,
        character_count -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        hidden_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    content_reports (id) {
        id -> Uuid,
        reporter_id -> Uuid,
        target_type -> Text,
        target_id -> Uuid,
        target_owner_id -> Uuid,
        reason -> Text,
        details -> Nullable<Text>,
        status -> Text,
        resolution -> Nullable<Text>,
        resolution_note -> Nullable<Text>,
        resolved_by -> Nullable<Uuid>,
        resolved_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    credit_accounts (user_id) {
        user_id -> Uuid,
        balance -> Int8,
        reserved -> Int8,
        daily_allowance -> Int8,
        daily_used -> Int8,
        daily_reset_on -> Date,
        total_purchased -> Int8,
        total_spent -> Int8,
        total_earned -> Int8,
        last_transaction_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    credit_packages (id) {
        id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        credits -> Int8,
        bonus_credits -> Int8,
        price_minor -> Int8,
        currency -> Text,
        is_active -> Bool,
        sort_order -> Int4,
        badge_text -> Nullable<Text>,
        gateway_product_ids -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    credit_transactions (id) {
        id -> Uuid,
        user_id -> Uuid,
        kind -> Text,
        amount -> Int8,
        balance_after -> Int8,
        allowance_used -> Int4,
        description -> Text,
        job_id -> Nullable<Uuid>,
        payment_id -> Nullable<Uuid>,
        counterparty_id -> Nullable<Uuid>,
        performed_by -> Nullable<Uuid>,
        refund_of_id -> Nullable<Uuid>,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Text>,
        metadata -> Jsonb,
        created_at -> Timestamptz,
        seq -> Int8,
    }
}

diesel::table! {
    data_exports (id) {
        id -> Uuid,
        user_id -> Uuid,
        status -> Text,
        download_token -> Text,
        storage_key -> Nullable<Text>,
        byte_size -> Nullable<Int8>,
        error -> Nullable<Text>,
        attempts -> Int4,
        claimed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    feedback (id) {
        id -> Uuid,
        user_id -> Uuid,
        kind -> Text,
        body -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    generation_jobs (id) {
        id -> Uuid,
        user_id -> Uuid,
        character_id -> Nullable<Uuid>,
        thread_id -> Nullable<Uuid>,
        kind -> Text,
        provider -> Text,
        model -> Nullable<Text>,
        prompt -> Nullable<Text>,
        negative_prompt -> Nullable<Text>,
        params -> Jsonb,
        input_image_ids -> Array<Uuid>,
        output_count -> Int4,
        status -> Text,
        priority -> Int4,
        attempts -> Int4,
        max_attempts -> Int4,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamptz>,
        provider_job_id -> Nullable<Text>,
        cost_credits -> Int8,
        charge_transaction_id -> Nullable<Uuid>,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Text>,
        error -> Nullable<Jsonb>,
        cancel_requested_at -> Nullable<Timestamptz>,
        deadline_at -> Nullable<Timestamptz>,
        queued_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        completed_at -> Nullable<Timestamptz>,
        processing_ms -> Nullable<Int4>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        prompt_template -> Nullable<Text>,
        prompt_template_version -> Nullable<Text>,
    }
}

diesel::table! {
    images (id) {
        id -> Uuid,
        owner_id -> Uuid,
        job_id -> Nullable<Uuid>,
        kind -> Text,
        storage_key -> Text,
        mime_type -> Text,
        byte_size -> Int8,
        width -> Nullable<Int4>,
        height -> Nullable<Int4>,
        thumbnail_key -> Nullable<Text>,
        is_public -> Bool,
        tags -> Array<Text>,
        metadata -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        hidden_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    invite_redemptions (id) {
        id -> Uuid,
        invite_id -> Uuid,
        user_id -> Uuid,
        credits -> Int8,
        transaction_id -> Nullable<Uuid>,
        plan_id -> Nullable<Uuid>,
        plan_days -> Int4,
        role -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    invite_tokens (token) {
        token -> Text,
        referrer_id -> Uuid,
        kind -> Text,
        used_by_id -> Nullable<Uuid>,
        used_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        id -> Uuid,
        max_uses -> Int4,
        use_count -> Int4,
        credits -> Int8,
        plan_id -> Nullable<Uuid>,
        plan_days -> Int4,
        role -> Nullable<Text>,
        note -> Nullable<Text>,
        revoked_at -> Nullable<Timestamptz>,
        revoked_by -> Nullable<Uuid>,
    }
}

diesel::table! {
    job_events (id) {
        id -> Int8,
        job_id -> Uuid,
        user_id -> Uuid,
        status -> Text,
        payload -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    oauth_accounts (id) {
        id -> Uuid,
        user_id -> Uuid,
        provider -> Text,
        provider_user_id -> Text,
        email -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    oauth_states (state_hash) {
        state_hash -> Text,
        provider -> Text,
        redirect_uri -> Text,
        nonce -> Text,
        pkce_verifier -> Text,
        user_id -> Nullable<Uuid>,
        expires_at -> Timestamptz,
        consumed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    operation_prices (operation) {
        operation -> Text,
        base_cost -> Int8,
        tier_multipliers -> Jsonb,
        daily_limit -> Nullable<Int4>,
        per_minute_limit -> Nullable<Int4>,
        minimum_tier -> Nullable<Text>,
        is_enabled -> Bool,
        description -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    otp_codes (id) {
        id -> Uuid,
        destination -> Text,
        purpose -> Text,
        code_hash -> Text,
        expires_at -> Timestamptz,
        consumed_at -> Nullable<Timestamptz>,
        attempt_count -> Int4,
        created_at -> Timestamptz,
        user_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    outbox_messages (id) {
        id -> Uuid,
        channel -> Text,
        destination -> Text,
        template -> Text,
        subject -> Nullable<Text>,
        body -> Text,
        status -> Text,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        next_attempt_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    payment_events (id) {
        id -> Uuid,
        gateway -> Text,
        event_id -> Text,
        payment_id -> Nullable<Uuid>,
        payload -> Jsonb,
        received_at -> Timestamptz,
        processed_at -> Nullable<Timestamptz>,
        processing_error -> Nullable<Text>,
    }
}

diesel::table! {
    payment_plans (id) {
        id -> Uuid,
        name -> Text,
        display_name -> Text,
        description -> Nullable<Text>,
        tier -> Text,
        price_minor -> Int8,
        currency -> Text,
        interval -> Text,
        monthly_credits -> Int8,
        monthly_generation_limit -> Nullable<Int4>,
        features -> Array<Text>,
        gateway_product_ids -> Jsonb,
        is_active -> Bool,
        sort_order -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        trial_days -> Int4,
        is_vendor_plan -> Bool,
    }
}

diesel::table! {
    payments (id) {
        id -> Uuid,
        user_id -> Uuid,
        package_id -> Nullable<Uuid>,
        plan_id -> Nullable<Uuid>,
        gateway -> Text,
        amount_minor -> Int8,
        currency -> Text,
        status -> Text,
        gateway_ref -> Nullable<Text>,
        checkout_url -> Nullable<Text>,
        gateway_data -> Jsonb,
        credits_granted -> Int8,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        paid_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    rate_limits (key, window_start) {
        key -> Text,
        window_start -> Timestamptz,
        count -> Int4,
    }
}

diesel::table! {
    referrals (id) {
        id -> Uuid,
        referrer_id -> Uuid,
        referred_id -> Uuid,
        reward_type -> Text,
        redeemed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        referrer_transaction_id -> Nullable<Uuid>,
        referred_transaction_id -> Nullable<Uuid>,
        plan_id -> Nullable<Uuid>,
        plan_days -> Nullable<Int4>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        family_id -> Uuid,
        refresh_token_hash -> Text,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Inet>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        last_used_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        rotation_counter -> Int4,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> Uuid,
        user_id -> Uuid,
        plan_id -> Uuid,
        status -> Text,
        current_period_end -> Timestamptz,
        gateway -> Nullable<Text>,
        gateway_ref -> Nullable<Text>,
        cancelled_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        source -> Text,
        current_period_start -> Nullable<Timestamptz>,
        cancel_at_period_end -> Bool,
        pending_plan_id -> Nullable<Uuid>,
        price_minor -> Nullable<Int8>,
        currency -> Nullable<Text>,
        billing_interval -> Nullable<Text>,
        trial_ends_at -> Nullable<Timestamptz>,
        payment_id -> Nullable<Uuid>,
        gateway_item_ref -> Nullable<Text>,
        usage_window_start -> Nullable<Timestamptz>,
        usage_count -> Int4,
        last_event_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    subscription_periods (subscription_id, period_start) {
        subscription_id -> Uuid,
        period_start -> Timestamptz,
        period_end -> Timestamptz,
        user_id -> Uuid,
        plan_id -> Uuid,
        credits -> Int8,
        transaction_id -> Nullable<Uuid>,
        invoice_ref -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    tier_allowances (tier) {
        tier -> Text,
        daily_allowance -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        phone -> Nullable<Text>,
        email -> Nullable<Text>,
        username -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        display_name -> Nullable<Text>,
        avatar_url -> Nullable<Text>,
        bio -> Nullable<Text>,
        role -> Text,
        subscription_tier -> Text,
        account_status -> Text,
        phone_verified_at -> Nullable<Timestamptz>,
        email_verified_at -> Nullable<Timestamptz>,
        preferred_language -> Text,
        timezone -> Text,
        profile_visibility -> Text,
        allow_gallery_showcase -> Bool,
        content_filter_level -> Text,
        referral_code -> Nullable<Text>,
        last_login_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    vendor_profiles (user_id) {
        user_id -> Uuid,
        business_name -> Text,
        contact_info -> Jsonb,
        social_links -> Jsonb,
        is_verified -> Bool,
        free_gallery_remaining -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(album_images -> albums (album_id));
diesel::joinable!(album_images -> images (image_id));
diesel::joinable!(albums -> images (cover_image_id));
diesel::joinable!(albums -> users (owner_id));
diesel::joinable!(audit_logs -> users (actor_id));
diesel::joinable!(character_images -> characters (character_id));
diesel::joinable!(character_images -> images (image_id));
diesel::joinable!(character_likes -> characters (character_id));
diesel::joinable!(character_likes -> users (user_id));
diesel::joinable!(character_ratings -> characters (character_id));
diesel::joinable!(character_ratings -> users (user_id));
diesel::joinable!(character_view_marks -> characters (character_id));
diesel::joinable!(characters -> images (primary_image_id));
diesel::joinable!(characters -> users (owner_id));
diesel::joinable!(chat_events -> chat_messages (message_id));
diesel::joinable!(chat_events -> chat_threads (thread_id));
diesel::joinable!(chat_events -> generation_jobs (job_id));
diesel::joinable!(chat_messages -> chat_threads (thread_id));
diesel::joinable!(chat_messages -> generation_jobs (job_id));
diesel::joinable!(chat_threads -> users (user_id));
diesel::joinable!(collection_characters -> characters (character_id));
diesel::joinable!(collection_characters -> collections (collection_id));
diesel::joinable!(collections -> images (cover_image_id));
diesel::joinable!(collections -> users (owner_id));
diesel::joinable!(credit_accounts -> users (user_id));
diesel::joinable!(credit_transactions -> payments (payment_id));
diesel::joinable!(data_exports -> users (user_id));
diesel::joinable!(feedback -> users (user_id));
diesel::joinable!(generation_jobs -> characters (character_id));
diesel::joinable!(generation_jobs -> chat_threads (thread_id));
diesel::joinable!(generation_jobs -> users (user_id));
diesel::joinable!(images -> generation_jobs (job_id));
diesel::joinable!(images -> users (owner_id));
diesel::joinable!(invite_redemptions -> credit_transactions (transaction_id));
diesel::joinable!(invite_redemptions -> payment_plans (plan_id));
diesel::joinable!(invite_redemptions -> users (user_id));
diesel::joinable!(invite_tokens -> payment_plans (plan_id));
diesel::joinable!(job_events -> generation_jobs (job_id));
diesel::joinable!(job_events -> users (user_id));
diesel::joinable!(oauth_accounts -> users (user_id));
diesel::joinable!(otp_codes -> users (user_id));
diesel::joinable!(oauth_states -> users (user_id));
diesel::joinable!(payment_events -> payments (payment_id));
diesel::joinable!(payments -> credit_packages (package_id));
diesel::joinable!(payments -> payment_plans (plan_id));
diesel::joinable!(payments -> users (user_id));
diesel::joinable!(referrals -> payment_plans (plan_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(subscription_periods -> subscriptions (subscription_id));
diesel::joinable!(subscriptions -> payment_plans (plan_id));
diesel::joinable!(subscriptions -> users (user_id));
diesel::joinable!(vendor_profiles -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    album_images,
    albums,
    audit_logs,
    character_images,
    character_likes,
    character_ratings,
    character_view_marks,
    characters,
    chat_events,
    chat_messages,
    chat_threads,
    collection_characters,
    collections,
    content_reports,
    credit_accounts,
    credit_packages,
    credit_transactions,
    data_exports,
    feedback,
    generation_jobs,
    images,
    invite_redemptions,
    invite_tokens,
    job_events,
    oauth_accounts,
    oauth_states,
    operation_prices,
    otp_codes,
    outbox_messages,
    payment_events,
    payment_plans,
    payments,
    rate_limits,
    referrals,
    sessions,
    subscription_periods,
    subscriptions,
    tier_allowances,
    users,
    vendor_profiles,
);
