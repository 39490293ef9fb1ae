//! Issue #13: referrals (codes at every sign-up, one reward per referral, at the first
//! payment or at sign-up) and admin invite tokens (once per user, never past `maxUses`).

use easel::{config::ReferralReward, payments::gateways};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::{TestApp, VERIFY_OTP, code, field, user, vendor};

/// `errors[0].extensions.reason` of a GraphQL answer.
fn reason(body: &Value) -> &str {
    body["errors"][0]["extensions"]["reason"]
        .as_str()
        .unwrap_or("<none>")
}

/// Signs up `+1415555<n>` by one-time code with a referral code; returns (token, id).
pub(crate) async fn referred_user(app: &TestApp, n: u32, referral: &str) -> (String, String) {
    let phone = format!("+1415555{n:04}");
    let otp = app.request_code(&phone).await;
    let (_, body) = app
        .gql(
            VERIFY_OTP,
            json!({ "phone": phone, "code": otp, "ref": referral }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let auth = &body["data"]["verifyOtp"];
    (
        auth["accessToken"].as_str().unwrap().to_string(),
        auth["user"]["id"].as_str().unwrap().to_string(),
    )
}

/// The viewer's referral code.
pub(crate) async fn my_code(app: &TestApp, token: &str) -> String {
    let (_, body) = app
        .gql_as(token, "{ me { referralCode } }", json!({}))
        .await;
    body["data"]["me"]["referralCode"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn balance(app: &TestApp, id: &str) -> i64 {
    app.scalar(&format!(
        "SELECT balance AS n FROM credit_accounts WHERE user_id = '{id}'"
    ))
    .await
}

async fn referral_rows(app: &TestApp) -> i64 {
    app.scalar("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'referral'")
        .await
}

const PURCHASE: &str = "mutation { purchaseCredits(input: { packageId: \"0191f000-0000-7000-8000-000000000002\", gateway: SANDBOX }) { id } }";

/// A pending sandbox payment of the Creator package (19.99 USD, 550 credits).
async fn pending_payment(app: &TestApp, token: &str) -> String {
    let (_, body) = app.gql_as(token, PURCHASE, json!({})).await;
    body["data"]["purchaseCredits"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string()
}

/// Delivers the sandbox's signed "payment.succeeded" webhook for `payment`.
async fn approve(app: &TestApp, payment: &str) -> u16 {
    let body = json!({ "id": format!("evt_{payment}"), "type": "payment.succeeded", "paymentId": payment, "amountMinor": 1999, "currency": "USD" }).to_string();
    let sig = gateways::sign(
        easel::config::DEV_SANDBOX_SECRET.as_bytes(),
        chrono::Utc::now().timestamp(),
        body.as_bytes(),
    );
    app.client
        .post(app.url("/webhooks/payments/sandbox"))
        .header("easel-signature", sig)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

const REFERRALS: &str = "query($f: Int, $a: String) { me { referrals(first: $f, after: $a) { edges { node { referredUser { id displayName } createdAt rewardedAt creditsEarned } } pageInfo { hasNextPage endCursor } } referralStats { invited converted creditsEarned } } }";

#[tokio::test]
async fn every_sign_up_takes_a_referral_code_and_only_the_owner_sees_referrals() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = user(&app, 1301).await;
    let code_ = my_code(&app, &alice).await;
    assert_eq!(code_.len(), 8);

    // verifyOtp with the code in any case, signUp (email) with the code.
    let (bob, bob_id) = referred_user(&app, 1302, &code_.to_lowercase()).await;
    let sign_up = "mutation($r: String) { signUp(input: { email: \"carol@example.com\", password: \"correct horse battery\", referralCode: $r }) { user { id } } }";
    let (_, body) = app.gql(sign_up, json!({ "r": format!(" {code_} ") })).await;
    assert!(body["errors"].is_null(), "{body}");

    // Unknown codes create nothing, on either path, and name the input.
    let (_, body) = app
        .gql(
            "mutation { signUp(input: { email: \"dan@example.com\", password: \"correct horse battery\", referralCode: \"NOPE2345\" }) { user { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        (code(&body), field(&body)),
        ("BAD_USER_INPUT", "input.referralCode"),
        "{body}"
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM users WHERE email = 'dan@example.com'")
            .await,
        0
    );
    let phone = "+14155551303";
    let otp = app.request_code(phone).await;
    let (_, body) = app
        .gql(
            VERIFY_OTP,
            json!({ "phone": phone, "code": otp, "ref": "ZZZZ9999" }),
        )
        .await;
    assert_eq!(
        (code(&body), field(&body)),
        ("BAD_USER_INPUT", "input.referralCode"),
        "{body}"
    );

    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM referrals WHERE referrer_id = '{alice_id}'"
        ))
        .await,
        2
    );
    // Bob shows his display name; the referral is not rewarded before a payment.
    app.gql_as(
        &bob,
        "mutation { updateProfile(input: { displayName: \"Bob\" }) { id } }",
        json!({}),
    )
    .await;
    let (_, body) = app.gql_as(&alice, REFERRALS, json!({ "f": 1 })).await;
    let me = &body["data"]["me"];
    assert_eq!(
        me["referralStats"],
        json!({ "invited": 2, "converted": 0, "creditsEarned": 0 }),
        "{body}"
    );
    let page = &me["referrals"];
    assert_eq!(page["pageInfo"]["hasNextPage"], true, "{body}");
    assert_eq!(page["edges"].as_array().unwrap().len(), 1);
    let (_, body) = app
        .gql_as(
            &alice,
            REFERRALS,
            json!({ "f": 5, "a": page["pageInfo"]["endCursor"] }),
        )
        .await;
    let node = &body["data"]["me"]["referrals"]["edges"][0]["node"];
    assert_eq!(node["referredUser"]["id"], bob_id.as_str(), "{body}");
    assert_eq!(node["referredUser"]["displayName"], "Bob");
    assert!(node["rewardedAt"].is_null());
    assert_eq!(referral_rows(&app).await, 0);

    // Others see neither the code nor the referrals.
    let (_, body) = app
        .gql_as(
            &bob,
            "query($id: ID) { user(id: $id) { referralCode referrals { edges { cursor } } referralStats { invited } } }",
            json!({ "id": alice_id }),
        )
        .await;
    assert_eq!(
        body["data"]["user"],
        json!({ "referralCode": null, "referrals": null, "referralStats": null }),
        "{body}"
    );
    app.assert_ledger_ok().await;
}

/// A referral is recorded only when its code creates an account, so it always points from
/// an older account to a newer one: no self-referral, no loops.
#[tokio::test]
async fn referrals_cannot_loop_or_point_at_oneself() {
    let app = TestApp::spawn_with(|c| c.otp_resend = std::time::Duration::ZERO).await;
    let (alice, alice_id) = user(&app, 1311).await;
    let (bob, _) = referred_user(&app, 1311 + 1, &my_code(&app, &alice).await).await;
    // Alice signs in again with Bob's code: she exists, so the code is ignored.
    let otp = app.request_code("+14155551311").await;
    let (_, body) = app
        .gql(
            VERIFY_OTP,
            json!({ "phone": "+14155551311", "code": otp, "ref": my_code(&app, &bob).await }),
        )
        .await;
    assert_eq!(body["data"]["verifyOtp"]["isNewUser"], false, "{body}");
    assert_eq!(app.scalar("SELECT count(*) AS n FROM referrals").await, 1);
    // And the database refuses what the code cannot express.
    let mut conn = app.db().await;
    use diesel_async::RunQueryDsl;
    let self_referral = diesel::sql_query(format!(
        "INSERT INTO referrals (id, referrer_id, referred_id, reward_type) VALUES (gen_random_uuid(), '{alice_id}', '{alice_id}', 'credits')"
    ))
    .execute(&mut conn)
    .await;
    assert!(self_referral.is_err());
    app.assert_ledger_ok().await;
}

#[tokio::test]
async fn the_first_payment_rewards_both_users_once() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = user(&app, 1321).await;
    let (bob, bob_id) = referred_user(&app, 1322, &my_code(&app, &alice).await).await;
    let before = (balance(&app, &alice_id).await, balance(&app, &bob_id).await);
    let first = pending_payment(&app, &bob).await;
    assert_eq!(approve(&app, &first).await, 200);
    assert_eq!(balance(&app, &alice_id).await, before.0 + 50);
    assert_eq!(balance(&app, &bob_id).await, before.1 + 550 + 25);
    let second = pending_payment(&app, &bob).await;
    assert_eq!(approve(&app, &second).await, 200);
    assert_eq!(balance(&app, &alice_id).await, before.0 + 50, "once");
    assert_eq!(balance(&app, &bob_id).await, before.1 + 1100 + 25);
    assert_eq!(referral_rows(&app).await, 2);

    let (_, body) = app.gql_as(&alice, REFERRALS, json!({})).await;
    let me = &body["data"]["me"];
    assert_eq!(
        me["referralStats"],
        json!({ "invited": 1, "converted": 1, "creditsEarned": 50 }),
        "{body}"
    );
    let node = &me["referrals"]["edges"][0]["node"];
    assert!(node["rewardedAt"].is_string(), "{body}");
    assert_eq!(node["creditsEarned"], 50);
    let (_, body) = app
        .gql_as(
            &bob,
            "{ creditHistory(filter: { kinds: [REFERRAL] }) { edges { node { amount counterparty { id } } } } }",
            json!({}),
        )
        .await;
    let edges = &body["data"]["creditHistory"]["edges"];
    assert_eq!(edges[0]["node"]["amount"], 25, "{body}");
    assert_eq!(edges[0]["node"]["counterparty"]["id"], alice_id.as_str());
    // Alice's own first payment rewards nothing: nobody referred her.
    let hers = pending_payment(&app, &alice).await;
    assert_eq!(approve(&app, &hers).await, 200);
    assert_eq!(referral_rows(&app).await, 2);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM audit_logs WHERE action = 'referral.rewarded'")
            .await,
        1
    );
    app.assert_ledger_ok().await;
    // The invariant check sees a reward entry that pays no referral.
    let problems = app
        .violations_after("UPDATE referrals SET referrer_transaction_id = NULL")
        .await;
    assert!(
        problems.iter().any(|p| p.contains("(referral) pays 0")),
        "{problems:?}"
    );
}

/// Parallel first payments of a referred user: every purchase is granted, the referral once.
#[tokio::test]
async fn parallel_first_payments_reward_the_referral_once() {
    let app = TestApp::spawn_with(|c| c.db_pool_size = 16).await;
    let (alice, alice_id) = user(&app, 1331).await;
    let (bob, bob_id) = referred_user(&app, 1332, &my_code(&app, &alice).await).await;
    let alice_before = balance(&app, &alice_id).await;
    let mut payments = Vec::new();
    for _ in 0..8 {
        payments.push(pending_payment(&app, &bob).await);
    }
    let statuses = join_all(payments.iter().map(|p| approve(&app, p))).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM credit_transactions WHERE kind = 'purchase' AND user_id = '{bob_id}'"
        ))
        .await,
        8
    );
    assert_eq!(referral_rows(&app).await, 2, "one reward: both sides once");
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM credit_transactions WHERE kind = 'referral' AND user_id = '{alice_id}'"
        ))
        .await,
        1
    );
    assert_eq!(balance(&app, &alice_id).await, alice_before + 50);
    app.assert_ledger_ok().await;
}

#[tokio::test]
async fn rewards_can_come_at_sign_up_or_not_at_all() {
    let app = TestApp::spawn_with(|c| {
        c.referral.reward_at_signup = true;
        c.referral.reward = ReferralReward::Credits {
            referrer: 7,
            referred: 0,
        };
    })
    .await;
    let (alice, alice_id) = user(&app, 1341).await;
    let before = balance(&app, &alice_id).await;
    let (bob, bob_id) = referred_user(&app, 1342, &my_code(&app, &alice).await).await;
    assert_eq!(balance(&app, &alice_id).await, before + 7);
    assert_eq!(
        balance(&app, &bob_id).await,
        10,
        "the sign-up bonus only: 0 configured"
    );
    assert_eq!(referral_rows(&app).await, 1);
    let payment = pending_payment(&app, &bob).await;
    assert_eq!(approve(&app, &payment).await, 200);
    assert_eq!(referral_rows(&app).await, 1, "no second reward");
    app.assert_ledger_ok().await;

    let app = TestApp::spawn_with(|c| c.referral.reward = ReferralReward::None).await;
    let (alice, _) = user(&app, 1343).await;
    let (bob, _) = referred_user(&app, 1344, &my_code(&app, &alice).await).await;
    let payment = pending_payment(&app, &bob).await;
    assert_eq!(approve(&app, &payment).await, 200);
    assert_eq!(referral_rows(&app).await, 0);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM referrals WHERE redeemed_at IS NULL")
            .await,
        1,
        "recorded, not rewarded"
    );
    app.assert_ledger_ok().await;
}

// ---- invite tokens ---------------------------------------------------------------------------

const CREATE: &str = "mutation($i: CreateInviteTokenInput!) { createInviteToken(input: $i) { token invite { id status maxUses useCount credits planDays role note expiresAt createdBy } } }";
const REDEEM: &str = "mutation($t: String!) { redeemInvite(token: $t) { credits planId planDays role user { id role credits { balance } } } }";
const LIST: &str = "query($f: Int, $a: String) { inviteTokens(first: $f, after: $a) { edges { node { id status useCount } } pageInfo { hasNextPage endCursor } } }";

/// Creates an invite as `admin`; returns (token text, invite id).
async fn invite(app: &TestApp, admin: &str, input: Value) -> (String, String) {
    let (_, body) = app.gql_as(admin, CREATE, json!({ "i": input })).await;
    let created = &body["data"]["createInviteToken"];
    assert!(created["token"].is_string(), "{body}");
    (
        created["token"].as_str().unwrap().to_string(),
        created["invite"]["id"].as_str().unwrap().to_string(),
    )
}

async fn redeem(app: &TestApp, token: &str, text: &str) -> Value {
    app.gql_as(token, REDEEM, json!({ "t": text })).await.1
}

#[tokio::test]
async fn admins_create_list_and_revoke_invites() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155551350").await;
    let (someone, _) = user(&app, 1351).await;
    let (_, body) = app
        .gql_as(&someone, CREATE, json!({ "i": { "credits": 5 } }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let (_, body) = app.gql_as(&someone, LIST, json!({})).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");

    let (_, body) = app
        .gql_as(
            &admin,
            CREATE,
            json!({ "i": { "credits": 100, "maxUses": 2, "note": "launch" } }),
        )
        .await;
    let created = &body["data"]["createInviteToken"];
    let text = created["token"].as_str().unwrap();
    assert_eq!(text.len(), 29, "{text}");
    assert_eq!(created["invite"]["status"], "ACTIVE", "{body}");
    assert_eq!(created["invite"]["maxUses"], 2);
    assert_eq!(created["invite"]["note"], "launch");
    // Only a hash is stored.
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM invite_tokens WHERE token = '{text}' OR token = '{}'",
            text.replace('-', "")
        ))
        .await,
        0
    );
    let id = created["invite"]["id"].as_str().unwrap().to_string();
    invite(&app, &admin, json!({ "credits": 1 })).await;
    let (_, body) = app.gql_as(&admin, LIST, json!({ "f": 1 })).await;
    let list = &body["data"]["inviteTokens"];
    assert_eq!(list["pageInfo"]["hasNextPage"], true, "{body}");
    let (_, body) = app
        .gql_as(
            &admin,
            LIST,
            json!({ "f": 1, "a": list["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(
        body["data"]["inviteTokens"]["edges"][0]["node"]["id"],
        id.as_str(),
        "{body}"
    );

    let revoke = "mutation($id: ID!) { revokeInviteToken(id: $id) { status } }";
    let (_, body) = app.gql_as(&someone, revoke, json!({ "id": id })).await;
    assert_eq!(code(&body), "FORBIDDEN");
    for _ in 0..2 {
        let (_, body) = app.gql_as(&admin, revoke, json!({ "id": id })).await;
        assert_eq!(
            body["data"]["revokeInviteToken"]["status"], "REVOKED",
            "{body}"
        );
    }
    let (_, body) = app
        .gql_as(
            &admin,
            revoke,
            json!({ "id": "0191f000-0000-7000-8000-00000000dead" }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let body = redeem(&app, &someone, text).await;
    assert_eq!(
        (code(&body), field(&body), reason(&body)),
        ("BAD_USER_INPUT", "token", "REVOKED"),
        "{body}"
    );
    for (action, n) in [("invite.created", 2), ("invite.revoked", 2)] {
        assert_eq!(
            app.scalar(&format!(
                "SELECT count(*) AS n FROM audit_logs WHERE action = '{action}' AND actor_type = 'admin'"
            ))
            .await,
            n,
            "{action}"
        );
    }
    app.assert_ledger_ok().await;
}

#[tokio::test]
async fn invites_grant_credits_once_per_user_and_never_past_max_uses() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155551360").await;
    let (text, _) = invite(
        &app,
        &admin,
        json!({ "credits": 100, "maxUses": 2, "note": "launch" }),
    )
    .await;
    let (ann, ann_id) = user(&app, 1361).await;
    let (ben, _) = user(&app, 1362).await;
    let (cat, _) = user(&app, 1363).await;

    // Any case, without dashes.
    let body = redeem(&app, &ann, &text.replace('-', "").to_lowercase()).await;
    let done = &body["data"]["redeemInvite"];
    assert_eq!(done["credits"], 100, "{body}");
    assert_eq!(done["planDays"], 0);
    assert!(done["role"].is_null());
    assert_eq!(done["user"]["credits"]["balance"], 110);
    assert_eq!(balance(&app, &ann_id).await, 110);
    let (_, body) = app
        .gql_as(
            &ann,
            "{ creditHistory(filter: { kinds: [BONUS] }) { edges { node { amount description } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["creditHistory"]["edges"][0]["node"],
        json!({ "amount": 100, "description": "Invite: launch" })
    );

    let body = redeem(&app, &ann, &text).await;
    assert_eq!(reason(&body), "ALREADY_REDEEMED", "{body}");
    assert!(redeem(&app, &ben, &text).await["errors"].is_null());
    let body = redeem(&app, &cat, &text).await;
    assert_eq!(
        (code(&body), field(&body), reason(&body)),
        ("BAD_USER_INPUT", "token", "EXHAUSTED"),
        "{body}"
    );
    // Not tokens at all, and unknown ones.
    for bad in [
        "",
        "nope",
        "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA",
        &"X".repeat(500),
    ] {
        let body = redeem(&app, &cat, bad).await;
        assert_eq!(reason(&body), "UNKNOWN", "{bad}: {body}");
    }
    let (_, body) = app.gql(REDEEM, json!({ "t": text })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM invite_redemptions")
            .await,
        2
    );
    assert_eq!(
        app.scalar("SELECT use_count::bigint AS n FROM invite_tokens")
            .await,
        2
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM audit_logs WHERE action = 'invite.redeemed'")
            .await,
        2
    );
    app.assert_ledger_ok().await;
    // The invariant check sees a use that was not counted.
    let problems = app
        .violations_after("UPDATE invite_tokens SET use_count = 1")
        .await;
    assert!(
        problems.iter().any(|p| p.contains("2 redemptions")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn expired_invites_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155551370").await;
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (text, id) = invite(&app, &admin, json!({ "credits": 3, "expiresAt": soon })).await;
    app.exec(&format!(
        "UPDATE invite_tokens SET expires_at = now() - interval '1 second' WHERE id = '{id}'"
    ))
    .await;
    let (someone, _) = user(&app, 1371).await;
    let body = redeem(&app, &someone, &text).await;
    assert_eq!(
        (code(&body), field(&body), reason(&body)),
        ("BAD_USER_INPUT", "token", "EXPIRED"),
        "{body}"
    );
    let (_, body) = app.gql_as(&admin, LIST, json!({})).await;
    assert_eq!(
        body["data"]["inviteTokens"]["edges"][0]["node"]["status"],
        "EXPIRED"
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM invite_redemptions")
            .await,
        0
    );
    app.assert_ledger_ok().await;
}

#[tokio::test]
async fn bad_invite_inputs_name_their_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155551380").await;
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let pro = "0191f000-0000-7000-8000-000000000103";
    for (input, expected) in [
        (json!({}), "input.credits"),
        (json!({ "credits": 0 }), "input.credits"),
        (json!({ "credits": -1 }), "input.credits"),
        (json!({ "credits": 1_000_000_001i64 }), "input.credits"),
        (json!({ "credits": 1, "maxUses": 0 }), "input.maxUses"),
        (
            json!({ "credits": 1, "maxUses": 1_000_001 }),
            "input.maxUses",
        ),
        (json!({ "role": "ADMIN" }), "input.role"),
        (json!({ "role": "USER" }), "input.role"),
        (json!({ "planId": pro }), "input.planDays"),
        (json!({ "planDays": 7 }), "input.planId"),
        (json!({ "planId": pro, "planDays": 4000 }), "input.planDays"),
        (
            json!({ "planId": "0191f000-0000-7000-8000-00000000beef", "planDays": 7 }),
            "input.planId",
        ),
        (
            json!({ "planId": "not-an-id", "planDays": 7 }),
            "input.planId",
        ),
        (
            json!({ "credits": 1, "expiresAt": past }),
            "input.expiresAt",
        ),
        (
            json!({ "credits": 1, "note": "x".repeat(501) }),
            "input.note",
        ),
        (json!({ "credits": 1, "note": "a\u{0}b" }), "input.note"),
    ] {
        let (_, body) = app.gql_as(&admin, CREATE, json!({ "i": input })).await;
        assert_eq!(
            (code(&body), field(&body)),
            ("BAD_USER_INPUT", expected),
            "{input}: {body}"
        );
    }
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM invite_tokens").await,
        0
    );
    app.assert_ledger_ok().await;
}

/// A VENDOR invite makes a verified vendor of someone with a vendor profile.
#[tokio::test]
async fn vendor_invites_verify_vendors() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155551390").await;
    let (text, _) = invite(&app, &admin, json!({ "role": "VENDOR", "maxUses": 5 })).await;
    let (plain, _) = user(&app, 1391).await;
    let body = redeem(&app, &plain, &text).await;
    assert_eq!(reason(&body), "VENDOR_PROFILE_REQUIRED", "{body}");
    assert_eq!(
        app.scalar("SELECT use_count::bigint AS n FROM invite_tokens")
            .await,
        0,
        "a refusal uses nothing"
    );
    let (shop, shop_id) = vendor(&app, 1392, "Shop").await;
    let body = redeem(&app, &shop, &text).await;
    assert_eq!(body["data"]["redeemInvite"]["role"], "VENDOR", "{body}");
    assert_eq!(body["data"]["redeemInvite"]["user"]["role"], "VENDOR");
    assert_eq!(body["data"]["redeemInvite"]["credits"], 0);
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM vendor_profiles WHERE user_id = '{shop_id}' AND is_verified"
        ))
        .await,
        1
    );
    app.assert_ledger_ok().await;
}

/// Twenty users redeem a 5-use token at once: exactly five get it.
#[tokio::test]
async fn twenty_parallel_redemptions_of_a_five_use_token_succeed_five_times() {
    let app = TestApp::spawn_with(|c| {
        c.db_pool_size = 24;
        c.otp_max_per_hour_per_ip = 1000;
    })
    .await;
    let admin = app.admin_token("+14155551400").await;
    let (text, _) = invite(&app, &admin, json!({ "credits": 10, "maxUses": 5 })).await;
    let mut tokens = Vec::new();
    for n in 0..20 {
        tokens.push(user(&app, 1401 + n).await.0);
    }
    let answers = join_all(tokens.iter().map(|t| redeem(&app, t, &text))).await;
    let won = answers
        .iter()
        .filter(|b| b["data"]["redeemInvite"]["credits"] == 10)
        .count();
    let exhausted = answers.iter().filter(|b| reason(b) == "EXHAUSTED").count();
    assert_eq!((won, exhausted), (5, 15), "{answers:?}");
    assert_eq!(
        app.scalar("SELECT use_count::bigint AS n FROM invite_tokens")
            .await,
        5
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM invite_redemptions")
            .await,
        5
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'bonus'")
            .await,
        5
    );
    app.assert_ledger_ok().await;
}

/// One user redeeming the same token many times at once gets it once.
#[tokio::test]
async fn parallel_redemptions_by_one_user_count_once() {
    let app = TestApp::spawn_with(|c| c.db_pool_size = 16).await;
    let admin = app.admin_token("+14155551430").await;
    let (text, _) = invite(&app, &admin, json!({ "credits": 10, "maxUses": 50 })).await;
    let (someone, id) = user(&app, 1431).await;
    let answers = join_all((0..10).map(|_| redeem(&app, &someone, &text))).await;
    let won = answers.iter().filter(|b| b["errors"].is_null()).count();
    assert_eq!(won, 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|b| !b["errors"].is_null())
            .all(|b| reason(b) == "ALREADY_REDEEMED"),
        "{answers:?}"
    );
    assert_eq!(balance(&app, &id).await, 20);
    assert_eq!(
        app.scalar("SELECT use_count::bigint AS n FROM invite_tokens")
            .await,
        1
    );
    app.assert_ledger_ok().await;
}

// ---- plan days -------------------------------------------------------------------------------

const PRO: &str = "0191f000-0000-7000-8000-000000000103";
const PREMIUM: &str = "0191f000-0000-7000-8000-000000000102";
const FREE: &str = "0191f000-0000-7000-8000-000000000101";

async fn tier(app: &TestApp, token: &str) -> String {
    let (_, body) = app
        .gql_as(token, "{ me { subscriptionTier } }", json!({}))
        .await;
    body["data"]["me"]["subscriptionTier"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Days of a plan from an invite start a given subscription; a paying user cannot get them,
/// and a plan taken off sale is refused; nothing is used up by a refusal.
#[tokio::test]
async fn invites_give_plan_days() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155551450").await;
    let (_, body) = app
        .gql_as(
            &admin,
            CREATE,
            json!({ "i": { "planId": FREE, "planDays": 7 } }),
        )
        .await;
    assert_eq!(field(&body), "input.planId", "{body}");
    let (text, _) = invite(
        &app,
        &admin,
        json!({ "planId": PRO, "planDays": 14, "credits": 5, "maxUses": 3 }),
    )
    .await;
    let (ann, ann_id) = user(&app, 1451).await;
    let body = redeem(&app, &ann, &text).await;
    let done = &body["data"]["redeemInvite"];
    assert_eq!(
        (
            done["planId"].as_str(),
            done["planDays"].as_i64(),
            done["credits"].as_i64()
        ),
        (Some(PRO), Some(14), Some(5)),
        "{body}"
    );
    assert_eq!(tier(&app, &ann).await, "PRO");
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM subscriptions WHERE user_id = '{ann_id}' AND source = 'invite' \
             AND current_period_end BETWEEN now() + interval '13 days' AND now() + interval '15 days'"
        ))
        .await,
        1
    );

    // Someone who pays for a plan: CONFLICT, and the token keeps its use.
    let (ben, ben_id) = user(&app, 1452).await;
    let (other, _) = invite(&app, &admin, json!({ "planId": PRO, "planDays": 3 })).await;
    assert!(redeem(&app, &ben, &other).await["errors"].is_null());
    app.exec(&format!(
        "UPDATE subscriptions SET gateway = 'sandbox', gateway_ref = 'sbx_sub_' || id, source = 'checkout' WHERE user_id = '{ben_id}'"
    ))
    .await;
    let body = redeem(&app, &ben, &text).await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    let (_, body) = app.gql_as(&admin, LIST, json!({})).await;
    let counts: Vec<_> = body["data"]["inviteTokens"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["useCount"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![1, 1], "{body}");

    // A plan taken off sale after the token was made.
    let (premium, _) = invite(&app, &admin, json!({ "planId": PREMIUM, "planDays": 3 })).await;
    app.exec(&format!(
        "UPDATE payment_plans SET is_active = false WHERE id = '{PREMIUM}'"
    ))
    .await;
    let (cat, _) = user(&app, 1453).await;
    let body = redeem(&app, &cat, &premium).await;
    assert_eq!(
        (code(&body), field(&body), reason(&body)),
        ("BAD_USER_INPUT", "token", "PLAN_UNAVAILABLE"),
        "{body}"
    );
    assert_eq!(tier(&app, &cat).await, "FREE");
    app.assert_ledger_ok().await;
}

/// A plan-days referral reward: both users get the days once; a side that pays for a plan
/// is skipped without failing the payment.
#[tokio::test]
async fn referral_rewards_can_be_plan_days() {
    let app = TestApp::spawn_with(|c| {
        c.referral.reward = ReferralReward::PlanDays {
            plan: "pro".into(),
            days: 7,
        };
    })
    .await;
    let (alice, alice_id) = user(&app, 1461).await;
    let (bob, bob_id) = referred_user(&app, 1462, &my_code(&app, &alice).await).await;
    let (carl, _) = referred_user(&app, 1463, &my_code(&app, &alice).await).await;
    let first = pending_payment(&app, &bob).await;
    assert_eq!(approve(&app, &first).await, 200);
    assert_eq!(tier(&app, &alice).await, "PRO");
    assert_eq!(tier(&app, &bob).await, "PRO");
    assert_eq!(referral_rows(&app).await, 0, "days, not credits");
    let second = pending_payment(&app, &bob).await;
    assert_eq!(approve(&app, &second).await, 200);
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM subscriptions WHERE user_id IN ('{alice_id}', '{bob_id}') \
             AND source = 'referral' AND current_period_end < now() + interval '8 days'"
        ))
        .await,
        2,
        "7 days each, once"
    );
    // Alice now pays for her plan: Carl's first payment gives Carl days and skips her.
    app.exec(&format!(
        "UPDATE subscriptions SET gateway = 'sandbox', gateway_ref = 'sbx_sub_' || id, source = 'checkout' WHERE user_id = '{alice_id}'"
    ))
    .await;
    let carls = pending_payment(&app, &carl).await;
    assert_eq!(approve(&app, &carls).await, 200);
    assert_eq!(tier(&app, &carl).await, "PRO");
    assert_eq!(
        app.scalar(
            "SELECT count(*) AS n FROM referrals WHERE redeemed_at IS NOT NULL AND plan_days = 7"
        )
        .await,
        2
    );
    let (_, body) = app.gql_as(&alice, REFERRALS, json!({})).await;
    assert_eq!(
        body["data"]["me"]["referralStats"],
        json!({ "invited": 2, "converted": 2, "creditsEarned": 0 }),
        "{body}"
    );
    app.assert_ledger_ok().await;
}
