//! Subscriptions as the other capabilities ask about them: whether a user holds a running
//! paid plan (the gallery's album quota applies only without one).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{db::schema::subscriptions, error::AppResult};

/// Whether `user` holds a running paid plan: a trial or active subscription whose current
/// period has not ended. On the caller's connection, so it can run in its transaction.
pub async fn has_active_plan(conn: &mut AsyncPgConnection, user: Uuid) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        subscriptions::table
            .filter(subscriptions::user_id.eq(user))
            .filter(subscriptions::status.eq_any(["trial", "active"]))
            .filter(subscriptions::current_period_end.gt(diesel::dsl::now)),
    ))
    .get_result(conn)
    .await?)
}
