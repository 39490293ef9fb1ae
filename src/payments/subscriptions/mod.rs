//! Subscriptions: a user's plan, bought at a gateway (renewed, failed, changed and cancelled
//! by its webhooks), tried, or given (an admin gift, an invite, a referral reward). Whatever
//! changes a subscription also sets the user's tier in the same transaction, under the user's
//! subscription lock; a plan's monthly credits are granted once per paid period (a
//! `subscription_periods` row, then its `subscription_grant` ledger entry).

pub mod graphql;
pub mod model;

use chrono::{DateTime, Months, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

pub use model::SubscriptionRow;
use model::{Changes, NewSubscription};

use super::{
    Gateway, SubscriptionSource, SubscriptionStatus,
    model::PaymentRow,
    notices::{SubscriptionNotice, subscription_notice_in},
};
use crate::{
    accounts::{self, SubscriptionTier},
    credits::{self, model::PlanRow},
    error::{AppError, AppResult},
};

/// The most days one gift, invite or referral reward may give.
pub const MAX_GIFT_DAYS: i32 = 3650;

/// Whether `user` holds a live vendor plan (the gallery's album quota applies only without
/// one). On the caller's connection, so it can run in its transaction.
pub async fn has_vendor_plan(conn: &mut AsyncPgConnection, user: Uuid) -> AppResult<bool> {
    let Some(sub) = model::live(conn, user).await? else {
        return Ok(false);
    };
    Ok(plan(conn, sub.plan_id).await?.is_vendor_plan)
}

/// The user's live subscription, in a transaction of its own.
pub async fn live(state: &crate::AppState, user: Uuid) -> AppResult<Option<SubscriptionRow>> {
    let mut conn = crate::db::conn(&state.pool).await?;
    Ok(model::live(&mut conn, user).await?)
}

/// The user's live subscription (trial, active or past due), if any.
pub async fn live_in(
    conn: &mut AsyncPgConnection,
    user: Uuid,
) -> AppResult<Option<SubscriptionRow>> {
    Ok(model::live(conn, user).await?)
}

async fn plan(conn: &mut AsyncPgConnection, id: Uuid) -> AppResult<PlanRow> {
    credits::service::plan_in(conn, id)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("subscription of a missing plan {id}")))
}

fn rank(tier: SubscriptionTier) -> usize {
    SubscriptionTier::ALL
        .iter()
        .position(|t| *t == tier)
        .unwrap_or(0)
}

/// `at` plus `months`, or the far future should it not be representable.
pub fn add_months(at: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    at.checked_add_months(Months::new(months))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Sets the user's tier from their live subscription's plan (FREE without one).
async fn sync_tier(conn: &mut AsyncPgConnection, user: Uuid) -> AppResult<()> {
    let tier = match model::live(conn, user).await? {
        Some(sub) => plan(conn, sub.plan_id).await?.tier,
        None => SubscriptionTier::Free,
    };
    accounts::service::set_tier_in(conn, user, tier).await
}

/// Gives `user` `days` days of `plan` without payment: an admin's gift, an invite token, a
/// referral reward. Inside the caller's
/// transaction. Without a live subscription it starts one; a live given one is extended by
/// `days` (and moves to `plan` if that is the higher tier). A user who pays for a plan
/// (`CONFLICT`) cannot be given days on top: the gateway bills that one.
pub async fn grant_days_in(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    plan_id: Uuid,
    days: i32,
    source: SubscriptionSource,
) -> AppResult<SubscriptionRow> {
    if !(1..=MAX_GIFT_DAYS).contains(&days) {
        return Err(AppError::bad_input(
            "input.days",
            format!("between 1 and {MAX_GIFT_DAYS} days"),
        ));
    }
    if source == SubscriptionSource::Checkout {
        return Err(AppError::internal(anyhow::anyhow!(
            "a checkout subscription is not given"
        )));
    }
    let plan = credits::service::plan_in(conn, plan_id)
        .await?
        .filter(PlanRow::is_paid_on_sale)
        .ok_or_else(|| AppError::bad_input("input.planId", "no such paid plan on sale"))?;
    model::lock_user(conn, user).await?;
    let now = Utc::now();
    let length = chrono::Duration::days(i64::from(days));
    let row = match model::live(conn, user).await? {
        Some(sub) if sub.gateway.is_some() => {
            return Err(AppError::Conflict(
                "this user pays for a plan; plan days cannot be added to a paid subscription"
                    .into(),
            ));
        }
        Some(sub) => {
            let current = self::plan(conn, sub.plan_id).await?;
            let upgrade = rank(plan.tier) > rank(current.tier);
            let changes = Changes {
                plan_id: upgrade.then_some(plan.id),
                // A trial that is extended by a gift is a gift from now on.
                status: Some(SubscriptionStatus::Active),
                current_period_end: Some(sub.current_period_end.max(now) + length),
                ..Changes::default()
            };
            model::update(conn, sub.id, &changes).await?
        }
        None => {
            model::insert(
                conn,
                &NewSubscription {
                    id: Uuid::now_v7(),
                    user_id: user,
                    plan_id: plan.id,
                    status: SubscriptionStatus::Active,
                    source,
                    current_period_start: now,
                    current_period_end: now + length,
                    gateway: None,
                    gateway_ref: None,
                    price_minor: None,
                    currency: None,
                    billing_interval: None,
                    trial_ends_at: None,
                    payment_id: None,
                    usage_window_start: now,
                },
            )
            .await?
        }
    };
    sync_tier(conn, user).await?;
    Ok(row)
}

/// Records a paid period and grants its credits once: the plan's monthly credits times the
/// months of the period. `false` when the period was recorded before.
async fn grant_period_in(
    conn: &mut AsyncPgConnection,
    sub: &SubscriptionRow,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    invoice_ref: Option<&str>,
) -> AppResult<bool> {
    let plan = plan(conn, sub.plan_id).await?;
    let credits = plan
        .monthly_credits
        .saturating_mul(i64::from(plan.months()));
    if !model::insert_period(conn, sub, start, end, credits, invoice_ref).await? {
        return Ok(false);
    }
    if credits > 0 {
        let t = credits::service::grant_subscription_in(
            conn,
            sub.user_id,
            credits,
            &format!("{}: credits for the period", plan.display_name),
        )
        .await?;
        model::set_period_transaction(conn, sub.id, start, t.id).await?;
    }
    Ok(true)
}

/// The start of a live subscription from its checkout payment, inside the webhook's
/// transaction. `gateway_ref` is the gateway's subscription (the sandbox has none: its
/// subscription is named after the payment). The sandbox's first period is paid with the
/// checkout; a real gateway reports each paid period (the first too) with its own event.
/// Answers a note for the webhook log when nothing could start.
pub async fn start_from_payment_in(
    conn: &mut AsyncPgConnection,
    payment: &PaymentRow,
    gateway_ref: Option<&str>,
) -> AppResult<Option<&'static str>> {
    let Some(plan_id) = payment.plan_id else {
        return Ok(Some("not a plan payment"));
    };
    let plan = plan(conn, plan_id).await?;
    model::lock_user(conn, payment.user_id).await?;
    let sandbox_ref = format!("sbx_sub_{}", payment.id.simple());
    let gateway_ref = gateway_ref.unwrap_or(&sandbox_ref);
    if let Some(existing) = model::by_ref(conn, payment.gateway, gateway_ref).await? {
        // A gateway event about the subscription came first and created it.
        if existing.payment_id.is_none() {
            let link = Changes {
                payment_id: Some(Some(payment.id)),
                ..Changes::default()
            };
            model::update(conn, existing.id, &link).await?;
        }
        sync_tier(conn, payment.user_id).await?;
        return Ok(None);
    }
    if !make_room(conn, payment.user_id).await? {
        return Ok(Some(
            "the user already has a live paid subscription; nothing started (refund this one at the gateway)",
        ));
    }
    let trial_days = payment.gateway_data["trial_days"].as_i64().unwrap_or(0);
    if trial_days > 0 && model::had_trial(conn, payment.user_id).await? {
        // Two trial checkouts paid (for nothing) one after the other: one trial per user.
        return Ok(Some("the user has had a trial; nothing started"));
    }
    let now = Utc::now();
    let (status, end, trial_ends_at) = if trial_days > 0 {
        let end = now + chrono::Duration::days(trial_days);
        (SubscriptionStatus::Trial, end, Some(end))
    } else {
        (
            SubscriptionStatus::Active,
            add_months(now, plan.months()),
            None,
        )
    };
    let price = payment.gateway_data["price_minor"]
        .as_i64()
        .unwrap_or(payment.amount_minor);
    let sub = model::insert(
        conn,
        &NewSubscription {
            id: Uuid::now_v7(),
            user_id: payment.user_id,
            plan_id,
            status,
            source: SubscriptionSource::Checkout,
            current_period_start: now,
            current_period_end: end,
            gateway: Some(payment.gateway),
            gateway_ref: Some(gateway_ref),
            price_minor: Some(price),
            currency: Some(&payment.currency),
            billing_interval: Some(&plan.interval),
            trial_ends_at,
            payment_id: Some(payment.id),
            usage_window_start: now,
        },
    )
    .await?;
    if payment.gateway == Gateway::Sandbox && status == SubscriptionStatus::Active {
        grant_period_in(conn, &sub, now, end, None).await?;
    }
    subscription_notice_in(conn, sub.user_id, plan_id, SubscriptionNotice::Started, end).await?;
    sync_tier(conn, payment.user_id).await?;
    Ok(None)
}

/// Ends a live given subscription so that a paid one can start (the paid plan replaces it);
/// `false` when a live paid subscription is in the way.
async fn make_room(conn: &mut AsyncPgConnection, user: Uuid) -> AppResult<bool> {
    match model::live(conn, user).await? {
        None => Ok(true),
        Some(sub) if sub.gateway.is_none() => {
            model::update(
                conn,
                sub.id,
                &Changes {
                    status: Some(SubscriptionStatus::Cancelled),
                    cancelled_at: Some(Some(Utc::now())),
                    ..Changes::default()
                },
            )
            .await?;
            Ok(true)
        }
        Some(_) => Ok(false),
    }
}

/// What a gateway says about a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayChange {
    /// The gateway's view of the subscription (created or updated).
    Updated {
        status: Option<SubscriptionStatus>,
        period_start: Option<DateTime<Utc>>,
        period_end: Option<DateTime<Utc>>,
        cancel_at_period_end: Option<bool>,
        trial_end: Option<DateTime<Utc>>,
        /// The plan its price belongs to.
        plan: Option<Uuid>,
        item_ref: Option<String>,
    },
    /// A period was paid (a renewal, or the first invoice).
    PeriodPaid {
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
        invoice_ref: Option<String>,
        /// Not a new paid period: a proration invoice (a plan change inside a period), or an
        /// invoice of nothing (a trial's first).
        no_new_period: bool,
    },
    /// A renewal could not be charged (the gateway retries).
    PaymentFailed,
    /// The subscription is over.
    Ended,
}

/// A subscription event from a verified webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayEvent {
    pub gateway_ref: String,
    pub change: GatewayChange,
    /// Our user and plan, from the metadata Easel gave the gateway (to create the
    /// subscription when its events arrive before the checkout's).
    pub user: Option<Uuid>,
    pub plan: Option<Uuid>,
    pub payment: Option<Uuid>,
    /// When the gateway made the event: an older one than the last applied changes nothing.
    pub created: Option<DateTime<Utc>>,
}

/// What applying an event did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The subscriber, when a period was paid (money moved: referral rewards may follow).
    pub paid_by: Option<Uuid>,
    pub note: Option<&'static str>,
}

/// Applies a gateway's subscription event inside the webhook's transaction. Any order of
/// delivery ends in the same state: an event for a subscription not seen yet creates it from
/// its metadata, periods are granted once, and a status older than the last one applied is
/// ignored.
pub async fn apply_gateway_event_in(
    conn: &mut AsyncPgConnection,
    gateway: Gateway,
    ev: &GatewayEvent,
) -> AppResult<Applied> {
    let existing = model::by_ref(conn, gateway, &ev.gateway_ref).await?;
    let user = match (&existing, ev.user) {
        (Some(sub), _) => sub.user_id,
        (None, Some(user)) => user,
        (None, None) => {
            return Ok(Applied {
                note: Some("unknown subscription without Easel metadata"),
                ..Applied::default()
            });
        }
    };
    model::lock_user(conn, user).await?;
    // Read again under the lock: a parallel delivery may have created or changed it.
    let sub = match model::by_ref(conn, gateway, &ev.gateway_ref).await? {
        Some(sub) => sub,
        None => {
            if matches!(ev.change, GatewayChange::Ended) {
                return Ok(Applied {
                    note: Some("end of a subscription never started"),
                    ..Applied::default()
                });
            }
            let Some(plan_id) = ev.plan else {
                return Ok(Applied {
                    note: Some("unknown subscription without a plan"),
                    ..Applied::default()
                });
            };
            let Some(plan) = credits::service::plan_in(conn, plan_id).await? else {
                return Ok(Applied {
                    note: Some("unknown plan"),
                    ..Applied::default()
                });
            };
            if !make_room(conn, user).await? {
                return Ok(Applied {
                    note: Some(
                        "the user already has a live paid subscription; refund this one at the gateway",
                    ),
                    ..Applied::default()
                });
            }
            // The event's own period when it tells one (what follows applies it again).
            let now = Utc::now();
            let (start, end) = match &ev.change {
                GatewayChange::PeriodPaid {
                    period_start,
                    period_end,
                    ..
                } => (*period_start, *period_end),
                GatewayChange::Updated {
                    period_start: Some(start),
                    period_end: Some(end),
                    ..
                } => (*start, *end),
                _ => (now, add_months(now, plan.months())),
            };
            subscription_notice_in(conn, user, plan_id, SubscriptionNotice::Started, end).await?;
            model::insert(
                conn,
                &NewSubscription {
                    id: Uuid::now_v7(),
                    user_id: user,
                    plan_id,
                    status: SubscriptionStatus::Active,
                    source: SubscriptionSource::Checkout,
                    current_period_start: start,
                    current_period_end: end,
                    gateway: Some(gateway),
                    gateway_ref: Some(&ev.gateway_ref),
                    price_minor: Some(plan.price_minor),
                    currency: Some(&plan.currency),
                    billing_interval: Some(&plan.interval),
                    trial_ends_at: None,
                    payment_id: ev.payment,
                    usage_window_start: start.min(now),
                },
            )
            .await?
        }
    };
    let stale = matches!(
        (ev.created, sub.last_event_at),
        (Some(new), Some(last)) if new < last
    );
    let mut applied = Applied::default();
    let mut changes = Changes {
        last_event_at: ev.created.filter(|_| !stale).map(Some),
        ..Changes::default()
    };
    match &ev.change {
        GatewayChange::Updated { .. } if stale => {
            applied.note = Some("older than the last event applied");
        }
        GatewayChange::Updated {
            status,
            period_start,
            period_end,
            cancel_at_period_end,
            trial_end,
            plan,
            item_ref,
        } => {
            if !sub.is_live() && status.is_none_or(|s| !model::LIVE.contains(&s)) {
                applied.note = Some("subscription already ended");
            } else {
                changes.status = *status;
                if status.is_some_and(|s| !model::LIVE.contains(&s)) {
                    changes.cancelled_at = Some(Some(Utc::now()));
                    if sub.is_live() {
                        let end = period_end.unwrap_or(sub.current_period_end);
                        subscription_notice_in(
                            conn,
                            user,
                            sub.plan_id,
                            SubscriptionNotice::Ended,
                            end,
                        )
                        .await?;
                    }
                }
                changes.current_period_start = period_start.map(Some);
                changes.current_period_end = *period_end;
                changes.cancel_at_period_end = *cancel_at_period_end;
                changes.gateway_item_ref = item_ref.clone().map(Some);
                if sub.trial_ends_at.is_none() && !model::had_trial(conn, user).await? {
                    changes.trial_ends_at = trial_end.map(Some);
                }
                // A price the gateway moved to: an upgrade takes effect now; a downgrade
                // waits (pending) for the period's end.
                if let Some(p) = plan
                    && *p != sub.plan_id
                    && Some(*p) != sub.pending_plan_id
                {
                    changes.plan_id = Some(*p);
                }
            }
        }
        GatewayChange::PeriodPaid {
            period_start,
            period_end,
            invoice_ref,
            no_new_period,
        } => {
            if *no_new_period {
                applied.note = Some("proration or zero invoice: no new period");
            } else if period_end <= period_start {
                applied.note = Some("empty period");
            } else {
                let mut sub = sub.clone();
                if let Some(next) = sub
                    .pending_plan_id
                    .filter(|_| Some(*period_start) > sub.current_period_start)
                {
                    let next_plan = self::plan(conn, next).await?;
                    sub = model::update(
                        conn,
                        sub.id,
                        &Changes {
                            plan_id: Some(next),
                            pending_plan_id: Some(None),
                            price_minor: Some(Some(next_plan.price_minor)),
                            currency: Some(Some(next_plan.currency.clone())),
                            billing_interval: Some(Some(next_plan.interval.clone())),
                            ..Changes::default()
                        },
                    )
                    .await?;
                }
                if grant_period_in(
                    conn,
                    &sub,
                    *period_start,
                    *period_end,
                    invoice_ref.as_deref(),
                )
                .await?
                {
                    applied.paid_by = Some(sub.user_id);
                    // A paid period that starts well after the subscription did is a
                    // renewal (the first period is announced as the start).
                    if sub.is_live() && *period_start > sub.created_at + chrono::Duration::hours(1)
                    {
                        let notice = SubscriptionNotice::Renewed;
                        subscription_notice_in(conn, user, sub.plan_id, notice, *period_end)
                            .await?;
                    }
                } else {
                    applied.note = Some("period already granted");
                }
                if !sub.is_live() {
                    // Paid, so granted; but an ended subscription stays ended (its end may
                    // simply have been delivered first).
                    applied.note = Some("period paid on an ended subscription");
                } else if sub.current_period_start.is_none_or(|s| s <= *period_start) {
                    changes.status = Some(SubscriptionStatus::Active);
                    changes.current_period_start = Some(Some(*period_start));
                    changes.current_period_end = Some(*period_end);
                    changes.cancelled_at = Some(None);
                }
            }
        }
        GatewayChange::PaymentFailed => {
            if sub.is_live() {
                changes.status = Some(SubscriptionStatus::PastDue);
                if sub.status != SubscriptionStatus::PastDue {
                    let (plan, end) = (sub.plan_id, sub.current_period_end);
                    subscription_notice_in(
                        conn,
                        user,
                        plan,
                        SubscriptionNotice::PaymentFailed,
                        end,
                    )
                    .await?;
                }
            } else {
                applied.note = Some("subscription already ended");
            }
        }
        GatewayChange::Ended => {
            if sub.is_live() {
                let (plan, end) = (sub.plan_id, sub.current_period_end);
                subscription_notice_in(conn, user, plan, SubscriptionNotice::Ended, end).await?;
            }
            changes.status = Some(SubscriptionStatus::Expired);
            changes.cancelled_at = Some(Some(Utc::now()));
        }
    }
    model::update(conn, sub.id, &changes).await?;
    sync_tier(conn, user).await?;
    Ok(applied)
}

/// Counts one generation against the live plan's `monthlyGenerationLimit`, inside the
/// generation's transaction: `RATE_LIMITED` (retry when the month is over) at the limit.
/// Months roll from the subscription's start.
pub async fn count_generation_in(conn: &mut AsyncPgConnection, user: Uuid) -> AppResult<()> {
    let Some(sub) = model::live(conn, user).await? else {
        return Ok(());
    };
    let Some(limit) = plan(conn, sub.plan_id).await?.monthly_generation_limit else {
        return Ok(());
    };
    model::lock_user(conn, user).await?;
    let Some(sub) = model::by_id(conn, sub.id)
        .await?
        .filter(SubscriptionRow::is_live)
    else {
        return Ok(());
    };
    let now = Utc::now();
    let (start, used) = sub.usage_at(now);
    if used >= limit {
        let retry = (add_months(start, 1) - now).num_seconds().max(1);
        return Err(AppError::RateLimited {
            retry_after_seconds: u64::try_from(retry).unwrap_or(1),
        });
    }
    model::update(
        conn,
        sub.id,
        &Changes {
            usage_window_start: Some(Some(start)),
            usage_count: Some(used + 1),
            ..Changes::default()
        },
    )
    .await?;
    Ok(())
}

/// Gives back the generation a failed or cancelled job took from the monthly limit, when it
/// was counted in the current month (`counted_at`: when it was queued). Call before the job's
/// refund in the transaction that ends it (the subscription lock before the credit account's,
/// the order `generate` takes them in).
pub async fn uncount_generation_in(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    counted_at: DateTime<Utc>,
) -> AppResult<()> {
    model::lock_user(conn, user).await?;
    let Some(sub) = model::live(conn, user).await? else {
        return Ok(());
    };
    let (start, used) = sub.usage_at(Utc::now());
    if used > 0 && counted_at >= start {
        let changes = Changes {
            usage_count: Some(used - 1),
            ..Changes::default()
        };
        model::update(conn, sub.id, &changes).await?;
    }
    Ok(())
}

/// Ends live subscriptions whose time is up (run periodically): given ones and those set to
/// cancel at their period's end when it comes, gateway ones `grace` after a period end the
/// gateway never renewed. Each user's tier falls back with it. Answers how many ended.
pub async fn end_overdue(
    conn: &mut AsyncPgConnection,
    grace: chrono::Duration,
) -> AppResult<usize> {
    use diesel_async::AsyncConnection;
    let now = Utc::now();
    let users = model::ended_users(conn, now, grace, 500).await?;
    let mut ended = 0;
    for user in users {
        ended += conn
            .transaction(async |conn| {
                model::lock_user(conn, user).await?;
                let Some(sub) = model::live(conn, user).await? else {
                    return Ok::<_, AppError>(0);
                };
                let due = sub.current_period_end <= now
                    && (sub.gateway.is_none() || sub.cancel_at_period_end)
                    || sub.current_period_end <= now - grace;
                if !due {
                    return Ok(0);
                }
                model::update(
                    conn,
                    sub.id,
                    &Changes {
                        status: Some(SubscriptionStatus::Expired),
                        cancelled_at: Some(Some(now)),
                        ..Changes::default()
                    },
                )
                .await?;
                let end = sub.current_period_end;
                subscription_notice_in(conn, user, sub.plan_id, SubscriptionNotice::Ended, end)
                    .await?;
                sync_tier(conn, user).await?;
                Ok(1)
            })
            .await?;
    }
    Ok(ended)
}

/// A change a subscriber asks for, to be told to the gateway first.
pub enum Request {
    Cancel,
    Resume,
    ChangePlan(Uuid),
}

/// What the gateway must be told for a subscriber's request, after the checks: the live paid
/// subscription, and for a plan change the new plan and whether it is an upgrade (now,
/// prorated) or a downgrade (at the period's end).
pub struct Planned {
    pub sub: SubscriptionRow,
    pub change_to: Option<(PlanRow, bool)>,
}

/// Checks a subscriber's request against their live subscription.
pub async fn plan_request(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    request: &Request,
) -> AppResult<Planned> {
    let sub = model::live(conn, user)
        .await?
        .ok_or(AppError::NotFound("subscription"))?;
    if sub.gateway.is_none() {
        return Err(AppError::bad_input(
            "subscription",
            "a given plan ends by itself and cannot be changed; subscribe to a plan to pay for one",
        ));
    }
    let change_to = match request {
        Request::Cancel if sub.cancel_at_period_end => {
            return Err(AppError::Conflict(
                "already set to end at the period's end".into(),
            ));
        }
        Request::Resume if !sub.cancel_at_period_end => {
            return Err(AppError::Conflict(
                "this subscription is not cancelled".into(),
            ));
        }
        Request::Cancel | Request::Resume => None,
        Request::ChangePlan(id) => {
            let target = credits::service::plan_in(conn, *id)
                .await?
                .filter(|p| p.is_active)
                .ok_or_else(|| AppError::bad_input("input.planId", "no such plan on sale"))?;
            if target.id == sub.plan_id && sub.pending_plan_id.is_none() {
                return Err(AppError::bad_input(
                    "input.planId",
                    "this is your plan already",
                ));
            }
            if target.tier == SubscriptionTier::Free {
                return Err(AppError::bad_input(
                    "input.planId",
                    "to leave paid plans, cancel the subscription",
                ));
            }
            if sub.currency.as_deref() != Some(target.currency.as_str()) {
                return Err(AppError::bad_input(
                    "input.planId",
                    "a plan in another currency needs a new subscription",
                ));
            }
            // Compared per month, in the subscriber's current price.
            let current_monthly = sub.price_minor.unwrap_or(0)
                / i64::from(if sub.billing_interval.as_deref() == Some("year") {
                    12
                } else {
                    1
                });
            let target_monthly = target.price_minor / i64::from(target.months());
            let upgrade = target.id == sub.plan_id || target_monthly > current_monthly;
            Some((target, upgrade))
        }
    };
    Ok(Planned { sub, change_to })
}

/// Records a subscriber's request the gateway accepted.
pub async fn record_request_in(
    conn: &mut AsyncPgConnection,
    planned: &Planned,
    request: &Request,
) -> AppResult<SubscriptionRow> {
    let user = planned.sub.user_id;
    model::lock_user(conn, user).await?;
    let sub = model::by_id(conn, planned.sub.id)
        .await?
        .filter(SubscriptionRow::is_live)
        .ok_or(AppError::NotFound("subscription"))?;
    let changes = match (request, &planned.change_to) {
        (Request::Cancel, _) => Changes {
            cancel_at_period_end: Some(true),
            ..Changes::default()
        },
        (Request::Resume, _) => Changes {
            cancel_at_period_end: Some(false),
            ..Changes::default()
        },
        // Back to the current plan: the pending downgrade is dropped, the price stays.
        (Request::ChangePlan(_), Some((target, _))) if target.id == sub.plan_id => Changes {
            pending_plan_id: Some(None),
            ..Changes::default()
        },
        (Request::ChangePlan(_), Some((target, true))) => Changes {
            plan_id: Some(target.id),
            pending_plan_id: Some(None),
            price_minor: Some(Some(target.price_minor)),
            currency: Some(Some(target.currency.clone())),
            billing_interval: Some(Some(target.interval.clone())),
            ..Changes::default()
        },
        (Request::ChangePlan(_), Some((target, false))) => Changes {
            pending_plan_id: Some(Some(target.id)),
            ..Changes::default()
        },
        (Request::ChangePlan(_), None) => Changes::default(),
    };
    let row = model::update(conn, sub.id, &changes).await?;
    sync_tier(conn, user).await?;
    Ok(row)
}

/// Whether the user may still start a trial (once per user).
pub async fn trial_available_in(conn: &mut AsyncPgConnection, user: Uuid) -> AppResult<bool> {
    Ok(!model::had_trial(conn, user).await?)
}

/// A subscription by id.
pub async fn by_id_in(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> AppResult<Option<SubscriptionRow>> {
    Ok(model::by_id(conn, id).await?)
}
