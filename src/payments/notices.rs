//! The emails payments send, queued in the outbox inside the transaction that causes them:
//! a receipt when a payment completes, and notices when a plan subscription starts, renews,
//! fails to renew or ends. Only to a verified email of an active account (an account without
//! one gets nothing: its app shows the same facts).

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::model::PaymentRow;
use crate::{accounts, credits, error::AppResult, outbox};

/// What happened to a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionNotice {
    /// It started (paid, or its trial began).
    Started,
    /// A new period was paid.
    Renewed,
    /// The gateway could not take the renewal's payment: it is past due.
    PaymentFailed,
    /// It ended (cancelled, not renewed, or given time ran out).
    Ended,
}

fn money(minor: i64, currency: &str) -> String {
    format!(
        "{}{}.{:02} {}",
        if minor < 0 { "-" } else { "" },
        minor.abs() / 100,
        minor.abs() % 100,
        currency.to_uppercase()
    )
}

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// Queues the receipt of a completed payment: `what` was bought, `credits` granted (0 for a
/// plan's first payment: the plan grants its own).
pub async fn receipt_in(
    conn: &mut AsyncPgConnection,
    payment: &PaymentRow,
    what: &str,
    credits: i64,
) -> AppResult<()> {
    let Some(to) = accounts::model::verified_email_of(conn, payment.user_id).await? else {
        return Ok(());
    };
    let mut body = format!(
        "Thank you for your payment.\n\n\
         Item: {what}\n\
         Amount: {}\n\
         Paid with: {}\n\
         Date: {}\n\
         Receipt number: {}\n",
        money(payment.amount_minor, &payment.currency),
        payment.gateway.as_str(),
        day(Utc::now()),
        payment.id,
    );
    if credits > 0 {
        body.push_str(&format!("Credits added to your balance: {credits}\n"));
    }
    body.push_str("\nKeep this email for your records.\n");
    outbox::enqueue_email(
        conn,
        &to,
        "payment_receipt",
        &format!("Your Easel receipt: {what}"),
        &body,
    )
    .await?;
    Ok(())
}

/// Queues a subscription notice about `user`'s subscription to `plan`, whose current period
/// ends at `period_end`.
pub async fn subscription_notice_in(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    plan: Uuid,
    notice: SubscriptionNotice,
    period_end: DateTime<Utc>,
) -> AppResult<()> {
    let Some(to) = accounts::model::verified_email_of(conn, user).await? else {
        return Ok(());
    };
    let name = credits::service::plan_in(conn, plan)
        .await?
        .map_or_else(|| "Easel".to_string(), |p| p.display_name);
    let end = day(period_end);
    let (template, subject, body) = match notice {
        SubscriptionNotice::Started => (
            "subscription_started",
            format!("Your {name} plan has started"),
            format!(
                "Welcome to {name}! Your plan is active until {end}, and renews then unless you cancel it.\n"
            ),
        ),
        SubscriptionNotice::Renewed => (
            "subscription_renewed",
            format!("Your {name} plan was renewed"),
            format!("We received the payment for your {name} plan. It now runs until {end}.\n"),
        ),
        SubscriptionNotice::PaymentFailed => (
            "subscription_payment_failed",
            format!("We could not renew your {name} plan"),
            format!(
                "The payment for your {name} plan failed. Please update your payment method; your plan stays on for now, but ends if the payment keeps failing.\n"
            ),
        ),
        SubscriptionNotice::Ended => (
            "subscription_ended",
            format!("Your {name} plan has ended"),
            format!(
                "Your {name} plan has ended; your account is back on its free allowances. You can subscribe again at any time.\n"
            ),
        ),
    };
    outbox::enqueue_email(conn, &to, template, &subject, &body).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn amounts_read_as_money() {
        assert_eq!(super::money(1999, "usd"), "19.99 USD");
        assert_eq!(super::money(5, "eur"), "0.05 EUR");
    }
}
