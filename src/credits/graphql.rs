//! GraphQL types and root fields of the credits capability.

use async_graphql::{
    Context, ID, InputObject, Json, Object, Subscription,
    connection::{Connection, OpaqueCursor},
};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::account::CreditAccount;
pub use super::plans::PaymentPlan;
use super::{
    TransactionKind,
    model::{HistoryFilter, PackageChanges, PackageRow, PlanChanges, PriceRow, TransactionRow},
    service,
};
use crate::graphql::{parse_id, plan::Nodes};
use crate::{
    accounts::service::{UserRow, user_json},
    db::{Fragment, decode_json},
    error::AppError,
    payments::service::{PaymentRow, payment_json},
};
use crate::{
    accounts::{
        Role, SubscriptionTier,
        guards::{Authenticated, HasRole, require_user},
        loaders::UserId,
    },
    events::Event,
    graphql::{
        ContextExt,
        pagination::{Page, connection},
    },
    payments::loaders::{PaymentId, PaymentsLoader},
};
use diesel::sql_types::{Nullable, Text};

/// A ledger entry, with what the page's look-ahead plan brought along (see
/// [`LedgerExtras`]).
pub struct CreditTransaction(pub TransactionRow, pub Option<Box<LedgerExtras>>);

/// What a planned ledger row brought along: its payment and its counterparty, each
/// `Some(None)` when the row has none, `None` when not planned (loaded as usual).
#[derive(Debug, Default, serde::Deserialize)]
pub struct LedgerExtras {
    #[serde(default, deserialize_with = "crate::db::present")]
    payment: Option<Option<PaymentRow>>,
    #[serde(default, deserialize_with = "crate::db::present")]
    counterparty: Option<Option<UserRow>>,
}

/// The JSON column of a `creditHistory` page: the payment and the counterparty of each row
/// when the selection asks for them.
fn ledger_extras(ctx: &Context<'_>) -> Fragment<Nullable<Text>> {
    Nodes::of_connection(ctx).json_column(&[
        ("payment", &|| {
            payment_json("credit_transactions.payment_id")
        }),
        ("counterparty", &|| {
            user_json("credit_transactions.counterparty_id")
        }),
    ])
}

/// One entry of the append-only credit ledger: every change of a balance is one entry.
#[Object]
impl CreditTransaction {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Why the entry exists.
    async fn kind(&self) -> TransactionKind {
        self.0.kind
    }

    /// Credits added (positive) or taken (negative) from the balance.
    async fn amount(&self) -> i64 {
        self.0.amount
    }

    /// The balance right after this entry.
    async fn balance_after(&self) -> i64 {
        self.0.balance_after
    }

    /// For usage: the part paid from the free daily allowance (not from the balance).
    async fn allowance_used(&self) -> i32 {
        self.0.allowance_used
    }

    /// Human-readable description.
    async fn description(&self) -> &str {
        &self.0.description
    }

    /// The generation job charged or refunded, if any.
    async fn job_id(&self) -> Option<ID> {
        self.0.job_id.map(|id| ID(id.to_string()))
    }

    /// The payment that bought these credits, if any.
    async fn payment(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<crate::payments::graphql::Payment>> {
        let Some(id) = self.0.payment_id else {
            return Ok(None);
        };
        let viewer = ctx.viewer();
        if let Some(planned) = self.1.as_ref().and_then(|p| p.payment.as_ref()) {
            return Ok(planned
                .as_ref()
                .filter(|p| viewer.is_self_or_admin(p.user_id))
                .map(|p| crate::payments::graphql::Payment(p.clone())));
        }
        Ok(ctx
            .loader::<PaymentsLoader>()?
            .load_one(PaymentId(id))
            .await?
            .filter(|p| ctx.viewer().is_self_or_admin(p.user_id))
            .map(crate::payments::graphql::Payment))
    }

    /// The other user of a gift.
    async fn counterparty(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<crate::accounts::graphql::User>> {
        let Some(id) = self.0.counterparty_id else {
            return Ok(None);
        };
        if let Some(planned) = self.1.as_ref().and_then(|p| p.counterparty.as_ref()) {
            return Ok(planned.clone().map(crate::accounts::graphql::User::new));
        }
        Ok(ctx
            .loader::<crate::accounts::loaders::AccountsLoader>()?
            .load_one(UserId(id))
            .await?
            .map(crate::accounts::graphql::User::new))
    }

    /// The entry this refund undoes.
    async fn refund_of_id(&self) -> Option<ID> {
        self.0.refund_of_id.map(|id| ID(id.to_string()))
    }

    /// When the entry was written (entries are listed newest first, in ledger order).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A credit package on sale.
pub struct CreditPackage(pub PackageRow);

/// A package of credits that can be bought with `purchaseCredits`.
#[Object]
impl CreditPackage {
    /// Stable identifier; `purchaseCredits` takes it as `packageId`.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Display name, e.g. `Starter`.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Longer text for the shop page.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// Credits bought.
    async fn credits(&self) -> i64 {
        self.0.credits
    }

    /// Extra credits on top.
    async fn bonus_credits(&self) -> i64 {
        self.0.bonus_credits
    }

    /// Credits granted in all.
    async fn total_credits(&self) -> i64 {
        self.0.credits.saturating_add(self.0.bonus_credits)
    }

    /// Price in minor units of `currency` (cents for USD).
    async fn price_minor(&self) -> i64 {
        self.0.price_minor
    }

    /// ISO 4217 currency code.
    async fn currency(&self) -> &str {
        &self.0.currency
    }

    /// Whether it is on sale. Inactive packages are listed to admins only and cannot be
    /// bought.
    async fn is_active(&self) -> bool {
        self.0.is_active
    }

    /// Position in `creditPackages` (ascending).
    async fn sort_order(&self) -> i32 {
        self.0.sort_order
    }

    /// A badge such as `POPULAR`.
    async fn badge_text(&self) -> Option<&str> {
        self.0.badge_text.as_deref()
    }
}

/// An operation's price as the viewer would pay it.
pub struct OperationPrice {
    row: PriceRow,
    tier: SubscriptionTier,
}

/// What an operation costs, for the viewer's tier (anonymous viewers see FREE prices).
#[Object]
impl OperationPrice {
    /// The operation's name again (as `operation`): a stable key for client caches.
    async fn id(&self) -> ID {
        ID(self.row.operation.clone())
    }

    /// e.g. `generate.character`; a model's own price adds the model with every character
    /// other than a letter or digit as `_` (`generate.character.gpt_image_1`).
    async fn operation(&self) -> &str {
        &self.row.operation
    }

    /// The model this price is for (null: the kind's price, which models without a price of
    /// their own are charged).
    async fn model(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(ctx.state()?.providers.model_of_price(&self.row.operation))
    }

    /// What the operation does, for price lists.
    async fn description(&self) -> Option<&str> {
        self.row.description.as_deref()
    }

    /// The price before the tier multiplier.
    async fn base_cost(&self) -> i64 {
        self.row.base_cost
    }

    /// The price for `tier`: base cost × the tier's multiplier, rounded up.
    async fn price(&self) -> i64 {
        service::price_for_tier(&self.row, self.tier)
    }

    /// The tier `price` is for.
    async fn tier(&self) -> SubscriptionTier {
        self.tier
    }

    /// Multiplier per tier, e.g. `{"FREE": 1.0, "PRO": 0.6}`.
    async fn tier_multipliers(&self) -> Json<&serde_json::Value> {
        Json(&self.row.tier_multipliers)
    }

    /// Uses allowed per user per day, if limited.
    async fn daily_limit(&self) -> Option<i32> {
        self.row.daily_limit
    }

    /// Uses allowed per user per minute, if limited.
    async fn per_minute_limit(&self) -> Option<i32> {
        self.row.per_minute_limit
    }

    /// The lowest tier that may use the operation, if gated.
    async fn minimum_tier(&self) -> Option<SubscriptionTier> {
        self.row.minimum_tier
    }

    /// Whether the operation is switched on at all.
    async fn is_enabled(&self) -> bool {
        self.row.is_enabled
    }

    /// Whether the viewer's tier may use it now (enabled and not gated above the tier).
    async fn is_available(&self) -> bool {
        self.row.is_enabled && service::tier_allows(self.tier, self.row.minimum_tier)
    }
}

/// Filters of `creditHistory`.
#[derive(InputObject, Default)]
pub struct CreditHistoryFilter {
    /// Only these kinds.
    kinds: Option<Vec<TransactionKind>>,
    /// From this moment on (inclusive).
    from: Option<DateTime<Utc>>,
    /// Before this moment (exclusive).
    to: Option<DateTime<Utc>>,
}

/// Input of `giftCredits`.
#[derive(InputObject)]
pub struct GiftCreditsInput {
    /// The user who receives the credits (not the viewer).
    to_user_id: ID,
    /// A positive number of credits, at most 1,000,000,000.
    amount: i64,
    /// Shown to both users, up to 200 characters.
    note: Option<String>,
    /// Retrying with the same key returns the first result instead of gifting twice.
    idempotency_key: Option<String>,
}

/// Input of `adjustCredits`.
#[derive(InputObject)]
pub struct AdjustCreditsInput {
    /// The user whose balance changes.
    user_id: ID,
    /// Credits to add (positive) or remove (negative), at most 1,000,000,000 either way.
    amount: i64,
    /// Why; kept in the ledger and the audit log.
    reason: String,
    /// Retrying with the same key returns the first result instead of adjusting twice.
    idempotency_key: Option<String>,
}

/// Input of `upsertCreditPackage`: without `id` a package is created.
#[derive(InputObject)]
pub struct CreditPackageInput {
    /// The package to change; omitted, a new package is created.
    id: Option<ID>,
    /// Display name, 1 to 100 characters on one line.
    name: String,
    /// Up to 1,000 characters.
    description: Option<String>,
    /// Credits bought, 1 to 1,000,000,000.
    credits: i64,
    /// Extra credits on top, 0 to 1,000,000,000.
    #[graphql(default)]
    bonus_credits: i64,
    /// Price in minor units of `currency`, 0 to 1,000,000,000.
    price_minor: i64,
    /// ISO 4217 code such as `USD` (any case).
    currency: String,
    /// Whether it is on sale.
    #[graphql(default = true)]
    is_active: bool,
    /// Position in `creditPackages` (ascending).
    #[graphql(default)]
    sort_order: i32,
    /// A badge such as `POPULAR`, up to 40 characters on one line.
    badge_text: Option<String>,
}

/// Input of `upsertPaymentPlan`.
#[derive(InputObject)]
pub struct PaymentPlanInput {
    /// The plan to change; omit to create one.
    id: Option<ID>,
    /// Machine name: lowercase letters, digits and underscores, unique (e.g. `pro_monthly`).
    name: String,
    /// Name to show, 1 to 100 characters.
    display_name: String,
    /// Longer text for the pricing page (at most 1000 characters).
    description: Option<String>,
    /// The tier subscribers get (a paid plan gives more than FREE).
    tier: SubscriptionTier,
    /// Price per `interval` in minor units, 0 to 1,000,000,000.
    price_minor: i64,
    /// ISO 4217 currency code.
    currency: String,
    /// `month` or `year`.
    interval: String,
    /// Credits granted each month of a paid period (0 to 1,000,000,000).
    #[graphql(default = 0)]
    monthly_credits: i64,
    /// Generations allowed each month; null for no limit.
    monthly_generation_limit: Option<i32>,
    /// Feature lines for the pricing page (at most 20, each 1 to 100 characters).
    #[graphql(default)]
    features: Vec<String>,
    /// Days of free trial a new subscriber gets (once per user), 0 to 365.
    #[graphql(default = 0)]
    trial_days: i32,
    /// A vendor plan lifts the vendor's album quota.
    #[graphql(default = false)]
    is_vendor_plan: bool,
    /// On sale (`false` archives it).
    #[graphql(default = true)]
    is_active: bool,
    /// Position in `paymentPlans`.
    #[graphql(default = 0)]
    sort_order: i32,
}

/// Input of `setOperationPrice`.
#[derive(InputObject)]
pub struct OperationPriceInput {
    /// Dotted lowercase name, up to 64 characters, e.g. `generate.character`. A new name adds
    /// an operation; a known one changes it.
    operation: String,
    /// Credits before the tier multiplier, 0 to 1,000,000,000.
    base_cost: i64,
    /// e.g. `{"FREE": 1.0, "PREMIUM": 0.8}`; missing tiers pay the base cost.
    tier_multipliers: Option<Json<serde_json::Value>>,
    /// Uses allowed per user per day (not negative); null means unlimited.
    daily_limit: Option<i32>,
    /// Uses allowed per user per minute (not negative); null means unlimited.
    per_minute_limit: Option<i32>,
    /// The lowest tier that may use the operation; null means every tier.
    minimum_tier: Option<SubscriptionTier>,
    /// Whether the operation can be used at all.
    #[graphql(default = true)]
    is_enabled: bool,
    /// What the operation does, up to 500 characters.
    description: Option<String>,
}

async fn viewer_tier(ctx: &Context<'_>) -> async_graphql::Result<SubscriptionTier> {
    let Some(id) = ctx.viewer().user_id() else {
        return Ok(SubscriptionTier::Free);
    };
    Ok(ctx
        .loader::<crate::accounts::loaders::AccountsLoader>()?
        .load_one(UserId(id))
        .await?
        .map_or(SubscriptionTier::Free, |u| u.subscription_tier))
}

/// The cursor of `creditHistory`: an entry's place in the ledger (its `seq`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LedgerPosition(pub i64);

/// Credit queries.
#[derive(Default)]
pub struct CreditsQuery;

#[Object]
impl CreditsQuery {
    /// The viewer's ledger, newest first.
    #[graphql(guard = "Authenticated")]
    async fn credit_history(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only entries matching this filter.")] filter: Option<CreditHistoryFilter>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> async_graphql::Result<Connection<OpaqueCursor<LedgerPosition>, CreditTransaction>> {
        let viewer = require_user(ctx)?;
        let page = Page::<LedgerPosition>::new(first, after)?;
        let filter = filter.unwrap_or_default();
        let filter = HistoryFilter {
            kinds: filter.kinds,
            from: filter.from,
            to: filter.to,
        };
        let after = page.after.map(|p| p.0);
        let rows = service::history(
            ctx.state()?,
            viewer.id,
            &filter,
            after,
            page.limit(),
            ledger_extras(ctx),
        )
        .await?;
        let nodes = rows
            .into_iter()
            .map(|(row, json)| Ok(CreditTransaction(row, decode_json(json)?.map(Box::new))))
            .collect::<Result<Vec<_>, diesel::result::Error>>()
            .map_err(AppError::from)?;
        Ok(connection(&page, nodes, |t| LedgerPosition(t.0.seq)))
    }

    /// Credit packages on sale, in display order.
    async fn credit_packages(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<CreditPackage>> {
        let admin = ctx.viewer().user().is_some_and(|u| u.role == Role::Admin);
        let rows = service::packages(ctx.state()?, admin).await?;
        Ok(rows.into_iter().map(CreditPackage).collect())
    }

    /// Every operation's price for the viewer's tier, with gated or disabled ones marked.
    async fn operation_prices(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<OperationPrice>> {
        let tier = viewer_tier(ctx).await?;
        let rows = service::prices(ctx.state()?).await?;
        Ok(rows
            .into_iter()
            .map(|row| OperationPrice { row, tier })
            .collect())
    }

    /// Subscription plans on sale, in display order; admins may ask for archived ones too.
    async fn payment_plans(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Admins only: include archived plans (for others this is ignored).",
            default = false
        )]
        include_archived: bool,
    ) -> async_graphql::Result<Vec<PaymentPlan>> {
        let admin = include_archived && ctx.viewer().user().is_some_and(|u| u.role == Role::Admin);
        let rows = service::plans(ctx.state()?, admin).await?;
        Ok(rows.into_iter().map(PaymentPlan).collect())
    }
}

/// Credit mutations.
#[derive(Default)]
pub struct CreditsMutation;

#[Object]
impl CreditsMutation {
    /// Gives some of the viewer's credits to another user (1 to 1,000,000,000 at a time).
    /// The sign-up bonus of an account that is not verified yet cannot be given away: such an
    /// account may gift the credits it bought or received, and a larger amount answers
    /// `FORBIDDEN` (phone accounts are verified by their sign-in code; email accounts once
    /// they confirmed their address with `verifyEmail`).
    #[graphql(guard = "Authenticated")]
    async fn gift_credits(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: GiftCreditsInput,
    ) -> async_graphql::Result<CreditTransaction> {
        let viewer = require_user(ctx)?;
        let to = parse_id(&input.to_user_id, "input.toUserId")?;
        let row = service::gift(
            ctx.state()?,
            viewer.id,
            to,
            input.amount,
            input.note.as_deref(),
            input.idempotency_key.as_deref(),
        )
        .await?;
        Ok(CreditTransaction(row, None))
    }

    /// Admin: adds or removes a user's credits, with a reason (at most 1,000,000,000 either
    /// way).
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn adjust_credits(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: AdjustCreditsInput,
    ) -> async_graphql::Result<CreditTransaction> {
        let admin = require_user(ctx)?;
        let user = parse_id(&input.user_id, "input.userId")?;
        let row = service::adjust(
            ctx.state()?,
            admin.id,
            user,
            input.amount,
            &input.reason,
            input.idempotency_key.as_deref(),
        )
        .await?;
        Ok(CreditTransaction(row, None))
    }

    /// Admin: creates or changes a credit package. Credits and bonus are at most 1,000,000,000
    /// each, the price at most 1,000,000,000 minor units; out-of-range input answers
    /// `BAD_USER_INPUT` (with `extensions.field`) and changes nothing.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn upsert_credit_package(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: CreditPackageInput,
    ) -> async_graphql::Result<CreditPackage> {
        let admin = require_user(ctx)?;
        let id = input
            .id
            .as_ref()
            .map(|id| parse_id(id, "input.id"))
            .transpose()?;
        let changes = PackageChanges {
            name: &input.name,
            description: input.description.as_deref(),
            credits: input.credits,
            bonus_credits: input.bonus_credits,
            price_minor: input.price_minor,
            currency: &input.currency,
            is_active: input.is_active,
            sort_order: input.sort_order,
            badge_text: input.badge_text.as_deref(),
        };
        Ok(CreditPackage(
            service::upsert_package(ctx.state()?, admin.id, id, &changes).await?,
        ))
    }

    /// Admin: creates (without `id`) or changes a subscription plan. A new price applies to
    /// new subscribers only: running subscriptions keep the price they agreed to. Tier,
    /// monthly credits and limits apply to every subscriber at once. Bad input answers
    /// `BAD_USER_INPUT` (with `extensions.field`) and changes nothing.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn upsert_payment_plan(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: PaymentPlanInput,
    ) -> async_graphql::Result<PaymentPlan> {
        let admin = require_user(ctx)?;
        let id = input
            .id
            .as_ref()
            .map(|id| parse_id(id, "input.id"))
            .transpose()?;
        let changes = PlanChanges {
            name: &input.name,
            display_name: &input.display_name,
            description: input.description.as_deref(),
            tier: input.tier,
            price_minor: input.price_minor,
            currency: &input.currency,
            interval: &input.interval,
            monthly_credits: input.monthly_credits,
            monthly_generation_limit: input.monthly_generation_limit,
            features: input.features.clone(),
            trial_days: input.trial_days,
            is_vendor_plan: input.is_vendor_plan,
            is_active: input.is_active,
            sort_order: input.sort_order,
        };
        Ok(PaymentPlan(
            service::upsert_plan(ctx.state()?, admin.id, id, &changes).await?,
        ))
    }

    /// Admin: takes a plan off sale (`archived: true`) or back on. Subscribers keep an
    /// archived plan until their subscription ends; nobody can start or switch to one.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn archive_payment_plan(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The plan.")] id: ID,
        #[graphql(desc = "`false` puts it back on sale.", default = true)] archived: bool,
    ) -> async_graphql::Result<PaymentPlan> {
        let admin = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(PaymentPlan(
            service::set_plan_archived(ctx.state()?, admin.id, id, archived).await?,
        ))
    }

    /// Admin: sets an operation's price and limits. The base cost is 0 to 1,000,000,000,
    /// multipliers 0 to 100; out-of-range input answers `BAD_USER_INPUT` (with
    /// `extensions.field`) and changes nothing.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn set_operation_price(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: OperationPriceInput,
    ) -> async_graphql::Result<OperationPrice> {
        let admin = require_user(ctx)?;
        let row = PriceRow {
            operation: input.operation,
            base_cost: input.base_cost,
            tier_multipliers: input
                .tier_multipliers
                .map(|j| j.0)
                .unwrap_or_else(|| serde_json::json!({})),
            daily_limit: input.daily_limit,
            per_minute_limit: input.per_minute_limit,
            minimum_tier: input.minimum_tier,
            is_enabled: input.is_enabled,
            description: input.description,
        };
        let row = service::set_price(ctx.state()?, admin.id, row).await?;
        Ok(OperationPrice {
            row,
            tier: viewer_tier(ctx).await?,
        })
    }
}

/// Credit subscriptions.
#[derive(Default)]
pub struct CreditsSubscription;

#[Subscription]
impl CreditsSubscription {
    /// The viewer's account after each ledger entry (from any server process). When the
    /// server was cut off from the database's events for a while (they travel by
    /// `LISTEN/NOTIFY`), it sends the account once when it is back, if it changed meanwhile,
    /// rather than the entries missed.
    #[graphql(guard = "Authenticated")]
    async fn credit_balance_changed(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<CreditAccount>>> {
        let viewer = require_user(ctx)?.id;
        let state = ctx.state()?.clone();
        let rx = state.events.subscribe();
        // What the client can see now: after an outage the account is sent only if it differs
        // from this (or from the last one sent). Subscribe first, so no change falls between.
        let last = service::account(&state, viewer).await.ok();
        Ok(futures_util::stream::unfold(
            (rx, state, last, false),
            move |(mut rx, state, mut last, ended)| async move {
                if ended {
                    return None;
                }
                loop {
                    let item = match rx.recv().await {
                        Ok(Event::CreditBalance { user_id, .. }) if user_id == viewer => {
                            service::account(&state, viewer).await
                        }
                        // The listener is back: entries written while it was down were not
                        // announced here.
                        Ok(Event::Resync) => {
                            let now =
                                crate::events::catch_up(|| service::account(&state, viewer)).await;
                            match now {
                                Ok(account) if last.as_ref() == Some(&account) => continue,
                                Ok(account) => Ok(account),
                                // A change may be missing: end as a subscriber that fell
                                // behind does (the client subscribes again).
                                Err(_) => {
                                    let err = crate::error::AppError::SubscriptionLagged.into();
                                    return Some((Err(err), (rx, state, last, true)));
                                }
                            }
                        }
                        Ok(_) => continue,
                        // A subscriber that fell behind ends with an error rather than miss entries.
                        Err(RecvError::Lagged(_)) => {
                            let err = crate::error::AppError::SubscriptionLagged.into();
                            return Some((Err(err), (rx, state, last, true)));
                        }
                        Err(RecvError::Closed) => return None,
                    };
                    if let Ok(account) = &item {
                        last = Some(account.clone());
                    }
                    let item = item.map(CreditAccount).map_err(Into::into);
                    return Some((item, (rx, state, last, false)));
                }
            },
        ))
    }
}
