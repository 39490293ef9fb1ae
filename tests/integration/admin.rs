//! Admin tools and moderation (issue #15): `adminStats`, `adminUsers`, `auditLog`,
//! `setCharacterFeatured`, `verifyVendor`, `setUserRole`, `reportContent`,
//! `contentReports`, `resolveReport`; and `myLikedCharacters`, `Character.reviews` and
//! `Character.viewerRating`.

use serde_json::{Value, json};

use crate::gallery::{basic, character, upload};
use crate::support::{TestApp, code, field, user, vendor};

const ADMIN_PHONE: &str = "+14155550900";

async fn admin(app: &TestApp) -> (String, String) {
    let token = app.admin_token(ADMIN_PHONE).await;
    let (_, body) = app.gql_as(&token, "{ me { id } }", json!({})).await;
    (
        token,
        body["data"]["me"]["id"].as_str().unwrap().to_string(),
    )
}

fn ok(body: &Value) -> &Value {
    assert!(body["errors"].is_null(), "{body}");
    &body["data"]
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.scalar(sql).await
}

const FEATURE: &str = "mutation($id: ID!, $f: Boolean!) { setCharacterFeatured(id: $id, featured: $f) { id isFeatured } }";
const VERIFY: &str = "mutation($u: ID!, $v: Boolean!) { verifyVendor(userId: $u, verified: $v) { id role vendorProfile { isVerified } } }";
const SET_ROLE: &str =
    "mutation($u: ID!, $r: Role!) { setUserRole(userId: $u, role: $r) { id role } }";
const REPORT: &str = "mutation($t: ReportTargetType!, $id: ID!, $r: ReportReason!, $d: String) { reportContent(input: { targetType: $t, targetId: $id, reason: $r, details: $d }) { id status targetType reason details resolution targetOwner { id } } }";
const RESOLVE: &str = "mutation($id: ID!, $a: ReportAction!, $n: String) { resolveReport(id: $id, input: { action: $a, note: $n }) { id status resolution resolutionNote resolvedAt } }";

#[tokio::test]
async fn every_admin_field_refuses_others_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = user(&app, 1).await;
    let (_, vendor_id) = vendor(&app, 2, "Shop").await;
    let c = character(&app, &alice, basic("Fox", true)).await;
    let (admin_token, _) = admin(&app).await;
    let (_, body) = app
        .gql_as(
            &alice,
            REPORT,
            json!({ "t": "CHARACTER", "id": c["id"], "r": "SPAM" }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "own content: {body}");
    let (bob, _) = user(&app, 3).await;
    let (_, body) = app
        .gql_as(
            &bob,
            REPORT,
            json!({ "t": "CHARACTER", "id": c["id"], "r": "SPAM" }),
        )
        .await;
    let report = ok(&body)["reportContent"]["id"].clone();

    let cases: Vec<(&str, Value)> = vec![
        ("{ adminStats { creditsSold } }", json!({})),
        ("{ adminUsers { edges { node { id } } } }", json!({})),
        ("{ auditLog { edges { node { id } } } }", json!({})),
        ("{ contentReports { edges { node { id } } } }", json!({})),
        (FEATURE, json!({ "id": c["id"], "f": true })),
        (VERIFY, json!({ "u": vendor_id, "v": true })),
        (SET_ROLE, json!({ "u": alice_id, "r": "ADMIN" })),
        (RESOLVE, json!({ "id": report, "a": "HIDE_CONTENT" })),
    ];
    let snapshot = "SELECT (SELECT count(*) FROM audit_logs) * 1000000 \
        + (SELECT count(*) FROM characters WHERE is_featured OR hidden_at IS NOT NULL) * 10000 \
        + (SELECT count(*) FROM vendor_profiles WHERE is_verified) * 1000 \
        + (SELECT count(*) FROM users WHERE role = 'admin') * 10 \
        + (SELECT count(*) FROM content_reports WHERE status = 'resolved') AS n";
    let before = count(&app, snapshot).await;
    for (query, vars) in &cases {
        let (_, body) = app.gql_as(&bob, query, vars.clone()).await;
        assert_eq!(code(&body), "FORBIDDEN", "{query}: {body}");
        let (_, body) = app.gql(query, vars.clone()).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{query}: {body}");
    }
    assert_eq!(count(&app, snapshot).await, before, "nothing changed");
    // The admin may.
    for (query, vars) in &cases {
        let (_, body) = app.gql_as(&admin_token, query, vars.clone()).await;
        ok(&body);
    }
}

#[tokio::test]
async fn stats_are_exact() {
    let app = TestApp::spawn().await;
    let (admin_token, _) = admin(&app).await;
    let (alice, alice_id) = user(&app, 1).await;
    let (_, bob_id) = user(&app, 2).await;
    let (_, carol_id) = user(&app, 3).await;
    let (_, dan_id) = user(&app, 4).await;
    app.exec(&format!(
        "UPDATE users SET account_status = 'suspended' WHERE id = '{carol_id}'"
    ))
    .await;
    app.exec(&format!(
        "UPDATE users SET subscription_tier = 'PRO', created_at = now() - interval '2 days' WHERE id = '{bob_id}'"
    ))
    .await;
    app.exec(&format!(
        "UPDATE users SET created_at = now() - interval '40 days' WHERE id = '{dan_id}'"
    ))
    .await;
    // A sandbox purchase (550 credits for 19.99 USD), a payment left pending, and a
    // completed plan payment in EUR (no credits: plans grant through subscriptions).
    let purchase = "mutation($p: ID!, $r: String) { purchaseCredits(input: { packageId: $p, gateway: SANDBOX, returnUrl: $r }) { id checkoutUrl } }";
    let creator = "0191f000-0000-7000-8000-000000000002";
    let (_, body) = app
        .gql_as(
            &alice,
            purchase,
            json!({ "p": creator, "r": "https://app.example/paid" }),
        )
        .await;
    let checkout = ok(&body)["purchaseCredits"]["checkoutUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = app
        .client
        .post(&checkout)
        .form(&[("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, body) = app
        .gql_as(
            &alice,
            purchase,
            json!({ "p": creator, "r": "https://app.example/paid" }),
        )
        .await;
    ok(&body);
    app.exec(&format!(
        "INSERT INTO payments (id, user_id, plan_id, gateway, amount_minor, currency, status, paid_at) \
         VALUES (gen_random_uuid(), '{bob_id}', (SELECT id FROM payment_plans ORDER BY id LIMIT 1), \
                 'sandbox', 900, 'EUR', 'completed', now())"
    ))
    .await;
    // Ledger (Bob starts with his 10-credit sign-up bonus): a 3-credit charge (plus 7 from
    // the allowance, which is not spending), a 5-credit charge, and a refund of 2.
    app.exec(&format!(
        "WITH u AS (SELECT balance FROM credit_accounts WHERE user_id = '{bob_id}') \
         INSERT INTO credit_transactions (id, user_id, kind, amount, balance_after, allowance_used, description) \
         SELECT gen_random_uuid(), '{bob_id}', k, a, u.balance + b, au, 'seeded' FROM u, \
           (VALUES ('usage', -3, -3, 7), ('usage', -5, -8, 0), ('refund', 2, -6, 0)) v(k, a, b, au)"
    ))
    .await;
    app.exec(&format!(
        "UPDATE credit_accounts SET balance = balance - 6 WHERE user_id = '{bob_id}'"
    ))
    .await;
    // Jobs: two queued (the oldest waiting 120 s), one succeeded.
    app.exec(&format!(
        "INSERT INTO generation_jobs (id, user_id, kind, provider, status, queued_at) VALUES \
         (gen_random_uuid(), '{bob_id}', 'logo', 'procedural', 'queued', now() - interval '120 seconds'), \
         (gen_random_uuid(), '{bob_id}', 'logo', 'procedural', 'queued', now() - interval '5 seconds'), \
         (gen_random_uuid(), '{bob_id}', 'logo', 'procedural', 'succeeded', now() - interval '1 hour')"
    ))
    .await;
    app.assert_ledger_ok().await;

    let (_, body) = app
        .gql_as(
            &admin_token,
            "{ adminStats { usersByStatus { status count } usersByTier { tier count } \
               signupsPerDay(days: 3) { day count } jobsByStatus { status count } \
               oldestQueuedJobAgeSeconds creditsSold creditsSpent creditsRefunded \
               revenueByCurrency { currency amountMinor } } }",
            json!({}),
        )
        .await;
    let s = &ok(&body)["adminStats"];
    assert_eq!(
        s["usersByStatus"],
        json!([
            { "status": "ACTIVE", "count": 4 }, { "status": "SUSPENDED", "count": 1 },
            { "status": "BANNED", "count": 0 }, { "status": "DELETED", "count": 0 }
        ])
    );
    assert_eq!(
        s["usersByTier"],
        json!([
            { "tier": "FREE", "count": 4 }, { "tier": "PREMIUM", "count": 0 },
            { "tier": "PRO", "count": 1 }, { "tier": "ENTERPRISE", "count": 0 }
        ])
    );
    let days = s["signupsPerDay"].as_array().unwrap();
    assert_eq!(days.len(), 3, "{s}");
    let counts: Vec<i64> = days.iter().map(|d| d["count"].as_i64().unwrap()).collect();
    assert_eq!(
        counts,
        [1, 0, 3],
        "bob two days ago, dan before the span: {s}"
    );
    let today = app
        .scalar("SELECT to_char((now() AT TIME ZONE 'UTC')::date, 'YYYYMMDD')::bigint AS n")
        .await;
    assert_eq!(
        days[2]["day"].as_str().unwrap().replace('-', ""),
        today.to_string()
    );
    let jobs: Vec<(String, i64)> = s["jobsByStatus"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["count"] != 0)
        .map(|j| {
            (
                j["status"].as_str().unwrap().into(),
                j["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(jobs, [("QUEUED".into(), 2), ("SUCCEEDED".into(), 1)]);
    let age = s["oldestQueuedJobAgeSeconds"].as_i64().unwrap();
    assert!((120..125).contains(&age), "{age}");
    assert_eq!(s["creditsSold"], 550);
    assert_eq!(s["creditsSpent"], 8);
    assert_eq!(s["creditsRefunded"], 2);
    assert_eq!(
        s["revenueByCurrency"],
        json!([{ "currency": "EUR", "amountMinor": 900 }, { "currency": "USD", "amountMinor": 1999 }])
    );
    // Bad input.
    for days in [0, 367] {
        let (_, body) = app
            .gql_as(
                &admin_token,
                "query($d: Int!) { adminStats { signupsPerDay(days: $d) { count } } }",
                json!({ "d": days }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(field(&body), "days");
    }
    // Nothing queued: no age.
    app.exec("UPDATE generation_jobs SET status = 'cancelled' WHERE status = 'queued'")
        .await;
    let (_, body) = app
        .gql_as(
            &admin_token,
            "{ adminStats { oldestQueuedJobAgeSeconds } }",
            json!({}),
        )
        .await;
    assert!(ok(&body)["adminStats"]["oldestQueuedJobAgeSeconds"].is_null());
    let _ = alice_id;
}

const USERS: &str = "query($f: AdminUserFilter, $n: Int, $a: String) { adminUsers(filter: $f, first: $n, after: $a) { edges { node { id email phone username displayName role status tier createdAt lastLoginAt creditBalance warningCount } } pageInfo { hasNextPage endCursor } } }";

fn phones(body: &Value) -> Vec<String> {
    body["data"]["adminUsers"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| e["node"]["phone"].as_str().unwrap_or("-").to_string())
        .collect()
}

#[tokio::test]
async fn admin_users_search_filter_and_page() {
    let app = TestApp::spawn().await;
    let (admin_token, _) = admin(&app).await;
    let mut tokens = Vec::new();
    for n in 1..=5 {
        tokens.push(user(&app, n).await);
    }
    app.gql_as(
        &tokens[1].0,
        "mutation { updateProfile(input: { displayName: \"Zoë 100%_Real\", username: \"zoe_x\" }) { id } }",
        json!({}),
    )
    .await;
    app.exec(&format!(
        "UPDATE users SET email = 'Carla@Example.com', subscription_tier = 'PRO' WHERE id = '{}'",
        tokens[2].1
    ))
    .await;
    // Newest first, paged with cursors, admin-visible fields.
    let (_, p1) = app.gql_as(&admin_token, USERS, json!({ "n": 4 })).await;
    assert_eq!(
        phones(&p1),
        [
            "+14155550005",
            "+14155550004",
            "+14155550003",
            "+14155550002"
        ]
    );
    let first = &p1["data"]["adminUsers"]["edges"][0]["node"];
    assert_eq!(first["creditBalance"], 10, "{first}");
    assert_eq!(first["warningCount"], 0);
    assert_eq!(first["status"], "ACTIVE");
    assert!(first["lastLoginAt"].is_string() && first["createdAt"].is_string());
    let after = p1["data"]["adminUsers"]["pageInfo"]["endCursor"].clone();
    let (_, p2) = app
        .gql_as(&admin_token, USERS, json!({ "n": 4, "a": after }))
        .await;
    assert_eq!(phones(&p2), ["+14155550001", ADMIN_PHONE]);
    assert_eq!(p2["data"]["adminUsers"]["pageInfo"]["hasNextPage"], false);
    // Search: any case, over email, phone, username and display name; wildcards literal.
    for (search, want) in [
        ("carla@EXAMPLE", vec!["+14155550003"]),
        ("ZOE_", vec!["+14155550002"]),
        ("100%_re", vec!["+14155550002"]),
        ("0%5", vec![]),
        ("5550004", vec!["+14155550004"]),
    ] {
        let (_, body) = app
            .gql_as(&admin_token, USERS, json!({ "f": { "search": search } }))
            .await;
        assert_eq!(phones(&body), want, "{search}: {body}");
    }
    let (_, body) = app
        .gql_as(&admin_token, USERS, json!({ "f": { "role": "ADMIN" } }))
        .await;
    assert_eq!(phones(&body), [ADMIN_PHONE]);
    let (_, body) = app
        .gql_as(
            &admin_token,
            USERS,
            json!({ "f": { "tier": "PRO", "status": "ACTIVE" } }),
        )
        .await;
    assert_eq!(phones(&body), ["+14155550003"]);
    let (_, body) = app
        .gql_as(
            &admin_token,
            USERS,
            json!({ "f": { "search": "x".repeat(101) } }),
        )
        .await;
    assert_eq!(field(&body), "filter.search", "{body}");
    let (_, body) = app.gql_as(&admin_token, USERS, json!({ "n": 101 })).await;
    assert_eq!(field(&body), "first", "{body}");
}

const AUDIT: &str = "query($f: AuditLogFilter, $n: Int, $a: String) { auditLog(filter: $f, first: $n, after: $a) { edges { node { action actorId actor { id } actorType resource resourceId metadata createdAt } } pageInfo { hasNextPage endCursor } } }";

fn entries(body: &Value) -> Vec<Value> {
    body["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

#[tokio::test]
async fn admin_changes_take_effect_and_are_audited() {
    // Alice signs in again once her role changed.
    let app = TestApp::spawn_with(|c| c.otp_resend = std::time::Duration::ZERO).await;
    let (admin_token, admin_id) = admin(&app).await;
    let (alice, alice_id) = user(&app, 1).await;
    let fox = character(&app, &alice, basic("Fox", true)).await;
    character(&app, &alice, basic("Owl", true)).await;

    // Featuring shows in the feed's `featured` filter.
    let feed = "{ galleryFeed(filter: { featured: true }) { edges { node { name isFeatured } } } }";
    let (_, body) = app.gql(feed, json!({})).await;
    assert_eq!(ok(&body)["galleryFeed"]["edges"], json!([]));
    let (_, body) = app
        .gql_as(&admin_token, FEATURE, json!({ "id": fox["id"], "f": true }))
        .await;
    assert_eq!(ok(&body)["setCharacterFeatured"]["isFeatured"], true);
    let (_, body) = app.gql(feed, json!({})).await;
    assert_eq!(
        ok(&body)["galleryFeed"]["edges"],
        json!([{ "node": { "name": "Fox", "isFeatured": true } }])
    );
    let (_, body) = app
        .gql_as(
            &admin_token,
            FEATURE,
            json!({ "id": "0191f000-0000-7000-8000-00000000dead", "f": true }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");

    // verifyVendor: a vendor profile is needed; verifying and un-verifying.
    let (_, body) = app
        .gql_as(&admin_token, VERIFY, json!({ "u": alice_id, "v": true }))
        .await;
    assert_eq!(field(&body), "userId", "{body}");
    let (vendor_token, vendor_id) = vendor(&app, 2, "Shop").await;
    let (_, body) = app
        .gql_as(&admin_token, VERIFY, json!({ "u": vendor_id, "v": true }))
        .await;
    assert_eq!(
        ok(&body)["verifyVendor"]["vendorProfile"]["isVerified"],
        true
    );
    assert_eq!(body["data"]["verifyVendor"]["role"], "VENDOR");
    let (_, body) = app
        .gql_as(
            &vendor_token,
            "{ me { vendorProfile { isVerified } } }",
            json!({}),
        )
        .await;
    assert_eq!(ok(&body)["me"]["vendorProfile"]["isVerified"], true);
    let (_, body) = app
        .gql_as(&admin_token, VERIFY, json!({ "u": vendor_id, "v": false }))
        .await;
    assert_eq!(
        ok(&body)["verifyVendor"]["vendorProfile"]["isVerified"],
        false
    );

    // setUserRole: not one's own; the change holds at once (the old token is refused) and
    // the next sign-in carries the new role.
    let (_, body) = app
        .gql_as(
            &admin_token,
            SET_ROLE,
            json!({ "u": admin_id, "r": "USER" }),
        )
        .await;
    assert_eq!(field(&body), "userId", "{body}");
    let (_, body) = app
        .gql_as(
            &admin_token,
            SET_ROLE,
            json!({ "u": alice_id, "r": "ADMIN" }),
        )
        .await;
    assert_eq!(ok(&body)["setUserRole"]["role"], "ADMIN");
    let (_, body) = app.gql_as(&alice, "{ me { id } }", json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let auth = app.sign_up_by_phone("+14155550001").await;
    let alice = auth["accessToken"].as_str().unwrap().to_string();
    let (_, body) = app
        .gql_as(&alice, "{ adminStats { creditsSold } }", json!({}))
        .await;
    ok(&body);
    // Two admins now: the new one demotes the first; then she is the last and stays.
    let (_, body) = app
        .gql_as(&alice, SET_ROLE, json!({ "u": admin_id, "r": "USER" }))
        .await;
    assert_eq!(ok(&body)["setUserRole"]["role"], "USER");
    let (_, body) = app
        .gql_as(&admin_token, "{ adminStats { creditsSold } }", json!({}))
        .await;
    assert_eq!(
        code(&body),
        "UNAUTHENTICATED",
        "the demoted admin's session ended: {body}"
    );
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM users WHERE role = 'admin'").await,
        1
    );

    // Every change is in the audit log with before and after.
    let (_, body) = app
        .gql_as(
            &alice,
            AUDIT,
            json!({ "f": { "action": "account.role_changed", "actorId": admin_id } }),
        )
        .await;
    let rows = entries(&body);
    assert_eq!(rows.len(), 1, "{body}");
    assert_eq!(rows[0]["resourceId"], alice_id.as_str());
    assert_eq!(rows[0]["actorType"], "admin");
    assert_eq!(rows[0]["actor"]["id"], admin_id.as_str());
    assert_eq!(rows[0]["metadata"]["before"], json!({ "role": "user" }));
    assert_eq!(rows[0]["metadata"]["after"], json!({ "role": "admin" }));
    let (_, body) = app
        .gql_as(
            &alice,
            AUDIT,
            json!({ "f": { "resource": "character", "resourceId": fox["id"] } }),
        )
        .await;
    let rows = entries(&body);
    assert_eq!(rows.len(), 1, "{body}");
    assert_eq!(rows[0]["action"], "character.featured_changed");
    assert_eq!(rows[0]["metadata"]["before"], json!({ "featured": false }));
    assert_eq!(rows[0]["metadata"]["after"], json!({ "featured": true }));
    let (_, body) = app
        .gql_as(
            &alice,
            AUDIT,
            json!({ "f": { "action": "vendor.verification_changed" } }),
        )
        .await;
    let rows = entries(&body);
    assert_eq!(rows.len(), 2, "{body}");
    assert_eq!(
        rows[0]["metadata"]["after"]["verified"], false,
        "newest first"
    );
    assert_eq!(rows[1]["metadata"]["before"]["verified"], false);
    assert_eq!(rows[1]["metadata"]["after"]["verified"], true);
    // Paging and the time window.
    let total = count(&app, "SELECT count(*) AS n FROM audit_logs").await;
    let (_, p1) = app.gql_as(&alice, AUDIT, json!({ "n": 3 })).await;
    let mut seen = entries(&p1).len();
    let mut cursor = p1["data"]["auditLog"]["pageInfo"]["endCursor"].clone();
    while !cursor.is_null() {
        let (_, p) = app
            .gql_as(&alice, AUDIT, json!({ "n": 3, "a": cursor }))
            .await;
        seen += entries(&p).len();
        if p["data"]["auditLog"]["pageInfo"]["hasNextPage"] == false {
            break;
        }
        cursor = p["data"]["auditLog"]["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen as i64, total);
    let (_, body) = app
        .gql_as(
            &alice,
            AUDIT,
            json!({ "f": { "to": "2000-01-01T00:00:00Z" } }),
        )
        .await;
    assert!(entries(&body).is_empty());
    let (_, body) = app
        .gql_as(
            &alice,
            AUDIT,
            json!({ "f": { "from": "2030-01-01T00:00:00Z", "to": "2029-01-01T00:00:00Z" } }),
        )
        .await;
    assert_eq!(field(&body), "filter.to", "{body}");
}

#[tokio::test]
async fn an_admin_demoted_meanwhile_cannot_change_roles() {
    let app = TestApp::spawn_with(|c| c.otp_resend = std::time::Duration::ZERO).await;
    let (admin_token, admin_id) = admin(&app).await;
    let (_, alice_id) = user(&app, 1).await;
    // Promote Alice, then demote her behind her token's back: her (stale) admin token may
    // not demote the remaining admin; the database, not the token, is the judge. (An admin
    // cannot demote themselves, so the last admin always stays.)
    let (_, body) = app
        .gql_as(
            &admin_token,
            SET_ROLE,
            json!({ "u": alice_id, "r": "ADMIN" }),
        )
        .await;
    ok(&body);
    let alice = app.sign_up_by_phone("+14155550001").await["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    app.exec(&format!(
        "UPDATE users SET role = 'user' WHERE id = '{alice_id}'"
    ))
    .await;
    let (_, body) = app
        .gql_as(&alice, SET_ROLE, json!({ "u": admin_id, "r": "USER" }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) AS n FROM users WHERE id = '{admin_id}' AND role = 'admin'")
        )
        .await,
        1
    );
}

fn report_id(body: &Value) -> Value {
    ok(body)["reportContent"]["id"].clone()
}

#[tokio::test]
async fn reports_hide_content_from_everyone_but_owner_and_admins() {
    let app = TestApp::spawn().await;
    let (admin_token, _) = admin(&app).await;
    let (alice, alice_id) = user(&app, 1).await;
    let (bob, _) = user(&app, 2).await;
    let (carol, _) = user(&app, 3).await;
    let fox = character(&app, &alice, basic("Fox", true)).await;
    let secret = character(&app, &alice, basic("Secret", false)).await;
    let img = upload(&app, &alice, true).await;

    // What the reporter cannot see is NOT_FOUND; bad ids and details are refused.
    for (t, id) in [
        ("CHARACTER", secret["id"].clone()),
        ("IMAGE", json!("0191f000-0000-7000-8000-00000000dead")),
        ("USER", json!("0191f000-0000-7000-8000-00000000dead")),
    ] {
        let (_, body) = app
            .gql_as(&bob, REPORT, json!({ "t": t, "id": id, "r": "NSFW" }))
            .await;
        assert_eq!(code(&body), "NOT_FOUND", "{t}: {body}");
    }
    let (_, body) = app
        .gql_as(
            &bob,
            REPORT,
            json!({ "t": "CHARACTER", "id": fox["id"], "r": "SPAM", "d": "x".repeat(2001) }),
        )
        .await;
    assert_eq!(field(&body), "input.details", "{body}");
    let (_, body) = app
        .gql(
            REPORT,
            json!({ "t": "CHARACTER", "id": fox["id"], "r": "SPAM" }),
        )
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM content_reports").await,
        0
    );

    // One open report per reporter and target: the repeat answers the same report.
    let (_, body) = app
        .gql_as(
            &bob,
            REPORT,
            json!({ "t": "CHARACTER", "id": fox["id"], "r": "NSFW", "d": " not ok " }),
        )
        .await;
    let report = report_id(&body);
    assert_eq!(body["data"]["reportContent"]["status"], "OPEN");
    assert_eq!(body["data"]["reportContent"]["details"], "not ok");
    assert!(
        body["data"]["reportContent"]["targetOwner"].is_null(),
        "admins only"
    );
    let (_, body) = app
        .gql_as(
            &bob,
            REPORT,
            json!({ "t": "CHARACTER", "id": fox["id"], "r": "SPAM" }),
        )
        .await;
    assert_eq!(report_id(&body), report);
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM content_reports").await,
        1
    );
    let (_, body) = app
        .gql_as(
            &carol,
            REPORT,
            json!({ "t": "IMAGE", "id": img["id"], "r": "COPYRIGHT" }),
        )
        .await;
    let img_report = report_id(&body);

    // Admins list them, filtered.
    let list = "query($f: ContentReportFilter) { contentReports(filter: $f) { edges { node { id targetType targetId reason status targetOwner { id } reporter { id } } } } }";
    let (_, body) = app.gql_as(&admin_token, list, json!({})).await;
    let edges = ok(&body)["contentReports"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(edges.len(), 2);
    assert_eq!(edges[0]["node"]["id"], img_report, "newest first");
    assert_eq!(edges[1]["node"]["targetOwner"]["id"], alice_id.as_str());
    let (_, body) = app
        .gql_as(
            &admin_token,
            list,
            json!({ "f": { "targetType": "CHARACTER", "status": "OPEN" } }),
        )
        .await;
    assert_eq!(
        ok(&body)["contentReports"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // HIDE_CONTENT on a user is refused; hiding the character works once.
    let (_, body) = app
        .gql_as(
            &admin_token,
            RESOLVE,
            json!({ "id": report, "a": "HIDE_CONTENT", "n": "nsfw confirmed" }),
        )
        .await;
    let resolved = &ok(&body)["resolveReport"];
    assert_eq!(resolved["status"], "RESOLVED");
    assert_eq!(resolved["resolution"], "HIDE_CONTENT");
    assert_eq!(resolved["resolutionNote"], "nsfw confirmed");
    let (_, body) = app
        .gql_as(
            &admin_token,
            RESOLVE,
            json!({ "id": report, "a": "DISMISS" }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM audit_logs WHERE action = 'report.resolved'"
        )
        .await,
        1
    );

    // Hidden: gone for others (by id, feed, gallery, liking), there for owner and admins.
    let by_id = "query($id: ID!) { character(id: $id) { name isPublic } }";
    let feed = "{ galleryFeed { edges { node { name } } } }";
    let gallery =
        "query($o: ID!) { gallery(owner: $o) { characters { edges { node { name } } } } }";
    for token in [Some(bob.as_str()), None] {
        let (_, body) = app.gql_with(token, by_id, json!({ "id": fox["id"] })).await;
        assert!(ok(&body)["character"].is_null(), "{body}");
        let (_, body) = app.gql_with(token, feed, json!({})).await;
        assert_eq!(ok(&body)["galleryFeed"]["edges"], json!([]));
        let (_, body) = app.gql_with(token, gallery, json!({ "o": alice_id })).await;
        assert_eq!(
            ok(&body)["gallery"]["characters"]["edges"],
            json!([]),
            "{body}"
        );
    }
    let (_, body) = app
        .gql_as(
            &bob,
            "mutation($id: ID!) { likeCharacter(id: $id) { id } }",
            json!({ "id": fox["id"] }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
    for token in [&alice, &admin_token] {
        let (_, body) = app.gql_as(token, by_id, json!({ "id": fox["id"] })).await;
        assert_eq!(ok(&body)["character"]["name"], "Fox");
    }
    // The owner cannot publish it again (nor can anyone), and nothing changes.
    let (_, body) = app
        .gql_as(
            &alice,
            "mutation($id: ID!) { updateCharacter(id: $id, input: { isPublic: true }) { isPublic } }",
            json!({ "id": fox["id"] }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert_eq!(
        count(&app, &format!("SELECT count(*) AS n FROM characters WHERE id = '{}' AND NOT is_public AND hidden_at IS NOT NULL", fox["id"].as_str().unwrap())).await,
        1
    );
    // Reporting a hidden character: others cannot see it any more.
    let (_, body) = app
        .gql_as(
            &carol,
            REPORT,
            json!({ "t": "CHARACTER", "id": fox["id"], "r": "SPAM" }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");

    // A hidden image leaves the image path too.
    let (_, body) = app
        .gql_as(
            &admin_token,
            RESOLVE,
            json!({ "id": img_report, "a": "HIDE_CONTENT" }),
        )
        .await;
    ok(&body);
    let (_, body) = app
        .gql_as(
            &bob,
            "query($id: ID!) { image(id: $id) { id } }",
            json!({ "id": img["id"] }),
        )
        .await;
    assert!(ok(&body)["image"].is_null(), "{body}");
    let (_, body) = app
        .gql_as(
            &alice,
            "query($id: ID!) { image(id: $id) { id isPublic } }",
            json!({ "id": img["id"] }),
        )
        .await;
    assert_eq!(ok(&body)["image"]["isPublic"], false);

    // Collections and albums: the same.
    let (_, body) = app
        .gql_as(
            &alice,
            "mutation { createCollection(input: { name: \"Mine\", isPublic: true }) { id } }",
            json!({}),
        )
        .await;
    let col = ok(&body)["createCollection"]["id"].clone();
    let (vendor_token, _) = vendor(&app, 4, "Shop").await;
    let (_, body) = app
        .gql_as(
            &vendor_token,
            "mutation { createAlbum(input: { name: \"Wares\", isPublic: true }) { id } }",
            json!({}),
        )
        .await;
    let album = ok(&body)["createAlbum"]["id"].clone();
    for (t, id, one, update) in [
        (
            "COLLECTION",
            &col,
            "query($id: ID!) { collection(id: $id) { id } }",
            "mutation($id: ID!) { updateCollection(id: $id, input: { isPublic: true }) { id } }",
        ),
        (
            "ALBUM",
            &album,
            "query($id: ID!) { album(id: $id) { id } }",
            "mutation($id: ID!) { updateAlbum(id: $id, input: { isPublic: true }) { id } }",
        ),
    ] {
        let (_, body) = app
            .gql_as(&bob, REPORT, json!({ "t": t, "id": id, "r": "OTHER" }))
            .await;
        let r = report_id(&body);
        let (_, body) = app
            .gql_as(
                &admin_token,
                RESOLVE,
                json!({ "id": r, "a": "HIDE_CONTENT" }),
            )
            .await;
        ok(&body);
        let key = t.to_lowercase();
        let (_, body) = app.gql_as(&bob, one, json!({ "id": id })).await;
        assert!(ok(&body)[&key].is_null(), "{t}: {body}");
        let owner = if t == "ALBUM" { &vendor_token } else { &alice };
        let (_, body) = app.gql_as(owner, one, json!({ "id": id })).await;
        assert_eq!(ok(&body)[&key]["id"], *id, "{t}");
        let (_, body) = app.gql_as(owner, update, json!({ "id": id })).await;
        assert_eq!(code(&body), "FORBIDDEN", "{t}: {body}");
    }

    // The audit entry names target, before and after.
    let (_, body) = app
        .gql_as(&admin_token, AUDIT, json!({ "f": { "action": "report.resolved", "resource": "content_report", "resourceId": report } }))
        .await;
    let rows = entries(&body);
    assert_eq!(rows.len(), 1, "{body}");
    assert_eq!(rows[0]["metadata"]["target"]["id"], fox["id"]);
    assert_eq!(
        rows[0]["metadata"]["before"],
        json!({ "is_public": true, "hidden": false })
    );
    assert_eq!(
        rows[0]["metadata"]["after"],
        json!({ "is_public": false, "hidden": true })
    );
}

#[tokio::test]
async fn warnings_are_sent_and_counted_and_suspension_ends_sessions() {
    let app = TestApp::spawn().await;
    let (admin_token, admin_id) = admin(&app).await;
    let (alice, alice_id) = user(&app, 1).await;
    let (bob, _) = user(&app, 2).await;
    let (carol, _) = user(&app, 3).await;
    let fox = character(&app, &alice, basic("Fox", true)).await;

    let (_, body) = app
        .gql_as(
            &bob,
            REPORT,
            json!({ "t": "CHARACTER", "id": fox["id"], "r": "HARASSMENT" }),
        )
        .await;
    let first = report_id(&body);
    let (_, body) = app
        .gql_as(
            &carol,
            REPORT,
            json!({ "t": "USER", "id": alice_id, "r": "SPAM" }),
        )
        .await;
    let second = report_id(&body);
    let (_, body) = app
        .gql_as(
            &admin_token,
            RESOLVE,
            json!({ "id": second, "a": "HIDE_CONTENT" }),
        )
        .await;
    assert_eq!(field(&body), "input.action", "{body}");

    let sent_before = app.sms_count("+14155550001");
    let (_, body) = app
        .gql_as(
            &admin_token,
            RESOLVE,
            json!({ "id": first, "a": "WARN_USER" }),
        )
        .await;
    assert_eq!(ok(&body)["resolveReport"]["resolution"], "WARN_USER");
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM outbox_messages WHERE template = 'moderation_warning' AND destination = '+14155550001'").await,
        1
    );
    for _ in 0..50 {
        if app.sms_count("+14155550001") > sent_before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.sms_count("+14155550001"),
        sent_before + 1,
        "the notice was delivered"
    );
    let (_, body) = app
        .gql_as(
            &admin_token,
            USERS,
            json!({ "f": { "search": "+14155550001" } }),
        )
        .await;
    assert_eq!(
        ok(&body)["adminUsers"]["edges"][0]["node"]["warningCount"],
        1
    );

    // The report of the user herself: SUSPEND_USER ends her sessions.
    let (_, body) = app
        .gql_as(
            &admin_token,
            RESOLVE,
            json!({ "id": second, "a": "SUSPEND_USER" }),
        )
        .await;
    assert_eq!(ok(&body)["resolveReport"]["resolution"], "SUSPEND_USER");
    let (_, body) = app.gql_as(&alice, "{ me { id } }", json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(
        count(&app, &format!("SELECT count(*) AS n FROM users WHERE id = '{alice_id}' AND account_status = 'suspended'")).await,
        1
    );
    assert_eq!(
        count(&app, &format!("SELECT count(*) AS n FROM sessions WHERE user_id = '{alice_id}' AND revoked_at IS NULL")).await,
        0
    );
    let (_, body) = app
        .gql_as(
            &admin_token,
            AUDIT,
            json!({ "f": { "action": "account.status_changed", "actorId": admin_id } }),
        )
        .await;
    let rows = entries(&body);
    assert_eq!(rows.len(), 1, "{body}");
    assert_eq!(rows[0]["metadata"]["before"], json!({ "status": "active" }));
    assert_eq!(
        rows[0]["metadata"]["after"],
        json!({ "status": "suspended" })
    );
    assert_eq!(rows[0]["metadata"]["context"]["report"], second);
    // Two reports resolved, each audited once.
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM audit_logs WHERE action = 'report.resolved'"
        )
        .await,
        2
    );
}

/// An account without a phone is warned by email when its address is verified (and not at
/// all when it is not: the notice is still counted).
#[tokio::test]
async fn an_email_account_is_warned_by_email_once_verified() {
    let app = TestApp::spawn().await;
    let (admin_token, _) = admin(&app).await;
    let (carol, _) = user(&app, 3).await;
    let sign_up = "mutation($e: String!) { signUp(input: { email: $e, password: \"correct horse battery\" }) { user { id } } }";
    let mut ids = Vec::new();
    for email in ["dora@example.com", "eve@example.com"] {
        let (_, body) = app.gql(sign_up, json!({ "e": email })).await;
        ids.push(
            ok(&body)["signUp"]["user"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    app.exec(&format!(
        "UPDATE users SET email_verified_at = now() WHERE id = '{}'",
        ids[0]
    ))
    .await;
    for id in &ids {
        let (_, body) = app
            .gql_as(
                &carol,
                REPORT,
                json!({ "t": "USER", "id": id, "r": "SPAM" }),
            )
            .await;
        let report = report_id(&body);
        let (_, body) = app
            .gql_as(
                &admin_token,
                RESOLVE,
                json!({ "id": report, "a": "WARN_USER" }),
            )
            .await;
        assert_eq!(ok(&body)["resolveReport"]["resolution"], "WARN_USER");
    }
    let sent = |to: &str| {
        format!(
            "SELECT count(*) AS n FROM outbox_messages WHERE template = 'moderation_warning' \
             AND channel = 'email' AND destination = '{to}'"
        )
    };
    assert_eq!(count(&app, &sent("dora@example.com")).await, 1);
    assert_eq!(count(&app, &sent("eve@example.com")).await, 0);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM content_reports WHERE resolution = 'warn_user'"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn concurrent_repeats_of_a_report_file_one() {
    let app = TestApp::spawn_with(|c| c.db_pool_size = 10).await;
    let (alice, _) = user(&app, 1).await;
    let (bob, _) = user(&app, 2).await;
    let fox = character(&app, &alice, basic("Fox", true)).await;
    let vars = json!({ "t": "CHARACTER", "id": fox["id"], "r": "SPAM" });
    let answers =
        futures_util::future::join_all((0..6).map(|_| app.gql_as(&bob, REPORT, vars.clone())))
            .await;
    let ids: Vec<Value> = answers.iter().map(|(_, b)| report_id(b)).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM content_reports").await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM audit_logs WHERE action = 'report.created'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn reporting_is_rate_limited() {
    let app = TestApp::spawn().await;
    let (alice, _) = user(&app, 1).await;
    let (bob, _) = user(&app, 2).await;
    let fox = character(&app, &alice, basic("Fox", true)).await;
    for _ in 0..20 {
        let (_, body) = app
            .gql_as(
                &bob,
                REPORT,
                json!({ "t": "CHARACTER", "id": fox["id"], "r": "SPAM" }),
            )
            .await;
        ok(&body);
    }
    let (_, body) = app
        .gql_as(
            &bob,
            REPORT,
            json!({ "t": "CHARACTER", "id": fox["id"], "r": "SPAM" }),
        )
        .await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    assert!(
        body["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM content_reports").await,
        1
    );
}

const LIKED: &str = "query($n: Int, $a: String) { myLikedCharacters(first: $n, after: $a) { edges { node { name viewerHasLiked } } pageInfo { hasNextPage endCursor } } }";

fn liked_names(body: &Value) -> Vec<String> {
    body["data"]["myLikedCharacters"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| e["node"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn liked_characters_page_newest_like_first_and_only_visible() {
    let app = TestApp::spawn().await;
    let (alice, _) = user(&app, 1).await;
    let (bob, _) = user(&app, 2).await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c", "d"] {
        ids.push(character(&app, &alice, basic(name, true)).await["id"].clone());
    }
    // Liked in the order c, a, d, b (newest like first: b, d, a, c).
    for i in [2, 0, 3, 1] {
        let (_, body) = app
            .gql_as(
                &bob,
                "mutation($id: ID!) { likeCharacter(id: $id) { id } }",
                json!({ "id": ids[i] }),
            )
            .await;
        ok(&body);
    }
    let (_, p1) = app.gql_as(&bob, LIKED, json!({ "n": 2 })).await;
    assert_eq!(liked_names(&p1), ["b", "d"]);
    assert_eq!(
        p1["data"]["myLikedCharacters"]["edges"][0]["node"]["viewerHasLiked"],
        true
    );
    let after = p1["data"]["myLikedCharacters"]["pageInfo"]["endCursor"].clone();
    let (_, p2) = app.gql_as(&bob, LIKED, json!({ "n": 2, "a": after })).await;
    assert_eq!(liked_names(&p2), ["a", "c"]);
    assert_eq!(
        p2["data"]["myLikedCharacters"]["pageInfo"]["hasNextPage"],
        false
    );
    // Alice makes `d` private: it leaves Bob's list (she still sees her own likes' targets).
    let (_, body) = app
        .gql_as(
            &alice,
            "mutation($id: ID!) { updateCharacter(id: $id, input: { isPublic: false }) { isPublic } }",
            json!({ "id": ids[3] }),
        )
        .await;
    ok(&body);
    let (_, body) = app.gql_as(&bob, LIKED, json!({})).await;
    assert_eq!(liked_names(&body), ["b", "a", "c"]);
    // Others' likes are not Alice's; anonymous is refused; a bad cursor is bad input.
    let (_, body) = app.gql_as(&alice, LIKED, json!({})).await;
    assert!(liked_names(&body).is_empty());
    let (_, body) = app.gql(LIKED, json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    let (_, body) = app.gql_as(&bob, LIKED, json!({ "a": "garbage" })).await;
    assert_eq!(field(&body), "after", "{body}");
}

#[tokio::test]
async fn reviews_are_public_and_the_viewer_sees_their_own_rating() {
    let app = TestApp::spawn().await;
    let (admin_token, _) = admin(&app).await;
    let (alice, _) = user(&app, 1).await;
    let fox = character(&app, &alice, basic("Fox", true)).await;
    let owl = character(&app, &alice, basic("Owl", true)).await;
    let rate = "mutation($id: ID!, $r: Int!, $t: String) { rateCharacter(id: $id, rating: $r, review: $t) { id } }";
    let mut raters = Vec::new();
    for n in 2..=5 {
        let (token, id) = user(&app, n).await;
        let (_, body) = app
            .gql_as(
                &token,
                rate,
                json!({ "id": fox["id"], "r": n, "t": format!("review {n}") }),
            )
            .await;
        ok(&body);
        raters.push((token, id));
    }
    let (_, body) = app
        .gql_as(&raters[0].0, rate, json!({ "id": owl["id"], "r": 1 }))
        .await;
    ok(&body);
    // Rater 5's account is suspended: their review is left out.
    app.gql_as(
        &admin_token,
        "mutation($u: ID!) { setAccountStatus(userId: $u, status: SUSPENDED) { id } }",
        json!({ "u": raters[3].1 }),
    )
    .await;

    let q = "query($n: Int, $a: String) { galleryFeed { edges { node { name viewerRating { rating review } reviews(first: $n, after: $a) { edges { node { rating review user { id } createdAt updatedAt } } pageInfo { hasNextPage endCursor } } } } } }";
    let (_, body) = app.gql(q, json!({ "n": 2 })).await;
    let edges = ok(&body)["galleryFeed"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    let owl_node = &edges[0]["node"];
    let fox_node = &edges[1]["node"];
    assert_eq!(owl_node["name"], "Owl");
    assert_eq!(owl_node["reviews"]["edges"][0]["node"]["rating"], 1);
    assert!(owl_node["reviews"]["edges"][0]["node"]["review"].is_null());
    assert!(fox_node["viewerRating"].is_null(), "anonymous");
    let ratings: Vec<i64> = fox_node["reviews"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["rating"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ratings,
        [4, 3],
        "newest first, the suspended rater left out"
    );
    assert_eq!(
        fox_node["reviews"]["edges"][0]["node"]["user"]["id"],
        raters[2].1.as_str()
    );
    let after = fox_node["reviews"]["pageInfo"]["endCursor"].clone();
    let one = "query($id: ID!, $a: String) { character(id: $id) { viewerRating { rating review } reviews(first: 5, after: $a) { edges { node { rating } } pageInfo { hasNextPage } } } }";
    let (_, body) = app
        .gql_as(&raters[1].0, one, json!({ "id": fox["id"], "a": after }))
        .await;
    let c = &ok(&body)["character"];
    assert_eq!(c["reviews"]["edges"], json!([{ "node": { "rating": 2 } }]));
    assert_eq!(c["reviews"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(
        c["viewerRating"],
        json!({ "rating": 3, "review": "review 3" })
    );
    // Rating again updates the viewer's own rating in place.
    let (_, body) = app
        .gql_as(
            &raters[1].0,
            rate,
            json!({ "id": fox["id"], "r": 5, "t": "better" }),
        )
        .await;
    ok(&body);
    let (_, body) = app
        .gql_as(&raters[1].0, one, json!({ "id": fox["id"] }))
        .await;
    assert_eq!(
        ok(&body)["character"]["viewerRating"],
        json!({ "rating": 5, "review": "better" })
    );
    let (_, body) = app.gql_as(&alice, one, json!({ "id": fox["id"] })).await;
    assert!(
        ok(&body)["character"]["viewerRating"].is_null(),
        "the owner did not rate"
    );

    // Batched: reviews, their raters and the viewer's ratings cost the same for one
    // character of the feed as for two.
    app.stop_background();
    let deep = "query($n: Int) { galleryFeed(first: $n) { edges { node { viewerRating { rating } reviews(first: 3) { edges { node { rating user { id displayName } } } } } } } }";
    let mut counts = Vec::new();
    for n in [1, 2] {
        let before = app.state.statements.get();
        let (_, body) = app.gql_as(&raters[0].0, deep, json!({ "n": n })).await;
        assert_eq!(
            ok(&body)["galleryFeed"]["edges"].as_array().unwrap().len(),
            n
        );
        counts.push(app.state.statements.get() - before);
    }
    assert_eq!(counts[0], counts[1], "statements for 1 and 2 characters");
}
