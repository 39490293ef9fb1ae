//! Security findings of issue #18 on money: the sandbox checkout bound to its payment by a
//! token and absent when the sandbox is off, sign-up farming, bounded admin inputs, and
//! webhooks carrying NUL characters.

use easel::{
    credits::service::{self as credits, Charge},
    payments::gateways,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, code, field};

/// A signed-in phone user (verified by the code): (access token, user id).
async fn phone_user(app: &TestApp, phone: &str) -> (String, Uuid) {
    let auth = app.sign_up_by_phone(phone).await;
    (
        auth["accessToken"].as_str().unwrap().to_string(),
        Uuid::parse_str(auth["user"]["id"].as_str().unwrap()).unwrap(),
    )
}

const SIGN_UP: &str = "mutation($e: String!) { signUp(input: { email: $e, password: \"correct horse battery\" }) { accessToken user { id } } }";

/// A signed-up email user (not verified): (access token, user id).
async fn email_user(app: &TestApp, email: &str) -> (String, Uuid) {
    let (_, body) = app.gql(SIGN_UP, json!({ "e": email })).await;
    assert!(body["errors"].is_null(), "{body}");
    let auth = &body["data"]["signUp"];
    (
        auth["accessToken"].as_str().unwrap().to_string(),
        Uuid::parse_str(auth["user"]["id"].as_str().unwrap()).unwrap(),
    )
}

const PURCHASE: &str = "mutation($p: ID!, $g: PaymentGateway!, $r: String) { purchaseCredits(input: { packageId: $p, gateway: $g, returnUrl: $r }) { id status checkoutUrl } }";
/// The default "Creator" package: 550 credits for 19.99 USD.
const CREATOR: &str = "0191f000-0000-7000-8000-000000000002";
const GIFT: &str = "mutation($to: ID!, $n: Int!) { giftCredits(input: { toUserId: $to, amount: $n }) { amount balanceAfter } }";

async fn balance(app: &TestApp, user: Uuid) -> i64 {
    app.scalar(&format!(
        "SELECT balance AS n FROM credit_accounts WHERE user_id = '{user}'"
    ))
    .await
}

async fn count(app: &TestApp, sql_from_where: &str) -> i64 {
    app.scalar(&format!("SELECT count(*) AS n FROM {sql_from_where}"))
        .await
}

/// Buys the Creator package through the sandbox: (payment id, checkout URL).
async fn sandbox_purchase(app: &TestApp, token: &str) -> (String, String) {
    let (_, body) = app
        .gql_as(token, PURCHASE, json!({ "p": CREATOR, "g": "SANDBOX" }))
        .await;
    let p = &body["data"]["purchaseCredits"];
    assert_eq!(p["status"], "PENDING", "{body}");
    (
        p["id"].as_str().unwrap().to_string(),
        p["checkoutUrl"].as_str().unwrap().to_string(),
    )
}

/// The value of the form's hidden `token` input on a checkout page.
fn hidden_token(html: &str) -> String {
    let start = html
        .find("name=\"token\" value=\"")
        .unwrap_or_else(|| panic!("no token input in {html}"))
        + "name=\"token\" value=\"".len();
    html[start..start + 64].to_string()
}

async fn payment_status(app: &TestApp, token: &str, id: &str) -> Value {
    let (_, body) = app
        .gql_as(
            token,
            "query($id: ID!) { payment(id: $id) { status creditsGranted } }",
            json!({ "id": id }),
        )
        .await;
    body["data"]["payment"].clone()
}

// ---- finding 3: the sandbox checkout ---------------------------------------------------

/// Knowing the payment id is not enough: the page and the decision need the link's token;
/// with it the approval works once, and a second approval grants nothing more.
#[tokio::test]
async fn the_sandbox_checkout_needs_its_token_and_decides_once() {
    let app = TestApp::spawn().await;
    let (token, me) = phone_user(&app, "+14155557001").await;
    let (payment, checkout) = sandbox_purchase(&app, &token).await;
    let (other_payment, other_checkout) = sandbox_purchase(&app, &token).await;
    let bare = app.url(&format!("/sandbox/checkout/{payment}"));
    let link_token = checkout
        .split_once("?token=")
        .map(|(_, t)| t.to_string())
        .expect("the checkout URL carries a token");
    assert_eq!(link_token.len(), 64, "{checkout}");
    let other_token = other_checkout.split_once("?token=").unwrap().1.to_string();
    assert_ne!(link_token, other_token);

    // Without the right token: 404 for the page and for the decision, nothing changes.
    let wrong = [
        bare.clone(),
        format!("{bare}?token="),
        format!("{bare}?token={}", "0".repeat(64)),
        format!("{bare}?token={other_token}"),
        format!("{bare}?token={}", &link_token[..63]),
    ];
    for url in &wrong {
        let page = app.client.get(url).send().await.unwrap();
        assert_eq!(page.status(), 404, "GET {url}");
        let post = app
            .client
            .post(url)
            .form(&[("decision", "approve")])
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), 404, "POST {url}");
    }
    // The token in the form must be right too, whatever the URL says.
    let resp = app
        .client
        .post(&checkout)
        .form(&[("decision", "approve"), ("token", &other_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(balance(&app, me).await, 10);
    assert_eq!(
        payment_status(&app, &token, &payment).await,
        json!({ "status": "PENDING", "creditsGranted": 0 })
    );
    assert_eq!(count(&app, "payment_events").await, 0);
    assert_eq!(
        count(&app, "credit_transactions WHERE kind = 'purchase'").await,
        0
    );

    // With the link: the page's form carries the token on to the decision.
    let page = app.client.get(&checkout).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Approve") && html.contains("19.99 USD"),
        "{html}"
    );
    assert_eq!(hidden_token(&html), link_token);
    let resp = app
        .client
        .post(&bare)
        .form(&[("token", link_token.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("550 credits granted"));
    assert_eq!(balance(&app, me).await, 560);
    assert_eq!(
        payment_status(&app, &token, &payment).await,
        json!({ "status": "COMPLETED", "creditsGranted": 550 })
    );

    // Single use: approving (or declining) again answers 409 and changes nothing.
    for decision in ["approve", "decline", "approve"] {
        let resp = app
            .client
            .post(&checkout)
            .form(&[("decision", decision)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 409, "{decision} again");
    }
    let page = app.client.get(&checkout).send().await.unwrap().text().await;
    assert!(
        !page.unwrap().contains("<form"),
        "a decided payment shows no buttons"
    );
    assert_eq!(balance(&app, me).await, 560);
    assert_eq!(
        count(&app, "credit_transactions WHERE kind = 'purchase'").await,
        1
    );
    assert_eq!(count(&app, "payment_events").await, 1);
    assert_eq!(
        payment_status(&app, &token, &other_payment).await,
        json!({ "status": "PENDING", "creditsGranted": 0 }),
        "the other payment was never touched"
    );
    app.assert_ledger_ok().await;
}

/// Parallel approvals of one checkout (a double click, a replayed form): one grant.
#[tokio::test]
async fn parallel_approvals_grant_once() {
    let app = TestApp::spawn_with(|c| c.db_pool_size = 16).await;
    let (token, me) = phone_user(&app, "+14155557002").await;
    let (_, checkout) = sandbox_purchase(&app, &token).await;
    let posts: Vec<_> = (0..6)
        .map(|_| {
            let client = app.client.clone();
            let url = checkout.clone();
            tokio::spawn(async move {
                client
                    .post(url)
                    .form(&[("decision", "approve")])
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for p in posts {
        statuses.push(p.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409) && statuses.contains(&200),
        "{statuses:?}"
    );
    assert_eq!(balance(&app, me).await, 560);
    assert_eq!(
        count(&app, "credit_transactions WHERE kind = 'purchase'").await,
        1
    );
    app.assert_ledger_ok().await;
}

/// With the sandbox off (production's default), its pages and webhook do not exist, and it
/// cannot be chosen.
#[tokio::test]
async fn without_the_sandbox_its_routes_do_not_exist() {
    let app = TestApp::spawn_with(|c| {
        c.payment_gateways = vec!["stripe".into()];
        c.stripe = Some(easel::config::StripeConfig {
            // Never reached: every request below is refused before.
            api_url: "http://127.0.0.1:9".into(),
            secret_key: secrecy::SecretString::from("sk_test_1".to_string()),
            webhook_secret: secrecy::SecretString::from("whsec_1".to_string()),
        });
    })
    .await;
    let (token, me) = phone_user(&app, "+14155557003").await;
    let (_, body) = app
        .gql_as(&token, PURCHASE, json!({ "p": CREATOR, "g": "SANDBOX" }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(field(&body), "input.gateway");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not enabled"),
        "{body}"
    );
    // A real gateway needs the app's page to send the buyer back to.
    let (_, body) = app
        .gql_as(&token, PURCHASE, json!({ "p": CREATOR, "g": "STRIPE" }))
        .await;
    assert_eq!(field(&body), "input.returnUrl", "{body}");

    let id = Uuid::now_v7();
    let secret = easel::config::DEV_SANDBOX_SECRET.as_bytes();
    let link = app.url(&format!(
        "/sandbox/checkout/{id}?token={}",
        gateways::checkout_token(secret, id)
    ));
    let event = json!({ "id": "evt_1", "type": "payment.succeeded", "paymentId": id, "amountMinor": 1999, "currency": "USD" }).to_string();
    let signature = gateways::sign(secret, chrono::Utc::now().timestamp(), event.as_bytes());
    let requests = [
        app.client.get(&link),
        app.client.post(&link).form(&[("decision", "approve")]),
        app.client.get(app.url("/sandbox/done")),
        app.client
            .post(app.url("/webhooks/payments/sandbox"))
            .header("easel-signature", &signature)
            .header("content-type", "application/json")
            .body(event.clone()),
    ];
    for req in requests {
        let resp = req.send().await.unwrap();
        let url = resp.url().to_string();
        assert_eq!(resp.status(), 404, "{url}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(code(&body), "NOT_FOUND", "{url}: {body}");
    }
    assert_eq!(count(&app, "payments").await, 0);
    assert_eq!(count(&app, "payment_events").await, 0);
    assert_eq!(balance(&app, me).await, 10);
}

// ---- NUL characters in webhooks ----------------------------------------------------------

/// A correctly signed webhook whose JSON carries `\u0000` (which PostgreSQL cannot store)
/// answers 400 and records nothing, for the sandbox and for Stripe.
#[tokio::test]
async fn signed_webhooks_with_nul_characters_answer_400_and_record_nothing() {
    let app = TestApp::spawn_with(|c| {
        c.payment_gateways = vec!["sandbox".into(), "stripe".into()];
        c.stripe = Some(easel::config::StripeConfig {
            api_url: "http://127.0.0.1:9".into(),
            secret_key: secrecy::SecretString::from("sk_test_1".to_string()),
            webhook_secret: secrecy::SecretString::from("whsec_test".to_string()),
        });
    })
    .await;
    let (token, me) = phone_user(&app, "+14155557004").await;
    let (payment, _) = sandbox_purchase(&app, &token).await;
    let sandbox_events = [
        json!({ "id": "evt_\u{0}", "type": "payment.succeeded", "paymentId": payment, "amountMinor": 1999, "currency": "USD" }),
        json!({ "id": "evt_2", "type": "payment.succeeded", "paymentId": payment, "amountMinor": 1999, "currency": "USD", "note": "a\u{0}b" }),
        json!({ "id": "evt_3", "type": "payment.succeeded", "paymentId": payment, "amountMinor": 1999, "currency": "USD", "extra": { "k\u{0}": [1] } }),
    ];
    for event in sandbox_events {
        let body = event.to_string();
        assert!(body.contains("\\u0000"), "{body}");
        let sig = gateways::sign(
            easel::config::DEV_SANDBOX_SECRET.as_bytes(),
            chrono::Utc::now().timestamp(),
            body.as_bytes(),
        );
        let resp = app
            .client
            .post(app.url("/webhooks/payments/sandbox"))
            .header("easel-signature", sig)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(code(&answer), "BAD_USER_INPUT", "{answer}");
    }
    let stripe_event = json!({
        "id": "evt_stripe_\u{0}", "object": "event", "type": "checkout.session.completed",
        "data": { "object": { "id": "cs_1", "payment_status": "paid", "amount_total": 1999, "currency": "usd",
                              "client_reference_id": payment, "metadata": { "payment_id": payment, "x": "\u{0}" } } }
    })
    .to_string();
    let sig = gateways::sign(
        b"whsec_test",
        chrono::Utc::now().timestamp(),
        stripe_event.as_bytes(),
    );
    let resp = app
        .client
        .post(app.url("/webhooks/payments/stripe"))
        .header("stripe-signature", sig)
        .body(stripe_event)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(count(&app, "payment_events").await, 0);
    assert_eq!(
        payment_status(&app, &token, &payment).await,
        json!({ "status": "PENDING", "creditsGranted": 0 })
    );
    assert_eq!(balance(&app, me).await, 10);
    app.assert_ledger_ok().await;
}

// ---- finding 4: sign-up farming ------------------------------------------------------------

/// The probe's scenario: 15 quick sign-ups from one IP, each gifting its bonus to one
/// account. Ten accounts are opened, five are rate limited, and no bonus moves.
#[tokio::test]
async fn sign_up_farming_is_refused() {
    let app = TestApp::spawn().await;
    let (_, farm) = phone_user(&app, "+14155557005").await;
    let mut opened = Vec::new();
    let mut limited = 0;
    for i in 0..15 {
        let (_, body) = app
            .gql(SIGN_UP, json!({ "e": format!("farm{i}@example.com") }))
            .await;
        if body["errors"].is_null() {
            opened.push(
                body["data"]["signUp"]["accessToken"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        } else {
            assert_eq!(code(&body), "RATE_LIMITED", "{body}");
            let retry = body["errors"][0]["extensions"]["retryAfterSeconds"]
                .as_u64()
                .unwrap();
            assert!((1..=3600).contains(&retry), "{body}");
            limited += 1;
        }
    }
    assert_eq!((opened.len(), limited), (10, 5));
    assert_eq!(count(&app, "users WHERE email IS NOT NULL").await, 10);
    for token in &opened {
        for amount in [10, 1] {
            let (_, body) = app
                .gql_as(token, GIFT, json!({ "to": farm, "n": amount }))
                .await;
            assert_eq!(code(&body), "FORBIDDEN", "{body}");
            assert!(
                body["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("giftable once your account is verified"),
                "{body}"
            );
        }
    }
    assert_eq!(balance(&app, farm).await, 10, "nothing was farmed");
    assert_eq!(
        count(
            &app,
            "credit_transactions WHERE kind IN ('gift_sent', 'gift_received')"
        )
        .await,
        0
    );
    app.assert_ledger_ok().await;
}

/// A phone account is verified by its code: its bonus is giftable.
#[tokio::test]
async fn a_verified_phone_user_can_gift_the_bonus() {
    let app = TestApp::spawn().await;
    let (ada, ada_id) = phone_user(&app, "+14155557006").await;
    let (_, bob) = phone_user(&app, "+14155557007").await;
    let (_, body) = app.gql_as(&ada, GIFT, json!({ "to": bob, "n": 10 })).await;
    assert_eq!(
        body["data"]["giftCredits"],
        json!({ "amount": -10, "balanceAfter": 0 }),
        "{body}"
    );
    assert_eq!(
        (balance(&app, ada_id).await, balance(&app, bob).await),
        (0, 20)
    );
    app.assert_ledger_ok().await;
}

/// An unverified (email) account gifts what it bought or received, never its bonus; what
/// operations spent of the bonus (net of refunds) is no longer held.
#[tokio::test]
async fn an_unverified_user_gifts_purchased_and_received_credits_but_not_the_bonus() {
    let app = TestApp::spawn().await;
    app.exec("UPDATE tier_allowances SET daily_allowance = 0")
        .await;
    let (eve, eve_id) = email_user(&app, "eve@example.com").await;
    let (ada, ada_id) = phone_user(&app, "+14155557008").await;

    // 10 (bonus) + 550 (bought): 550 may go, 551 may not.
    let (_, checkout) = sandbox_purchase(&app, &eve).await;
    let resp = app
        .client
        .post(&checkout)
        .form(&[("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(balance(&app, eve_id).await, 560);
    let (_, body) = app
        .gql_as(&eve, GIFT, json!({ "to": ada_id, "n": 551 }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("up to 550 credits"),
        "{body}"
    );
    let (_, body) = app
        .gql_as(&eve, GIFT, json!({ "to": ada_id, "n": 561 }))
        .await;
    assert_eq!(
        code(&body),
        "INSUFFICIENT_CREDITS",
        "beyond the whole balance"
    );
    assert_eq!(
        (balance(&app, eve_id).await, balance(&app, ada_id).await),
        (560, 10)
    );
    let (_, body) = app
        .gql_as(&eve, GIFT, json!({ "to": ada_id, "n": 550 }))
        .await;
    assert_eq!(body["data"]["giftCredits"]["balanceAfter"], 10, "{body}");
    let (_, body) = app
        .gql_as(&eve, GIFT, json!({ "to": ada_id, "n": 1 }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "only the bonus is left: {body}");

    // Received credits are giftable; bonus spent on an operation is no longer held, and a
    // refund brings it back as bonus (cancelling a job does not launder it).
    let charge = credits::charge(
        &app.state,
        &Charge {
            user: eve_id,
            cost: 4,
            description: "an operation",
            job_id: None,
            idempotency_key: None,
            request_hash: None,
        },
    )
    .await
    .unwrap();
    let (_, body) = app
        .gql_as(&ada, GIFT, json!({ "to": eve_id, "n": 5 }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(balance(&app, eve_id).await, 11, "10 - 4 + 5");
    let (_, body) = app
        .gql_as(&eve, GIFT, json!({ "to": ada_id, "n": 6 }))
        .await;
    assert_eq!(
        code(&body),
        "FORBIDDEN",
        "6 of the bonus is still held: {body}"
    );
    credits::refund(&app.state, charge.id, "job cancelled")
        .await
        .unwrap();
    assert_eq!(balance(&app, eve_id).await, 15);
    let (_, body) = app
        .gql_as(&eve, GIFT, json!({ "to": ada_id, "n": 6 }))
        .await;
    assert_eq!(
        code(&body),
        "FORBIDDEN",
        "the refund is bonus again: {body}"
    );
    let (_, body) = app
        .gql_as(&eve, GIFT, json!({ "to": ada_id, "n": 5 }))
        .await;
    assert_eq!(body["data"]["giftCredits"]["balanceAfter"], 10, "{body}");
    assert_eq!(balance(&app, ada_id).await, 10 + 550 - 5 + 5);
    app.assert_ledger_ok().await;
}

/// `EASEL_SIGNUP_BONUS_GIFTABLE=unverified` restores the old rule.
#[tokio::test]
async fn the_bonus_rule_can_be_switched_off() {
    let app = TestApp::spawn_with(|c| c.signup_bonus_giftable_unverified = true).await;
    let (eve, eve_id) = email_user(&app, "eve@example.com").await;
    let (_, ada) = phone_user(&app, "+14155557009").await;
    let (_, body) = app.gql_as(&eve, GIFT, json!({ "to": ada, "n": 10 })).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        (balance(&app, eve_id).await, balance(&app, ada).await),
        (0, 20)
    );
    app.assert_ledger_ok().await;
}

// ---- finding 11: bounded admin inputs ---------------------------------------------------------

const PACKAGES: &str = "{ creditPackages { id name credits bonusCredits totalCredits priceMinor currency isActive badgeText } }";

#[tokio::test]
async fn package_inputs_are_bounded() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155557010").await;
    let (_, before) = app.gql_as(&admin, PACKAGES, json!({})).await;
    const UPSERT: &str = "mutation($id: ID, $c: Int!, $b: Int!, $p: Int!, $n: String!, $badge: String) { upsertCreditPackage(input: { id: $id, name: $n, credits: $c, bonusCredits: $b, priceMinor: $p, currency: \"USD\", badgeText: $badge }) { id totalCredits } }";
    let max = i64::MAX;
    let cases = [
        // The probe's case: credits + bonus overflowing to -2.
        (json!({ "c": max, "b": max, "p": 100 }), "input.credits"),
        (
            json!({ "c": 100, "b": max, "p": 100 }),
            "input.bonusCredits",
        ),
        (
            json!({ "c": 1_000_000_001, "b": 0, "p": 100 }),
            "input.credits",
        ),
        (json!({ "c": 0, "b": 0, "p": 100 }), "input.credits"),
        (json!({ "c": -5, "b": 0, "p": 100 }), "input.credits"),
        (json!({ "c": 100, "b": -1, "p": 100 }), "input.bonusCredits"),
        (json!({ "c": 100, "b": 0, "p": -1 }), "input.priceMinor"),
        (
            json!({ "c": 100, "b": 0, "p": i64::MIN }),
            "input.priceMinor",
        ),
        (json!({ "c": 100, "b": 0, "p": max }), "input.priceMinor"),
        (
            json!({ "c": 100, "b": 0, "p": 100, "n": "bad\u{0}name" }),
            "input.name",
        ),
        (
            json!({ "c": 100, "b": 0, "p": 100, "badge": "x".repeat(41) }),
            "input.badgeText",
        ),
    ];
    // Creating, and changing the existing Creator package.
    for id in [Value::Null, json!(CREATOR)] {
        for (vars, expected) in &cases {
            let mut vars = vars.clone();
            vars["id"] = id.clone();
            if vars["n"].is_null() {
                vars["n"] = json!("Hacked");
            }
            let (_, body) = app.gql_as(&admin, UPSERT, vars.clone()).await;
            assert_eq!(code(&body), "BAD_USER_INPUT", "{vars}: {body}");
            assert_eq!(field(&body), *expected, "{vars}: {body}");
        }
    }
    let (_, after) = app.gql_as(&admin, PACKAGES, json!({})).await;
    assert_eq!(before, after, "nothing changed");
    assert_eq!(count(&app, "credit_packages").await, 3);
    // The bounds themselves are accepted.
    let (_, body) = app
        .gql_as(
            &admin,
            UPSERT,
            json!({ "c": 1_000_000_000, "b": 1_000_000_000, "p": 1_000_000_000, "n": "Whale" }),
        )
        .await;
    assert_eq!(
        body["data"]["upsertCreditPackage"]["totalCredits"], 2_000_000_000i64,
        "{body}"
    );
}

/// A package row beyond the bounds (written before they existed) is never sold and never
/// shows a wrapped total.
#[tokio::test]
async fn an_overflowing_package_row_is_not_sold() {
    let app = TestApp::spawn().await;
    let (token, me) = phone_user(&app, "+14155557011").await;
    app.exec(&format!(
        "UPDATE credit_packages SET credits = {}, bonus_credits = {} WHERE id = '{CREATOR}'",
        i64::MAX,
        i64::MAX
    ))
    .await;
    let (_, body) = app.gql(PACKAGES, json!({})).await;
    let creator = body["data"]["creditPackages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == CREATOR)
        .unwrap()
        .clone();
    assert_eq!(creator["totalCredits"], i64::MAX, "saturated, not -2");
    let (_, body) = app
        .gql_as(&token, PURCHASE, json!({ "p": CREATOR, "g": "SANDBOX" }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(field(&body), "input.packageId");
    assert_eq!(count(&app, "payments").await, 0);
    assert_eq!(balance(&app, me).await, 10);
}

#[tokio::test]
async fn operation_price_inputs_are_bounded() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155557012").await;
    const PRICES: &str = "{ operationPrices { operation baseCost price tierMultipliers dailyLimit perMinuteLimit isEnabled } }";
    let (_, before) = app.gql_as(&admin, PRICES, json!({})).await;
    const SET: &str = "mutation($op: String!, $c: Int!, $m: JSON, $d: Int, $pm: Int, $desc: String) { setOperationPrice(input: { operation: $op, baseCost: $c, tierMultipliers: $m, dailyLimit: $d, perMinuteLimit: $pm, description: $desc }) { price } }";
    for op in ["generate.character", "generate.new_thing"] {
        for (vars, expected) in [
            (json!({ "c": i64::MAX }), "input.baseCost"),
            (json!({ "c": 1_000_000_001 }), "input.baseCost"),
            (json!({ "c": -1 }), "input.baseCost"),
            (json!({ "c": i64::MIN }), "input.baseCost"),
            (
                json!({ "c": 10, "m": { "PRO": 101 } }),
                "input.tierMultipliers",
            ),
            (
                json!({ "c": 10, "m": { "PRO": -0.5 } }),
                "input.tierMultipliers",
            ),
            (json!({ "c": 10, "d": -1 }), "input.dailyLimit"),
            (json!({ "c": 10, "pm": -1 }), "input.perMinuteLimit"),
            (json!({ "c": 10, "desc": "a\u{0}b" }), "input.description"),
        ] {
            let mut vars = vars.clone();
            vars["op"] = json!(op);
            let (_, body) = app.gql_as(&admin, SET, vars.clone()).await;
            assert_eq!(code(&body), "BAD_USER_INPUT", "{vars}: {body}");
            assert_eq!(field(&body), expected, "{vars}: {body}");
        }
    }
    let (_, after) = app.gql_as(&admin, PRICES, json!({})).await;
    assert_eq!(before, after, "nothing changed");
    // The largest valid price, at the largest multiplier, for four outputs, does not overflow.
    let (_, body) = app
        .gql_as(
            &admin,
            SET,
            json!({ "op": "generate.character", "c": 1_000_000_000, "m": { "FREE": 100 } }),
        )
        .await;
    assert_eq!(
        body["data"]["setOperationPrice"]["price"], 100_000_000_000i64,
        "{body}"
    );
}

/// A price row beyond the bounds (written before they existed) cannot make `generate`
/// overflow: the price is capped and the charge simply falls short.
#[tokio::test]
async fn generation_pricing_does_not_overflow() {
    let app = TestApp::spawn().await;
    let (token, me) = phone_user(&app, "+14155557013").await;
    app.exec(&format!(
        "UPDATE operation_prices SET base_cost = {}, tier_multipliers = '{{\"FREE\": 100}}' WHERE operation = 'generate.character'",
        i64::MAX / 2
    ))
    .await;
    let (_, body) = app
        .gql_as(&token, "mutation($i: GenerateInput!) { generate(input: $i) { id } }", json!({ "i": { "kind": "CHARACTER_GENERATION", "prompt": "a fox", "outputCount": 4, "params": { "width": 64, "height": 64 } } }))
        .await;
    assert_eq!(code(&body), "INSUFFICIENT_CREDITS", "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["required"],
        4 * credits::MAX_OPERATION_PRICE
    );
    assert_eq!(count(&app, "generation_jobs").await, 0);
    assert_eq!(balance(&app, me).await, 10);
}

#[tokio::test]
async fn adjustments_are_bounded() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155557014").await;
    let (_, user) = phone_user(&app, "+14155557015").await;
    const ADJ: &str = "mutation($u: ID!, $n: Int!) { adjustCredits(input: { userId: $u, amount: $n, reason: \"probe\" }) { balanceAfter } }";
    let ledger = count(&app, "credit_transactions").await;
    for n in [i64::MAX, i64::MIN, 1_000_000_001, -1_000_000_001, 0] {
        let (_, body) = app.gql_as(&admin, ADJ, json!({ "u": user, "n": n })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{n}: {body}");
        assert_eq!(field(&body), "input.amount", "{n}: {body}");
    }
    let (_, body) = app
        .gql_as(
            &admin,
            "mutation($u: ID!) { adjustCredits(input: { userId: $u, amount: 5, reason: \"a\\u0000b\" }) { balanceAfter } }",
            json!({ "u": user }),
        )
        .await;
    assert_eq!(field(&body), "input.reason", "{body}");
    assert_eq!(balance(&app, user).await, 10);
    assert_eq!(count(&app, "credit_transactions").await, ledger);
    assert_eq!(
        count(&app, "audit_logs WHERE action = 'credits.adjusted'").await,
        0
    );
    // The bound itself is accepted.
    let (_, body) = app
        .gql_as(&admin, ADJ, json!({ "u": user, "n": 1_000_000_000 }))
        .await;
    assert_eq!(
        body["data"]["adjustCredits"]["balanceAfter"], 1_000_000_010i64,
        "{body}"
    );
    app.assert_ledger_ok().await;
}

#[tokio::test]
async fn gift_amounts_are_bounded() {
    let app = TestApp::spawn().await;
    let (ada, ada_id) = phone_user(&app, "+14155557016").await;
    let (_, bob) = phone_user(&app, "+14155557017").await;
    for n in [i64::MAX, i64::MIN, 1_000_000_001, -1, 0] {
        let (_, body) = app.gql_as(&ada, GIFT, json!({ "to": bob, "n": n })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{n}: {body}");
        assert_eq!(field(&body), "input.amount", "{n}: {body}");
    }
    assert_eq!(
        (balance(&app, ada_id).await, balance(&app, bob).await),
        (10, 10)
    );
    assert_eq!(
        count(
            &app,
            "credit_transactions WHERE kind IN ('gift_sent', 'gift_received')"
        )
        .await,
        0
    );
    app.assert_ledger_ok().await;
}
