//! Issue #13: plans bought, renewed, failed, changed, cancelled, tried and given; tiers,
//! monthly credits (once per paid period, whatever the deliveries), monthly generation limits,
//! vendor plans; the Stripe adapter against a local stub that answers as Stripe's API
//! reference documents.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Months, Utc};
use easel::payments::gateways;
use futures_util::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::credits::deliver;
use crate::support::{TestApp, code, field, user};

const FREE: &str = "0191f000-0000-7000-8000-000000000101";
const PREMIUM: &str = "0191f000-0000-7000-8000-000000000102";
const PRO: &str = "0191f000-0000-7000-8000-000000000103";

const SUBSCRIBE: &str = "mutation($p: ID!, $g: PaymentGateway!, $r: String, $k: String) { \
    subscribeToPlan(input: { planId: $p, gateway: $g, returnUrl: $r, idempotencyKey: $k }) { \
    id status amountMinor currency checkoutUrl planId } }";
const ME: &str = "{ me { subscriptionTier credits { balance } subscription { id status source \
    currentPeriodStart currentPeriodEnd cancelAtPeriodEnd trialEndsAt priceMinor gateway \
    generationsThisMonth plan { name tier } pendingPlan { name } } } }";
const ADVANCE: &str = "mutation($id: ID!, $o: SandboxRenewalOutcome!) { \
    sandboxAdvanceSubscription(id: $id, outcome: $o) { status currentPeriodEnd } }";
const PLAN: &str = "mutation($i: PaymentPlanInput!) { upsertPaymentPlan(input: $i) { id name priceMinor trialDays isVendorPlan isArchived monthlyGenerationLimit } }";

async fn me(app: &TestApp, token: &str) -> Value {
    let (_, body) = app.gql_as(token, ME, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["me"].clone()
}

/// Starts a sandbox subscription checkout; the payment.
async fn checkout(app: &TestApp, token: &str, plan: &str) -> Value {
    let (_, body) = app
        .gql_as(token, SUBSCRIBE, json!({ "p": plan, "g": "SANDBOX" }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["subscribeToPlan"].clone()
}

/// Approves a sandbox checkout on its hosted page.
async fn approve(app: &TestApp, payment: &Value) {
    let resp = app
        .client
        .post(payment["checkoutUrl"].as_str().unwrap())
        .form(&[("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// Subscribes through the sandbox; the viewer afterwards.
async fn subscribed(app: &TestApp, token: &str, plan: &str) -> Value {
    let payment = checkout(app, token, plan).await;
    approve(app, &payment).await;
    me(app, token).await
}

async fn advance(app: &TestApp, admin: &str, sub: &Value, outcome: &str) -> Value {
    let (_, body) = app
        .gql_as(admin, ADVANCE, json!({ "id": sub["id"], "o": outcome }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["sandboxAdvanceSubscription"].clone()
}

async fn grants(app: &TestApp, user: &str) -> i64 {
    app.scalar(&format!(
        "SELECT count(*) AS n FROM credit_transactions WHERE kind = 'subscription_grant' AND user_id = '{user}'"
    ))
    .await
}

async fn end_overdue(app: &TestApp) -> usize {
    let mut conn = app.db().await;
    easel::payments::subscriptions::end_overdue(&mut conn, chrono::Duration::hours(72))
        .await
        .unwrap()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// A plan bought through the sandbox: tier and credits at once, renewals grant again,
/// a failed renewal keeps the plan (past due), cancelling ends it at the period's end, and
/// the tier falls back to FREE.
#[tokio::test]
async fn a_sandbox_subscription_lives_and_ends() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155550900").await;
    let (token, uid) = user(&app, 901).await;
    let before = me(&app, &token).await;
    assert_eq!(before["subscriptionTier"], "FREE");
    assert!(before["subscription"].is_null());
    let balance = before["credits"]["balance"].as_i64().unwrap();

    let payment = checkout(&app, &token, PREMIUM).await;
    assert_eq!(
        (
            &payment["status"],
            &payment["amountMinor"],
            &payment["planId"]
        ),
        (&json!("PENDING"), &json!(999), &json!(PREMIUM)),
        "{payment}"
    );
    let page = app
        .client
        .get(payment["checkoutUrl"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(
            "<strong>Premium</strong> subscription, 9.99 USD a month: first month for 9.99 USD"
        ),
        "{page}"
    );
    assert!(
        me(&app, &token).await["subscription"].is_null(),
        "nothing starts before the gateway says paid"
    );
    approve(&app, &payment).await;
    let now = me(&app, &token).await;
    let sub = now["subscription"].clone();
    assert_eq!(now["subscriptionTier"], "PREMIUM", "{now}");
    assert_eq!(
        (
            &sub["status"],
            &sub["source"],
            &sub["gateway"],
            &sub["priceMinor"]
        ),
        (
            &json!("ACTIVE"),
            &json!("CHECKOUT"),
            &json!("SANDBOX"),
            &json!(999)
        )
    );
    assert_eq!(sub["plan"], json!({ "name": "premium", "tier": "PREMIUM" }));
    let start = time(&sub["currentPeriodStart"]);
    assert_eq!(
        time(&sub["currentPeriodEnd"]),
        start.checked_add_months(Months::new(1)).unwrap()
    );
    assert_eq!(now["credits"]["balance"], balance + 300, "monthly credits");
    assert_eq!(grants(&app, &uid).await, 1);
    // The viewer's prices follow the tier at once.
    let (_, body) = app
        .gql_as(&token, "{ operationPrices { operation price } }", json!({}))
        .await;
    let prices = body["data"]["operationPrices"].as_array().unwrap();
    let character = prices
        .iter()
        .find(|p| p["operation"] == "generate.character")
        .unwrap();
    assert_eq!(character["price"], 2, "2 × 0.8 rounds up to 2: {body}");
    // Others see no subscription.
    let (other, _) = user(&app, 902).await;
    let (_, body) = app
        .gql_as(
            &other,
            "query($id: ID!) { user(id: $id) { subscription { id } } }",
            json!({ "id": uid }),
        )
        .await;
    assert!(body["data"]["user"]["subscription"].is_null(), "{body}");

    // Renewal: a new period and its credits.
    let renewed = advance(&app, &admin, &sub, "RENEW").await;
    assert_eq!(renewed["status"], "ACTIVE");
    assert!(time(&renewed["currentPeriodEnd"]) > time(&sub["currentPeriodEnd"]));
    assert_eq!(grants(&app, &uid).await, 2);
    // A failed renewal charge: past due, the plan stays on while the gateway retries.
    assert_eq!(
        advance(&app, &admin, &sub, "FAIL").await["status"],
        "PAST_DUE"
    );
    assert_eq!(me(&app, &token).await["subscriptionTier"], "PREMIUM");
    assert_eq!(
        advance(&app, &admin, &sub, "RENEW").await["status"],
        "ACTIVE"
    );
    assert_eq!(grants(&app, &uid).await, 3);

    // Cancel at period end, resume, cancel again.
    let (_, body) = app
        .gql_as(
            &token,
            "mutation { cancelSubscription { cancelAtPeriodEnd status } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["cancelSubscription"],
        json!({ "cancelAtPeriodEnd": true, "status": "ACTIVE" }),
        "{body}"
    );
    let (_, body) = app
        .gql_as(&token, "mutation { cancelSubscription { id } }", json!({}))
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    let (_, body) = app
        .gql_as(
            &token,
            "mutation { resumeSubscription { cancelAtPeriodEnd } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["resumeSubscription"]["cancelAtPeriodEnd"], false,
        "{body}"
    );
    app.gql_as(&token, "mutation { cancelSubscription { id } }", json!({}))
        .await;
    assert_eq!(end_overdue(&app).await, 0, "its period is not over");
    app.exec(&format!(
        "UPDATE subscriptions SET current_period_end = now() - interval '1 second' WHERE user_id = '{uid}'"
    ))
    .await;
    assert_eq!(end_overdue(&app).await, 1);
    let after = me(&app, &token).await;
    assert_eq!(after["subscriptionTier"], "FREE", "{after}");
    assert!(after["subscription"].is_null());
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM subscriptions WHERE user_id = '{uid}' AND status = 'expired'"
        ))
        .await,
        1
    );
    let (_, body) = app
        .gql_as(&token, "mutation { resumeSubscription { id } }", json!({}))
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    app.assert_ledger_ok().await;
}

/// A gateway subscription the gateway never renews ends only after the grace period.
#[tokio::test]
async fn an_unrenewed_gateway_subscription_ends_after_the_grace() {
    let app = TestApp::spawn().await;
    let (token, uid) = user(&app, 911).await;
    subscribed(&app, &token, PREMIUM).await;
    app.exec(&format!(
        "UPDATE subscriptions SET current_period_end = now() - interval '1 day' WHERE user_id = '{uid}'"
    ))
    .await;
    assert_eq!(end_overdue(&app).await, 0, "the renewal may still come");
    assert_eq!(me(&app, &token).await["subscriptionTier"], "PREMIUM");
    app.exec(&format!(
        "UPDATE subscriptions SET current_period_end = now() - interval '73 hours' WHERE user_id = '{uid}'"
    ))
    .await;
    assert_eq!(end_overdue(&app).await, 1);
    assert_eq!(me(&app, &token).await["subscriptionTier"], "FREE");
    app.assert_ledger_ok().await;
}

fn renewal(sub_ref: &str, id: &str, start: DateTime<Utc>) -> (String, String) {
    let end = start.checked_add_months(Months::new(1)).unwrap();
    let body = json!({
        "id": id, "type": "subscription.renewed", "subscriptionRef": sub_ref,
        "periodStart": start.to_rfc3339(), "periodEnd": end.to_rfc3339(),
        "created": Utc::now().timestamp(),
    })
    .to_string();
    let sig = gateways::sign(
        easel::config::DEV_SANDBOX_SECRET.as_bytes(),
        Utc::now().timestamp(),
        body.as_bytes(),
    );
    (body, sig)
}

/// Ten parallel deliveries of one renewal, and ten different events for the same period:
/// the period's credits are granted once.
#[tokio::test]
async fn a_renewal_grants_once_whatever_the_deliveries() {
    let app = TestApp::spawn_with(|c| c.db_pool_size = 24).await;
    let (token, uid) = user(&app, 921).await;
    let payment = checkout(&app, &token, PRO).await;
    approve(&app, &payment).await;
    let sub = me(&app, &token).await["subscription"].clone();
    let sub_ref = format!(
        "sbx_sub_{}",
        Uuid::parse_str(payment["id"].as_str().unwrap())
            .unwrap()
            .simple()
    );
    let start = time(&sub["currentPeriodEnd"]);
    let (body, sig) = renewal(&sub_ref, "evt_renew_same", start);
    let same = join_all((0..10).map(|_| deliver(&app, &body, &sig))).await;
    assert!(same.iter().all(|s| *s == 200), "{same:?}");
    let distinct: Vec<(String, String)> = (0..10)
        .map(|i| renewal(&sub_ref, &format!("evt_renew_{i}"), start))
        .collect();
    let others = join_all(distinct.iter().map(|(b, s)| deliver(&app, b, s))).await;
    assert!(others.iter().all(|s| *s == 200), "{others:?}");
    assert_eq!(grants(&app, &uid).await, 2, "the first period and this one");
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM subscription_periods WHERE user_id = '{uid}'"
        ))
        .await,
        2
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT balance - 10 AS n FROM credit_accounts WHERE user_id = '{uid}'"
        ))
        .await,
        2000,
        "the sign-up bonus and two periods of 1,000"
    );
    assert_eq!(
        time(&me(&app, &token).await["subscription"]["currentPeriodEnd"]),
        start.checked_add_months(Months::new(1)).unwrap()
    );
    app.assert_ledger_ok().await;
    // The invariant check sees a period without its grant, a grant of no period, and a grant
    // of the wrong amount.
    let problems = app
        .violations_after("UPDATE subscription_periods SET transaction_id = NULL")
        .await;
    assert!(
        problems
            .iter()
            .any(|p| p.ends_with("credits, grant missing"))
            && problems
                .iter()
                .any(|p| p.ends_with("belongs to no paid period")),
        "{problems:?}"
    );
    let problems = app
        .violations_after("UPDATE subscription_periods SET credits = credits + 1")
        .await;
    assert!(
        problems
            .iter()
            .any(|p| p.ends_with("1001 credits, grant 1000")),
        "{problems:?}"
    );
}

/// Trials: once per user, the tier without credits, then paid periods.
#[tokio::test]
async fn a_trial_is_offered_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155550930").await;
    let (_, body) = app
        .gql_as(
            &admin,
            PLAN,
            json!({ "i": { "name": "studio_trial", "displayName": "Studio", "tier": "PRO", "priceMinor": 1500,
                            "currency": "usd", "interval": "month", "monthlyCredits": 100, "trialDays": 7 } }),
        )
        .await;
    let plan = body["data"]["upsertPaymentPlan"].clone();
    assert_eq!(plan["trialDays"], 7, "{body}");
    let (token, uid) = user(&app, 931).await;
    let payment = checkout(&app, &token, plan["id"].as_str().unwrap()).await;
    assert_eq!(payment["amountMinor"], 0, "nothing is charged for a trial");
    approve(&app, &payment).await;
    let now = me(&app, &token).await;
    let sub = now["subscription"].clone();
    assert_eq!(sub["status"], "TRIAL", "{now}");
    assert_eq!(now["subscriptionTier"], "PRO");
    assert_eq!(sub["priceMinor"], 1500, "the price after the trial");
    let trial_end = time(&sub["trialEndsAt"]);
    let days = (trial_end - Utc::now()).num_hours();
    assert!((7 * 24 - 1..=7 * 24).contains(&days), "{days} hours");
    assert_eq!(grants(&app, &uid).await, 0, "a trial is not a paid period");
    // The gateway charges at the trial's end: a paid period.
    assert_eq!(
        advance(&app, &admin, &sub, "RENEW").await["status"],
        "ACTIVE"
    );
    assert_eq!(grants(&app, &uid).await, 1);
    assert_eq!(
        advance(&app, &admin, &sub, "END").await["status"],
        "EXPIRED"
    );
    assert_eq!(me(&app, &token).await["subscriptionTier"], "FREE");
    let (_, body) = app
        .gql_as(&admin, ADVANCE, json!({ "id": sub["id"], "o": "RENEW" }))
        .await;
    assert_eq!(
        code(&body),
        "CONFLICT",
        "an ended subscription stays ended: {body}"
    );
    assert_eq!(grants(&app, &uid).await, 1);
    // No second trial.
    let again = checkout(&app, &token, plan["id"].as_str().unwrap()).await;
    assert_eq!(again["amountMinor"], 1500, "{again}");
    app.assert_ledger_ok().await;
}

/// Upgrades apply at once; downgrades at the period's end; other currencies and archived
/// plans are refused.
#[tokio::test]
async fn plan_changes_upgrade_now_and_downgrade_at_period_end() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155550940").await;
    let (token, uid) = user(&app, 941).await;
    let sub = subscribed(&app, &token, PREMIUM).await["subscription"].clone();
    const CHANGE: &str = "mutation($p: ID!) { changeSubscriptionPlan(planId: $p) { plan { name } pendingPlan { name } priceMinor } }";
    let (_, body) = app.gql_as(&token, CHANGE, json!({ "p": PRO })).await;
    assert_eq!(
        body["data"]["changeSubscriptionPlan"],
        json!({ "plan": { "name": "pro" }, "pendingPlan": null, "priceMinor": 2999 }),
        "{body}"
    );
    assert_eq!(me(&app, &token).await["subscriptionTier"], "PRO");
    let (_, body) = app.gql_as(&token, CHANGE, json!({ "p": PREMIUM })).await;
    assert_eq!(
        body["data"]["changeSubscriptionPlan"],
        json!({ "plan": { "name": "pro" }, "pendingPlan": { "name": "premium" }, "priceMinor": 2999 }),
        "{body}"
    );
    assert_eq!(
        me(&app, &token).await["subscriptionTier"],
        "PRO",
        "paid for until the period ends"
    );
    // Choosing the current plan again drops the downgrade; then downgrade again.
    let (_, body) = app.gql_as(&token, CHANGE, json!({ "p": PRO })).await;
    assert_eq!(
        body["data"]["changeSubscriptionPlan"],
        json!({ "plan": { "name": "pro" }, "pendingPlan": null, "priceMinor": 2999 }),
        "{body}"
    );
    app.gql_as(&token, CHANGE, json!({ "p": PREMIUM })).await;
    let balance = me(&app, &token).await["credits"]["balance"]
        .as_i64()
        .unwrap();
    advance(&app, &admin, &sub, "RENEW").await;
    let now = me(&app, &token).await;
    assert_eq!(now["subscriptionTier"], "PREMIUM", "{now}");
    assert_eq!(now["subscription"]["plan"]["name"], "premium");
    assert!(now["subscription"]["pendingPlan"].is_null());
    assert_eq!(
        now["credits"]["balance"],
        balance + 300,
        "the new period brings the new plan's credits"
    );
    // Refused changes change nothing.
    let (_, body) = app
        .gql_as(
            &admin,
            PLAN,
            json!({ "i": { "name": "euro_pro", "displayName": "Pro €", "tier": "PRO", "priceMinor": 2500,
                            "currency": "EUR", "interval": "month" } }),
        )
        .await;
    let euro = body["data"]["upsertPaymentPlan"]["id"].clone();
    let (_, body) = app.gql_as(&token, CHANGE, json!({ "p": euro })).await;
    assert_eq!(
        (code(&body), field(&body)),
        ("BAD_USER_INPUT", "input.planId"),
        "{body}"
    );
    app.gql_as(
        &admin,
        "mutation($id: ID!) { archivePaymentPlan(id: $id) { isArchived } }",
        json!({ "id": PRO }),
    )
    .await;
    let (_, body) = app.gql_as(&token, CHANGE, json!({ "p": PRO })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "archived: {body}");
    let (_, body) = app.gql_as(&token, CHANGE, json!({ "p": PREMIUM })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "already on it: {body}");
    let (_, body) = app
        .gql_as(&token, CHANGE, json!({ "p": Uuid::now_v7() }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "unknown plan: {body}");
    assert_eq!(
        me(&app, &token).await["subscription"]["plan"]["name"],
        "premium"
    );
    let _ = uid;
    app.assert_ledger_ok().await;
}

/// Admin gifts: days of a plan without payment, extended by a second gift, replaced by a
/// paid plan; never on top of a paid one.
#[tokio::test]
async fn gifted_plans() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155550950").await;
    let (token, uid) = user(&app, 951).await;
    const GIFT: &str = "mutation($u: ID!, $p: ID!, $d: Int!) { giftSubscription(input: { userId: $u, planId: $p, days: $d }) { status source currentPeriodEnd gateway } }";
    let (_, body) = app
        .gql_as(&token, GIFT, json!({ "u": uid, "p": PRO, "d": 30 }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    for (days, plan, want) in [
        (0, PRO, "input.days"),
        (3651, PRO, "input.days"),
        (30, FREE, "input.planId"),
    ] {
        let (_, body) = app
            .gql_as(&admin, GIFT, json!({ "u": uid, "p": plan, "d": days }))
            .await;
        assert_eq!(
            (code(&body), field(&body)),
            ("BAD_USER_INPUT", want),
            "{body}"
        );
    }
    assert!(me(&app, &token).await["subscription"].is_null());
    let balance = me(&app, &token).await["credits"]["balance"].clone();
    let (_, body) = app
        .gql_as(&admin, GIFT, json!({ "u": uid, "p": PRO, "d": 30 }))
        .await;
    let gift = body["data"]["giftSubscription"].clone();
    assert_eq!(
        (&gift["status"], &gift["source"], &gift["gateway"]),
        (&json!("ACTIVE"), &json!("GIFT"), &Value::Null),
        "{body}"
    );
    let now = me(&app, &token).await;
    assert_eq!(now["subscriptionTier"], "PRO");
    assert_eq!(
        now["credits"]["balance"], balance,
        "a gift is not a paid period"
    );
    let (_, body) = app
        .gql_as(&admin, GIFT, json!({ "u": uid, "p": PRO, "d": 10 }))
        .await;
    let extended = time(&body["data"]["giftSubscription"]["currentPeriodEnd"]);
    assert_eq!((extended - time(&gift["currentPeriodEnd"])).num_days(), 10);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM audit_logs WHERE action = 'subscriptions.gifted'")
            .await,
        2
    );
    let (_, body) = app
        .gql_as(&token, "mutation { cancelSubscription { id } }", json!({}))
        .await;
    assert_eq!(
        code(&body),
        "BAD_USER_INPUT",
        "a gift ends by itself: {body}"
    );

    // A paid plan replaces the gift.
    let paid = subscribed(&app, &token, PREMIUM).await;
    assert_eq!(paid["subscription"]["source"], "CHECKOUT", "{paid}");
    assert_eq!(paid["subscriptionTier"], "PREMIUM");
    let (_, body) = app
        .gql_as(&admin, GIFT, json!({ "u": uid, "p": PRO, "d": 5 }))
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");

    // A gift ends at its end.
    let (token2, uid2) = user(&app, 952).await;
    app.gql_as(&admin, GIFT, json!({ "u": uid2, "p": PREMIUM, "d": 3 }))
        .await;
    app.exec(&format!(
        "UPDATE subscriptions SET current_period_end = now() WHERE user_id = '{uid2}'"
    ))
    .await;
    assert_eq!(end_overdue(&app).await, 1);
    assert_eq!(me(&app, &token2).await["subscriptionTier"], "FREE");
    app.assert_ledger_ok().await;
}

const GENERATE: &str = "mutation { generate(input: { kind: LOGO, prompt: \"acme\" }) { id } }";

/// `monthlyGenerationLimit`: at the limit `RATE_LIMITED` until the month is over, nothing
/// queued or charged; parallel requests never exceed it.
#[tokio::test]
async fn the_monthly_generation_limit_holds_under_concurrency() {
    let app = TestApp::spawn_with(|c| {
        c.db_pool_size = 20;
        c.workers = 0; // the jobs stay queued, so one can be cancelled
    })
    .await;
    let admin = app.admin_token("+14155550960").await;
    let (_, body) = app
        .gql_as(
            &admin,
            PLAN,
            json!({ "i": { "name": "starter", "displayName": "Starter", "tier": "PREMIUM", "priceMinor": 300,
                            "currency": "USD", "interval": "month", "monthlyGenerationLimit": 3 } }),
        )
        .await;
    let plan = body["data"]["upsertPaymentPlan"]["id"].clone();
    let (token, uid) = user(&app, 961).await;
    app.gql_as(
        &admin,
        "mutation($u: ID!) { adjustCredits(input: { userId: $u, amount: 100, reason: \"test credits\" }) { id } }",
        json!({ "u": uid }),
    )
    .await;
    app.gql_as(
        &admin,
        "mutation($u: ID!, $p: ID!) { giftSubscription(input: { userId: $u, planId: $p, days: 60 }) { id } }",
        json!({ "u": uid, "p": plan }),
    )
    .await;
    let answers = join_all((0..8).map(|_| app.gql_as(&token, GENERATE, json!({})))).await;
    let ok = answers
        .iter()
        .filter(|(_, b)| b["errors"].is_null())
        .count();
    assert_eq!(ok, 3, "{answers:?}");
    let limited: Vec<&Value> = answers
        .iter()
        .map(|(_, b)| b)
        .filter(|b| code(b) == "RATE_LIMITED")
        .collect();
    assert_eq!(limited.len(), 5, "{answers:?}");
    let retry = limited[0]["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_i64()
        .unwrap();
    assert!(
        (27 * 86_400..=31 * 86_400).contains(&retry),
        "until the month is over: {retry}"
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM generation_jobs WHERE user_id = '{uid}'"
        ))
        .await,
        3
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM credit_transactions WHERE kind = 'usage' AND user_id = '{uid}'"
        ))
        .await,
        3,
        "nothing charged for the refused ones"
    );
    assert_eq!(
        me(&app, &token).await["subscription"]["generationsThisMonth"],
        3
    );
    // A cancelled job gives its generation back (with its credits).
    let job = answers
        .iter()
        .find_map(|(_, b)| b["data"]["generate"]["id"].as_str())
        .unwrap();
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { cancelGenerationJob(id: $id) { status } }",
            json!({ "id": job }),
        )
        .await;
    assert_eq!(
        body["data"]["cancelGenerationJob"]["status"], "CANCELLED",
        "{body}"
    );
    assert_eq!(
        me(&app, &token).await["subscription"]["generationsThisMonth"],
        2
    );
    let (_, body) = app.gql_as(&token, GENERATE, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    let (_, body) = app.gql_as(&token, GENERATE, json!({})).await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    // Retrying the cancelled job is a generation too.
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { retryGenerationJob(id: $id) { status } }",
            json!({ "id": job }),
        )
        .await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    // A new month opens the window again.
    app.exec(&format!(
        "UPDATE subscriptions SET usage_window_start = usage_window_start - interval '32 days' WHERE user_id = '{uid}'"
    ))
    .await;
    let (_, body) = app.gql_as(&token, GENERATE, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        me(&app, &token).await["subscription"]["generationsThisMonth"],
        1
    );
    app.assert_ledger_ok().await;
}

/// A vendor plan lifts the album quota; another plan does not.
#[tokio::test]
async fn a_vendor_plan_lifts_the_album_quota() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155550970").await;
    let (token, vendor_id) = crate::support::vendor(&app, 971, "Studio").await;
    let images: Vec<Value> =
        join_all((0..3).map(|_| crate::gallery::upload(&app, &token, true))).await;
    let (_, body) = app
        .gql_as(
            &token,
            "mutation { createAlbum(input: { name: \"Spring\" }) { id } }",
            json!({}),
        )
        .await;
    let album = body["data"]["createAlbum"]["id"].clone();
    app.exec(&format!(
        "UPDATE vendor_profiles SET free_gallery_remaining = 0 WHERE user_id = '{vendor_id}'"
    ))
    .await;
    const ADD: &str = "mutation($a: ID!, $ids: [ID!]!) { addImagesToAlbum(albumId: $a, imageIds: $ids) { imageCount } }";
    const GIFT: &str = "mutation($u: ID!, $p: ID!) { giftSubscription(input: { userId: $u, planId: $p, days: 30 }) { id } }";
    let (_, body) = app
        .gql_as(&token, ADD, json!({ "a": album, "ids": [images[0]["id"]] }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    app.gql_as(&admin, GIFT, json!({ "u": vendor_id, "p": PREMIUM }))
        .await;
    let (_, body) = app
        .gql_as(&token, ADD, json!({ "a": album, "ids": [images[0]["id"]] }))
        .await;
    assert_eq!(
        code(&body),
        "FORBIDDEN",
        "Premium is not a vendor plan: {body}"
    );
    app.gql_as(&admin, GIFT, json!({ "u": vendor_id, "p": PRO }))
        .await;
    let (_, body) = app
        .gql_as(
            &token,
            ADD,
            json!({ "a": album, "ids": [images[0]["id"], images[1]["id"], images[2]["id"]] }),
        )
        .await;
    assert_eq!(body["data"]["addImagesToAlbum"]["imageCount"], 3, "{body}");
}

/// Bad subscription requests answer the right code and change nothing.
#[tokio::test]
async fn bad_subscription_requests_change_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155550980").await;
    let (token, _) = user(&app, 981).await;
    let (_, body) = app
        .gql(SUBSCRIBE, json!({ "p": PREMIUM, "g": "SANDBOX" }))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    for (vars, want_code, want_field) in [
        (
            json!({ "p": Uuid::now_v7(), "g": "SANDBOX" }),
            "BAD_USER_INPUT",
            "input.planId",
        ),
        (
            json!({ "p": "not-an-id", "g": "SANDBOX" }),
            "BAD_USER_INPUT",
            "input.planId",
        ),
        (
            json!({ "p": FREE, "g": "SANDBOX" }),
            "BAD_USER_INPUT",
            "input.planId",
        ),
        (
            json!({ "p": PREMIUM, "g": "STRIPE", "r": "https://app.example" }),
            "BAD_USER_INPUT",
            "input.gateway",
        ),
        (
            json!({ "p": PREMIUM, "g": "SANDBOX", "r": "javascript:alert(1)" }),
            "BAD_USER_INPUT",
            "input.returnUrl",
        ),
    ] {
        let (_, body) = app.gql_as(&token, SUBSCRIBE, vars.clone()).await;
        assert_eq!(
            (code(&body), field(&body)),
            (want_code, want_field),
            "{vars}: {body}"
        );
    }
    let (_, body) = app
        .gql_as(
            &admin,
            "mutation($id: ID!) { archivePaymentPlan(id: $id) { isArchived } }",
            json!({ "id": PREMIUM }),
        )
        .await;
    assert_eq!(
        body["data"]["archivePaymentPlan"]["isArchived"], true,
        "{body}"
    );
    let (_, body) = app
        .gql_as(&token, SUBSCRIBE, json!({ "p": PREMIUM, "g": "SANDBOX" }))
        .await;
    assert_eq!(
        (code(&body), field(&body)),
        ("BAD_USER_INPUT", "input.planId"),
        "archived: {body}"
    );
    let (_, body) = app
        .gql_as(&token, "{ paymentPlans { name } }", json!({}))
        .await;
    assert!(
        !body["data"]["paymentPlans"]
            .to_string()
            .contains("\"premium\""),
        "archived plans are off sale: {body}"
    );
    let (_, body) = app
        .gql_as(
            &admin,
            "{ paymentPlans(includeArchived: true) { name isArchived } }",
            json!({}),
        )
        .await;
    assert!(
        body["data"]["paymentPlans"]
            .to_string()
            .contains("\"premium\""),
        "{body}"
    );
    assert_eq!(app.scalar("SELECT count(*) AS n FROM payments").await, 0);
    for mutation in [
        "mutation { cancelSubscription { id } }",
        "mutation { resumeSubscription { id } }",
        "mutation { changeSubscriptionPlan(planId: \"0191f000-0000-7000-8000-000000000103\") { id } }",
    ] {
        let (_, body) = app.gql_as(&token, mutation, json!({})).await;
        assert_eq!(code(&body), "NOT_FOUND", "{mutation}: {body}");
    }
    // Subscribed: a second subscription is refused, a replay answers the first payment.
    let first = app
        .gql_as(
            &token,
            SUBSCRIBE,
            json!({ "p": PRO, "g": "SANDBOX", "k": "sub-1" }),
        )
        .await
        .1;
    let replay = app
        .gql_as(
            &token,
            SUBSCRIBE,
            json!({ "p": PRO, "g": "SANDBOX", "k": "sub-1" }),
        )
        .await
        .1;
    assert_eq!(
        first["data"]["subscribeToPlan"]["id"],
        replay["data"]["subscribeToPlan"]["id"]
    );
    approve(&app, &first["data"]["subscribeToPlan"]).await;
    let (_, body) = app
        .gql_as(&token, SUBSCRIBE, json!({ "p": PRO, "g": "SANDBOX" }))
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    // Sandbox renewals are admin-only.
    let sub = me(&app, &token).await["subscription"].clone();
    let (_, body) = app
        .gql_as(&token, ADVANCE, json!({ "id": sub["id"], "o": "RENEW" }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    app.assert_ledger_ok().await;
}

/// Admin plan editing: checked input, audited, and a price change never touches a running
/// subscription's price.
#[tokio::test]
async fn admins_edit_plans_without_touching_running_prices() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155550990").await;
    let (token, _) = user(&app, 991).await;
    let good = json!({ "name": "pro", "displayName": "Pro", "tier": "PRO", "priceMinor": 2999,
                       "currency": "USD", "interval": "month", "monthlyCredits": 1000, "isVendorPlan": true });
    let (_, body) = app.gql_as(&token, PLAN, json!({ "i": good.clone() })).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    for (change, want) in [
        (json!({ "name": "Pro Plan" }), "input.name"),
        (json!({ "interval": "week" }), "input.interval"),
        (json!({ "currency": "dollars" }), "input.currency"),
        (json!({ "priceMinor": -1 }), "input.priceMinor"),
        (json!({ "trialDays": 400 }), "input.trialDays"),
        (json!({ "tier": "FREE" }), "input.tier"),
        (
            json!({ "monthlyGenerationLimit": -2 }),
            "input.monthlyGenerationLimit",
        ),
        (json!({ "displayName": "" }), "input.displayName"),
    ] {
        let mut input = good.clone();
        input
            .as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        input["id"] = json!(PRO);
        let (_, body) = app.gql_as(&admin, PLAN, json!({ "i": input })).await;
        assert_eq!(
            (code(&body), field(&body)),
            ("BAD_USER_INPUT", want),
            "{body}"
        );
    }
    let sub = subscribed(&app, &token, PRO).await["subscription"].clone();
    assert_eq!(sub["priceMinor"], 2999);
    let mut dearer = good.clone();
    dearer["id"] = json!(PRO);
    dearer["priceMinor"] = json!(3999);
    let (_, body) = app.gql_as(&admin, PLAN, json!({ "i": dearer })).await;
    assert_eq!(
        body["data"]["upsertPaymentPlan"]["priceMinor"], 3999,
        "{body}"
    );
    let now = me(&app, &token).await["subscription"].clone();
    assert_eq!(now["priceMinor"], 2999, "the running price stays");
    let (_, body) = app
        .gql_as(&admin, PLAN, json!({ "i": { "id": Uuid::now_v7(), "name": "x", "displayName": "X", "tier": "PRO",
                                              "priceMinor": 1, "currency": "USD", "interval": "month" } }))
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM audit_logs WHERE action = 'plans.saved'")
            .await,
        1,
        "refused input logs nothing"
    );
}

type Seen = Arc<Mutex<Vec<(String, HashMap<String, String>)>>>;

/// A stub of the part of Stripe's API Easel calls: Prices (list by lookup key, create),
/// Checkout Sessions and Subscription updates; it records each request.
async fn stripe_stub() -> (String, Seen) {
    use axum::{
        Form, Router,
        extract::{Path, Query},
        routing::{get, post},
    };
    let seen: Seen = Arc::default();
    let prices: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (r1, r2, r3, r4) = (seen.clone(), seen.clone(), seen.clone(), seen.clone());
    let (p1, p2) = (prices.clone(), prices.clone());
    let stub = Router::new()
        .route(
            "/v1/prices",
            get(move |Query(q): Query<HashMap<String, String>>| {
                let (seen, prices) = (r1.clone(), p1.clone());
                async move {
                    seen.lock().unwrap().push(("GET /v1/prices".into(), q.clone()));
                    let key = q.get("lookup_keys[]").cloned().unwrap_or_default();
                    let data: Vec<Value> = prices
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|p| p["lookup_key"] == key.as_str())
                        .cloned()
                        .collect();
                    axum::Json(json!({ "object": "list", "data": data, "has_more": false, "url": "/v1/prices" }))
                }
            })
            .post(move |Form(f): Form<HashMap<String, String>>| {
                let (seen, prices) = (r2.clone(), p2.clone());
                async move {
                    seen.lock().unwrap().push(("POST /v1/prices".into(), f.clone()));
                    let mut prices = prices.lock().unwrap();
                    let price = json!({ "id": format!("price_{}", prices.len() + 1), "object": "price",
                                        "lookup_key": f["lookup_key"], "unit_amount": f["unit_amount"].parse::<i64>().unwrap(),
                                        "currency": f["currency"], "recurring": { "interval": f["recurring[interval]"] } });
                    prices.push(price.clone());
                    axum::Json(price)
                }
            }),
        )
        .route(
            "/v1/checkout/sessions",
            post(move |Form(f): Form<HashMap<String, String>>| {
                let seen = r3.clone();
                async move {
                    seen.lock().unwrap().push(("POST /v1/checkout/sessions".into(), f));
                    axum::Json(json!({ "id": "cs_sub_1", "object": "checkout.session", "mode": "subscription",
                                       "url": "https://checkout.stripe.com/c/pay/cs_sub_1" }))
                }
            }),
        )
        .route(
            "/v1/subscriptions/{id}",
            post(move |Path(id): Path<String>, Form(f): Form<HashMap<String, String>>| {
                let seen = r4.clone();
                async move {
                    seen.lock().unwrap().push((format!("POST /v1/subscriptions/{id}"), f));
                    axum::Json(json!({ "id": id, "object": "subscription" }))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, stub).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn stripe_sig(body: &str) -> String {
    gateways::sign(b"whsec_test", Utc::now().timestamp(), body.as_bytes())
}

async fn stripe_event(app: &TestApp, id: &str, kind: &str, created: i64, object: Value) -> u16 {
    let body = json!({ "id": id, "object": "event", "type": kind, "created": created, "data": { "object": object } })
        .to_string();
    app.client
        .post(app.url("/webhooks/payments/stripe"))
        .header("stripe-signature", stripe_sig(&body))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Stripe subscriptions against the stub: Prices by lookup key, Checkout in subscription
/// mode, events in any order (`invoice.paid` before `customer.subscription.created` before
/// the checkout's completion), replays, a stale update, cancel and upgrade at Stripe,
/// a proration invoice, and the end.
#[tokio::test]
async fn stripe_subscriptions_against_the_stub() {
    let (api_url, seen) = stripe_stub().await;
    let app = crate::credits::with_stripe(api_url).await;
    let (token, uid) = user(&app, 1001).await;
    let (_, body) = app
        .gql_as(
            &token,
            SUBSCRIBE,
            json!({ "p": PREMIUM, "g": "STRIPE", "r": "https://app.example/plans" }),
        )
        .await;
    let payment = body["data"]["subscribeToPlan"].clone();
    assert_eq!(
        payment["checkoutUrl"], "https://checkout.stripe.com/c/pay/cs_sub_1",
        "{body}"
    );
    let premium_key = format!(
        "easel_plan_{}_999_usd_month",
        Uuid::parse_str(PREMIUM).unwrap().simple()
    );
    {
        let seen = seen.lock().unwrap();
        let calls: Vec<&str> = seen.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            calls,
            [
                "GET /v1/prices",
                "POST /v1/prices",
                "POST /v1/checkout/sessions"
            ]
        );
        assert_eq!(seen[0].1["lookup_keys[]"], premium_key);
        let price = &seen[1].1;
        assert_eq!(
            (
                price["unit_amount"].as_str(),
                price["currency"].as_str(),
                price["recurring[interval]"].as_str()
            ),
            ("999", "usd", "month")
        );
        let session = &seen[2].1;
        assert_eq!(session["mode"], "subscription");
        assert_eq!(session["line_items[0][price]"], "price_1");
        assert_eq!(session["subscription_data[metadata][easel_user]"], uid);
        assert_eq!(session["subscription_data[metadata][easel_plan]"], PREMIUM);
        assert!(!session.contains_key("subscription_data[trial_period_days]"));
    }
    // A second buyer of the same price reuses the Price.
    let (token2, _) = user(&app, 1002).await;
    app.gql_as(
        &token2,
        SUBSCRIBE,
        json!({ "p": PREMIUM, "g": "STRIPE", "r": "https://app.example/plans" }),
    )
    .await;
    assert_eq!(
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| c == "POST /v1/prices")
            .count(),
        1
    );

    let t0 = Utc::now().timestamp();
    let (start, end) = (t0 - 10, t0 - 10 + 30 * 86_400);
    let metadata =
        json!({ "easel_user": uid, "easel_plan": PREMIUM, "easel_payment": payment["id"] });
    // Newer API versions: the subscription on the invoice's parent, the period on the line.
    let invoice = json!({ "id": "in_1", "object": "invoice", "billing_reason": "subscription_create",
        "parent": { "type": "subscription_details", "subscription_details": { "subscription": "sub_1", "metadata": metadata } },
        "lines": { "data": [ { "period": { "start": start, "end": end } } ] } });
    assert_eq!(
        stripe_event(&app, "evt_inv_1", "invoice.paid", t0, invoice.clone()).await,
        200
    );
    let now = me(&app, &token).await;
    assert_eq!(
        now["subscriptionTier"], "PREMIUM",
        "an invoice first creates the subscription: {now}"
    );
    assert_eq!(
        time(&now["subscription"]["currentPeriodEnd"]).timestamp(),
        end,
        "the invoice's period"
    );
    assert_eq!(grants(&app, &uid).await, 1);
    let subscription = |status: &str, price: &str, cancel: bool| {
        json!({ "id": "sub_1", "object": "subscription", "status": status, "cancel_at_period_end": cancel, "metadata": metadata,
                "items": { "data": [ { "id": "si_1", "current_period_start": start, "current_period_end": end,
                                       "price": { "id": "price_x", "lookup_key": price } } ] } })
    };
    assert_eq!(
        stripe_event(
            &app,
            "evt_sub_created",
            "customer.subscription.created",
            t0 + 1,
            subscription("active", &premium_key, false)
        )
        .await,
        200
    );
    let checkout = json!({ "id": "cs_sub_1", "object": "checkout.session", "mode": "subscription", "payment_status": "paid",
        "amount_total": 999, "currency": "usd", "subscription": "sub_1", "client_reference_id": payment["id"],
        "metadata": { "payment_id": payment["id"] } });
    assert_eq!(
        stripe_event(
            &app,
            "evt_cs_1",
            "checkout.session.completed",
            t0 + 2,
            checkout
        )
        .await,
        200
    );
    // Replays: the same event, and another event for the same invoice.
    assert_eq!(
        stripe_event(&app, "evt_inv_1", "invoice.paid", t0, invoice.clone()).await,
        200
    );
    assert_eq!(
        stripe_event(&app, "evt_inv_1b", "invoice.paid", t0 + 3, invoice).await,
        200
    );
    assert_eq!(grants(&app, &uid).await, 1, "one grant for the period");
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM subscriptions WHERE user_id = '{uid}'"
        ))
        .await,
        1
    );
    let (_, body) = app
        .gql_as(
            &token,
            "query($id: ID!) { payment(id: $id) { status } }",
            json!({ "id": payment["id"] }),
        )
        .await;
    assert_eq!(body["data"]["payment"]["status"], "COMPLETED", "{body}");
    // An older update arriving late changes nothing.
    assert_eq!(
        stripe_event(
            &app,
            "evt_stale",
            "customer.subscription.updated",
            t0 - 100,
            subscription("past_due", &premium_key, false)
        )
        .await,
        200
    );
    assert_eq!(me(&app, &token).await["subscription"]["status"], "ACTIVE");

    // Cancel and upgrade go to Stripe first.
    let (_, body) = app
        .gql_as(
            &token,
            "mutation { cancelSubscription { cancelAtPeriodEnd } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["cancelSubscription"]["cancelAtPeriodEnd"], true,
        "{body}"
    );
    {
        let seen = seen.lock().unwrap();
        let (call, form) = seen.last().unwrap();
        assert_eq!(call, "POST /v1/subscriptions/sub_1");
        assert_eq!(form["cancel_at_period_end"], "true");
    }
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($p: ID!) { changeSubscriptionPlan(planId: $p) { plan { name } } }",
            json!({ "p": PRO }),
        )
        .await;
    assert_eq!(
        body["data"]["changeSubscriptionPlan"]["plan"]["name"], "pro",
        "{body}"
    );
    let pro_key = format!(
        "easel_plan_{}_2999_usd_month",
        Uuid::parse_str(PRO).unwrap().simple()
    );
    {
        let seen = seen.lock().unwrap();
        let (call, form) = seen.last().unwrap();
        assert_eq!(call, "POST /v1/subscriptions/sub_1");
        assert_eq!(form["items[0][id]"], "si_1");
        assert_eq!(form["items[0][price]"], "price_2");
        assert_eq!(form["proration_behavior"], "always_invoice");
        assert!(
            seen.iter()
                .any(|(c, f)| c == "POST /v1/prices" && f["lookup_key"] == pro_key)
        );
    }
    assert_eq!(me(&app, &token).await["subscriptionTier"], "PRO");
    // A downgrade is billed from the next period, without proration; choosing the current
    // plan again goes back to the subscriber's price.
    const CHANGE: &str =
        "mutation($p: ID!) { changeSubscriptionPlan(planId: $p) { pendingPlan { name } } }";
    let (_, body) = app.gql_as(&token, CHANGE, json!({ "p": PREMIUM })).await;
    assert_eq!(
        body["data"]["changeSubscriptionPlan"]["pendingPlan"]["name"], "premium",
        "{body}"
    );
    {
        let seen = seen.lock().unwrap();
        let (_, form) = seen.last().unwrap();
        assert_eq!(form["items[0][price]"], "price_1");
        assert_eq!(form["proration_behavior"], "none");
    }
    let (_, body) = app.gql_as(&token, CHANGE, json!({ "p": PRO })).await;
    assert!(
        body["data"]["changeSubscriptionPlan"]["pendingPlan"].is_null(),
        "{body}"
    );
    {
        let seen = seen.lock().unwrap();
        let (_, form) = seen.last().unwrap();
        assert_eq!(form["items[0][price]"], "price_2");
        assert_eq!(form["proration_behavior"], "none");
    }
    // Stripe's update and its proration invoice agree and grant nothing new.
    assert_eq!(
        stripe_event(
            &app,
            "evt_sub_up",
            "customer.subscription.updated",
            t0 + 10,
            subscription("active", &pro_key, true)
        )
        .await,
        200
    );
    let proration = json!({ "id": "in_2", "object": "invoice", "billing_reason": "subscription_update",
        "parent": { "subscription_details": { "subscription": "sub_1", "metadata": metadata } },
        "lines": { "data": [ { "period": { "start": t0 + 10, "end": end } } ] } });
    assert_eq!(
        stripe_event(&app, "evt_inv_2", "invoice.paid", t0 + 11, proration).await,
        200
    );
    // An invoice of nothing (a coupon, a trial's first) is no paid period either.
    let zero = json!({ "id": "in_3", "object": "invoice", "billing_reason": "subscription_cycle", "amount_paid": 0,
        "parent": { "subscription_details": { "subscription": "sub_1", "metadata": metadata } },
        "lines": { "data": [ { "period": { "start": end, "end": end + 30 * 86_400 } } ] } });
    assert_eq!(
        stripe_event(&app, "evt_inv_3", "invoice.paid", t0 + 12, zero).await,
        200
    );
    assert_eq!(grants(&app, &uid).await, 1);
    let now = me(&app, &token).await;
    assert_eq!(now["subscription"]["plan"]["name"], "pro", "{now}");
    assert_eq!(now["subscription"]["cancelAtPeriodEnd"], true);

    assert_eq!(
        stripe_event(
            &app,
            "evt_sub_del",
            "customer.subscription.deleted",
            t0 + 20,
            subscription("canceled", &pro_key, true)
        )
        .await,
        200
    );
    let now = me(&app, &token).await;
    assert_eq!(now["subscriptionTier"], "FREE", "{now}");
    assert!(now["subscription"].is_null());
    app.assert_ledger_ok().await;
}

/// A referred user's first paid subscription period rewards the referral, once; a trial's
/// checkout (nothing paid) does not.
#[tokio::test]
async fn a_first_paid_period_rewards_the_referral_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155551100").await;
    let (referrer_token, _) = user(&app, 1101).await;
    let code = crate::growth::my_code(&app, &referrer_token).await;
    let (_, body) = app
        .gql_as(
            &admin,
            PLAN,
            json!({ "i": { "name": "tryme", "displayName": "Try me", "tier": "PREMIUM", "priceMinor": 500,
                            "currency": "USD", "interval": "month", "trialDays": 3 } }),
        )
        .await;
    let plan = body["data"]["upsertPaymentPlan"]["id"].clone();
    let (token, _) = crate::growth::referred_user(&app, 1102, &code).await;
    let payment = checkout(&app, &token, plan.as_str().unwrap()).await;
    assert_eq!(payment["amountMinor"], 0);
    approve(&app, &payment).await;
    let rewards = "SELECT count(*) AS n FROM credit_transactions WHERE kind = 'referral'";
    assert_eq!(app.scalar(rewards).await, 0, "a trial pays nothing");
    let sub = me(&app, &token).await["subscription"].clone();
    assert_eq!(
        advance(&app, &admin, &sub, "RENEW").await["status"],
        "ACTIVE"
    );
    assert_eq!(app.scalar(rewards).await, 2, "one entry for each side");
    advance(&app, &admin, &sub, "RENEW").await;
    assert_eq!(app.scalar(rewards).await, 2, "once");
    app.assert_ledger_ok().await;
}
