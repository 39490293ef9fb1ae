//! Rows and queries of social sign-in: pending authorization requests (`oauth_states`) and
//! the provider accounts linked to users (`oauth_accounts`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::accounts::model::UserRow;
use crate::db::schema::{oauth_accounts, oauth_states, users};

diesel::define_sql_function! {
    /// SQL `lower()`, for the case-insensitive email index.
    fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

// ---- pending authorization requests ---------------------------------------------------

#[derive(Insertable)]
#[diesel(table_name = oauth_states)]
pub struct NewState<'a> {
    pub state_hash: &'a str,
    pub provider: &'a str,
    pub redirect_uri: &'a str,
    pub nonce: &'a str,
    pub pkce_verifier: &'a str,
    pub user_id: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = oauth_states, check_for_backend(diesel::pg::Pg))]
pub struct StateRow {
    pub provider: String,
    pub redirect_uri: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

pub async fn insert_state(conn: &mut AsyncPgConnection, state: &NewState<'_>) -> QueryResult<()> {
    diesel::insert_into(oauth_states::table)
        .values(state)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Marks the pending request used and returns it, when it exists, has not expired, was not
/// used, and was started by `user` (or anonymously when `user` is none): a request works once.
pub async fn consume_state(
    conn: &mut AsyncPgConnection,
    state_hash: &str,
    user: Option<Uuid>,
) -> QueryResult<Option<StateRow>> {
    diesel::update(
        oauth_states::table
            .filter(oauth_states::state_hash.eq(state_hash))
            .filter(oauth_states::consumed_at.is_null())
            .filter(oauth_states::expires_at.gt(diesel::dsl::now))
            .filter(oauth_states::user_id.is_not_distinct_from(user)),
    )
    .set(oauth_states::consumed_at.eq(diesel::dsl::now))
    .returning(StateRow::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Drops requests that expired over a day ago (called now and then by the server); returns
/// how many.
pub async fn prune_states(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    let before = Utc::now() - chrono::Duration::days(1);
    diesel::delete(oauth_states::table.filter(oauth_states::expires_at.lt(before)))
        .execute(conn)
        .await
}

// ---- linked provider accounts ---------------------------------------------------------

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = oauth_accounts, check_for_backend(diesel::pg::Pg))]
pub struct LinkRow {
    pub user_id: Uuid,
    pub provider: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = oauth_accounts)]
pub struct NewLink<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub provider: &'a str,
    pub provider_user_id: &'a str,
    pub email: Option<&'a str>,
}

pub async fn link_by_subject(
    conn: &mut AsyncPgConnection,
    provider: &str,
    subject: &str,
) -> QueryResult<Option<LinkRow>> {
    oauth_accounts::table
        .filter(oauth_accounts::provider.eq(provider))
        .filter(oauth_accounts::provider_user_id.eq(subject))
        .select(LinkRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn insert_link(conn: &mut AsyncPgConnection, link: &NewLink<'_>) -> QueryResult<()> {
    diesel::insert_into(oauth_accounts::table)
        .values(link)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Keeps the email the provider last gave for a link.
pub async fn update_link_email(
    conn: &mut AsyncPgConnection,
    provider: &str,
    subject: &str,
    email: Option<&str>,
) -> QueryResult<()> {
    diesel::update(
        oauth_accounts::table
            .filter(oauth_accounts::provider.eq(provider))
            .filter(oauth_accounts::provider_user_id.eq(subject)),
    )
    .set(oauth_accounts::email.eq(email))
    .execute(conn)
    .await
    .map(|_| ())
}

/// A user's linked provider accounts, oldest first.
pub async fn links_of(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<Vec<LinkRow>> {
    oauth_accounts::table
        .filter(oauth_accounts::user_id.eq(user))
        .order((oauth_accounts::created_at.asc(), oauth_accounts::id.asc()))
        .select(LinkRow::as_select())
        .load(conn)
        .await
}

/// Removes a user's links to `provider`; returns how many there were.
pub async fn delete_links(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    provider: &str,
) -> QueryResult<usize> {
    diesel::delete(
        oauth_accounts::table
            .filter(oauth_accounts::user_id.eq(user))
            .filter(oauth_accounts::provider.eq(provider)),
    )
    .execute(conn)
    .await
}

// ---- users ------------------------------------------------------------------------------

/// The user with this email address (any case).
pub async fn user_by_email(
    conn: &mut AsyncPgConnection,
    email: &str,
) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(lower(users::email).eq(email.to_lowercase()))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Locks the user's row until the transaction ends, and tells whether they have a password.
pub async fn lock_user_has_password(
    conn: &mut AsyncPgConnection,
    user: Uuid,
) -> QueryResult<Option<bool>> {
    users::table
        .find(user)
        .select(users::password_hash.is_not_null())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Marks the user's email verified (the identity provider vouched for it).
pub async fn set_email_verified(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<UserRow> {
    diesel::update(users::table.find(user))
        .set(users::email_verified_at.eq(diesel::dsl::now))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}
