//! Rows and queries of the accounts capability: users, vendor profiles, OTP codes, sessions.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ipnet::IpNet;
use uuid::Uuid;

use super::{AccountStatus, ProfileVisibility, Role, SubscriptionTier};
use crate::db::schema::{otp_codes, sessions, users, vendor_profiles};

diesel::define_sql_function! {
    /// SQL `lower()`, for the case-insensitive email index.
    fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// A user as the API reads it (the password hash is never selected here).
#[derive(Debug, Clone, Queryable, Selectable, serde::Deserialize)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: Uuid,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub bio: Option<String>,
    pub role: Role,
    pub subscription_tier: SubscriptionTier,
    pub account_status: AccountStatus,
    pub phone_verified_at: Option<DateTime<Utc>>,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub preferred_language: String,
    pub timezone: String,
    pub profile_visibility: ProfileVisibility,
    pub allow_gallery_showcase: bool,
    pub referral_code: Option<String>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// SQL for the JSON of the [`UserRow`] whose id is `id_sql` (a column of the enclosing
/// query), for look-ahead plans of other capabilities' pages: the keys are [`UserRow`]'s
/// columns, so the JSON decodes into one.
pub fn user_json(id_sql: &str) -> String {
    static COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        crate::db::select_list(users::table.select(UserRow::as_select()))
    });
    format!(
        "(SELECT row_to_json(u) FROM (SELECT {} FROM users WHERE users.id = {id_sql}) u)",
        *COLUMNS
    )
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: Uuid,
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
    pub username: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub phone_verified_at: Option<DateTime<Utc>>,
    pub referral_code: &'a str,
    pub role: Role,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// Profile fields a user may change; `None` leaves a field as it is.
#[derive(AsChangeset, Default)]
#[diesel(table_name = users)]
pub struct ProfileChangeset {
    pub display_name: Option<Option<String>>,
    pub username: Option<Option<String>>,
    pub bio: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub profile_visibility: Option<ProfileVisibility>,
    pub allow_gallery_showcase: Option<bool>,
    pub preferred_language: Option<String>,
    pub timezone: Option<String>,
}

pub async fn insert_user(conn: &mut AsyncPgConnection, user: &NewUser<'_>) -> QueryResult<UserRow> {
    diesel::insert_into(users::table)
        .values(user)
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn users_by_ids(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<UserRow>> {
    users::table
        .filter(users::id.eq_any(ids))
        .select(UserRow::as_select())
        .load(conn)
        .await
}

pub async fn user_by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn user_by_phone(
    conn: &mut AsyncPgConnection,
    phone: &str,
) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::phone.eq(phone))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn user_by_username(
    conn: &mut AsyncPgConnection,
    username: &str,
) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn user_by_referral_code(
    conn: &mut AsyncPgConnection,
    code: &str,
) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::referral_code.eq(code))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A user and password hash by email, case-insensitively.
pub async fn user_with_password_by_email(
    conn: &mut AsyncPgConnection,
    email: &str,
) -> QueryResult<Option<(UserRow, Option<String>)>> {
    users::table
        .filter(lower(users::email).eq(lower(email)))
        .select((UserRow::as_select(), users::password_hash))
        .first(conn)
        .await
        .optional()
}

pub async fn record_login(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    phone_verified: bool,
) -> QueryResult<UserRow> {
    let now = Utc::now();
    let q = diesel::update(users::table.find(id)).set(users::last_login_at.eq(now));
    if phone_verified {
        diesel::update(
            users::table
                .find(id)
                .filter(users::phone_verified_at.is_null()),
        )
        .set(users::phone_verified_at.eq(now))
        .execute(conn)
        .await?;
    }
    q.returning(UserRow::as_returning()).get_result(conn).await
}

pub async fn update_profile(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    changes: &ProfileChangeset,
) -> QueryResult<UserRow> {
    diesel::update(users::table.find(id))
        .set(changes)
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn set_role(conn: &mut AsyncPgConnection, id: Uuid, role: Role) -> QueryResult<UserRow> {
    diesel::update(users::table.find(id))
        .set(users::role.eq(role))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}

/// A user, locked until the transaction ends.
pub async fn lock_user(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// The ids of every admin, locked until the transaction ends (role changes take turns).
pub async fn lock_admins(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Uuid>> {
    users::table
        .filter(users::role.eq(Role::Admin))
        .order(users::id)
        .select(users::id)
        .for_update()
        .load(conn)
        .await
}

/// Sets whether `user`'s vendor profile is verified; what it was before, or `None` when the
/// user has no vendor profile.
pub async fn set_vendor_verified(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    verified: bool,
) -> QueryResult<Option<bool>> {
    let Some(was) = vendor_profiles::table
        .find(user)
        .select(vendor_profiles::is_verified)
        .for_update()
        .first::<bool>(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    diesel::update(vendor_profiles::table.find(user))
        .set(vendor_profiles::is_verified.eq(verified))
        .execute(conn)
        .await?;
    Ok(Some(was))
}

/// Marks `user`'s vendor profile verified; false when the user has none.
pub async fn verify_vendor_profile(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<bool> {
    diesel::update(vendor_profiles::table.find(user))
        .set(vendor_profiles::is_verified.eq(true))
        .execute(conn)
        .await
        .map(|n| n > 0)
}

/// Sets a user's subscription tier (what their live subscription gives).
pub async fn set_tier(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    tier: SubscriptionTier,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .filter(users::subscription_tier.ne(tier))
        .set(users::subscription_tier.eq(tier))
        .execute(conn)
        .await
}

pub async fn set_account_status(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status: AccountStatus,
) -> QueryResult<UserRow> {
    diesel::update(users::table.find(id))
        .set(users::account_status.eq(status))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}

/// Whether PostgreSQL knows this IANA time zone name.
pub async fn timezone_exists(conn: &mut AsyncPgConnection, name: &str) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let row: Found = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1) AS found",
    )
    .bind::<diesel::sql_types::Text, _>(name)
    .get_result(conn)
    .await?;
    Ok(row.found)
}

// ---- vendor profiles ------------------------------------------------------------------

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = vendor_profiles, check_for_backend(diesel::pg::Pg))]
pub struct VendorProfileRow {
    pub user_id: Uuid,
    pub business_name: String,
    pub contact_info: serde_json::Value,
    pub social_links: serde_json::Value,
    pub is_verified: bool,
    pub free_gallery_remaining: i32,
}

#[derive(Insertable)]
#[diesel(table_name = vendor_profiles)]
pub struct NewVendorProfile<'a> {
    pub user_id: Uuid,
    pub business_name: &'a str,
    pub contact_info: &'a serde_json::Value,
    pub social_links: &'a serde_json::Value,
}

pub async fn insert_vendor_profile(
    conn: &mut AsyncPgConnection,
    profile: &NewVendorProfile<'_>,
) -> QueryResult<VendorProfileRow> {
    diesel::insert_into(vendor_profiles::table)
        .values(profile)
        .returning(VendorProfileRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn vendor_profiles_by_users(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<VendorProfileRow>> {
    vendor_profiles::table
        .filter(vendor_profiles::user_id.eq_any(ids))
        .select(VendorProfileRow::as_select())
        .load(conn)
        .await
}

// ---- one-time codes -------------------------------------------------------------------

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = otp_codes, check_for_backend(diesel::pg::Pg))]
pub struct OtpRow {
    pub id: Uuid,
    pub destination: String,
    /// The account the code was sent for (resets, `addEmail`, `addPhone`); none for sign-in.
    pub user_id: Option<Uuid>,
    pub code_hash: String,
    pub expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
    pub attempt_count: i32,
    pub created_at: DateTime<Utc>,
}

/// Serialises code requests for one destination until the transaction ends (across every
/// server process), so the resend check and the insert cannot interleave.
pub async fn lock_destination(conn: &mut AsyncPgConnection, destination: &str) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<diesel::sql_types::Text, _>(format!("otp:{destination}"))
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn insert_otp(
    conn: &mut AsyncPgConnection,
    destination: &str,
    purpose: &str,
    code_hash: &str,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(otp_codes::table)
        .values((
            otp_codes::id.eq(Uuid::now_v7()),
            otp_codes::destination.eq(destination),
            otp_codes::purpose.eq(purpose),
            otp_codes::code_hash.eq(code_hash),
            otp_codes::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The newest code sent to `destination` for `purpose`, whatever its state.
pub async fn latest_otp(
    conn: &mut AsyncPgConnection,
    destination: &str,
    purpose: &str,
) -> QueryResult<Option<OtpRow>> {
    otp_codes::table
        .filter(
            otp_codes::destination
                .eq(destination)
                .and(otp_codes::purpose.eq(purpose)),
        )
        .order((otp_codes::created_at.desc(), otp_codes::id.desc()))
        .select(OtpRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Atomically spends one of the newest live code's `max_attempts` tries; `None` when there
/// is no live code or its tries are used up. Parallel guesses cannot exceed the bound.
pub async fn reserve_otp_attempt(
    conn: &mut AsyncPgConnection,
    destination: &str,
    purpose: &str,
    max_attempts: i32,
) -> QueryResult<Option<OtpRow>> {
    let Some(latest) = latest_otp(conn, destination, purpose).await? else {
        return Ok(None);
    };
    diesel::update(
        otp_codes::table
            .find(latest.id)
            .filter(otp_codes::consumed_at.is_null())
            .filter(otp_codes::attempt_count.lt(max_attempts))
            .filter(otp_codes::expires_at.gt(diesel::dsl::now)),
    )
    .set(otp_codes::attempt_count.eq(otp_codes::attempt_count + 1))
    .returning(OtpRow::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Marks a code used; false if it already was (codes are single use).
pub async fn consume_otp(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    let n = diesel::update(
        otp_codes::table
            .find(id)
            .filter(otp_codes::consumed_at.is_null()),
    )
    .set(otp_codes::consumed_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Stores a code (or a link's secret) sent to `destination` for `user`'s account; returns its
/// id (a link carries it, so the row is found without the destination).
pub async fn insert_code_for(
    conn: &mut AsyncPgConnection,
    destination: &str,
    purpose: &str,
    code_hash: &str,
    expires_at: DateTime<Utc>,
    user: Uuid,
) -> QueryResult<Uuid> {
    let id = Uuid::now_v7();
    diesel::insert_into(otp_codes::table)
        .values((
            otp_codes::id.eq(id),
            otp_codes::destination.eq(destination),
            otp_codes::purpose.eq(purpose),
            otp_codes::code_hash.eq(code_hash),
            otp_codes::expires_at.eq(expires_at),
            otp_codes::user_id.eq(user),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

/// A code by id and purpose, whatever its state.
pub async fn otp_by_id(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    purpose: &str,
) -> QueryResult<Option<OtpRow>> {
    otp_codes::table
        .find(id)
        .filter(otp_codes::purpose.eq(purpose))
        .select(OtpRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Like [`reserve_otp_attempt`] for the code `id` (a link): spends one try of a live code.
pub async fn reserve_otp_attempt_by_id(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    purpose: &str,
    max_attempts: i32,
) -> QueryResult<Option<OtpRow>> {
    diesel::update(
        otp_codes::table
            .find(id)
            .filter(otp_codes::purpose.eq(purpose))
            .filter(otp_codes::consumed_at.is_null())
            .filter(otp_codes::attempt_count.lt(max_attempts))
            .filter(otp_codes::expires_at.gt(diesel::dsl::now)),
    )
    .set(otp_codes::attempt_count.eq(otp_codes::attempt_count + 1))
    .returning(OtpRow::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Ends every live code of `user` for `purpose` (a new password ends the other reset links).
pub async fn consume_user_codes(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    purpose: &str,
) -> QueryResult<usize> {
    diesel::update(
        otp_codes::table
            .filter(otp_codes::user_id.eq(user))
            .filter(otp_codes::purpose.eq(purpose))
            .filter(otp_codes::consumed_at.is_null()),
    )
    .set(otp_codes::consumed_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
}

/// The password hash of a user (none for accounts without a password).
pub async fn password_hash_of(
    conn: &mut AsyncPgConnection,
    user: Uuid,
) -> QueryResult<Option<String>> {
    users::table
        .find(user)
        .select(users::password_hash)
        .first(conn)
        .await
        .optional()
        .map(Option::flatten)
}

/// Replaces a user's password hash.
pub async fn set_password_hash(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    hash: &str,
) -> QueryResult<UserRow> {
    diesel::update(users::table.find(user))
        .set(users::password_hash.eq(hash))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}

/// Sets a user's email and marks it verified now (a taken address is a unique violation).
pub async fn set_verified_email(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    email: &str,
) -> QueryResult<UserRow> {
    diesel::update(users::table.find(user))
        .set((
            users::email.eq(email),
            users::email_verified_at.eq(diesel::dsl::now),
        ))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}

/// Sets a user's phone and marks it verified now (a taken number is a unique violation).
pub async fn set_verified_phone(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    phone: &str,
) -> QueryResult<UserRow> {
    diesel::update(users::table.find(user))
        .set((
            users::phone.eq(phone),
            users::phone_verified_at.eq(diesel::dsl::now),
        ))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}

/// The user's email when verified and the account active (receipts and notices go there).
pub async fn verified_email_of(
    conn: &mut AsyncPgConnection,
    user: Uuid,
) -> QueryResult<Option<String>> {
    users::table
        .find(user)
        .filter(users::email_verified_at.is_not_null())
        .filter(users::account_status.eq(AccountStatus::Active))
        .select(users::email)
        .first::<Option<String>>(conn)
        .await
        .optional()
        .map(Option::flatten)
}

/// Revokes every live token of a user but those of `keep`; returns the families revoked.
pub async fn revoke_user_sessions_except(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    keep: Uuid,
) -> QueryResult<Vec<Uuid>> {
    let mut families: Vec<Uuid> = diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user))
            .filter(sessions::family_id.ne(keep))
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(diesel::dsl::now))
    .returning(sessions::family_id)
    .get_results(conn)
    .await?;
    families.sort_unstable();
    families.dedup();
    Ok(families)
}

// ---- sessions (one row per refresh token; a family is one sign-in) ------------------------

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub rotation_counter: i32,
}

#[derive(Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub refresh_token_hash: &'a str,
    pub user_agent: Option<&'a str>,
    pub ip: Option<IpNet>,
    pub expires_at: DateTime<Utc>,
    pub rotation_counter: i32,
}

pub async fn insert_session(
    conn: &mut AsyncPgConnection,
    session: &NewSession<'_>,
) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn session_by_refresh_hash(
    conn: &mut AsyncPgConnection,
    hash: &str,
) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .filter(sessions::refresh_token_hash.eq(hash))
        .select(SessionRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Retires one refresh token; false if it was already retired (a concurrent rotation).
pub async fn retire_session(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    let n = diesel::update(
        sessions::table
            .find(id)
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(diesel::dsl::now),
        sessions::last_used_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Revokes every live token of a family; returns how many were live.
pub async fn revoke_family(conn: &mut AsyncPgConnection, family: Uuid) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .filter(sessions::family_id.eq(family))
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
}

/// Revokes every live token of a user; returns the session families that had one.
pub async fn revoke_user_sessions(
    conn: &mut AsyncPgConnection,
    user: Uuid,
) -> QueryResult<Vec<Uuid>> {
    let mut families: Vec<Uuid> = diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user))
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(diesel::dsl::now))
    .returning(sessions::family_id)
    .get_results(conn)
    .await?;
    families.sort_unstable();
    families.dedup();
    Ok(families)
}

// ---- vendors' free gallery quota (spent by the gallery, see `accounts::vendors`) -------

/// Takes `n` images of a vendor's free gallery quota; false when fewer remain.
pub async fn take_free_gallery(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    n: i32,
) -> QueryResult<bool> {
    let updated = diesel::update(
        vendor_profiles::table
            .filter(vendor_profiles::user_id.eq(user))
            .filter(vendor_profiles::free_gallery_remaining.ge(n)),
    )
    .set(vendor_profiles::free_gallery_remaining.eq(vendor_profiles::free_gallery_remaining - n))
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// What is left of a vendor's free gallery quota (none without a vendor profile).
pub async fn free_gallery_remaining(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<i32> {
    Ok(vendor_profiles::table
        .find(user)
        .select(vendor_profiles::free_gallery_remaining)
        .first(conn)
        .await
        .optional()?
        .unwrap_or(0))
}

/// Session families revoked within `window` whose every session is revoked (a family with a
/// live session was only partly signed out); `accounts::revocations` reloads them.
pub async fn families_revoked_within(
    conn: &mut AsyncPgConnection,
    window: std::time::Duration,
) -> QueryResult<Vec<Uuid>> {
    #[derive(QueryableByName)]
    struct Family {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        family_id: Uuid,
    }
    let rows: Vec<Family> = diesel::sql_query(
        "SELECT DISTINCT s.family_id FROM sessions s \
         WHERE s.revoked_at > now() - make_interval(secs => $1) \
         AND NOT EXISTS (SELECT 1 FROM sessions l \
                         WHERE l.family_id = s.family_id AND l.revoked_at IS NULL)",
    )
    .bind::<diesel::sql_types::BigInt, _>(i64::try_from(window.as_secs()).unwrap_or(i64::MAX))
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.family_id).collect())
}

// ---- deleting an account (a tombstone; see `accounts::service::erase_in`) ------------------

/// A user and their password hash, locked until the transaction ends; `None` for no such
/// user or one already deleted.
pub async fn lock_live_user(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<(UserRow, Option<String>)>> {
    users::table
        .find(id)
        .filter(users::deleted_at.is_null())
        .select((UserRow::as_select(), users::password_hash))
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Erases a user's personal data and leaves a tombstone (`account_status = 'deleted'`,
/// `deleted_at`): no identifier, name, picture, password or referral code is left, so it
/// signs in nowhere and its phone and email can sign up again. Their one-time codes, social
/// logins and vendor profile go; their sessions stay (revoked, without address or agent) so
/// every process keeps refusing their tokens. Returns the identifiers it held.
pub async fn erase_user(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Vec<String>> {
    let (phone, email): (Option<String>, Option<String>) = users::table
        .find(id)
        .select((users::phone, users::email))
        .first(conn)
        .await?;
    let destinations: Vec<String> = phone.into_iter().chain(email).collect();
    diesel::delete(
        otp_codes::table.filter(
            otp_codes::destination
                .eq_any(&destinations)
                .or(otp_codes::user_id.eq(id)),
        ),
    )
    .execute(conn)
    .await?;
    diesel::delete(
        crate::db::schema::oauth_accounts::table
            .filter(crate::db::schema::oauth_accounts::user_id.eq(id)),
    )
    .execute(conn)
    .await?;
    diesel::delete(vendor_profiles::table.find(id))
        .execute(conn)
        .await?;
    diesel::update(sessions::table.filter(sessions::user_id.eq(id)))
        .set((
            sessions::ip.eq(None::<IpNet>),
            sessions::user_agent.eq(None::<String>),
        ))
        .execute(conn)
        .await?;
    diesel::update(users::table.find(id))
        .set((
            users::phone.eq(None::<String>),
            users::email.eq(None::<String>),
            users::username.eq(None::<String>),
            users::password_hash.eq(None::<String>),
            users::display_name.eq(None::<String>),
            users::avatar_url.eq(None::<String>),
            users::bio.eq(None::<String>),
            users::referral_code.eq(None::<String>),
            users::phone_verified_at.eq(None::<DateTime<Utc>>),
            users::email_verified_at.eq(None::<DateTime<Utc>>),
            users::last_login_at.eq(None::<DateTime<Utc>>),
            users::account_status.eq(AccountStatus::Deleted),
            users::deleted_at.eq(Some(Utc::now())),
        ))
        .execute(conn)
        .await?;
    Ok(destinations)
}
