//! Rows and queries of the accounts capability.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{AccountStatus, ProfileVisibility, Role, SubscriptionTier};
use crate::db::schema::users;

/// A user as the API reads it (secrets such as the password hash are not selected).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: Uuid,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub bio: Option<String>,
    pub role: Role,
    pub subscription_tier: SubscriptionTier,
    pub account_status: AccountStatus,
    pub profile_visibility: ProfileVisibility,
    pub created_at: DateTime<Utc>,
}

/// Users by id, in one statement.
pub async fn users_by_ids(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<UserRow>> {
    users::table
        .filter(users::id.eq_any(ids))
        .select(UserRow::as_select())
        .load(conn)
        .await
}
