//! GraphQL types and root fields of the accounts capability.

use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{
    AccountStatus, ProfileVisibility, Role, SubscriptionTier,
    guards::{Authenticated, HasRole, require_user},
    loaders::{UserId, VendorProfileOf},
    model::{UserRow, VendorProfileRow},
    service::{self, Auth, ProfileInput, RequestMeta},
    viewer::Viewer,
};
use crate::graphql::parse_id;
use crate::{error::AppError, graphql::ContextExt};

/// A user as the API shows it (wraps the row so a column never becomes API by accident).
/// `shown_to_owner` is set where the answer goes to the user themself (`AuthPayload`).
pub struct User(pub UserRow, pub bool);

impl User {
    /// A user as others see them.
    pub fn new(row: UserRow) -> Self {
        User(row, false)
    }

    /// A user in an answer to that same user (sign-in payloads).
    pub fn to_owner(row: UserRow) -> Self {
        User(row, true)
    }

    /// THE rule for profiles: `viewer` may see `user`'s profile (username, display name, bio,
    /// avatar, vendor profile) when it is the user themself or an admin, or when the profile
    /// is public and the account active. `user(...)`, `gallery(...)` and every `User` field
    /// obey it.
    pub fn profile_visible_to(user: &UserRow, viewer: &Viewer) -> bool {
        viewer.is_self_or_admin(user.id)
            || (user.profile_visibility == ProfileVisibility::Public
                && user.account_status == AccountStatus::Active)
    }

    fn shows_profile(&self, ctx: &Context<'_>) -> bool {
        self.1 || Self::profile_visible_to(&self.0, ctx.viewer())
    }

    fn profile<T>(&self, ctx: &Context<'_>, value: Option<T>) -> Option<T> {
        value.filter(|_| self.shows_profile(ctx))
    }
}

/// A person using an Easel app: a user, a vendor or an admin. Wherever a `User` appears (an
/// owner, a gift's counterparty, ...), a PRIVATE profile, or the profile of an account that
/// is not active, shows others its `id` only: `username`, `displayName`, `avatarUrl`, `bio`
/// and `vendorProfile` are null for everyone but the user and admins. Private fields
/// (`email`, `phone`, `accountStatus`, `referralCode`, ...) are null for everyone but the
/// user and admins, whatever the profile's visibility.
#[Object]
impl User {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Unique public handle (`^[a-zA-Z0-9_]{3,30}$`), if chosen. Null to others when the
    /// profile is private or the account not active.
    async fn username(&self, ctx: &Context<'_>) -> Option<&str> {
        self.profile(ctx, self.0.username.as_deref())
    }

    /// Name shown to others. Null to others when the profile is private or the account not
    /// active.
    async fn display_name(&self, ctx: &Context<'_>) -> Option<&str> {
        self.profile(ctx, self.0.display_name.as_deref())
    }

    /// Profile picture URL. Null to others when the profile is private or the account not
    /// active.
    async fn avatar_url(&self, ctx: &Context<'_>) -> Option<&str> {
        self.profile(ctx, self.0.avatar_url.as_deref())
    }

    /// Short self-description. Null to others when the profile is private or the account not
    /// active.
    async fn bio(&self, ctx: &Context<'_>) -> Option<&str> {
        self.profile(ctx, self.0.bio.as_deref())
    }

    /// What the user may do.
    async fn role(&self) -> Role {
        self.0.role
    }

    /// Plan tier (sets allowances and prices).
    async fn subscription_tier(&self) -> SubscriptionTier {
        self.0.subscription_tier
    }

    /// Who may see this profile.
    async fn profile_visibility(&self) -> ProfileVisibility {
        self.0.profile_visibility
    }

    /// Whether public characters of this user may appear in the showcase feed.
    async fn allow_gallery_showcase(&self) -> bool {
        self.0.allow_gallery_showcase
    }

    /// When the account was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The vendor profile, for vendors. It names the business behind the account, so it is
    /// part of the profile: null to others when the profile is private or the account not
    /// active.
    async fn vendor_profile(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<VendorProfile>> {
        if !self.shows_profile(ctx) {
            return Ok(None);
        }
        Ok(ctx
            .loader::<crate::accounts::loaders::AccountsLoader>()?
            .load_one(VendorProfileOf(self.0.id))
            .await?
            .map(VendorProfile))
    }

    /// Credits and today's allowance (the user and admins only).
    async fn credits(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<crate::credits::account::CreditAccount>> {
        if !(self.1 || ctx.viewer().is_self_or_admin(self.0.id)) {
            return Ok(None);
        }
        crate::credits::account::account_of(ctx, self.0.id).await
    }

    /// The live plan subscription (the user and admins only; null without one).
    async fn subscription(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<crate::payments::subscriptions::graphql::PlanSubscription>>
    {
        if !(self.1 || ctx.viewer().is_self_or_admin(self.0.id)) {
            return Ok(None);
        }
        crate::payments::subscriptions::graphql::of_user(ctx, self.0.id).await
    }

    /// Phone number in E.164 (the user and admins only).
    async fn phone(&self, ctx: &Context<'_>) -> Option<&str> {
        self.private(ctx, self.0.phone.as_deref())
    }

    /// Email address (the user and admins only).
    async fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        self.private(ctx, self.0.email.as_deref())
    }

    /// When the phone number was verified (the user and admins only).
    async fn phone_verified_at(&self, ctx: &Context<'_>) -> Option<DateTime<Utc>> {
        self.private(ctx, self.0.phone_verified_at)
    }

    /// Whether the email address was confirmed with its verification link (the user and
    /// admins only).
    async fn email_verified(&self, ctx: &Context<'_>) -> Option<bool> {
        self.private(ctx, Some(self.0.email_verified_at.is_some()))
    }

    /// Whether the phone number was confirmed with a code (the user and admins only).
    async fn phone_verified(&self, ctx: &Context<'_>) -> Option<bool> {
        self.private(ctx, Some(self.0.phone_verified_at.is_some()))
    }

    /// Account state (the user and admins only).
    async fn account_status(&self, ctx: &Context<'_>) -> Option<AccountStatus> {
        self.private(ctx, Some(self.0.account_status))
    }

    /// Preferred language tag, e.g. `en` (the user and admins only).
    async fn preferred_language(&self, ctx: &Context<'_>) -> Option<&str> {
        self.private(ctx, Some(self.0.preferred_language.as_str()))
    }

    /// IANA time zone; daily allowances reset at its midnight (the user and admins only).
    async fn timezone(&self, ctx: &Context<'_>) -> Option<&str> {
        self.private(ctx, Some(self.0.timezone.as_str()))
    }

    /// The code others give at sign-up to be referred by this user (the user and admins only).
    async fn referral_code(&self, ctx: &Context<'_>) -> Option<&str> {
        self.private(ctx, self.0.referral_code.as_deref())
    }

    /// Last sign-in (the user and admins only).
    async fn last_login_at(&self, ctx: &Context<'_>) -> Option<DateTime<Utc>> {
        self.private(ctx, self.0.last_login_at)
    }

    /// The users who signed up with this user's `referralCode`, newest first (the user and
    /// admins only; null for others).
    async fn referrals(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> async_graphql::Result<
        Option<
            async_graphql::connection::Connection<
                async_graphql::connection::OpaqueCursor<(DateTime<Utc>, uuid::Uuid)>,
                crate::growth::referrals::Referral,
            >,
        >,
    > {
        if !(self.1 || ctx.viewer().is_self_or_admin(self.0.id)) {
            return Ok(None);
        }
        crate::growth::referrals::referrals_of(ctx, self.0.id, first, after)
            .await
            .map(Some)
    }

    /// How many users this user referred, how many of those were rewarded, and the credits
    /// earned by them (the user and admins only).
    async fn referral_stats(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<crate::growth::referrals::ReferralStats>> {
        if !(self.1 || ctx.viewer().is_self_or_admin(self.0.id)) {
            return Ok(None);
        }
        crate::growth::referrals::stats_of(ctx, self.0.id)
            .await
            .map(Some)
    }

    /// The user's active sessions, most recently used first, at most 100 (the user only;
    /// null for others, admins included).
    async fn sessions(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Vec<crate::accounts::security::Session>>> {
        crate::accounts::security::sessions_of(ctx, &self.0).await
    }

    /// The identity-provider accounts linked to this account, oldest first (the user only;
    /// null for others, admins included).
    async fn linked_accounts(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Vec<crate::accounts::security::LinkedAccount>>> {
        crate::accounts::security::linked_accounts_of(ctx, &self.0).await
    }
}

impl User {
    fn private<T>(&self, ctx: &Context<'_>, value: Option<T>) -> Option<T> {
        value.filter(|_| self.1 || ctx.viewer().is_self_or_admin(self.0.id))
    }
}

/// A vendor's business profile.
pub struct VendorProfile(pub VendorProfileRow);

/// A vendor's business profile (seed 001 vendors).
#[Object]
impl VendorProfile {
    /// The vendor's user id: a stable key for client caches.
    async fn id(&self) -> ID {
        ID(self.0.user_id.to_string())
    }

    /// The business name shown on albums.
    async fn business_name(&self) -> &str {
        &self.0.business_name
    }

    /// Free-form contact details.
    async fn contact_info(&self) -> Json<&serde_json::Value> {
        Json(&self.0.contact_info)
    }

    /// Links to social profiles.
    async fn social_links(&self) -> Json<&serde_json::Value> {
        Json(&self.0.social_links)
    }

    /// Whether Easel verified the business.
    async fn is_verified(&self) -> bool {
        self.0.is_verified
    }

    /// Albums the vendor may still publish without a plan.
    async fn free_gallery_remaining(&self) -> i32 {
        self.0.free_gallery_remaining
    }
}

/// A signed-in session.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Send as `Authorization: Bearer <accessToken>`; short-lived.
    access_token: String,
    /// When the access token stops working; refresh before then.
    access_token_expires_at: DateTime<Utc>,
    /// Exchange with `refreshSession` for new tokens; works once.
    refresh_token: String,
    /// When the session ends unless refreshed.
    refresh_token_expires_at: DateTime<Utc>,
    /// The signed-in user.
    user: User,
    /// Whether this sign-in created the account.
    is_new_user: bool,
}

impl From<Auth> for AuthPayload {
    fn from(a: Auth) -> Self {
        AuthPayload {
            access_token: a.access_token,
            access_token_expires_at: a.access_token_expires_at,
            refresh_token: a.refresh_token,
            refresh_token_expires_at: a.refresh_token_expires_at,
            user: User::to_owner(a.user),
            is_new_user: a.is_new_user,
        }
    }
}

crate::db_enum! {
    /// Why a one-time code is sent.
    pub enum OtpPurpose {
        /// Sign in (or sign up) with the phone number.
        Login => "login",
    }
}

/// Input of `requestOtp`.
#[derive(InputObject)]
pub struct RequestOtpInput {
    /// Phone number with country code, in any common format (`+1 415 555 2671`).
    phone: String,
    /// What the code is for (only `LOGIN` so far).
    #[graphql(default_with = "OtpPurpose::Login")]
    purpose: OtpPurpose,
}

/// A code is on its way.
#[derive(SimpleObject)]
pub struct RequestOtpPayload {
    /// When the code stops working.
    expires_at: DateTime<Utc>,
    /// Wait this long before asking for another code.
    resend_after_seconds: u64,
}

/// Input of `verifyOtp`.
#[derive(InputObject)]
pub struct VerifyOtpInput {
    /// The phone number the code was sent to.
    phone: String,
    /// The 6-digit code.
    code: String,
    /// Another user's `referralCode` (any case), used only when this creates the account
    /// (signing in to an existing account ignores it). An unknown code is `BAD_USER_INPUT`
    /// on `input.referralCode`.
    referral_code: Option<String>,
}

/// Input of `signUp`.
#[derive(InputObject)]
pub struct SignUpInput {
    /// The address to sign in with; one account per address (case-insensitive).
    email: String,
    /// 8 to 128 characters.
    password: String,
    /// 3 to 30 letters, digits or underscores, unique; it can be set later with
    /// `updateProfile`.
    username: Option<String>,
    /// Another user's `referralCode` (any case): that user referred this one. An unknown
    /// code is `BAD_USER_INPUT` on `input.referralCode` and creates nothing.
    referral_code: Option<String>,
}

/// Input of `signIn`.
#[derive(InputObject)]
pub struct SignInInput {
    /// The address the account signed up with (any case).
    email: String,
    /// The account's password.
    password: String,
}

/// Input of `updateProfile`: omitted fields stay as they are; `null` clears optional ones.
#[derive(InputObject)]
pub struct UpdateProfileInput {
    /// Up to 50 characters.
    display_name: MaybeUndefined<String>,
    /// 3 to 30 letters, digits or underscores, not taken by another user.
    username: MaybeUndefined<String>,
    /// Up to 500 characters.
    bio: MaybeUndefined<String>,
    /// An http(s) URL.
    avatar_url: MaybeUndefined<String>,
    /// Who may see the profile.
    profile_visibility: Option<ProfileVisibility>,
    /// Whether the user's public characters may appear in `galleryFeed`.
    allow_gallery_showcase: Option<bool>,
    /// A language tag such as `en` or `pt-BR`.
    preferred_language: Option<String>,
    /// An IANA time zone such as `Europe/Berlin`.
    timezone: Option<String>,
}

/// Input of `becomeVendor`.
#[derive(InputObject)]
pub struct BecomeVendorInput {
    /// The name shown on the vendor's albums, 1 to 100 characters.
    business_name: String,
    /// A JSON object of at most 4 kB, e.g. `{"email": "shop@example.com"}`.
    contact_info: Option<Json<serde_json::Value>>,
    /// A JSON object of at most 4 kB, e.g. `{"instagram": "https://instagram.com/shop"}`.
    social_links: Option<Json<serde_json::Value>>,
}

fn maybe(v: MaybeUndefined<String>) -> Option<Option<String>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(s) => Some(Some(s)),
    }
}

fn meta(ctx: &Context<'_>) -> RequestMeta {
    ctx.data_opt::<RequestMeta>().cloned().unwrap_or_default()
}

/// Account queries.
#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The signed-in user, or null for anonymous requests.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = ctx.viewer().user_id() else {
            return Ok(None);
        };
        let row = ctx
            .loader::<crate::accounts::loaders::AccountsLoader>()?
            .load_one(UserId(id))
            .await?;
        Ok(row.map(User::new))
    }

    /// A user's public profile by id or username (give exactly one). Null when there is no
    /// such user, or the profile is private or the account not active (the user and admins
    /// still see it).
    async fn user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user's id (give `id` or `username`, not both).")] id: Option<ID>,
        #[graphql(desc = "The user's username (give `id` or `username`, not both).")]
        username: Option<String>,
    ) -> async_graphql::Result<Option<User>> {
        let row = match (id, username) {
            (Some(id), None) => {
                let id = parse_id(&id, "id")?;
                ctx.loader::<crate::accounts::loaders::AccountsLoader>()?
                    .load_one(UserId(id))
                    .await?
            }
            (None, Some(name)) => service::user_by_username(ctx.state()?, &name).await?,
            _ => {
                return Err(
                    AppError::bad_input("id", "give exactly one of `id` and `username`").into(),
                );
            }
        };
        Ok(row
            // A deleted account is a tombstone nobody looks up.
            .filter(|u| u.account_status != crate::accounts::AccountStatus::Deleted)
            .filter(|u| User::profile_visible_to(u, ctx.viewer()))
            .map(User::new))
    }
}

/// Account mutations.
#[derive(Default)]
pub struct AccountsMutation;

#[Object]
impl AccountsMutation {
    /// Sends a 6-digit sign-in code by SMS (in development: to the server log). Throttled per
    /// phone and per client: `RATE_LIMITED` carries `retryAfterSeconds`.
    async fn request_otp(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")] input: RequestOtpInput,
    ) -> async_graphql::Result<RequestOtpPayload> {
        let OtpPurpose::Login = input.purpose;
        let sent = service::request_otp(ctx.state()?, &meta(ctx), &input.phone).await?;
        Ok(RequestOtpPayload {
            expires_at: sent.expires_at,
            resend_after_seconds: sent.resend_after_seconds,
        })
    }

    /// Signs in with a code from `requestOtp`; creates the account (with its sign-up credits)
    /// on first use. A code works once and dies after 5 wrong tries.
    async fn verify_otp(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")] input: VerifyOtpInput,
    ) -> async_graphql::Result<AuthPayload> {
        let auth = service::verify_otp(
            ctx.state()?,
            &meta(ctx),
            &input.phone,
            &input.code,
            input.referral_code.as_deref(),
        )
        .await?;
        Ok(auth.into())
    }

    /// Creates an account with email and password and signs it in.
    async fn sign_up(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")] input: SignUpInput,
    ) -> async_graphql::Result<AuthPayload> {
        let auth = service::sign_up(
            ctx.state()?,
            &meta(ctx),
            &input.email,
            &input.password,
            input.username.as_deref(),
            input.referral_code.as_deref(),
        )
        .await?;
        Ok(auth.into())
    }

    /// Signs in with email and password.
    async fn sign_in(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")] input: SignInInput,
    ) -> async_graphql::Result<AuthPayload> {
        Ok(
            service::sign_in(ctx.state()?, &meta(ctx), &input.email, &input.password)
                .await?
                .into(),
        )
    }

    /// Exchanges a refresh token for new tokens. The old refresh token stops working; using
    /// it again revokes the session.
    async fn refresh_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The refresh token of the session, from an `AuthPayload`; it is used once and replaced."
        )]
        refresh_token: String,
    ) -> async_graphql::Result<AuthPayload> {
        Ok(
            service::refresh_session(ctx.state()?, &meta(ctx), &refresh_token)
                .await?
                .into(),
        )
    }

    /// Ends this session (its refresh token stops working), or every session of the viewer.
    #[graphql(guard = "Authenticated")]
    async fn sign_out(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "End every session of the viewer, not only this one (default false).")]
        all_sessions: Option<bool>,
    ) -> async_graphql::Result<bool> {
        let viewer = require_user(ctx)?;
        Ok(service::sign_out(
            ctx.state()?,
            &meta(ctx),
            viewer,
            all_sessions.unwrap_or(false),
        )
        .await?)
    }

    /// Changes the viewer's profile.
    #[graphql(guard = "Authenticated")]
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: UpdateProfileInput,
    ) -> async_graphql::Result<User> {
        let viewer = require_user(ctx)?;
        let changes = ProfileInput {
            display_name: maybe(input.display_name),
            username: maybe(input.username),
            bio: maybe(input.bio),
            avatar_url: maybe(input.avatar_url),
            profile_visibility: input.profile_visibility,
            allow_gallery_showcase: input.allow_gallery_showcase,
            preferred_language: input.preferred_language,
            timezone: input.timezone,
        };
        Ok(User::new(
            service::update_profile(ctx.state()?, viewer.id, changes).await?,
        ))
    }

    /// Makes the viewer a vendor, with a vendor profile.
    #[graphql(guard = "Authenticated")]
    async fn become_vendor(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: BecomeVendorInput,
    ) -> async_graphql::Result<User> {
        let viewer = require_user(ctx)?;
        let empty = || serde_json::json!({});
        let (user, _) = service::become_vendor(
            ctx.state()?,
            &meta(ctx),
            viewer.id,
            &input.business_name,
            input.contact_info.map_or_else(empty, |j| j.0),
            input.social_links.map_or_else(empty, |j| j.0),
        )
        .await?;
        Ok(User::new(user))
    }

    /// Admin: suspends, bans or reactivates an account (suspending ends its sessions).
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn set_account_status(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account to change (not the admin's own).")] user_id: ID,
        #[graphql(desc = "The new status; any but ACTIVE revokes the account's sessions.")]
        status: AccountStatus,
    ) -> async_graphql::Result<User> {
        let admin = require_user(ctx)?;
        let user_id = parse_id(&user_id, "userId")?;
        Ok(User::new(
            service::set_account_status(ctx.state()?, &meta(ctx), admin, user_id, status).await?,
        ))
    }
}
