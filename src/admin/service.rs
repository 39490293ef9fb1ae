//! The admin tools' rules: input checks, reading through the models, and the audited
//! `setCharacterFeatured` (the account changes live in the accounts service).

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde_json::json;
use uuid::Uuid;

use super::model::{self, AdminUserRow, AuditFilter, AuditRow, UserFilter};
pub use super::model::{Counted, DayCount, LedgerTotals, Revenue};
use crate::{
    AppState,
    accounts::{AccountStatus, Role, SubscriptionTier, viewer::ViewerUser},
    audit, db,
    error::{AppError, AppResult},
    gallery::service::{CharacterRow, moderation as gallery_moderation},
};

/// The longest `days` of `signupsPerDay`.
pub const MAX_SIGNUP_DAYS: i32 = 366;

/// One figure of `adminStats`.
pub enum Stat {
    UsersByStatus,
    UsersByTier,
    JobsByStatus,
}

/// A grouped count (one statement).
pub async fn counts(state: &AppState, stat: Stat) -> AppResult<Vec<Counted>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(match stat {
        Stat::UsersByStatus => model::users_by_status(&mut conn).await?,
        Stat::UsersByTier => model::users_by_tier(&mut conn).await?,
        Stat::JobsByStatus => model::jobs_by_status(&mut conn).await?,
    })
}

/// Sign-ups on each of the last `days` UTC days (1 to 366), oldest first.
pub async fn signups_per_day(state: &AppState, days: i32) -> AppResult<Vec<DayCount>> {
    if !(1..=MAX_SIGNUP_DAYS).contains(&days) {
        return Err(AppError::bad_input(
            "days",
            format!("between 1 and {MAX_SIGNUP_DAYS}"),
        ));
    }
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::signups_per_day(&mut conn, days).await?)
}

/// How long the oldest queued job has waited, in seconds.
pub async fn oldest_queued_age(state: &AppState) -> AppResult<Option<i64>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::oldest_queued_age(&mut conn).await?)
}

/// Credits sold, spent and refunded over the whole ledger.
pub async fn ledger_totals(state: &AppState) -> AppResult<LedgerTotals> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::ledger_totals(&mut conn).await?)
}

/// Completed payments per currency.
pub async fn revenue_by_currency(state: &AppState) -> AppResult<Vec<Revenue>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::revenue_by_currency(&mut conn).await?)
}

/// `adminUsers`' filter as the API takes it.
#[derive(Debug, Default)]
pub struct UserSearch {
    pub search: Option<String>,
    pub role: Option<Role>,
    pub status: Option<AccountStatus>,
    pub tier: Option<SubscriptionTier>,
}

/// Users matching the search (a substring of email, phone, username or display name, any
/// case; at most 100 characters) and filters, newest first.
pub async fn users(
    state: &AppState,
    search: UserSearch,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<AdminUserRow>> {
    let pattern = match search.search.as_deref().map(str::trim) {
        Some(s) if s.chars().count() > 100 => {
            return Err(AppError::bad_input(
                "filter.search",
                "at most 100 characters",
            ));
        }
        Some(s) if !s.is_empty() => Some(format!("%{}%", like_escape(s))),
        _ => None,
    };
    let filter = UserFilter {
        pattern,
        role: search.role,
        status: search.status,
        tier: search.tier,
    };
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::users(&mut conn, &filter, after, limit).await?)
}

/// `s` with `LIKE`'s wildcards and escape character taken literally.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Audit entries, newest first.
pub async fn audit_log(
    state: &AppState,
    filter: AuditFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<AuditRow>> {
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from > to
    {
        return Err(AppError::bad_input("filter.to", "`to` is before `from`"));
    }
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::audit_log(&mut conn, &filter, after, limit).await?)
}

/// Admin: features a character (the feed's `featured` filter and featured-first order show
/// it) or stops featuring it. Audited with the value before and after.
pub async fn set_character_featured(
    state: &AppState,
    admin: &ViewerUser,
    id: Uuid,
    featured: bool,
) -> AppResult<CharacterRow> {
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        let (before, row) = gallery_moderation::set_featured_in(conn, id, featured)
            .await?
            .ok_or(AppError::NotFound("character"))?;
        audit::admin(
            conn,
            admin.id,
            "character.featured_changed",
            "character",
            id.to_string(),
            json!({
                "owner": row.owner_id,
                "before": { "featured": before },
                "after": { "featured": featured },
            }),
        )
        .await?;
        Ok(row)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_literal() {
        assert_eq!(like_escape("50%_off\\"), "50\\%\\_off\\\\");
        assert_eq!(like_escape("ada"), "ada");
    }
}
