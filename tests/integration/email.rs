//! Issue #15, recovery and email: emails through the outbox to a real SMTP server (Python's
//! `aiosmtpd`, started by the test, writing each message it receives to a directory), with
//! AUTH, and STARTTLS with a certificate made by `openssl`; password reset by link and by
//! SMS code, password change, email verification, `addEmail`/`addPhone`, receipts and plan
//! notices. Each bad input: its code, and nothing changed.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{TestApp, code, field, user};

const SERVER: &str = r#"
import email, email.policy, json, os, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out, port, user, password, cert, key = sys.argv[1:7]
count = [0]

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody-here@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        count[0] += 1
        record = {
            "rcpt_tos": envelope.rcpt_tos,
            "mail_from": envelope.mail_from,
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "body": msg.get_content(),
            "authenticated": bool(session.authenticated),
            "login": session.auth_data,
            "tls": session.ssl is not None,
        }
        tmp = os.path.join(out, ".%d.tmp" % count[0])
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(out, "%04d.json" % count[0]))
        return "250 OK"

def authenticate(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == user.encode() and data.password == password.encode()
    return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

kwargs = {"auth_require_tls": bool(cert)}
if user:
    kwargs.update(authenticator=authenticate, auth_required=True)
if cert:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    kwargs.update(tls_context=ctx, require_starttls=True)
controller = Controller(Handler(), hostname="127.0.0.1", port=int(port), **kwargs)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"#;

/// A local SMTP server (aiosmtpd) and the messages it received.
pub struct Smtp {
    _child: tokio::process::Child,
    dir: PathBuf,
    pub port: u16,
    /// The CA that signed the server's certificate (TLS mode).
    pub ca: Option<PathBuf>,
}

impl Smtp {
    /// Starts a server requiring AUTH as `easel` / `s3cret` (plain text, or STARTTLS).
    pub async fn start(tls: bool) -> Smtp {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(tls, port).await
    }

    /// Like [`Smtp::start`], on `port`.
    pub async fn start_on(tls: bool, port: u16) -> Smtp {
        let dir = std::env::temp_dir().join(format!("easel-smtp-{}", uuid::Uuid::now_v7()));
        let mail = dir.join("mail");
        std::fs::create_dir_all(&mail).unwrap();
        std::fs::write(dir.join("server.py"), SERVER).unwrap();
        let (cert, key, ca) = if tls {
            let (cert, key, ca) = certificates(&dir);
            (cert, key, Some(ca))
        } else {
            (String::new(), String::new(), None)
        };
        let mut child = tokio::process::Command::new("python3")
            .arg(dir.join("server.py"))
            .args([
                mail.to_str().unwrap(),
                &port.to_string(),
                "easel",
                "s3cret",
                &cert,
                &key,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 with aiosmtpd (see .ci/run)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("aiosmtpd started in time")
            .unwrap();
        assert_eq!(ready.as_deref(), Some("ready"), "aiosmtpd did not start");
        Smtp {
            _child: child,
            dir: mail,
            port,
            ca,
        }
    }

    fn url(&self, tls: bool) -> String {
        let mode = if tls { "?tls=required" } else { "" };
        format!("smtp://easel:s3cret@127.0.0.1:{}{mode}", self.port)
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Value> {
        let mut names: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    /// The messages sent to `to`.
    pub fn to(&self, to: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| m["rcpt_tos"] == json!([to]))
            .collect()
    }

    /// Waits (up to 10 s) until `to` has received `n` messages; the last one.
    pub async fn nth(&self, to: &str, n: usize) -> Value {
        for _ in 0..200 {
            let got = self.to(to);
            if got.len() >= n {
                assert_eq!(got.len(), n, "more emails than expected: {got:?}");
                return got[n - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no email #{n} reached {to}: {:?}", self.messages());
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it (openssl CLI, EC P-256).
fn certificates(dir: &std::path::Path) -> (String, String, PathBuf) {
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: Vec<Vec<String>> = vec![
        [&["req", "-x509"][..], &ec[..]]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .chain(
                [
                    "-keyout",
                    &path("ca.key"),
                    "-out",
                    &path("ca.pem"),
                    "-days",
                    "2",
                    "-subj",
                    "/CN=Easel test CA",
                ]
                .map(String::from),
            )
            .collect(),
        [&["req"][..], &ec[..]]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .chain(
                [
                    "-keyout",
                    &path("server.key"),
                    "-out",
                    &path("server.csr"),
                    "-subj",
                    "/CN=127.0.0.1",
                ]
                .map(String::from),
            )
            .collect(),
        [
            "x509",
            "-req",
            "-in",
            &path("server.csr"),
            "-CA",
            &path("ca.pem"),
            "-CAkey",
            &path("ca.key"),
            "-CAcreateserial",
            "-out",
            &path("server.pem"),
            "-days",
            "2",
            "-extfile",
            &path("ext.cnf"),
        ]
        .map(String::from)
        .to_vec(),
    ];
    for args in steps {
        let out = std::process::Command::new("openssl")
            .args(&args)
            .output()
            .expect("the openssl CLI");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (path("server.pem"), path("server.key"), dir.join("ca.pem"))
}

/// An app whose emails go to `smtp`.
async fn app_with(smtp: &Smtp, tls: bool) -> TestApp {
    let url = smtp.url(tls);
    let ca = smtp.ca.clone();
    TestApp::spawn_with(move |c| {
        c.email.smtp_url = Some(url.into());
        c.email.smtp_ca_file = ca;
        c.email.from = "Easel <no-reply@easel.test>".into();
        c.email.password_reset_url = Some("https://app.example/reset".into());
        c.email.verify_url = Some("https://app.example/verify?src=email".into());
    })
    .await
}

const SIGN_UP: &str = "mutation($e: String!, $p: String!) { signUp(input: { email: $e, password: $p }) { accessToken refreshToken user { id emailVerified } } }";
const SIGN_IN: &str = "mutation($e: String!, $p: String!) { signIn(input: { email: $e, password: $p }) { accessToken refreshToken } }";
const REFRESH: &str =
    "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }";
const ME: &str = "{ me { id email phone emailVerified phoneVerified } }";
const REQUEST_RESET: &str =
    "mutation($e: String, $p: String) { requestPasswordReset(input: { email: $e, phone: $p }) }";
const RESET: &str = "mutation($t: String, $p: String, $c: String, $n: String!) { resetPassword(input: { token: $t, phone: $p, code: $c, newPassword: $n }) { accessToken refreshToken user { id email } } }";
const CHANGE: &str = "mutation($c: String, $n: String!) { changePassword(input: { currentPassword: $c, newPassword: $n }) }";
const VERIFY_EMAIL: &str = "mutation($t: String!) { verifyEmail(token: $t) }";
const ADD_EMAIL: &str = "mutation($e: String!) { addEmail(input: { email: $e }) }";
const ADD_PHONE: &str = "mutation($p: String!) { addPhone(input: { phone: $p }) }";
const VERIFY_PHONE: &str = "mutation($p: String!, $c: String!) { verifyPhone(input: { phone: $p, code: $c }) { id phone phoneVerified } }";

async fn sign_up(app: &TestApp, email: &str, password: &str) -> Value {
    let (_, body) = app.gql(SIGN_UP, json!({ "e": email, "p": password })).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["signUp"].clone()
}

async fn me(app: &TestApp, token: &str) -> Value {
    let (_, body) = app.gql_as(token, ME, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["me"].clone()
}

/// The token an email carries (`Or enter this code in the app: <token>`).
fn token_of(mail: &Value) -> String {
    let body = mail["body"].as_str().unwrap();
    body.split("code in the app: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("a token in {body}"))
        .to_string()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap()
}

async fn password_hash(app: &TestApp, email: &str) -> String {
    use diesel::{QueryableByName, sql_types::Text};
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct H {
        #[diesel(sql_type = Text)]
        h: String,
    }
    let mut conn = app.db().await;
    diesel::sql_query("SELECT password_hash AS h FROM users WHERE email = $1")
        .bind::<Text, _>(email)
        .get_result::<H>(&mut conn)
        .await
        .unwrap()
        .h
}

/// Waits for the `n`th SMS to `phone`; its 6-digit code.
async fn sms_code(app: &TestApp, phone: &str, n: usize) -> String {
    for _ in 0..200 {
        let sent: Vec<_> = app
            .sms
            .sent()
            .into_iter()
            .filter(|m| m.destination == phone)
            .collect();
        if sent.len() >= n {
            return sent[n - 1]
                .body
                .split_whitespace()
                .find(|w| w.len() == 7 && w.ends_with('.'))
                .map(|w| w[..6].to_string())
                .expect("a code in the SMS");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no SMS #{n} reached {phone}");
}

/// Sign-up emails a verification link through the SMTP server (with AUTH); following it
/// verifies the email once.
#[tokio::test]
async fn email_sign_up_is_verified_by_the_emailed_link_once() {
    let smtp = Smtp::start(false).await;
    let app = app_with(&smtp, false).await;
    let auth = sign_up(&app, "Ada@Example.com", "correct horse").await;
    assert_eq!(auth["user"]["emailVerified"], false);
    let token = str_of(&auth, "accessToken");

    let mail = smtp.nth("ada@example.com", 1).await;
    assert_eq!(mail["subject"], "Confirm your email address");
    assert_eq!(mail["from"], "Easel <no-reply@easel.test>");
    assert_eq!(mail["mail_from"], "no-reply@easel.test");
    assert!(
        mail["authenticated"] == true && mail["login"] == "easel",
        "AUTH was used: {mail}"
    );
    let message_id = str_of(&mail, "message_id");
    assert!(message_id.ends_with("@easel.test>"), "{message_id}");
    let link_token = token_of(&mail);
    let body = str_of(&mail, "body");
    assert!(
        body.contains(&format!(
            "https://app.example/verify?src=email&token={link_token}"
        )),
        "{body}"
    );
    // Delivered once, and its body (with the token) is no longer kept.
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM outbox_messages WHERE channel = 'email' AND status = 'sent' AND body = '[delivered]'")
            .await,
        1
    );

    let (_, body) = app
        .gql(VERIFY_EMAIL, json!({ "t": format!("{link_token}x") }))
        .await;
    assert_eq!((code(&body), field(&body)), ("BAD_USER_INPUT", "token"));
    assert_eq!(me(&app, token).await["emailVerified"], false);

    let (_, body) = app.gql(VERIFY_EMAIL, json!({ "t": link_token })).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
    let now = me(&app, token).await;
    assert_eq!(
        (&now["email"], &now["emailVerified"], &now["phoneVerified"]),
        (&json!("ada@example.com"), &json!(true), &json!(false))
    );
    // Used once.
    let (_, body) = app.gql(VERIFY_EMAIL, json!({ "t": link_token })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["reason"], "USED");
    // Others never see whether it is verified.
    let (other, _) = user(&app, 1501).await;
    let (_, body) = app
        .gql_as(
            &other,
            "query($id: ID!) { user(id: $id) { emailVerified phoneVerified } }",
            json!({ "id": auth["user"]["id"] }),
        )
        .await;
    assert_eq!(
        body["data"]["user"],
        json!({ "emailVerified": null, "phoneVerified": null })
    );
}

/// The same through STARTTLS: the server requires TLS before AUTH and mail, and its
/// certificate is signed by a CA given in `EASEL_SMTP_CA_FILE`.
#[tokio::test]
async fn email_goes_through_starttls_with_auth() {
    let smtp = Smtp::start(true).await;
    let app = app_with(&smtp, true).await;
    sign_up(&app, "tls@example.com", "correct horse").await;
    let mail = smtp.nth("tls@example.com", 1).await;
    assert_eq!(
        (&mail["tls"], &mail["login"]),
        (&json!(true), &json!("easel"))
    );
    assert_eq!(mail["subject"], "Confirm your email address");
}

/// A reset by emailed link: a weak password changes nothing, the link sets the password once,
/// every earlier session dies (refresh and access tokens), and a new one is returned.
#[tokio::test]
async fn email_password_reset_by_link_revokes_every_session() {
    let smtp = Smtp::start(false).await;
    let app = app_with(&smtp, false).await;
    let first = sign_up(&app, "bob@example.com", "old password").await;
    let (_, second) = app
        .gql(
            SIGN_IN,
            json!({ "e": "bob@example.com", "p": "old password" }),
        )
        .await;
    let second = second["data"]["signIn"].clone();

    let (_, body) = app
        .gql(REQUEST_RESET, json!({ "e": "BOB@example.com" }))
        .await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    let mail = smtp.nth("bob@example.com", 2).await;
    assert_eq!(mail["subject"], "Reset your Easel password");
    let token = token_of(&mail);
    assert!(
        str_of(&mail, "body").contains(&format!("https://app.example/reset?token={token}")),
        "{mail}"
    );

    // A weak password: refused, nothing spent or changed.
    let hash = password_hash(&app, "bob@example.com").await;
    let (_, body) = app.gql(RESET, json!({ "t": token, "n": "short" })).await;
    assert_eq!(
        (code(&body), field(&body)),
        ("BAD_USER_INPUT", "input.newPassword")
    );
    assert_eq!(password_hash(&app, "bob@example.com").await, hash);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM otp_codes WHERE purpose = 'password_reset' AND attempt_count = 0 AND consumed_at IS NULL").await,
        1
    );

    let (_, body) = app
        .gql(RESET, json!({ "t": token, "n": "new password" }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let fresh = body["data"]["resetPassword"].clone();
    assert_eq!(fresh["user"]["email"], "bob@example.com");

    // Every earlier session is over: refresh tokens and access tokens.
    for old in [&first, &second] {
        let (_, body) = app.gql(REFRESH, json!({ "t": old["refreshToken"] })).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
        let (_, body) = app.gql_as(str_of(old, "accessToken"), ME, json!({})).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    }
    assert_eq!(
        me(&app, str_of(&fresh, "accessToken")).await["email"],
        "bob@example.com"
    );
    // The old password is gone, the new one works.
    let (_, body) = app
        .gql(
            SIGN_IN,
            json!({ "e": "bob@example.com", "p": "old password" }),
        )
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    let (_, body) = app
        .gql(
            SIGN_IN,
            json!({ "e": "bob@example.com", "p": "new password" }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    // The link works once.
    let (_, body) = app
        .gql(RESET, json!({ "t": token, "n": "third password" }))
        .await;
    assert_eq!(
        (code(&body), field(&body)),
        ("BAD_USER_INPUT", "input.token")
    );
    assert_eq!(body["errors"][0]["extensions"]["reason"], "USED");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM audit_logs WHERE action = 'auth.password_reset'")
            .await,
        1
    );
}

/// Unknown addresses get the same answer and nothing is sent; requests are limited per
/// address (known or not); an expired link and a link guessed at too often are refused.
#[tokio::test]
async fn email_reset_requests_reveal_nothing_and_links_expire() {
    let smtp = Smtp::start(false).await;
    let app = app_with(&smtp, false).await;
    sign_up(&app, "cy@example.com", "old password").await;
    smtp.nth("cy@example.com", 1).await;

    let (_, known) = app
        .gql(REQUEST_RESET, json!({ "e": "cy@example.com" }))
        .await;
    let (_, unknown) = app
        .gql(REQUEST_RESET, json!({ "e": "nobody@example.com" }))
        .await;
    assert_eq!(known, unknown, "the same answer");
    assert_eq!(unknown, json!({ "data": { "requestPasswordReset": true } }));
    let mail = smtp.nth("cy@example.com", 2).await;
    assert_eq!(
        app.scalar(
            "SELECT count(*) AS n FROM outbox_messages WHERE destination = 'nobody@example.com'"
        )
        .await,
        0
    );
    assert!(smtp.to("nobody@example.com").is_empty());

    // Expired: the link's row is backdated.
    let token = token_of(&mail);
    app.exec("UPDATE otp_codes SET expires_at = now() - interval '1 second' WHERE purpose = 'password_reset'")
        .await;
    let (_, body) = app
        .gql(RESET, json!({ "t": token, "n": "new password" }))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["reason"], "EXPIRED",
        "{body}"
    );

    // Wrong secrets spend the tries; then even the right one is refused.
    app.gql(REQUEST_RESET, json!({ "e": "cy@example.com" }))
        .await;
    let token = token_of(&smtp.nth("cy@example.com", 3).await);
    let (id, _) = token.split_once('.').unwrap();
    let hash = password_hash(&app, "cy@example.com").await;
    for _ in 0..5 {
        let (_, body) = app
            .gql(
                RESET,
                json!({ "t": format!("{id}.wrong"), "n": "new password" }),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["reason"], "INVALID",
            "{body}"
        );
    }
    let (_, body) = app
        .gql(RESET, json!({ "t": token, "n": "new password" }))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["reason"], "TOO_MANY_ATTEMPTS",
        "{body}"
    );
    assert_eq!(password_hash(&app, "cy@example.com").await, hash);

    // Three requests per address and hour (the fourth is refused, known address or not).
    app.gql(REQUEST_RESET, json!({ "e": "cy@example.com" }))
        .await;
    smtp.nth("cy@example.com", 4).await;
    let (_, body) = app
        .gql(REQUEST_RESET, json!({ "e": "cy@example.com" }))
        .await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    assert!(
        body["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .unwrap()
            > 0
    );
    for _ in 0..2 {
        app.gql(REQUEST_RESET, json!({ "e": "nobody@example.com" }))
            .await;
    }
    let (_, body) = app
        .gql(REQUEST_RESET, json!({ "e": "nobody@example.com" }))
        .await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.to("cy@example.com").len(), 4, "nothing more sent");
    // Bad input.
    let (_, body) = app
        .gql(REQUEST_RESET, json!({ "e": "a@b.co", "p": "+14155550000" }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let (_, body) = app.gql(REQUEST_RESET, json!({ "e": "not-an-email" })).await;
    assert_eq!(
        (code(&body), field(&body)),
        ("BAD_USER_INPUT", "input.email")
    );
}

/// A phone account sets its first password with `changePassword`, then resets it by SMS
/// code; wrong codes use up the code. A phone account without a password is sent nothing.
#[tokio::test]
async fn email_phone_accounts_reset_by_sms_code() {
    let app = TestApp::spawn().await;
    user(&app, 1510).await;
    let (_, body) = app.gql(REQUEST_RESET, json!({ "p": "+14155551510" })).await;
    assert_eq!(body["data"]["requestPasswordReset"], true);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM otp_codes WHERE purpose = 'password_reset'")
            .await,
        0,
        "no password, nothing sent"
    );

    let phone = "+14155551511";
    let (token, _) = user(&app, 1511).await;
    let (_, body) = app
        .gql_as(&token, CHANGE, json!({ "n": "first password" }))
        .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
    let sms = app.sms_count(phone);
    let (_, body) = app
        .gql(REQUEST_RESET, json!({ "p": "+1 (415) 555-1511" }))
        .await;
    assert_eq!(body["data"]["requestPasswordReset"], true);
    let right = sms_code(&app, phone, sms + 1).await;
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        let (_, body) = app
            .gql(
                RESET,
                json!({ "p": phone, "c": wrong, "n": "second password" }),
            )
            .await;
        assert_eq!(
            (code(&body), field(&body)),
            ("BAD_USER_INPUT", "input.code")
        );
    }
    let (_, body) = app
        .gql(
            RESET,
            json!({ "p": phone, "c": right, "n": "second password" }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["reason"], "TOO_MANY_ATTEMPTS",
        "{body}"
    );
    // A new code works, and ends the old session.
    app.gql(REQUEST_RESET, json!({ "p": phone })).await;
    let code2 = sms_code(&app, phone, sms + 2).await;
    let (_, body) = app
        .gql(
            RESET,
            json!({ "p": phone, "c": code2, "n": "second password" }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let fresh = str_of(&body["data"]["resetPassword"], "accessToken").to_string();
    let (_, body) = app.gql_as(&token, ME, json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    // Now that it has a password, changing it needs the current one.
    let (_, body) = app
        .gql_as(
            &fresh,
            CHANGE,
            json!({ "c": "first password", "n": "third password" }),
        )
        .await;
    assert_eq!(field(&body), "input.currentPassword", "{body}");
    let (_, body) = app
        .gql_as(
            &fresh,
            CHANGE,
            json!({ "c": "second password", "n": "third password" }),
        )
        .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
}

/// `changePassword`: a wrong current password or a weak new one changes nothing; success
/// keeps this session and ends the others; wrong guesses are limited.
#[tokio::test]
async fn email_change_password_keeps_this_session_only() {
    let app = TestApp::spawn().await;
    let this = sign_up(&app, "dee@example.com", "old password").await;
    let (_, other) = app
        .gql(
            SIGN_IN,
            json!({ "e": "dee@example.com", "p": "old password" }),
        )
        .await;
    let other = other["data"]["signIn"].clone();
    let token = str_of(&this, "accessToken");
    let hash = password_hash(&app, "dee@example.com").await;

    let (_, body) = app
        .gql_as(
            token,
            CHANGE,
            json!({ "c": "wrong password", "n": "new password" }),
        )
        .await;
    assert_eq!(
        (code(&body), field(&body)),
        ("BAD_USER_INPUT", "input.currentPassword")
    );
    let (_, body) = app
        .gql_as(token, CHANGE, json!({ "n": "new password" }))
        .await;
    assert_eq!(field(&body), "input.currentPassword", "{body}");
    let (_, body) = app
        .gql_as(token, CHANGE, json!({ "c": "old password", "n": "short" }))
        .await;
    assert_eq!(
        (code(&body), field(&body)),
        ("BAD_USER_INPUT", "input.newPassword")
    );
    assert_eq!(password_hash(&app, "dee@example.com").await, hash);
    let (_, body) = app
        .gql(CHANGE, json!({ "c": "old password", "n": "new password" }))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED");

    let (_, body) = app
        .gql_as(
            token,
            CHANGE,
            json!({ "c": "old password", "n": "new password" }),
        )
        .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
    assert_eq!(
        me(&app, token).await["email"],
        "dee@example.com",
        "this session stays"
    );
    let (_, body) = app
        .gql_as(str_of(&other, "accessToken"), ME, json!({}))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let (_, body) = app
        .gql(REFRESH, json!({ "t": other["refreshToken"] }))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let (_, body) = app.gql(REFRESH, json!({ "t": this["refreshToken"] })).await;
    assert!(body["errors"].is_null(), "this session refreshes: {body}");

    // Guessing is limited (10 tries in 15 minutes, counted per account).
    let mut limited = false;
    for _ in 0..12 {
        let (_, body) = app
            .gql_as(
                token,
                CHANGE,
                json!({ "c": "guess password", "n": "other password" }),
            )
            .await;
        if code(&body) == "RATE_LIMITED" {
            limited = true;
            break;
        }
    }
    assert!(limited, "wrong current passwords are rate limited");
}

/// `addEmail` links an address to a phone account once its link is followed; an address
/// another account holds is only refused at confirmation (CONFLICT, nothing changed).
/// `addPhone` links a number to an email account with an SMS code.
#[tokio::test]
async fn email_add_email_and_add_phone_link_the_other_identifier() {
    let smtp = Smtp::start(false).await;
    let app = app_with(&smtp, false).await;
    let taken = sign_up(&app, "taken@example.com", "password one").await;
    smtp.nth("taken@example.com", 1).await;
    let (token, _) = user(&app, 1520).await;

    // A taken address: the request answers as for any other; confirmation is refused.
    let (_, body) = app
        .gql_as(&token, ADD_EMAIL, json!({ "e": "Taken@example.com" }))
        .await;
    assert_eq!(body["data"]["addEmail"], true, "{body}");
    let mail = smtp.nth("taken@example.com", 2).await;
    let (_, body) = app.gql(VERIFY_EMAIL, json!({ "t": token_of(&mail) })).await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert_eq!(me(&app, &token).await["email"], Value::Null);

    let (_, body) = app
        .gql_as(&token, ADD_EMAIL, json!({ "e": "first@example.com" }))
        .await;
    assert_eq!(body["data"]["addEmail"], true);
    let older = token_of(&smtp.nth("first@example.com", 1).await);
    let (_, body) = app
        .gql_as(&token, ADD_EMAIL, json!({ "e": "mine@example.com" }))
        .await;
    assert_eq!(body["data"]["addEmail"], true);
    let mail = smtp.nth("mine@example.com", 1).await;
    let (_, body) = app.gql(VERIFY_EMAIL, json!({ "t": token_of(&mail) })).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
    // The older link cannot switch the address back.
    let (_, body) = app.gql(VERIFY_EMAIL, json!({ "t": older })).await;
    assert_eq!(body["errors"][0]["extensions"]["reason"], "USED", "{body}");
    let now = me(&app, &token).await;
    assert_eq!(
        (&now["email"], &now["emailVerified"], &now["phoneVerified"]),
        (&json!("mine@example.com"), &json!(true), &json!(true))
    );
    let (_, body) = app.gql(ADD_EMAIL, json!({ "e": "x@example.com" })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");

    // addPhone for the email account.
    let email_token = str_of(&taken, "accessToken");
    let phone = "+14155551521";
    let (_, body) = app
        .gql_as(email_token, ADD_PHONE, json!({ "p": "+1 415 555 1521" }))
        .await;
    assert_eq!(body["data"]["addPhone"], true, "{body}");
    let right = sms_code(&app, phone, 1).await;
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (_, body) = app
        .gql_as(email_token, VERIFY_PHONE, json!({ "p": phone, "c": wrong }))
        .await;
    assert_eq!(
        (code(&body), field(&body)),
        ("BAD_USER_INPUT", "input.code")
    );
    assert_eq!(me(&app, email_token).await["phone"], Value::Null);
    let (_, body) = app
        .gql_as(email_token, VERIFY_PHONE, json!({ "p": phone, "c": right }))
        .await;
    assert_eq!(body["data"]["verifyPhone"]["phone"], phone, "{body}");
    assert_eq!(body["data"]["verifyPhone"]["phoneVerified"], true);
    let (_, body) = app
        .gql_as(email_token, VERIFY_PHONE, json!({ "p": phone, "c": right }))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["reason"], "USED", "{body}");

    // A number another account holds: refused at confirmation.
    let before = app.sms_count("+14155551520");
    let (_, body) = app
        .gql_as(email_token, ADD_PHONE, json!({ "p": "+14155551520" }))
        .await;
    assert_eq!(body["data"]["addPhone"], true);
    let code3 = sms_code(&app, "+14155551520", before + 1).await;
    let (_, body) = app
        .gql_as(
            email_token,
            VERIFY_PHONE,
            json!({ "p": "+14155551520", "c": code3 }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert_eq!(me(&app, email_token).await["phone"], phone);
}

const PURCHASE: &str = "mutation($p: ID!) { purchaseCredits(input: { packageId: $p, gateway: SANDBOX }) { id checkoutUrl } }";
const CREATOR: &str = "0191f000-0000-7000-8000-000000000002";
const SUBSCRIBE: &str = "mutation($p: ID!) { subscribeToPlan(input: { planId: $p, gateway: SANDBOX }) { id checkoutUrl } }";
const PREMIUM: &str = "0191f000-0000-7000-8000-000000000102";
const ADVANCE: &str = "mutation($id: ID!, $o: SandboxRenewalOutcome!) { sandboxAdvanceSubscription(id: $id, outcome: $o) { status } }";

async fn approve(app: &TestApp, checkout: &Value) {
    let resp = app
        .client
        .post(checkout.as_str().unwrap())
        .form(&[("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// A completed payment emails a receipt, and a plan's start, renewal, failed renewal and end
/// email notices, to a verified address; an unverified one gets nothing.
#[tokio::test]
async fn email_receipts_and_plan_notices_reach_verified_addresses() {
    let smtp = Smtp::start(false).await;
    let app = app_with(&smtp, false).await;
    let admin = app.admin_token("+14155551530").await;

    // Unverified: the purchase completes, no receipt.
    let quiet = sign_up(&app, "quiet@example.com", "password one").await;
    smtp.nth("quiet@example.com", 1).await;
    let (_, body) = app
        .gql_as(
            str_of(&quiet, "accessToken"),
            PURCHASE,
            json!({ "p": CREATOR }),
        )
        .await;
    approve(&app, &body["data"]["purchaseCredits"]["checkoutUrl"]).await;

    let auth = sign_up(&app, "payer@example.com", "password one").await;
    let token = str_of(&auth, "accessToken");
    let mail = smtp.nth("payer@example.com", 1).await;
    app.gql(VERIFY_EMAIL, json!({ "t": token_of(&mail) })).await;
    let (_, body) = app.gql_as(token, PURCHASE, json!({ "p": CREATOR })).await;
    let payment = body["data"]["purchaseCredits"].clone();
    approve(&app, &payment["checkoutUrl"]).await;
    let receipt = smtp.nth("payer@example.com", 2).await;
    assert!(
        str_of(&receipt, "subject").starts_with("Your Easel receipt"),
        "{receipt}"
    );
    let text = str_of(&receipt, "body");
    for part in [
        "Amount: 19.99 USD",
        "Credits added to your balance: 550",
        &format!("Receipt number: {}", str_of(&payment, "id")),
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }

    // A plan: started (with its receipt), renewed, payment failed, ended.
    let (_, body) = app.gql_as(token, SUBSCRIBE, json!({ "p": PREMIUM })).await;
    approve(&app, &body["data"]["subscribeToPlan"]["checkoutUrl"]).await;
    smtp.nth("payer@example.com", 4).await;
    let subjects = |smtp: &Smtp| -> Vec<String> {
        smtp.to("payer@example.com")
            .iter()
            .map(|m| str_of(m, "subject").to_string())
            .collect()
    };
    let got = subjects(&smtp);
    assert!(
        got.contains(&"Your Premium plan has started".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"Your Easel receipt: plan subscription".to_string()),
        "{got:?}"
    );
    let (_, body) = app
        .gql_as(token, "{ me { subscription { id } } }", json!({}))
        .await;
    let sub = body["data"]["me"]["subscription"]["id"].clone();
    for (outcome, n, subject) in [
        ("RENEW", 5, "Your Premium plan was renewed"),
        ("FAIL", 6, "We could not renew your Premium plan"),
        ("END", 7, "Your Premium plan has ended"),
    ] {
        let (_, body) = app
            .gql_as(&admin, ADVANCE, json!({ "id": sub, "o": outcome }))
            .await;
        assert!(body["errors"].is_null(), "{body}");
        assert_eq!(smtp.nth("payer@example.com", n).await["subject"], subject);
    }
    assert_eq!(
        smtp.to("quiet@example.com").len(),
        1,
        "only its verification link"
    );
    app.assert_ledger_ok().await;
}

/// An unreachable SMTP server: the email stays queued and is retried with backoff, then
/// delivered once when the server is back (one message, its id as `Message-ID`). A mailbox
/// the server refuses for good (550) is given up after one try.
#[tokio::test]
async fn email_delivery_is_retried_and_permanent_refusals_give_up() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(move |c| {
        c.email.smtp_url = Some(format!("smtp://easel:s3cret@127.0.0.1:{port}").into());
    })
    .await;
    sign_up(&app, "later@example.com", "correct horse").await;
    let failed = "SELECT count(*) AS n FROM outbox_messages WHERE channel = 'email' \
        AND status = 'pending' AND attempts >= 1 AND last_error LIKE 'SMTP delivery failed%'";
    for _ in 0..100 {
        if app.scalar(failed).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.scalar(failed).await, 1, "retried later, not given up");

    let smtp = Smtp::start_on(false, port).await;
    app.exec("UPDATE outbox_messages SET next_attempt_at = now()")
        .await;
    let mail = smtp.nth("later@example.com", 1).await;
    let delivered = app
        .scalar("SELECT count(*) AS n FROM outbox_messages WHERE status = 'sent' AND attempts >= 2")
        .await;
    assert_eq!(delivered, 1);
    assert!(str_of(&mail, "message_id").starts_with('<'), "{mail}");

    // A refused mailbox: one try, then failed for good.
    sign_up(&app, "nobody-here@example.com", "correct horse").await;
    let gave_up = "SELECT count(*) AS n FROM outbox_messages WHERE destination = 'nobody-here@example.com' \
        AND status = 'failed' AND attempts = 1 AND last_error LIKE 'SMTP server refused%'";
    for _ in 0..100 {
        if app.scalar(gave_up).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.scalar(gave_up).await, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 1, "only the first email arrived");
}
