//! GraphQL types and root fields of the admin tools. Every field here is for admins only:
//! others get `FORBIDDEN`, anonymous requests `UNAUTHENTICATED`.

use async_graphql::{
    Context, ID, InputObject, Json, Object, SimpleObject,
    connection::{Connection, OpaqueCursor},
};
use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{
    model::{AdminUserRow, AuditFilter, AuditRow},
    service::{self, LedgerTotals, Stat, UserSearch},
};
use crate::{
    accounts::{
        AccountStatus, Role, SubscriptionTier,
        graphql::User,
        guards::{HasRole, require_user},
        loaders::{AccountsLoader, UserId},
        service::{self as accounts, RequestMeta},
    },
    gallery::graphql::Character,
    generation::JobStatus,
    graphql::{
        ContextExt,
        pagination::{Page, connection},
        parse_id,
    },
};

type Res<T> = async_graphql::Result<T>;
type TimeCursor = OpaqueCursor<(DateTime<Utc>, Uuid)>;

fn meta(ctx: &Context<'_>) -> RequestMeta {
    ctx.data_opt::<RequestMeta>().cloned().unwrap_or_default()
}

/// How many users have an account status.
#[derive(SimpleObject)]
pub struct UserStatusCount {
    /// The status.
    status: AccountStatus,
    /// How many users have it.
    count: i64,
}

/// How many users have a subscription tier.
#[derive(SimpleObject)]
pub struct UserTierCount {
    /// The tier.
    tier: SubscriptionTier,
    /// How many users have it.
    count: i64,
}

/// How many accounts were created on a day.
#[derive(SimpleObject)]
pub struct DailyCount {
    /// The day (UTC).
    day: NaiveDate,
    /// Accounts created that day.
    count: i64,
}

/// How many generation jobs have a status.
#[derive(SimpleObject)]
pub struct JobStatusCount {
    /// The status.
    status: JobStatus,
    /// How many jobs have it.
    count: i64,
}

/// Money taken in one currency.
#[derive(SimpleObject)]
pub struct CurrencyAmount {
    /// ISO 4217 code, e.g. `USD`.
    currency: String,
    /// The sum of completed payments, in minor units (cents).
    amount_minor: i64,
}

/// Figures about the service. Each field is one aggregate SQL statement, run only when asked
/// for (the three credit totals share one).
#[derive(Default)]
pub struct AdminStats {
    ledger: OnceCell<LedgerTotals>,
}

impl AdminStats {
    async fn ledger(&self, ctx: &Context<'_>) -> Res<LedgerTotals> {
        let state = ctx.state()?;
        Ok(*self
            .ledger
            .get_or_try_init(|| service::ledger_totals(state))
            .await?)
    }
}

/// Every value of an enum with its count (zero when no row has it).
fn all_counted<E: Copy>(
    all: &[E],
    name: impl Fn(E) -> &'static str,
    rows: &[service::Counted],
) -> Vec<(E, i64)> {
    all.iter()
        .map(|&v| {
            let n = rows.iter().find(|r| r.key == name(v)).map_or(0, |r| r.n);
            (v, n)
        })
        .collect()
}

/// Figures about the service.
#[Object]
impl AdminStats {
    /// Users by account status (every status, zero included).
    async fn users_by_status(&self, ctx: &Context<'_>) -> Res<Vec<UserStatusCount>> {
        let rows = service::counts(ctx.state()?, Stat::UsersByStatus).await?;
        Ok(
            all_counted(AccountStatus::ALL, AccountStatus::as_str, &rows)
                .into_iter()
                .map(|(status, count)| UserStatusCount { status, count })
                .collect(),
        )
    }

    /// Users by subscription tier (every tier, zero included).
    async fn users_by_tier(&self, ctx: &Context<'_>) -> Res<Vec<UserTierCount>> {
        let rows = service::counts(ctx.state()?, Stat::UsersByTier).await?;
        Ok(
            all_counted(SubscriptionTier::ALL, SubscriptionTier::as_str, &rows)
                .into_iter()
                .map(|(tier, count)| UserTierCount { tier, count })
                .collect(),
        )
    }

    /// Accounts created on each of the last `days` days (UTC, today included), oldest first,
    /// days without sign-ups included.
    async fn signups_per_day(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many days, 1 to 366 (default 30).", default = 30)] days: i32,
    ) -> Res<Vec<DailyCount>> {
        let rows = service::signups_per_day(ctx.state()?, days).await?;
        Ok(rows
            .into_iter()
            .map(|r| DailyCount {
                day: r.day,
                count: r.n,
            })
            .collect())
    }

    /// Generation jobs by status (every status, zero included).
    async fn jobs_by_status(&self, ctx: &Context<'_>) -> Res<Vec<JobStatusCount>> {
        let rows = service::counts(ctx.state()?, Stat::JobsByStatus).await?;
        Ok(all_counted(JobStatus::ALL, JobStatus::as_str, &rows)
            .into_iter()
            .map(|(status, count)| JobStatusCount { status, count })
            .collect())
    }

    /// How long the oldest queued job has waited, in whole seconds (null when none waits).
    async fn oldest_queued_job_age_seconds(&self, ctx: &Context<'_>) -> Res<Option<i64>> {
        Ok(service::oldest_queued_age(ctx.state()?).await?)
    }

    /// Credits sold: the sum of `PURCHASE` ledger entries (credit packages paid for).
    /// Subscription credits (`SUBSCRIPTION_GRANT`) and free credits are not sales.
    async fn credits_sold(&self, ctx: &Context<'_>) -> Res<i64> {
        Ok(self.ledger(ctx).await?.sold)
    }

    /// Credits spent: the balance credits taken by `USAGE` entries, before refunds (the part
    /// of a charge paid from the daily allowance is not counted).
    async fn credits_spent(&self, ctx: &Context<'_>) -> Res<i64> {
        Ok(self.ledger(ctx).await?.spent)
    }

    /// Credits refunded: the sum of `REFUND` entries (charges of failed or cancelled jobs
    /// given back). Net spending is `creditsSpent - creditsRefunded`.
    async fn credits_refunded(&self, ctx: &Context<'_>) -> Res<i64> {
        Ok(self.ledger(ctx).await?.refunded)
    }

    /// Completed payments (credit packages and plans) per currency.
    async fn revenue_by_currency(&self, ctx: &Context<'_>) -> Res<Vec<CurrencyAmount>> {
        let rows = service::revenue_by_currency(ctx.state()?).await?;
        Ok(rows
            .into_iter()
            .map(|r| CurrencyAmount {
                currency: r.currency,
                amount_minor: r.amount_minor,
            })
            .collect())
    }
}

/// A user as `adminUsers` lists them.
pub struct AdminUser(AdminUserRow);

/// A user with what admins look at: contact details, standing, credits and warnings.
#[Object]
impl AdminUser {
    /// The user's id.
    async fn id(&self) -> ID {
        ID(self.0.0.id.to_string())
    }

    /// Email address.
    async fn email(&self) -> Option<&str> {
        self.0.0.email.as_deref()
    }

    /// Phone number in E.164.
    async fn phone(&self) -> Option<&str> {
        self.0.0.phone.as_deref()
    }

    /// Username.
    async fn username(&self) -> Option<&str> {
        self.0.0.username.as_deref()
    }

    /// Display name.
    async fn display_name(&self) -> Option<&str> {
        self.0.0.display_name.as_deref()
    }

    /// Role.
    async fn role(&self) -> Role {
        self.0.0.role
    }

    /// Account status.
    async fn status(&self) -> AccountStatus {
        self.0.0.account_status
    }

    /// Subscription tier.
    async fn tier(&self) -> SubscriptionTier {
        self.0.0.subscription_tier
    }

    /// When the account was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.0.created_at
    }

    /// Last sign-in.
    async fn last_login_at(&self) -> Option<DateTime<Utc>> {
        self.0.0.last_login_at
    }

    /// Credit balance (null for an account without a credit account).
    async fn credit_balance(&self) -> Option<i64> {
        self.0.1
    }

    /// Warnings received through moderation (reports resolved with WARN_USER).
    async fn warning_count(&self) -> i64 {
        self.0.2
    }

    /// The user with every other field.
    async fn user(&self) -> User {
        User::new(self.0.0.clone())
    }
}

/// An audit log entry.
pub struct AuditLogEntry(AuditRow);

/// Who did what, from where: one append-only audit log entry.
#[Object]
impl AuditLogEntry {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The acting user's id (null for the system).
    async fn actor_id(&self) -> Option<ID> {
        self.0.actor_id.map(|a| ID(a.to_string()))
    }

    /// The acting user (null for the system, or a user no longer there).
    async fn actor(&self, ctx: &Context<'_>) -> Res<Option<User>> {
        let Some(id) = self.0.actor_id else {
            return Ok(None);
        };
        Ok(ctx
            .loader::<AccountsLoader>()?
            .load_one(UserId(id))
            .await?
            .map(User::new))
    }

    /// `system`, `user`, `vendor` or `admin`.
    async fn actor_type(&self) -> &str {
        &self.0.actor_type
    }

    /// What happened, e.g. `account.role_changed`, `report.resolved`.
    async fn action(&self) -> &str {
        &self.0.action
    }

    /// The kind of thing acted on, e.g. `user`, `character`, `content_report`.
    async fn resource(&self) -> Option<&str> {
        self.0.resource.as_deref()
    }

    /// The id of the thing acted on.
    async fn resource_id(&self) -> Option<&str> {
        self.0.resource_id.as_deref()
    }

    /// The client address of the request, if known.
    async fn ip(&self) -> Option<String> {
        self.0.ip.map(|ip| ip.addr().to_string())
    }

    /// Details: for admin changes, `before` and `after` values of what changed.
    async fn metadata(&self) -> Json<&serde_json::Value> {
        Json(&self.0.metadata)
    }

    /// When it happened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Filter of `adminUsers`.
#[derive(InputObject, Default)]
pub struct AdminUserFilter {
    /// Part of an email, phone number, username or display name (any case, at most 100
    /// characters).
    search: Option<String>,
    /// Only users with this role.
    role: Option<Role>,
    /// Only users with this account status.
    status: Option<AccountStatus>,
    /// Only users on this tier.
    tier: Option<SubscriptionTier>,
}

/// Filter of `auditLog`: every given part must match.
#[derive(InputObject, Default)]
pub struct AuditLogFilter {
    /// Only entries by this user.
    actor_id: Option<ID>,
    /// Only this action, e.g. `report.resolved`.
    action: Option<String>,
    /// Only this kind of resource, e.g. `user`.
    resource: Option<String>,
    /// Only this resource id (give `resource` too).
    resource_id: Option<String>,
    /// Only entries at or after this time.
    from: Option<DateTime<Utc>>,
    /// Only entries before this time.
    to: Option<DateTime<Utc>>,
}

/// Admin queries.
#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// Admin: figures about users, jobs, credits and revenue.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn admin_stats(&self) -> AdminStats {
        AdminStats::default()
    }

    /// Admin: users matching the filter, newest first.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn admin_users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only users matching this filter.")] filter: Option<AdminUserFilter>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> Res<Connection<TimeCursor, AdminUser>> {
        let f = filter.unwrap_or_default();
        let page = Page::<(DateTime<Utc>, Uuid)>::new(first, after)?;
        let search = UserSearch {
            search: f.search,
            role: f.role,
            status: f.status,
            tier: f.tier,
        };
        let rows = service::users(ctx.state()?, search, page.after, page.limit()).await?;
        Ok(connection(
            &page,
            rows.into_iter().map(AdminUser).collect(),
            |u| (u.0.0.created_at, u.0.0.id),
        ))
    }

    /// Admin: the audit log, newest first.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only entries matching this filter.")] filter: Option<AuditLogFilter>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> Res<Connection<TimeCursor, AuditLogEntry>> {
        let f = filter.unwrap_or_default();
        let page = Page::<(DateTime<Utc>, Uuid)>::new(first, after)?;
        let filter = AuditFilter {
            actor_id: f
                .actor_id
                .map(|id| parse_id(&id, "filter.actorId"))
                .transpose()?,
            action: f.action,
            resource: f.resource,
            resource_id: f.resource_id,
            from: f.from,
            to: f.to,
        };
        let rows = service::audit_log(ctx.state()?, filter, page.after, page.limit()).await?;
        Ok(connection(
            &page,
            rows.into_iter().map(AuditLogEntry).collect(),
            |e| (e.0.created_at, e.0.id),
        ))
    }
}

/// Admin mutations.
#[derive(Default)]
pub struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Admin: features a character or stops featuring it (`galleryFeed`'s `featured` filter
    /// and featured-first order follow). Audit-logged.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn set_character_featured(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The character.")] id: ID,
        #[graphql(desc = "Whether it is featured.")] featured: bool,
    ) -> Res<Character> {
        let admin = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        let row = service::set_character_featured(ctx.state()?, admin, id, featured).await?;
        Ok(Character::new(row))
    }

    /// Admin: marks a vendor's business verified or not (`VendorProfile.isVerified`).
    /// Verifying a `USER` makes them a `VENDOR` (their sessions end: the role travels in
    /// access tokens). `BAD_USER_INPUT` on `userId` without a vendor profile. Audit-logged.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn verify_vendor(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The vendor's user id.")] user_id: ID,
        #[graphql(desc = "Whether the business is verified.")] verified: bool,
    ) -> Res<User> {
        let admin = require_user(ctx)?;
        let user_id = parse_id(&user_id, "userId")?;
        let row = accounts::set_vendor_verified(ctx.state()?, &meta(ctx), admin, user_id, verified)
            .await?;
        Ok(User::new(row))
    }

    /// Admin: gives a user another role. Not the admin's own (`BAD_USER_INPUT` on
    /// `userId`), so the last admin is never demoted; an admin demoted meanwhile is refused
    /// (`FORBIDDEN`). The user's sessions end at
    /// once (the role travels in access tokens); their next sign-in carries the new role.
    /// Audit-logged.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn set_user_role(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user (not the admin themself).")] user_id: ID,
        #[graphql(desc = "The new role.")] role: Role,
    ) -> Res<User> {
        let admin = require_user(ctx)?;
        let user_id = parse_id(&user_id, "userId")?;
        let row = accounts::set_user_role(ctx.state()?, &meta(ctx), admin, user_id, role).await?;
        Ok(User::new(row))
    }
}
