//! The rules of credits: charges (daily allowance first), refunds (exactly once), gifts,
//! admin adjustments and catalogue changes (audit-logged), purchases, prices, and the reads
//! the resolvers need. Each change is one transaction, or a `*_in` function that runs inside
//! the caller's transaction (the generation queue charges in the same transaction that
//! queues the job; sign-up opens the account in its own).

use diesel::sql_types::{Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::{
    TransactionKind,
    model::{
        self, AccountView, HistoryFilter, NewTransaction, PackageChanges, PackageRow, PlanChanges,
        PlanRow, PriceRow, TransactionRow,
    },
};
use crate::{
    AppState,
    accounts::SubscriptionTier,
    audit,
    db::{self, Fragment},
    error::{AppError, AppResult},
    events::{self, Event},
    idempotency,
};

/// The most credits one admin input may name: a package's credits or bonus, an operation's
/// base cost, one gift, one adjustment (either way). Far above any real use, far below where
/// sums and products of them could overflow `i64`.
pub const MAX_CREDITS: i64 = 1_000_000_000;

/// The highest price (minor units) a package may have.
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000;

/// The highest tier multiplier of an operation price.
pub const MAX_TIER_MULTIPLIER: f64 = 100.0;

/// The highest price [`price_for_tier`] answers: what the largest valid base cost and
/// multiplier give. A row beyond the bounds (written before they existed) is priced at this,
/// so callers can multiply a price by a small count without overflow.
pub const MAX_OPERATION_PRICE: i64 = MAX_CREDITS * MAX_TIER_MULTIPLIER as i64;

/// `BAD_USER_INPUT` on `field` unless `value` is within `range`.
fn within(field: &str, value: i64, range: std::ops::RangeInclusive<i64>) -> AppResult<()> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(AppError::bad_input(
            field,
            format!("must be between {} and {}", range.start(), range.end()),
        ))
    }
}

/// Whether `c` may not appear in a free admin text: control characters (NUL above all, which
/// PostgreSQL refuses in text), except line breaks and tabs.
fn forbidden_in_text(c: char) -> bool {
    c.is_control() && !matches!(c, '\n' | '\r' | '\t')
}

/// An optional admin text: trimmed, empty is none, at most `max` characters, no control
/// characters but line breaks and tabs.
fn optional_text<'a>(
    field: &str,
    value: Option<&'a str>,
    max: usize,
) -> AppResult<Option<&'a str>> {
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    if value.is_some_and(|v| v.chars().count() > max || v.chars().any(forbidden_in_text)) {
        return Err(AppError::bad_input(
            field,
            format!("at most {max} characters, without control characters"),
        ));
    }
    Ok(value)
}

/// A charge for an operation.
#[derive(Debug, Clone)]
pub struct Charge<'a> {
    pub user: Uuid,
    pub cost: i64,
    pub description: &'a str,
    pub job_id: Option<Uuid>,
    /// Retrying [`charge`] with the same key answers the first charge.
    pub idempotency_key: Option<&'a str>,
    /// The request's [`idempotency::fingerprint`]; [`charge`] takes the one of its cost and
    /// description when none is given.
    pub request_hash: Option<&'a str>,
}

impl idempotency::Fingerprinted for TransactionRow {
    fn fingerprint(&self) -> Option<&str> {
        self.request_hash.as_deref()
    }
}

/// Runs an idempotent ledger operation of `user` (see [`crate::idempotency`]): a key's first
/// entry is answered again for the same request.
async fn idempotent<F>(
    state: &AppState,
    user: Uuid,
    key: Option<&str>,
    fingerprint: &str,
    op: F,
) -> AppResult<TransactionRow>
where
    F: AsyncFnOnce(&mut AsyncPgConnection) -> AppResult<TransactionRow>,
{
    let mut conn = db::conn(&state.pool).await?;
    idempotency::run(
        &mut conn,
        key,
        fingerprint,
        async move |conn: &mut AsyncPgConnection, key: &str| {
            model::transaction_by_key(conn, user, key).await
        },
        op,
    )
    .await
}

fn insufficient(cost: i64, (balance, allowance_left): (i64, i64)) -> AppError {
    AppError::InsufficientCredits {
        required: cost,
        available: balance + allowance_left,
    }
}

fn entry<'a>(
    user: Uuid,
    kind: TransactionKind,
    amount: i64,
    balance_after: i64,
    description: &'a str,
) -> NewTransaction<'a> {
    NewTransaction {
        id: Uuid::now_v7(),
        user_id: user,
        kind,
        amount,
        balance_after,
        allowance_used: 0,
        description,
        job_id: None,
        payment_id: None,
        counterparty_id: None,
        performed_by: None,
        refund_of_id: None,
        idempotency_key: None,
        request_hash: None,
    }
}

async fn written(
    conn: &mut AsyncPgConnection,
    t: &NewTransaction<'_>,
) -> AppResult<TransactionRow> {
    let row = model::insert_transaction(conn, t).await?;
    events::notify(
        conn,
        &Event::CreditBalance {
            user_id: row.user_id,
            balance: row.balance_after,
            transaction_id: row.id,
        },
    )
    .await?;
    Ok(row)
}

/// Opens a new user's credit account with the sign-up bonus, inside the sign-up
/// transaction: the balance and its ledger row are written together.
pub async fn open_account_in(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    signup_bonus: i64,
) -> AppResult<()> {
    model::insert_account(conn, user, signup_bonus).await?;
    if signup_bonus > 0 {
        let t = entry(
            user,
            TransactionKind::SignupBonus,
            signup_bonus,
            signup_bonus,
            "Welcome bonus",
        );
        model::insert_transaction(conn, &t).await?;
    }
    Ok(())
}

/// Charges inside the caller's transaction: allowance first, then balance; a `usage` row
/// records both parts (its `amount` is the balance part, `allowanceUsed` the rest).
pub async fn charge_in(conn: &mut AsyncPgConnection, c: &Charge<'_>) -> AppResult<TransactionRow> {
    if c.cost < 0 {
        return Err(AppError::internal(anyhow::anyhow!(
            "negative charge {}",
            c.cost
        )));
    }
    let charged = model::take(conn, c.user, c.cost)
        .await?
        .map_err(|short| insufficient(c.cost, short))?;
    let mut t = entry(
        c.user,
        TransactionKind::Usage,
        -charged.from_balance,
        charged.balance,
        c.description,
    );
    t.allowance_used = i32::try_from(charged.from_allowance).map_err(AppError::internal)?;
    t.job_id = c.job_id;
    t.idempotency_key = c.idempotency_key;
    t.request_hash = c.request_hash;
    written(conn, &t).await
}

/// Charges in a transaction of its own.
pub async fn charge(state: &AppState, c: &Charge<'_>) -> AppResult<TransactionRow> {
    let hash = c.request_hash.map(str::to_string).unwrap_or_else(|| {
        idempotency::fingerprint(
            &json!({ "charge": { "cost": c.cost, "description": c.description } }),
        )
    });
    let c = Charge {
        request_hash: Some(&hash),
        ..c.clone()
    };
    idempotent(state, c.user, c.idempotency_key, &hash, async |conn| {
        conn.transaction(async |conn| charge_in(conn, &c).await)
            .await
    })
    .await
}

/// Undoes a charge inside the caller's transaction, exactly once: a second refund of the same
/// charge is refused by the unique constraint on `refund_of_id` and answers the first refund.
/// Allowance uses come back when refunded the same day.
pub async fn refund_in(
    conn: &mut AsyncPgConnection,
    charge_id: Uuid,
    description: &str,
) -> AppResult<TransactionRow> {
    if let Some(done) = model::refund_of(conn, charge_id).await? {
        return Ok(done);
    }
    let charge = model::transaction_by_id(conn, charge_id)
        .await?
        .ok_or(AppError::NotFound("charge"))?;
    if charge.kind != TransactionKind::Usage {
        return Err(AppError::bad_input(
            "chargeId",
            "only usage charges can be refunded",
        ));
    }
    let amount = -charge.amount;
    let balance = model::credit(
        conn,
        charge.user_id,
        amount,
        false,
        i64::from(charge.allowance_used),
    )
    .await?
    .ok_or(AppError::NotFound("credit account"))?;
    let mut t = entry(
        charge.user_id,
        TransactionKind::Refund,
        amount,
        balance,
        description,
    );
    t.job_id = charge.job_id;
    t.refund_of_id = Some(charge.id);
    written(conn, &t).await
}

/// Refunds in a transaction of its own (idempotent: the same refund comes back).
pub async fn refund(
    state: &AppState,
    charge_id: Uuid,
    description: &str,
) -> AppResult<TransactionRow> {
    let mut conn = db::conn(&state.pool).await?;
    let result = conn
        .transaction(async |conn| refund_in(conn, charge_id, description).await)
        .await;
    match result {
        Err(AppError::Conflict(_)) => model::refund_of(&mut conn, charge_id)
            .await?
            .ok_or(AppError::NotFound("refund")),
        other => other,
    }
}

/// Refuses a gift that would give away sign-up bonus an unverified account still holds
/// ([`model::unverified_bonus_held`]): such an account may gift `balance - held` (credits it
/// bought or received); more answers `FORBIDDEN`, or `INSUFFICIENT_CREDITS` beyond the whole
/// balance. Call with the sender's account locked.
async fn bonus_stays(conn: &mut AsyncPgConnection, from: Uuid, amount: i64) -> AppResult<()> {
    let held = model::unverified_bonus_held(conn, from).await?;
    if held == 0 {
        return Ok(());
    }
    let balance = model::account_views(conn, &[from])
        .await?
        .first()
        .map_or(0, |a| a.balance);
    if amount > balance {
        return Err(AppError::InsufficientCredits {
            required: amount,
            available: balance,
        });
    }
    let giftable = (balance - held).max(0);
    if amount > giftable {
        return Err(AppError::Forbidden(format!(
            "sign-up bonus credits become giftable once your account is verified; \
             you can gift up to {giftable} credits now (credits you bought or received)"
        )));
    }
    Ok(())
}

/// Moves credits from one user to another: two ledger rows in one transaction; never to
/// oneself, never below zero, never deadlocking with a gift the other way. An unverified
/// sender cannot gift its sign-up bonus (unless `EASEL_SIGNUP_BONUS_GIFTABLE=unverified`).
pub async fn gift(
    state: &AppState,
    from: Uuid,
    to: Uuid,
    amount: i64,
    note: Option<&str>,
    key: Option<&str>,
) -> AppResult<TransactionRow> {
    if !(1..=MAX_CREDITS).contains(&amount) {
        return Err(AppError::bad_input(
            "input.amount",
            format!("must be a positive number of credits, at most {MAX_CREDITS}"),
        ));
    }
    if from == to {
        return Err(AppError::bad_input(
            "input.toUserId",
            "you cannot gift credits to yourself",
        ));
    }
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > 200) {
        return Err(AppError::bad_input("input.note", "at most 200 characters"));
    }
    let key = idempotency::validate_key(key)?;
    let hash = idempotency::fingerprint(
        &json!({ "gift": { "to": to, "amount": amount, "note": note.unwrap_or("") } }),
    );
    let sent_text = note.map_or_else(|| "Gift".to_string(), |n| format!("Gift: {n}"));
    idempotent(state, from, key, &hash, async |conn| {
        conn.transaction(async |conn| {
            if model::lock_accounts(conn, &[from, to]).await? < 2 {
                return Err(AppError::NotFound("recipient"));
            }
            if !state.config.signup_bonus_giftable_unverified {
                bonus_stays(conn, from, amount).await?;
            }
            let Some(balance) = model::debit(conn, from, amount, false).await? else {
                let have = model::account_views(conn, &[from])
                    .await?
                    .first()
                    .map_or(0, |a| a.balance);
                return Err(AppError::InsufficientCredits {
                    required: amount,
                    available: have,
                });
            };
            let mut sent = entry(
                from,
                TransactionKind::GiftSent,
                -amount,
                balance,
                &sent_text,
            );
            sent.counterparty_id = Some(to);
            sent.idempotency_key = key;
            sent.request_hash = Some(&hash);
            let sent = written(conn, &sent).await?;
            let to_balance = model::credit(conn, to, amount, false, 0)
                .await?
                .ok_or(AppError::NotFound("recipient"))?;
            let mut received = entry(
                to,
                TransactionKind::GiftReceived,
                amount,
                to_balance,
                &sent_text,
            );
            received.counterparty_id = Some(from);
            written(conn, &received).await?;
            Ok(sent)
        })
        .await
    })
    .await
}

/// Grants `amount` (> 0) free credits inside the caller's transaction: one ledger row of
/// `kind`, which must be `Referral` (a referral reward; `counterparty` is the other user of
/// the referral) or `Bonus` (an invite's credits). Whoever calls it guarantees the grant
/// happens once (growth: a conditional update on the referral or the invite, in the same
/// transaction).
pub async fn grant_free_in(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    kind: TransactionKind,
    amount: i64,
    description: &str,
    counterparty: Option<Uuid>,
) -> AppResult<TransactionRow> {
    if !matches!(kind, TransactionKind::Referral | TransactionKind::Bonus)
        || !(1..=MAX_CREDITS).contains(&amount)
    {
        return Err(AppError::internal(anyhow::anyhow!(
            "a free grant is a referral or bonus of 1 to {MAX_CREDITS} credits, not {kind:?} {amount}"
        )));
    }
    let balance = model::credit(conn, user, amount, false, 0)
        .await?
        .ok_or(AppError::NotFound("credit account"))?;
    let mut t = entry(user, kind, amount, balance, description);
    t.counterparty_id = counterparty;
    written(conn, &t).await
}

/// Admin: adds or removes credits with a reason (audit-logged).
pub async fn adjust(
    state: &AppState,
    admin: Uuid,
    user: Uuid,
    amount: i64,
    reason: &str,
    key: Option<&str>,
) -> AppResult<TransactionRow> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(forbidden_in_text) {
        return Err(AppError::bad_input(
            "input.reason",
            "say why, in at most 500 characters",
        ));
    }
    if amount == 0 || !(-MAX_CREDITS..=MAX_CREDITS).contains(&amount) {
        return Err(AppError::bad_input(
            "input.amount",
            format!("must not be zero, and between -{MAX_CREDITS} and {MAX_CREDITS}"),
        ));
    }
    let key = idempotency::validate_key(key)?;
    let hash =
        idempotency::fingerprint(&json!({ "adjust": { "amount": amount, "reason": reason } }));
    idempotent(state, user, key, &hash, async |conn| {
        conn.transaction(async |conn| {
            let balance = if amount > 0 {
                model::credit(conn, user, amount, false, 0)
                    .await?
                    .ok_or(AppError::NotFound("user"))?
            } else {
                match model::debit(conn, user, -amount, false).await? {
                    Some(b) => b,
                    None => {
                        let have = model::account_views(conn, &[user])
                            .await?
                            .first()
                            .map(|a| a.balance);
                        return match have {
                            Some(b) => Err(AppError::InsufficientCredits {
                                required: -amount,
                                available: b,
                            }),
                            None => Err(AppError::NotFound("user")),
                        };
                    }
                }
            };
            let mut t = entry(
                user,
                TransactionKind::AdminAdjustment,
                amount,
                balance,
                reason,
            );
            t.performed_by = Some(admin);
            t.idempotency_key = key;
            t.request_hash = Some(&hash);
            let row = written(conn, &t).await?;
            let metadata = json!({ "amount": amount, "reason": reason, "transaction": row.id });
            audit::admin(
                conn,
                admin,
                "credits.adjusted",
                "user",
                user.to_string(),
                metadata,
            )
            .await?;
            Ok(row)
        })
        .await
    })
    .await
}

/// Grants a completed payment's credits inside the caller's transaction (exactly once per
/// payment: a unique index allows one `purchase` row per payment).
pub async fn grant_purchase_in(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    payment: Uuid,
    credits: i64,
    description: &str,
) -> AppResult<TransactionRow> {
    if credits <= 0 {
        return Err(AppError::internal(anyhow::anyhow!(
            "a purchase must grant a positive number of credits, not {credits}"
        )));
    }
    let balance = model::credit(conn, user, credits, true, 0)
        .await?
        .ok_or(AppError::NotFound("credit account"))?;
    let mut t = entry(
        user,
        TransactionKind::Purchase,
        credits,
        balance,
        description,
    );
    t.payment_id = Some(payment);
    written(conn, &t).await
}

/// Grants a subscription's credits for one paid period inside the caller's transaction (the
/// caller records the period first: a period is granted once).
pub async fn grant_subscription_in(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    credits: i64,
    description: &str,
) -> AppResult<TransactionRow> {
    if credits <= 0 {
        return Err(AppError::internal(anyhow::anyhow!(
            "a subscription grant must be positive, not {credits}"
        )));
    }
    let balance = model::credit(conn, user, credits, true, 0)
        .await?
        .ok_or(AppError::NotFound("credit account"))?;
    let t = entry(
        user,
        TransactionKind::SubscriptionGrant,
        credits,
        balance,
        description,
    );
    written(conn, &t).await
}

/// An operation's price row, on the caller's connection (null when the operation is unknown).
pub async fn price_in(
    conn: &mut AsyncPgConnection,
    operation: &str,
) -> AppResult<Option<PriceRow>> {
    Ok(model::price(conn, operation).await?)
}

/// A credit package, on the caller's connection (null when there is none).
pub async fn package_in(conn: &mut AsyncPgConnection, id: Uuid) -> AppResult<Option<PackageRow>> {
    Ok(model::package(conn, id).await?)
}

/// An operation's price for a tier: base cost × the tier's multiplier, rounded up, in
/// integer arithmetic (multipliers are read to a thousandth).
/// Never above [`MAX_OPERATION_PRICE`], whatever the row says.
pub fn price_for_tier(price: &PriceRow, tier: SubscriptionTier) -> i64 {
    let milli = price
        .tier_multipliers
        .get(tier.as_str())
        .and_then(|m| m.as_f64())
        .map_or(1000, |m| (m * 1000.0).round().max(0.0) as i64);
    let exact = (i128::from(price.base_cost.max(0)) * i128::from(milli) + 999) / 1000;
    i64::try_from(exact.min(i128::from(MAX_OPERATION_PRICE))).unwrap_or(MAX_OPERATION_PRICE)
}

/// Admin: creates (`id` none) or changes a credit package, after checking every field:
/// credits 1 to [`MAX_CREDITS`], bonus 0 to [`MAX_CREDITS`], price 0 to [`MAX_PRICE_MINOR`],
/// an ISO 4217 currency, bounded texts. Bad input changes nothing.
pub async fn upsert_package(
    state: &AppState,
    admin: Uuid,
    id: Option<Uuid>,
    input: &PackageChanges<'_>,
) -> AppResult<PackageRow> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            "input.name",
            "1 to 100 characters, without control characters",
        ));
    }
    let description = optional_text("input.description", input.description, 1000)?;
    within("input.credits", input.credits, 1..=MAX_CREDITS)?;
    within("input.bonusCredits", input.bonus_credits, 0..=MAX_CREDITS)?;
    within("input.priceMinor", input.price_minor, 0..=MAX_PRICE_MINOR)?;
    let currency = input.currency.trim().to_uppercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(AppError::bad_input(
            "input.currency",
            "an ISO 4217 code such as USD",
        ));
    }
    let badge_text = optional_text("input.badgeText", input.badge_text, 40)?;
    if badge_text.is_some_and(|b| b.chars().any(char::is_control)) {
        return Err(AppError::bad_input(
            "input.badgeText",
            "one line, without control characters",
        ));
    }
    let changes = PackageChanges {
        name,
        description,
        currency: &currency,
        badge_text,
        ..*input
    };
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        let row = model::upsert_package(conn, id.unwrap_or_else(Uuid::now_v7), &changes).await?;
        let metadata = json!({
            "created": id.is_none(), "name": row.name, "credits": row.credits,
            "bonus_credits": row.bonus_credits, "price_minor": row.price_minor,
            "currency": row.currency, "is_active": row.is_active,
        });
        audit::admin(
            conn,
            admin,
            "credits.package_saved",
            "credit_package",
            row.id.to_string(),
            metadata,
        )
        .await?;
        Ok(row)
    })
    .await
}

/// Admin: creates (`id` none) or changes a subscription plan, after checking every field. A
/// price change applies to new subscribers only: running subscriptions keep the price they
/// agreed to (stored on the subscription; Stripe prices are immutable and looked up by a key
/// that includes the amount). Tier, monthly credits and limits apply to everyone on the plan.
pub async fn upsert_plan(
    state: &AppState,
    admin: Uuid,
    id: Option<Uuid>,
    input: &PlanChanges<'_>,
) -> AppResult<PlanRow> {
    let name = input.name.trim();
    let valid_name = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid_name {
        return Err(AppError::bad_input(
            "input.name",
            "1 to 64 lowercase letters, digits or underscores, e.g. pro_monthly",
        ));
    }
    let display_name = input.display_name.trim();
    if display_name.is_empty()
        || display_name.chars().count() > 100
        || display_name.chars().any(char::is_control)
    {
        return Err(AppError::bad_input(
            "input.displayName",
            "1 to 100 characters, without control characters",
        ));
    }
    let description = optional_text("input.description", input.description, 1000)?;
    within("input.priceMinor", input.price_minor, 0..=MAX_PRICE_MINOR)?;
    within(
        "input.monthlyCredits",
        input.monthly_credits,
        0..=MAX_CREDITS,
    )?;
    within("input.trialDays", i64::from(input.trial_days), 0..=365)?;
    if input
        .monthly_generation_limit
        .is_some_and(|l| !(0..=1_000_000).contains(&l))
    {
        return Err(AppError::bad_input(
            "input.monthlyGenerationLimit",
            "between 0 and 1000000, or null for none",
        ));
    }
    if !matches!(input.interval, "month" | "year") {
        return Err(AppError::bad_input("input.interval", "`month` or `year`"));
    }
    let currency = input.currency.trim().to_uppercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(AppError::bad_input(
            "input.currency",
            "an ISO 4217 code such as USD",
        ));
    }
    if input.features.len() > 20
        || input.features.iter().any(|f| {
            f.trim().is_empty() || f.chars().count() > 100 || f.chars().any(char::is_control)
        })
    {
        return Err(AppError::bad_input(
            "input.features",
            "at most 20 lines of 1 to 100 characters",
        ));
    }
    if input.tier == SubscriptionTier::Free && input.price_minor > 0 {
        return Err(AppError::bad_input(
            "input.tier",
            "a paid plan gives a tier above FREE",
        ));
    }
    let changes = PlanChanges {
        name,
        display_name,
        description,
        currency: &currency,
        features: input
            .features
            .iter()
            .map(|f| f.trim().to_string())
            .collect(),
        ..*input
    };
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        if let Some(id) = id
            && model::plan(conn, id).await?.is_none()
        {
            return Err(AppError::NotFound("plan"));
        }
        let row = model::upsert_plan(conn, id.unwrap_or_else(Uuid::now_v7), &changes).await?;
        let metadata = json!({
            "created": id.is_none(), "name": row.name, "tier": row.tier.as_str(),
            "price_minor": row.price_minor, "currency": row.currency, "interval": row.interval,
            "monthly_credits": row.monthly_credits, "trial_days": row.trial_days,
            "is_vendor_plan": row.is_vendor_plan, "is_active": row.is_active,
        });
        audit::admin(
            conn,
            admin,
            "plans.saved",
            "payment_plan",
            row.id.to_string(),
            metadata,
        )
        .await?;
        Ok(row)
    })
    .await
}

/// Admin: takes a plan off sale (or back on). Running subscriptions keep it until they end;
/// nobody can start or switch to an archived plan.
pub async fn set_plan_archived(
    state: &AppState,
    admin: Uuid,
    id: Uuid,
    archived: bool,
) -> AppResult<PlanRow> {
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        let row = model::set_plan_active(conn, id, !archived)
            .await?
            .ok_or(AppError::NotFound("plan"))?;
        let action = if archived {
            "plans.archived"
        } else {
            "plans.restored"
        };
        audit::admin(
            conn,
            admin,
            action,
            "payment_plan",
            row.id.to_string(),
            json!({ "name": row.name }),
        )
        .await?;
        Ok(row)
    })
    .await
}

/// Admin: sets an operation's price and limits, after checking every field: a dotted
/// lowercase name, base cost 0 to [`MAX_CREDITS`], multipliers of known tiers between 0 and
/// [`MAX_TIER_MULTIPLIER`], non-negative limits. Bad input changes nothing.
pub async fn set_price(state: &AppState, admin: Uuid, input: PriceRow) -> AppResult<PriceRow> {
    let operation = input.operation.trim().to_string();
    let valid_op = operation.len() <= 64
        && operation.contains('.')
        && operation.split('.').all(|p| {
            p.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if !valid_op {
        return Err(AppError::bad_input(
            "input.operation",
            "dotted lowercase, e.g. generate.character",
        ));
    }
    within("input.baseCost", input.base_cost, 0..=MAX_CREDITS)?;
    for (v, f) in [
        (input.daily_limit, "input.dailyLimit"),
        (input.per_minute_limit, "input.perMinuteLimit"),
    ] {
        if v.is_some_and(|v| v < 0) {
            return Err(AppError::bad_input(f, "must not be negative"));
        }
    }
    let ok = input.tier_multipliers.as_object().is_some_and(|m| {
        m.iter().all(|(k, v)| {
            SubscriptionTier::from_db(k).is_some()
                && v.as_f64()
                    .is_some_and(|f| (0.0..=MAX_TIER_MULTIPLIER).contains(&f))
        })
    });
    if !ok {
        return Err(AppError::bad_input(
            "input.tierMultipliers",
            "an object of tier names to multipliers between 0 and 100",
        ));
    }
    let description =
        optional_text("input.description", input.description.as_deref(), 500)?.map(str::to_string);
    let row = PriceRow {
        operation,
        description,
        ..input
    };
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        let row = model::upsert_price(conn, &row).await?;
        let metadata = json!({
            "base_cost": row.base_cost, "tier_multipliers": row.tier_multipliers,
            "daily_limit": row.daily_limit, "per_minute_limit": row.per_minute_limit,
            "minimum_tier": row.minimum_tier.map(|t| t.as_str()), "is_enabled": row.is_enabled,
        });
        audit::admin(
            conn,
            admin,
            "credits.price_set",
            "operation_price",
            row.operation.clone(),
            metadata,
        )
        .await?;
        Ok(row)
    })
    .await
}

// ---- reads ----------------------------------------------------------------------------------

/// A user's ledger, newest first (in the order of its balances), after the entry whose
/// `seq` is `after`; `from` must not be after `to`.
pub async fn history(
    state: &AppState,
    user: Uuid,
    filter: &HistoryFilter,
    after: Option<i64>,
    limit: i64,
    extras: Fragment<Nullable<Text>>,
) -> AppResult<Vec<(TransactionRow, Option<String>)>> {
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from > to
    {
        return Err(AppError::bad_input("filter.to", "`to` is before `from`"));
    }
    let mut conn = state.read_conn(Some(user)).await?;
    Ok(model::history(&mut conn, user, filter, after, limit, extras).await?)
}

/// A user's credit account (with today's allowance).
pub async fn account(state: &AppState, user: Uuid) -> AppResult<AccountView> {
    let mut conn = db::conn(&state.pool).await?;
    model::account_views(&mut conn, &[user])
        .await?
        .into_iter()
        .next()
        .ok_or(AppError::NotFound("credit account"))
}

/// The credit packages in display order: those on sale, or every one (for admins).
pub async fn packages(state: &AppState, include_inactive: bool) -> AppResult<Vec<PackageRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::packages(&mut conn, include_inactive).await?)
}

/// Every operation's price row.
pub async fn prices(state: &AppState) -> AppResult<Vec<PriceRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::prices(&mut conn).await?)
}

/// The subscription plans on sale, or every one with the archived (for admins).
pub async fn plans(state: &AppState, include_archived: bool) -> AppResult<Vec<PlanRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::plans(&mut conn, include_archived).await?)
}

/// A plan (archived too).
pub async fn plan(state: &AppState, id: Uuid) -> AppResult<Option<PlanRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::plan(&mut conn, id).await?)
}

/// The plan named `name` (archived too), on the caller's connection.
pub async fn plan_by_name_in(
    conn: &mut AsyncPgConnection,
    name: &str,
) -> AppResult<Option<PlanRow>> {
    Ok(model::plan_by_name(conn, name).await?)
}

/// A plan (archived too), on the caller's connection.
pub async fn plan_in(conn: &mut AsyncPgConnection, id: Uuid) -> AppResult<Option<PlanRow>> {
    Ok(model::plan(conn, id).await?)
}

/// Whether `tier` may use an operation gated at `minimum`.
pub fn tier_allows(tier: SubscriptionTier, minimum: Option<SubscriptionTier>) -> bool {
    let rank = |t: SubscriptionTier| {
        SubscriptionTier::ALL
            .iter()
            .position(|x| *x == t)
            .unwrap_or(0)
    };
    minimum.is_none_or(|m| rank(tier) >= rank(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(base: i64, multipliers: serde_json::Value) -> PriceRow {
        PriceRow {
            operation: "generate.character".into(),
            base_cost: base,
            tier_multipliers: multipliers,
            daily_limit: None,
            per_minute_limit: None,
            minimum_tier: None,
            is_enabled: true,
            description: None,
        }
    }

    #[test]
    fn prices_round_up_without_float_error() {
        let p = price(
            10,
            json!({ "FREE": 1.0, "PREMIUM": 0.8, "PRO": 0.6, "ENTERPRISE": 0.4 }),
        );
        assert_eq!(price_for_tier(&p, SubscriptionTier::Free), 10);
        assert_eq!(price_for_tier(&p, SubscriptionTier::Premium), 8);
        assert_eq!(
            price_for_tier(&p, SubscriptionTier::Pro),
            6,
            "10 × 0.6 is 6, not 7"
        );
        assert_eq!(price_for_tier(&p, SubscriptionTier::Enterprise), 4);
        let p = price(3, json!({ "PRO": 0.5 }));
        assert_eq!(
            price_for_tier(&p, SubscriptionTier::Pro),
            2,
            "1.5 rounds up"
        );
        assert_eq!(
            price_for_tier(&p, SubscriptionTier::Free),
            3,
            "missing multiplier is 1"
        );
    }

    #[test]
    fn prices_never_overflow() {
        let p = price(i64::MAX, json!({ "PRO": 100.0 }));
        assert_eq!(
            price_for_tier(&p, SubscriptionTier::Pro),
            MAX_OPERATION_PRICE
        );
        assert_eq!(
            price_for_tier(&p, SubscriptionTier::Free),
            MAX_OPERATION_PRICE
        );
        let p = price(MAX_CREDITS, json!({ "PRO": 100.0 }));
        assert_eq!(
            price_for_tier(&p, SubscriptionTier::Pro),
            MAX_OPERATION_PRICE
        );
        assert!(
            MAX_OPERATION_PRICE.checked_mul(4).is_some(),
            "× outputCount"
        );
        assert_eq!(
            price_for_tier(&price(-5, json!({})), SubscriptionTier::Free),
            0
        );
    }

    #[test]
    fn tiers_are_ordered() {
        assert!(tier_allows(SubscriptionTier::Free, None));
        assert!(!tier_allows(
            SubscriptionTier::Free,
            Some(SubscriptionTier::Pro)
        ));
        assert!(tier_allows(
            SubscriptionTier::Enterprise,
            Some(SubscriptionTier::Pro)
        ));
    }
}
