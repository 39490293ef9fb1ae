//! Typed configuration, read once from the environment (and `.env` in development).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | unset | PostgreSQL URL; unset = the embedded cluster under `EASEL_DATA_DIR` |
//! | `DATABASE_READ_URL` | unset | a streaming replica of `DATABASE_URL` for reads that may lag (feeds, galleries, histories); unset = every read from the primary |
//! | `DATABASE_DIRECT_URL` | `DATABASE_URL` | a direct connection to the primary for what a transaction-mode pooler (PgBouncer) cannot carry: the LISTEN connection and migrations' advisory lock; set it when `DATABASE_URL` goes through PgBouncer |
//! | `EASEL_READ_YOUR_WRITES_SECS` | `10` | after a viewer's mutation, their reads go to the primary this long (with `DATABASE_READ_URL`) |
//! | `EASEL_ENV` | `development` | `development` or `production` |
//! | `EASEL_DATA_DIR` | `./data` | embedded database (`postgres/`) and local media |
//! | `EASEL_BIND` | `127.0.0.1:8080` | address the HTTP server listens on |
//! | `EASEL_WORKER_BIND` | unset | `easel worker` only: address for its `/healthz`, `/readyz` and `/metrics` (unset = no HTTP) |
//! | `EASEL_PG_BIN_DIR` | auto | directory holding `initdb`, `pg_ctl`, `postgres` |
//! | `EASEL_PG_USER` | `postgres` | unprivileged OS user that runs the embedded cluster when Easel runs as root |
//! | `EASEL_DB_POOL_SIZE` | `16` | maximum pooled database connections |
//! | `EASEL_DB_POOL_TIMEOUT_MS` | `5000` | how long a request waits for a pooled connection |
//! | `EASEL_DB_CONNECT_TIMEOUT_MS` | `5000` | how long opening one database connection may take |
//! | `EASEL_MAX_BODY_BYTES` | `1048576` | largest JSON request body |
//! | `EASEL_REQUEST_TIMEOUT_SECS` | `30` | HTTP request time limit (not websockets) |
//! | `EASEL_GRAPHQL_MAX_DEPTH` | `16` | maximum query depth (GraphiQL's introspection query needs 15) |
//! | `EASEL_GRAPHQL_MAX_COMPLEXITY` | `1000` | maximum query complexity |
//! | `EASEL_GRAPHQL_MAX_BATCH` | `10` | maximum operations in one batched request |
//! | `EASEL_PERSISTED_QUERY_CACHE_CONTROL` | `public, max-age=30` | `Cache-Control` of an anonymous GET persisted query that succeeded |
//! | `EASEL_GRAPHQL_MAX_NESTING` | `64` | deepest nesting of `{`, `[`, `(` in a document, checked before parsing |
//! | `EASEL_GRAPHQL_MAX_TOKENS` | `10000` | most tokens in a document, checked before parsing |
//! | `EASEL_GRAPHQL_MAX_FIELDS` | `2000` | most fields a document selects once its fragments are expanded (`__typename` included) |
//! | `EASEL_GRAPHQL_INTROSPECTION` | `true` (development), `false` (production) | answer introspection queries and suggest field names in errors |
//! | `EASEL_GRAPHIQL` | `true` (development), `false` (production) | serve the GraphiQL playground at `/` and `/graphiql` |
//! | `EASEL_HEADER_READ_TIMEOUT_SECS` | `10` | time a connection has to send a request's headers; also closes idle keep-alive connections |
//! | `EASEL_MAX_CONNECTIONS` | `10000` | open client connections (websockets included); past it new ones wait in the listen backlog |
//! | `EASEL_WS_MAX_SUBSCRIPTIONS` | `50` | operations one websocket may run at once |
//! | `EASEL_WS_MAX_SUBSCRIPTIONS_PER_USER` | `200` | operations one user may run at once over all their websockets (per server process) |
//! | `EASEL_WS_INIT_TIMEOUT_SECS` | `10` | time a new websocket has to send `connection_init` (closed with 4408 after it) |
//! | `EASEL_SIGNIN_MAX_PER_EMAIL_IP` | `10` | failed-or-not `signIn` attempts per email and client IP in 15 minutes |
//! | `EASEL_SIGNIN_MAX_PER_EMAIL` | `100` | `signIn` attempts per email from all IPs in 15 minutes (the ceiling against distributed guessing) |
//! | `EASEL_GRAPHIQL_ASSETS_URL` | `https://unpkg.com` | where GraphiQL's scripts and styles load from |
//! | `EASEL_CORS_ORIGINS` | `*` | comma-separated browser origins allowed to call the API |
//! | `EASEL_CORS_HEADERS` | `authorization, content-type, accept, x-request-id, apollographql-client-name, apollographql-client-version, apollo-require-preflight, x-easel-csrf, traceparent, tracestate, sentry-trace, baggage` | comma-separated request headers browsers may send cross-origin (replaces the default list) |
//! | `EASEL_METRICS` | `true` | serve Prometheus metrics at `GET /metrics` |
//! | `EASEL_QUERY_PLANNER` | `true` | hot list pages (`galleryFeed`, galleries, collections, albums, `creditHistory`, `generationJobs`) fetch what the selection asks for in one statement; `false` leaves it to the dataloaders (for comparison; answers are the same) |
//! | `EASEL_METRICS_TOKEN` | unset | when set, `/metrics` needs `Authorization: Bearer <token>`; in production set it, or keep `/metrics` off the public proxy |
//! | `EASEL_SHUTDOWN_GRACE_SECS` | `30` | how long shutdown waits for open requests and running jobs (jobs still running then go back to the queue) |
//! | `EASEL_JWT_SECRET` | generated (development) | HS256 key for access tokens; required in production |
//! | `EASEL_JWT_PREVIOUS_SECRETS` | unset | comma-separated retired keys still accepted while their tokens live |
//! | `EASEL_ACCESS_TOKEN_TTL_SECS` | `900` | access token lifetime |
//! | `EASEL_REFRESH_TOKEN_TTL_DAYS` | `30` | refresh token (session) lifetime |
//! | `EASEL_OTP_TTL_SECS` | `300` | how long a one-time code is valid |
//! | `EASEL_OTP_RESEND_SECS` | `60` | minimum wait between two codes to one phone |
//! | `EASEL_OTP_MAX_PER_HOUR` | `5` | codes one phone may be sent per hour |
//! | `EASEL_OTP_MAX_PER_HOUR_PER_IP` | `20` | codes one client IP may request per hour |
//! | `EASEL_SIGNUP_BONUS` | `10` | credits granted at sign-up |
//! | `EASEL_SMS_SENDER` | `log` | `log` (development: the code goes to the log) or `http` |
//! | `EASEL_SMS_HTTP_URL` | unset | the HTTP SMS gateway endpoint (`http` sender) |
//! | `EASEL_SMS_HTTP_TOKEN` | unset | bearer token for the SMS gateway |
//! | `EASEL_TRUST_PROXY` | `false` | take the client IP from `X-Forwarded-For` (behind a reverse proxy) |
//! | `EASEL_PUBLIC_URL` | `http://<EASEL_BIND>` | the server's public base URL (checkout pages, webhooks) |
//! | `EASEL_PAYMENT_GATEWAYS` | `sandbox` (development), none (production) | enabled gateways, comma-separated: `sandbox`, `stripe` (`none`: no gateway); production refuses `sandbox` unless `EASEL_ALLOW_SANDBOX_IN_PRODUCTION` is set |
//! | `EASEL_PAYMENT_EXPIRY_MINUTES` | `60` | how long a pending payment may be paid |
//! | `EASEL_SUBSCRIPTION_GRACE_HOURS` | `72` | how long after its period's end a gateway subscription stays on waiting for the renewal's webhook before it ends |
//! | `EASEL_SANDBOX_WEBHOOK_SECRET` | `easel-sandbox-secret` (development) | HMAC key of sandbox webhooks and checkout links; required in production when `sandbox` is enabled |
//! | `EASEL_STRIPE_API_URL` | `https://api.stripe.com` | Stripe's API base URL |
//! | `EASEL_STRIPE_SECRET_KEY` | unset | Stripe secret key (`sk_...`); required when `stripe` is enabled |
//! | `EASEL_STRIPE_WEBHOOK_SECRET` | unset | Stripe webhook signing secret (`whsec_...`); required when `stripe` is enabled |
//! | `EASEL_WORKERS` | `2` | generation workers `easel serve` runs in-process (`easel worker` runs only workers) |
//! | `EASEL_JOB_LEASE_SECS` | `30` | how long a worker's claim on a job lasts without a heartbeat |
//! | `EASEL_JOB_DEADLINE_SECS` | `600` | a job not finished this long after it was queued times out (refunded) |
//! | `EASEL_JOB_MAX_ATTEMPTS` | `3` | tries before a crashing job fails (refunded) |
//! | `EASEL_PROVIDERS` | `<EASEL_PROVIDER>` | the provider allow-list, comma-separated: `procedural`, `openai`, `replicate`, `gemini`; requests may choose among these only |
//! | `EASEL_PROVIDER` | first of `EASEL_PROVIDERS`, else `procedural` | the provider a kind without an order of its own renders with |
//! | `EASEL_PROVIDER_ORDER_CHARACTER_GENERATION` / `_STYLE_TRANSFER` / `_UPSCALE` / `_VARIATION` / `_BACKGROUND_REMOVAL` / `_LOGO` | `<EASEL_PROVIDER>` | that kind's providers in fallback order, comma-separated (a retryable failure moves to the next); providers that do not render the kind are skipped |
//! | `EASEL_PROCEDURAL_DELAY_MS` | `800` | artificial delay of the procedural provider, so status changes are visible |
//! | `EASEL_OPENAI_BASE_URL` | `https://api.openai.com` | OpenAI-compatible images API base URL |
//! | `EASEL_OPENAI_API_KEY` | unset | bearer key for the images API (required with `openai`) |
//! | `EASEL_OPENAI_MODEL` | `gpt-image-1` | the model used when a request names none |
//! | `EASEL_OPENAI_MODELS` | `<EASEL_OPENAI_MODEL>` | models requests may choose, comma-separated (e.g. `gpt-image-1,dall-e-3`) |
//! | `EASEL_OPENAI_TIMEOUT_SECS` | `120` | time limit of one images API call |
//! | `EASEL_GEMINI_BASE_URL` | `https://generativelanguage.googleapis.com` | Google Gemini API base URL |
//! | `EASEL_GEMINI_API_KEY` | unset | `x-goog-api-key` of the Gemini API (required with `gemini`) |
//! | `EASEL_GEMINI_MODEL` | `gemini-2.5-flash-image` | the Gemini model used when a request names none |
//! | `EASEL_GEMINI_MODELS` | `<EASEL_GEMINI_MODEL>` | Gemini models requests may choose, comma-separated |
//! | `EASEL_GEMINI_TIMEOUT_SECS` | `120` | time limit of one Gemini call |
//! | `EASEL_REPLICATE_BASE_URL` | `https://api.replicate.com` | Replicate-style predictions API base URL |
//! | `EASEL_REPLICATE_API_TOKEN` | unset | bearer token of the predictions API (required with `replicate`) |
//! | `EASEL_REPLICATE_MODELS` | `upscale=nightmareai/real-esrgan,background_removal=851-labs/background-remover` | `kind=owner/name[:version]` pairs, comma-separated: the model of each kind (the first of a kind is its default; several per kind may be listed) |
//! | `EASEL_REPLICATE_TIMEOUT_SECS` | `300` | time limit of one prediction, polling included (then it is cancelled) |
//! | `EASEL_REPLICATE_POLL_MS` | `1000` | how often a running prediction is polled |
//! | `EASEL_MEDIA_BASE_URL` | `<EASEL_PUBLIC_URL>/media` | base of image URLs (e.g. `https://cdn.example.com/media`, or the bucket's public URL); `/media` serves the store either way |
//! | `EASEL_MEDIA_STORE` | `local` | where media files live: `local` (`<EASEL_DATA_DIR>/media`) or `s3` (any S3-compatible bucket) |
//! | `EASEL_S3_BUCKET` | unset | bucket name (required with `s3`) |
//! | `EASEL_S3_REGION` | `us-east-1` | bucket region |
//! | `EASEL_S3_ENDPOINT` | AWS | endpoint of an S3-compatible service (MinIO, R2, ...); `http://` allowed (path-style requests) |
//! | `EASEL_S3_ACCESS_KEY_ID` | unset | access key (required with `s3`) |
//! | `EASEL_S3_SECRET_ACCESS_KEY` | unset | secret key (required with `s3`) |
//! | `EASEL_S3_PREFIX` | unset | key prefix inside the bucket (e.g. `easel/`) |
//! | `EASEL_UPLOAD_MAX_BYTES` | `10485760` | largest uploaded image file (and the multipart body limit, plus 64 KiB) |
//! | `EASEL_UPLOAD_MAX_SIDE` | `8192` | largest width or height of an uploaded image, in pixels |
//! | `EASEL_THUMBNAIL_SIDE` | `320` | longest side of generated thumbnails, in pixels |
//! | `EASEL_CHAT_MAX_THREADS_PER_USER` | `500` | chat threads one user may keep (deleted ones in the trash do not count) |
//! | `EASEL_CHAT_MAX_MESSAGE_CHARS` | `2000` | longest chat message, in characters |
//! | `EASEL_CHAT_MAX_IMAGES_PER_MESSAGE` | `4` | images one chat message may carry |
//! | `EASEL_LOG` | `info` | log filter (`tracing` env-filter syntax) |
//! | `EASEL_LOG_FORMAT` | `pretty` | `pretty` or `json` |
//! | `EASEL_ALLOW_SANDBOX_IN_PRODUCTION` | unset | `yes-anyone-can-mint-credits` lets production enable the `sandbox` gateway (whoever opens a checkout link can grant its credits without paying; logged as a WARN at start-up) |
//! | `EASEL_SIGNUP_MAX_PER_HOUR_PER_IP` | `10` | `signUp` (email and password) calls one client IP may make per hour |
//! | `EASEL_SIGNUP_BONUS_GIFTABLE` | `verified` | `verified`: an account's sign-up bonus can be gifted only once the account is verified (phone accounts are, by their code; email accounts once their address is confirmed with `verifyEmail`); `unverified`: always |
//! | `EASEL_VIEW_WINDOW_SECS` | `3600` | `character(id)` counts at most one view per viewer (user, else client IP) and character in each window of this length (at most 86400) |
//! | `EASEL_UPLOAD_MAX_DECODED_BYTES` | `134217728` | most memory one image may decode to (width × height × bytes per pixel, read from the header before decoding); uploads and generation inputs over it are refused |
//! | `EASEL_UPLOAD_MAX_CONCURRENT_DECODES` | `2` | uploads decoded at the same time in one process (the others wait their turn) |
//! | `EASEL_UPLOAD_MAX_PER_HOUR` | `200` | uploads one user may attempt per hour (`RATE_LIMITED` beyond) |
//! | `EASEL_REFERRAL_REWARD` | `credits` | what a referral earns: `credits` (to both users), `plan_days` (days of a plan, to both users) or `none` (referrals are recorded, nothing is granted) |
//! | `EASEL_REFERRAL_REFERRER_CREDITS` / `EASEL_REFERRAL_REFERRED_CREDITS` | `50` / `25` | with `credits`: what the referrer and the new user get (0 to 1000000000; 0 grants nothing to that side) |
//! | `EASEL_REFERRAL_PLAN` / `EASEL_REFERRAL_PLAN_DAYS` | `pro` / `7` | with `plan_days`: the plan (by its `name`) and how many days of it (1 to 366) |
//! | `EASEL_RETENTION_INTERVAL_SECS` | `3600` | how often the retention sweeper runs |
//! | `EASEL_RETENTION_BATCH` | `1000` | most rows one sweeper statement deletes (each kind runs until a batch comes back short, up to 100 batches a pass) |
//! | `EASEL_RETENTION_JOB_DAYS` | `90` | finished generation jobs, their events and their outputs are purged this many days after they ended, unless an output is shown somewhere (public, in a character, album or chat message, or a cover) |
//! | `EASEL_RETENTION_OUTBOX_DAYS` | `30` | delivered or failed outbox messages are purged after this many days |
//! | `EASEL_RETENTION_OTP_DAYS` | `1` | expired or consumed one-time codes are purged after this many days |
//! | `EASEL_RETENTION_SESSION_DAYS` | `30` | expired or revoked sessions are purged after this many days |
//! | `EASEL_EXPORT_TTL_HOURS` | `72` | how long a ready data export (`requestDataExport`) can be downloaded; the sweeper then deletes it |
//! | `EASEL_RETENTION_CHAT_DELETED_DAYS` | `30` | deleted chat threads are purged after this many days (never fewer than the 30 days they can be restored in) |
//! | `EASEL_SMTP_URL` | unset | the SMTP server emails go through: `smtp://user:pass@host:587?tls=required` (STARTTLS), `?tls=opportunistic`, `smtps://user:pass@host:465` (implicit TLS), `smtp://host:25` (plain); a user and password are sent with AUTH; unset = emails go to the log |
//! | `EASEL_SMTP_PASSWORD` | unset | the SMTP AUTH password (replaces one in `EASEL_SMTP_URL`, so the URL can live outside the secrets) |
//! | `EASEL_SMTP_CA_FILE` | unset | a PEM file of extra root certificates trusted for the SMTP server's TLS (a private CA) |
//! | `EASEL_EMAIL_FROM` | `Easel <no-reply@localhost>` | the sender of every email |
//! | `EASEL_RECOVERY_URL` | `<EASEL_PUBLIC_URL>/reset-password` | the app page a password-reset email links to (`?token=<token>` appended) |
//! | `EASEL_EMAIL_VERIFY_URL` | `<EASEL_PUBLIC_URL>/verify-email` | the app page an email-verification email links to (`?token=<token>` appended) |
//! | `EASEL_RECOVERY_TTL_SECS` | `3600` | how long a password-reset link (or SMS code) works |
//! | `EASEL_EMAIL_VERIFY_TTL_SECS` | `86400` | how long an email-verification link works |
//! | `EASEL_RECOVERY_MAX_PER_HOUR` | `3` | `requestPasswordReset` calls per email or phone and hour; `addEmail` and `addPhone` calls per account and hour |
//! | `EASEL_RECOVERY_MAX_PER_HOUR_PER_IP` | `20` | `requestPasswordReset`, `addEmail` and `addPhone` calls per client IP and hour |
//! | `EASEL_REFERRAL_REWARD_ON` | `first_payment` | when the reward is granted: `first_payment` (the new user's first completed payment) or `signup` |
//! | `EASEL_OAUTH_REDIRECT_URIS` | unset | comma-separated app URLs an identity provider may send the user back to after social sign-in (`startOAuth`'s `redirectUri` must be one of them, exactly); each must also be registered with the providers |
//! | `EASEL_OAUTH_GOOGLE_CLIENT_ID` / `EASEL_OAUTH_GOOGLE_CLIENT_SECRET` | unset | Google sign-in (OpenID Connect): the client id turns it on and then needs the secret |
//! | `EASEL_OAUTH_GOOGLE_ISSUER` | `https://accounts.google.com` | Google's issuer (its discovery document is `<issuer>/.well-known/openid-configuration`); tests point it at a local stub |
//! | `EASEL_OAUTH_GITHUB_CLIENT_ID` / `EASEL_OAUTH_GITHUB_CLIENT_SECRET` | unset | GitHub sign-in (an OAuth app): the client id turns it on and then needs the secret |
//! | `EASEL_OAUTH_GITHUB_URL` / `EASEL_OAUTH_GITHUB_API_URL` | `https://github.com` / `https://api.github.com` | GitHub's web base URL (authorize and token endpoints) and REST API base URL |
//! | `EASEL_OIDC_NAME` | unset | the provider name apps pass to `startOAuth` for the generic OpenID Connect issuer (`^[a-z][a-z0-9_]{0,31}$`, not `google` or `github`) |
//! | `EASEL_OIDC_ISSUER` / `EASEL_OIDC_CLIENT_ID` / `EASEL_OIDC_CLIENT_SECRET` | unset | that issuer's URL (discovery at `<issuer>/.well-known/openid-configuration`) and this app's client credentials: `EASEL_OIDC_CLIENT_ID` turns the issuer on and then needs the other three |

use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use anyhow::{Context, bail};
use secrecy::SecretString;

/// The sandbox webhook key in development (documented, so test suites can sign events).
pub const DEV_SANDBOX_SECRET: &str = "easel-sandbox-secret";

/// The one value of `EASEL_ALLOW_SANDBOX_IN_PRODUCTION` that lets production enable the
/// sandbox gateway: whoever opens a sandbox checkout link can grant its credits for free.
pub const ALLOW_SANDBOX_IN_PRODUCTION: &str = "yes-anyone-can-mint-credits";

/// The request headers browsers may send cross-origin unless `EASEL_CORS_HEADERS` says
/// otherwise: auth, JSON, request ids, Apollo's client headers and CSRF headers, and the
/// tracing headers of W3C Trace Context and Sentry.
pub const DEFAULT_CORS_HEADERS: &str = "authorization, content-type, accept, x-request-id, apollographql-client-name, apollographql-client-version, apollo-require-preflight, x-easel-csrf, traceparent, tracestate, sentry-trace, baggage";

/// Deployment environment: production refuses unsafe development defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// How one-time codes and other messages leave the building.
#[derive(Debug, Clone)]
pub enum SmsSender {
    /// Development: log the message (and the code) and mark it sent.
    Log,
    /// An HTTP SMS gateway: `POST url` with a bearer token.
    Http {
        url: String,
        token: Option<SecretString>,
    },
}

/// Every setting of the server; see the module documentation for the variables.
#[derive(Debug, Clone)]
pub struct Config {
    pub env: Environment,
    pub database_url: Option<SecretString>,
    /// A streaming replica for reads that may lag (feeds, galleries, histories).
    pub database_read_url: Option<SecretString>,
    /// A direct connection to the primary (not through a transaction-mode pooler) for the
    /// LISTEN connection and migrations; `None` = `database_url`.
    pub database_direct_url: Option<SecretString>,
    /// How long a viewer's reads go to the primary after their own mutation.
    pub read_your_writes: Duration,
    pub data_dir: PathBuf,
    pub bind: SocketAddr,
    /// `easel worker`'s probe and metrics port (`None`: it serves no HTTP).
    pub worker_bind: Option<SocketAddr>,
    pub pg_bin_dir: Option<PathBuf>,
    pub pg_user: String,
    pub db_pool_size: usize,
    pub db_pool_timeout: Duration,
    pub db_connect_timeout: Duration,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub graphql_max_depth: usize,
    pub graphql_max_complexity: usize,
    pub graphql_max_batch: usize,
    /// `Cache-Control` of anonymous, successful GET persisted queries (a valid header value).
    pub persisted_query_cache_control: String,
    pub graphql_max_nesting: usize,
    pub graphql_max_tokens: usize,
    pub graphql_max_fields: u64,
    pub graphql_introspection: bool,
    pub graphiql: bool,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub ws_max_subscriptions: usize,
    pub ws_max_subscriptions_per_user: usize,
    pub ws_init_timeout: Duration,
    pub signin_max_per_email_ip: i64,
    pub signin_max_per_email: i64,
    pub graphiql_assets_url: String,
    pub cors_origins: Vec<String>,
    /// Request headers allowed cross-origin (lower case).
    pub cors_headers: Vec<String>,
    pub metrics: bool,
    /// Look-ahead plans for hot list pages (one statement per page); off = dataloaders only.
    pub query_planner: bool,
    pub metrics_token: Option<SecretString>,
    pub shutdown_grace: Duration,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub jwt_secret: Option<SecretString>,
    pub jwt_previous_secrets: Vec<SecretString>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub otp_ttl: Duration,
    pub otp_resend: Duration,
    pub otp_max_per_hour: i64,
    pub otp_max_per_hour_per_ip: i64,
    pub signup_bonus: i64,
    pub sms_sender: SmsSender,
    pub trust_proxy: bool,
    pub public_url: String,
    pub payment_gateways: Vec<String>,
    pub payment_expiry: Duration,
    pub subscription_grace: Duration,
    pub sandbox_webhook_secret: SecretString,
    pub stripe: Option<StripeConfig>,
    pub workers: usize,
    pub job_lease: Duration,
    pub job_deadline: Duration,
    pub job_max_attempts: i32,
    /// The image providers, their models and per-kind fallback orders.
    pub providers: ProvidersConfig,
    pub procedural_delay: Duration,
    pub media_base_url: String,
    pub media_store: MediaStoreConfig,
    pub upload_max_bytes: usize,
    pub upload_max_side: u32,
    pub thumbnail_side: u32,
    /// Chat threads one user may keep (not counting deleted ones).
    pub chat_max_threads_per_user: i64,
    /// The longest chat message, in characters.
    pub chat_max_message_chars: usize,
    /// Images one chat message may carry.
    pub chat_max_images_per_message: usize,
    /// `EASEL_ALLOW_SANDBOX_IN_PRODUCTION` was set to [`ALLOW_SANDBOX_IN_PRODUCTION`].
    pub allow_sandbox_in_production: bool,
    pub signup_max_per_hour_per_ip: i64,
    /// Whether an unverified account may gift its sign-up bonus (`EASEL_SIGNUP_BONUS_GIFTABLE`).
    pub signup_bonus_giftable_unverified: bool,
    pub view_window: Duration,
    pub upload_max_decoded_bytes: u64,
    pub upload_max_concurrent_decodes: usize,
    pub upload_max_per_hour: i64,
    /// How referrals are rewarded (`EASEL_REFERRAL_*`).
    pub referral: ReferralConfig,
    /// How long finished rows are kept (`EASEL_RETENTION_*`).
    pub retention: RetentionConfig,
    /// Email delivery, password recovery and email verification.
    pub email: EmailConfig,
    /// Social sign-in (`EASEL_OAUTH_*`, `EASEL_OIDC_*`).
    pub oauth: OAuthConfig,
}

/// The retention sweeper: how often it runs, how many rows one statement deletes, and how
/// many days each kind of row is kept once finished (each at least 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    pub interval: Duration,
    pub batch: i64,
    /// Finished generation jobs (and their events) none of whose outputs is shown anywhere.
    pub job_days: i64,
    /// Delivered or failed outbox messages.
    pub outbox_days: i64,
    /// Expired or consumed one-time codes.
    pub otp_days: i64,
    /// Expired or revoked sessions.
    pub session_days: i64,
    /// Deleted chat threads (never fewer than the days they can be restored in).
    pub chat_deleted_days: i64,
    /// How long a ready data export can be downloaded (`EASEL_EXPORT_TTL_HOURS`, 1 to 8760);
    /// the sweeper then deletes it.
    pub export_ttl_hours: i64,
}

/// Email delivery (`EASEL_SMTP_*`, `EASEL_EMAIL_FROM`), password recovery and email
/// verification links.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// The SMTP server (`smtp://user:pass@host:587?tls=required`, `smtps://...`); unset =
    /// emails go to the log.
    pub smtp_url: Option<SecretString>,
    /// The SMTP AUTH password, replacing the URL's.
    pub smtp_password: Option<SecretString>,
    /// Extra trusted root certificates (PEM) for the SMTP server's TLS.
    pub smtp_ca_file: Option<PathBuf>,
    /// The sender of every email, e.g. `Easel <no-reply@example.com>`.
    pub from: String,
    /// The app page a password-reset link opens (`?token=` is appended); unset =
    /// `<EASEL_PUBLIC_URL>/reset-password`.
    pub password_reset_url: Option<String>,
    /// The app page an email-verification link opens; unset = `<EASEL_PUBLIC_URL>/verify-email`.
    pub verify_url: Option<String>,
    pub password_reset_ttl: Duration,
    pub verify_ttl: Duration,
    /// `requestPasswordReset` calls per email or phone and hour.
    pub reset_max_per_hour: i64,
    /// `requestPasswordReset` (and `addEmail`/`addPhone`) calls per client IP and hour.
    pub reset_max_per_hour_per_ip: i64,
}

fn email_config(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<EmailConfig> {
    let url = |name: &str| -> anyhow::Result<Option<String>> {
        match get(name) {
            None => Ok(None),
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => Ok(Some(u)),
            Some(u) => bail!("{name} must be an http(s) URL, not `{u}`"),
        }
    };
    let config = EmailConfig {
        smtp_url: get("EASEL_SMTP_URL")
            .filter(|u| !u.is_empty())
            .map(SecretString::from),
        smtp_password: get("EASEL_SMTP_PASSWORD")
            .filter(|p| !p.is_empty())
            .map(SecretString::from),
        smtp_ca_file: get("EASEL_SMTP_CA_FILE")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
        from: get("EASEL_EMAIL_FROM").unwrap_or_else(|| "Easel <no-reply@localhost>".into()),
        password_reset_url: url("EASEL_RECOVERY_URL")?,
        verify_url: url("EASEL_EMAIL_VERIFY_URL")?,
        password_reset_ttl: Duration::from_secs(parse(get, "EASEL_RECOVERY_TTL_SECS", "3600")?),
        verify_ttl: Duration::from_secs(parse(get, "EASEL_EMAIL_VERIFY_TTL_SECS", "86400")?),
        reset_max_per_hour: parse(get, "EASEL_RECOVERY_MAX_PER_HOUR", "3")?,
        reset_max_per_hour_per_ip: parse(get, "EASEL_RECOVERY_MAX_PER_HOUR_PER_IP", "20")?,
    };
    if config.password_reset_ttl.is_zero() || config.verify_ttl.is_zero() {
        bail!("EASEL_RECOVERY_TTL_SECS and EASEL_EMAIL_VERIFY_TTL_SECS must be at least 1");
    }
    if !config.from.contains('@') {
        bail!("EASEL_EMAIL_FROM must be an address such as `Easel <no-reply@example.com>`");
    }
    Ok(config)
}

/// How a referral is rewarded, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralConfig {
    pub reward: ReferralReward,
    /// Reward at sign-up instead of at the referred user's first payment.
    pub reward_at_signup: bool,
}

/// What a referral earns the referrer and the referred user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferralReward {
    /// Nothing: referrals are only recorded.
    None,
    /// Credits to each side (`REFERRAL` ledger entries; 0 grants nothing to that side).
    Credits { referrer: i64, referred: i64 },
    /// Days of a plan (by its `name`) to both users.
    PlanDays { plan: String, days: i32 },
}

/// The image providers requests may use (`EASEL_PROVIDERS`), the default one, per-kind fallback
/// orders and each provider's settings.
#[derive(Debug, Clone)]
pub struct ProvidersConfig {
    /// The allow-list, in its configured order (`procedural`, `openai`, `replicate`).
    pub enabled: Vec<String>,
    /// Renders kinds without an order of their own.
    pub default: String,
    /// `(kind as stored, e.g. "upscale", providers in order)`.
    pub orders: Vec<(String, Vec<String>)>,
    /// Set when `openai` is enabled.
    pub openai: Option<ImageApiConfig>,
    /// Set when `replicate` is enabled.
    pub replicate: Option<ReplicateConfig>,
    /// Set when `gemini` is enabled.
    pub gemini: Option<ImageApiConfig>,
}

impl ProvidersConfig {
    /// Only the local procedural provider (the default).
    pub fn procedural() -> Self {
        ProvidersConfig {
            enabled: vec!["procedural".into()],
            default: "procedural".into(),
            orders: Vec::new(),
            openai: None,
            replicate: None,
            gemini: None,
        }
    }
}

/// An image API with a key and named models: OpenAI-compatible images, or Google's Gemini
/// (`generateContent` with image output).
#[derive(Debug, Clone)]
pub struct ImageApiConfig {
    pub base_url: String,
    pub api_key: SecretString,
    /// The default model.
    pub model: String,
    /// Models requests may choose (the default included).
    pub models: Vec<String>,
    pub timeout: Duration,
}

/// A Replicate-style predictions HTTP API.
#[derive(Debug, Clone)]
pub struct ReplicateConfig {
    pub base_url: String,
    pub api_token: SecretString,
    /// `(kind as stored, model as owner/name[:version])`, the first of a kind its default.
    pub models: Vec<(String, String)>,
    pub timeout: Duration,
    pub poll_interval: Duration,
}

/// The kinds of generation as stored, with the variable naming their fallback order.
const PROVIDER_ORDERS: [(&str, &str); 6] = [
    (
        "character_generation",
        "EASEL_PROVIDER_ORDER_CHARACTER_GENERATION",
    ),
    ("style_transfer", "EASEL_PROVIDER_ORDER_STYLE_TRANSFER"),
    ("upscale", "EASEL_PROVIDER_ORDER_UPSCALE"),
    ("variation", "EASEL_PROVIDER_ORDER_VARIATION"),
    (
        "background_removal",
        "EASEL_PROVIDER_ORDER_BACKGROUND_REMOVAL",
    ),
    ("logo", "EASEL_PROVIDER_ORDER_LOGO"),
];

/// A comma-separated list, trimmed, without empty items.
fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// `EASEL_PROVIDERS`, `EASEL_PROVIDER`, the per-kind orders and the providers' settings.
/// The variables of one image API: base URL, API key, default model, models, timeout
/// (spelled out, so that the deployment checks find every name this file reads).
struct ImageApiVars {
    base_url: &'static str,
    api_key: &'static str,
    model: &'static str,
    models: &'static str,
    timeout_secs: &'static str,
}

/// The image API `name`: the base URL (without a trailing slash), the API key (required), the
/// default model and the others requests may choose, the timeout of one call (120 s).
fn image_api(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    vars: &ImageApiVars,
    (default_base, default_model): (&str, &str),
) -> anyhow::Result<ImageApiConfig> {
    let model = get(vars.model).unwrap_or_else(|| default_model.into());
    let mut models = get(vars.models).map(|v| list(&v)).unwrap_or_default();
    if !models.contains(&model) {
        models.insert(0, model.clone());
    }
    Ok(ImageApiConfig {
        base_url: base_url(get, vars.base_url, default_base),
        api_key: required_secret(get, vars.api_key, name)?,
        model,
        models,
        timeout: Duration::from_secs(parse(get, vars.timeout_secs, "120")?),
    })
}

fn base_url(get: &impl Fn(&str) -> Option<String>, var: &str, default: &str) -> String {
    get(var)
        .unwrap_or_else(|| default.into())
        .trim_end_matches('/')
        .to_string()
}

fn required_secret(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    provider: &str,
) -> anyhow::Result<SecretString> {
    get(var)
        .map(SecretString::from)
        .with_context(|| format!("the {provider} provider needs {var}"))
}

fn providers_config(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<ProvidersConfig> {
    let single = get("EASEL_PROVIDER");
    let enabled: Vec<String> = match get("EASEL_PROVIDERS") {
        Some(v) => list(&v.to_lowercase()),
        None => vec![single.clone().unwrap_or_else(|| "procedural".into())],
    };
    if enabled.is_empty() {
        bail!("EASEL_PROVIDERS names no provider");
    }
    for name in &enabled {
        if !matches!(
            name.as_str(),
            "procedural" | "openai" | "replicate" | "gemini"
        ) {
            bail!(
                "EASEL_PROVIDERS: unknown provider `{name}` (known: procedural, openai, replicate, gemini)"
            );
        }
    }
    let default = single.unwrap_or_else(|| enabled[0].clone());
    if !enabled.contains(&default) {
        bail!("EASEL_PROVIDER `{default}` is not in EASEL_PROVIDERS");
    }
    let mut orders = Vec::new();
    for (kind, var) in PROVIDER_ORDERS {
        if let Some(v) = get(var) {
            let order = list(&v.to_lowercase());
            if let Some(bad) = order.iter().find(|p| !enabled.contains(p)) {
                bail!("{var}: `{bad}` is not in EASEL_PROVIDERS");
            }
            if !order.is_empty() {
                orders.push((kind.to_string(), order));
            }
        }
    }
    let enabled_api = |name: &str, vars: &ImageApiVars, defaults: (&str, &str)| {
        if enabled.iter().any(|p| p == name) {
            image_api(get, name, vars, defaults).map(Some)
        } else {
            Ok(None)
        }
    };
    let openai = enabled_api(
        "openai",
        &ImageApiVars {
            base_url: "EASEL_OPENAI_BASE_URL",
            api_key: "EASEL_OPENAI_API_KEY",
            model: "EASEL_OPENAI_MODEL",
            models: "EASEL_OPENAI_MODELS",
            timeout_secs: "EASEL_OPENAI_TIMEOUT_SECS",
        },
        ("https://api.openai.com", "gpt-image-1"),
    )?;
    let replicate = if enabled.iter().any(|p| p == "replicate") {
        let spec = get("EASEL_REPLICATE_MODELS").unwrap_or_else(|| {
            "upscale=nightmareai/real-esrgan,background_removal=851-labs/background-remover".into()
        });
        let mut models = Vec::new();
        for pair in list(&spec) {
            let (kind, model) = pair
                .split_once('=')
                .map(|(k, m)| (k.trim().to_lowercase(), m.trim().to_string()))
                .filter(|(k, m)| PROVIDER_ORDERS.iter().any(|(x, _)| x == k) && m.contains('/'))
                .with_context(|| {
                    format!("EASEL_REPLICATE_MODELS: `{pair}` is not `kind=owner/name[:version]`")
                })?;
            models.push((kind, model));
        }
        Some(ReplicateConfig {
            base_url: base_url(get, "EASEL_REPLICATE_BASE_URL", "https://api.replicate.com"),
            api_token: required_secret(get, "EASEL_REPLICATE_API_TOKEN", "replicate")?,
            models,
            timeout: Duration::from_secs(parse(get, "EASEL_REPLICATE_TIMEOUT_SECS", "300")?),
            poll_interval: Duration::from_millis(
                parse::<u64>(get, "EASEL_REPLICATE_POLL_MS", "1000")?.max(10),
            ),
        })
    } else {
        None
    };
    let gemini = enabled_api(
        "gemini",
        &ImageApiVars {
            base_url: "EASEL_GEMINI_BASE_URL",
            api_key: "EASEL_GEMINI_API_KEY",
            model: "EASEL_GEMINI_MODEL",
            models: "EASEL_GEMINI_MODELS",
            timeout_secs: "EASEL_GEMINI_TIMEOUT_SECS",
        },
        (
            "https://generativelanguage.googleapis.com",
            "gemini-2.5-flash-image",
        ),
    )?;
    Ok(ProvidersConfig {
        enabled,
        default,
        orders,
        openai,
        replicate,
        gemini,
    })
}

/// Where media files (uploads, thumbnails, generation outputs) are stored.
#[derive(Debug, Clone)]
pub enum MediaStoreConfig {
    /// `<EASEL_DATA_DIR>/media` on local disk.
    Local,
    /// An S3-compatible bucket.
    S3(S3Config),
}

/// An S3-compatible bucket and its credentials.
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// `None` = AWS itself; otherwise the service's base URL (path-style requests).
    pub endpoint: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// Prepended to every key (empty, or ending in `/`).
    pub prefix: String,
}

/// Stripe credentials (set when the `stripe` gateway is enabled).
#[derive(Debug, Clone)]
pub struct StripeConfig {
    pub api_url: String,
    pub secret_key: SecretString,
    pub webhook_secret: SecretString,
}

impl Config {
    /// Reads the process environment, after loading `.env` when one exists (development).
    pub fn from_env() -> anyhow::Result<Self> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any variable source (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let env = match get("EASEL_ENV").as_deref() {
            None | Some("development") | Some("dev") => Environment::Development,
            Some("production") | Some("prod") => Environment::Production,
            Some(other) => bail!("EASEL_ENV must be `development` or `production`, not `{other}`"),
        };
        let log_format = match get("EASEL_LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("EASEL_LOG_FORMAT must be `pretty` or `json`, not `{other}`"),
        };
        // Development conveniences that production turns off unless asked for.
        let dev_only = if env == Environment::Development {
            "true"
        } else {
            "false"
        };
        let cors_origins = get("EASEL_CORS_ORIGINS")
            .unwrap_or_else(|| "*".into())
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let cors_headers: Vec<String> = get("EASEL_CORS_HEADERS")
            .unwrap_or_else(|| DEFAULT_CORS_HEADERS.into())
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(bad) = cors_headers
            .iter()
            .find(|h| axum::http::HeaderName::from_bytes(h.as_bytes()).is_err())
        {
            bail!("EASEL_CORS_HEADERS: `{bad}` is not a header name");
        }
        let config = Config {
            env,
            database_url: get("DATABASE_URL").map(SecretString::from),
            database_read_url: get("DATABASE_READ_URL")
                .filter(|u| !u.trim().is_empty())
                .map(SecretString::from),
            database_direct_url: get("DATABASE_DIRECT_URL")
                .filter(|u| !u.trim().is_empty())
                .map(SecretString::from),
            read_your_writes: Duration::from_secs(
                parse::<u64>(&get, "EASEL_READ_YOUR_WRITES_SECS", "10")?.min(3600),
            ),
            data_dir: get("EASEL_DATA_DIR")
                .unwrap_or_else(|| "./data".into())
                .into(),
            bind: parse(&get, "EASEL_BIND", "127.0.0.1:8080")?,
            worker_bind: match get("EASEL_WORKER_BIND").filter(|v| !v.trim().is_empty()) {
                Some(v) => Some(v.trim().parse().map_err(|e| {
                    anyhow::anyhow!(
                        "EASEL_WORKER_BIND must be an address like 0.0.0.0:9090, not `{v}`: {e}"
                    )
                })?),
                None => None,
            },
            pg_bin_dir: get("EASEL_PG_BIN_DIR").map(PathBuf::from),
            pg_user: get("EASEL_PG_USER").unwrap_or_else(|| "postgres".into()),
            db_pool_size: parse(&get, "EASEL_DB_POOL_SIZE", "16")?,
            db_pool_timeout: Duration::from_millis(parse(
                &get,
                "EASEL_DB_POOL_TIMEOUT_MS",
                "5000",
            )?),
            db_connect_timeout: Duration::from_millis(parse(
                &get,
                "EASEL_DB_CONNECT_TIMEOUT_MS",
                "5000",
            )?),
            max_body_bytes: parse(&get, "EASEL_MAX_BODY_BYTES", "1048576")?,
            request_timeout: Duration::from_secs(parse(&get, "EASEL_REQUEST_TIMEOUT_SECS", "30")?),
            graphql_max_depth: parse(&get, "EASEL_GRAPHQL_MAX_DEPTH", "16")?,
            graphql_max_complexity: parse(&get, "EASEL_GRAPHQL_MAX_COMPLEXITY", "1000")?,
            graphql_max_batch: parse(&get, "EASEL_GRAPHQL_MAX_BATCH", "10")?,
            persisted_query_cache_control: {
                let value = get("EASEL_PERSISTED_QUERY_CACHE_CONTROL")
                    .unwrap_or_else(|| "public, max-age=30".into());
                anyhow::ensure!(
                    axum::http::HeaderValue::from_str(&value).is_ok(),
                    "EASEL_PERSISTED_QUERY_CACHE_CONTROL is not a valid header value"
                );
                value
            },
            graphql_max_nesting: parse(&get, "EASEL_GRAPHQL_MAX_NESTING", "64")?,
            graphql_max_tokens: parse(&get, "EASEL_GRAPHQL_MAX_TOKENS", "10000")?,
            graphql_max_fields: parse(&get, "EASEL_GRAPHQL_MAX_FIELDS", "2000")?,
            graphql_introspection: parse(&get, "EASEL_GRAPHQL_INTROSPECTION", dev_only)?,
            graphiql: parse(&get, "EASEL_GRAPHIQL", dev_only)?,
            header_read_timeout: Duration::from_secs(parse(
                &get,
                "EASEL_HEADER_READ_TIMEOUT_SECS",
                "10",
            )?),
            max_connections: parse(&get, "EASEL_MAX_CONNECTIONS", "10000")?,
            ws_max_subscriptions: parse(&get, "EASEL_WS_MAX_SUBSCRIPTIONS", "50")?,
            ws_max_subscriptions_per_user: parse(
                &get,
                "EASEL_WS_MAX_SUBSCRIPTIONS_PER_USER",
                "200",
            )?,
            ws_init_timeout: Duration::from_secs(parse(&get, "EASEL_WS_INIT_TIMEOUT_SECS", "10")?),
            signin_max_per_email_ip: parse(&get, "EASEL_SIGNIN_MAX_PER_EMAIL_IP", "10")?,
            signin_max_per_email: parse(&get, "EASEL_SIGNIN_MAX_PER_EMAIL", "100")?,
            graphiql_assets_url: get("EASEL_GRAPHIQL_ASSETS_URL")
                .unwrap_or_else(|| "https://unpkg.com".into())
                .trim_end_matches('/')
                .to_string(),
            cors_origins,
            cors_headers,
            metrics: parse(&get, "EASEL_METRICS", "true")?,
            query_planner: parse(&get, "EASEL_QUERY_PLANNER", "true")?,
            metrics_token: get("EASEL_METRICS_TOKEN").map(SecretString::from),
            shutdown_grace: Duration::from_secs(parse(&get, "EASEL_SHUTDOWN_GRACE_SECS", "30")?),
            log_filter: get("EASEL_LOG").unwrap_or_else(|| "info".into()),
            log_format,
            jwt_secret: get("EASEL_JWT_SECRET").map(SecretString::from),
            jwt_previous_secrets: get("EASEL_JWT_PREVIOUS_SECRETS")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| SecretString::from(s.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            access_token_ttl: Duration::from_secs(parse(
                &get,
                "EASEL_ACCESS_TOKEN_TTL_SECS",
                "900",
            )?),
            refresh_token_ttl: Duration::from_secs(
                86_400 * parse::<u64>(&get, "EASEL_REFRESH_TOKEN_TTL_DAYS", "30")?,
            ),
            otp_ttl: Duration::from_secs(parse(&get, "EASEL_OTP_TTL_SECS", "300")?),
            otp_resend: Duration::from_secs(parse(&get, "EASEL_OTP_RESEND_SECS", "60")?),
            otp_max_per_hour: parse(&get, "EASEL_OTP_MAX_PER_HOUR", "5")?,
            otp_max_per_hour_per_ip: parse(&get, "EASEL_OTP_MAX_PER_HOUR_PER_IP", "20")?,
            signup_bonus: parse(&get, "EASEL_SIGNUP_BONUS", "10")?,
            sms_sender: match get("EASEL_SMS_SENDER").as_deref() {
                None | Some("log") => SmsSender::Log,
                Some("http") => SmsSender::Http {
                    url: get("EASEL_SMS_HTTP_URL")
                        .context("EASEL_SMS_SENDER=http needs EASEL_SMS_HTTP_URL")?,
                    token: get("EASEL_SMS_HTTP_TOKEN").map(SecretString::from),
                },
                Some(other) => bail!("EASEL_SMS_SENDER must be `log` or `http`, not `{other}`"),
            },
            trust_proxy: parse(&get, "EASEL_TRUST_PROXY", "false")?,
            public_url: String::new(),
            // Production has no gateway unless one is chosen: the sandbox grants credits for free.
            payment_gateways: get("EASEL_PAYMENT_GATEWAYS")
                .unwrap_or_else(|| match env {
                    Environment::Development => "sandbox".into(),
                    Environment::Production => String::new(),
                })
                .split(',')
                .map(|g| g.trim().to_lowercase())
                .filter(|g| !g.is_empty() && g != "none")
                .collect(),
            payment_expiry: Duration::from_secs(
                60 * parse::<u64>(&get, "EASEL_PAYMENT_EXPIRY_MINUTES", "60")?,
            ),
            subscription_grace: Duration::from_secs(
                3600 * parse::<u64>(&get, "EASEL_SUBSCRIPTION_GRACE_HOURS", "72")?.min(24 * 365),
            ),
            sandbox_webhook_secret: SecretString::from(
                get("EASEL_SANDBOX_WEBHOOK_SECRET")
                    .unwrap_or_else(|| DEV_SANDBOX_SECRET.to_string()),
            ),
            stripe: None,
            workers: parse(&get, "EASEL_WORKERS", "2")?,
            job_lease: Duration::from_secs(parse(&get, "EASEL_JOB_LEASE_SECS", "30")?),
            job_deadline: Duration::from_secs(parse(&get, "EASEL_JOB_DEADLINE_SECS", "600")?),
            job_max_attempts: parse(&get, "EASEL_JOB_MAX_ATTEMPTS", "3")?,
            providers: providers_config(&get)?,
            procedural_delay: Duration::from_millis(parse(
                &get,
                "EASEL_PROCEDURAL_DELAY_MS",
                "800",
            )?),
            media_base_url: get("EASEL_MEDIA_BASE_URL")
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string(),
            media_store: media_store(&get)?,
            upload_max_bytes: parse(&get, "EASEL_UPLOAD_MAX_BYTES", "10485760")?,
            upload_max_side: parse(&get, "EASEL_UPLOAD_MAX_SIDE", "8192")?,
            thumbnail_side: parse(&get, "EASEL_THUMBNAIL_SIDE", "320")?,
            chat_max_threads_per_user: parse(&get, "EASEL_CHAT_MAX_THREADS_PER_USER", "500")?,
            chat_max_message_chars: parse(&get, "EASEL_CHAT_MAX_MESSAGE_CHARS", "2000")?,
            chat_max_images_per_message: parse(&get, "EASEL_CHAT_MAX_IMAGES_PER_MESSAGE", "4")?,
            allow_sandbox_in_production: match get("EASEL_ALLOW_SANDBOX_IN_PRODUCTION").as_deref() {
                None => false,
                Some(ALLOW_SANDBOX_IN_PRODUCTION) => true,
                Some(_) => bail!(
                    "EASEL_ALLOW_SANDBOX_IN_PRODUCTION, when set, must be exactly `{ALLOW_SANDBOX_IN_PRODUCTION}`"
                ),
            },
            signup_max_per_hour_per_ip: parse(&get, "EASEL_SIGNUP_MAX_PER_HOUR_PER_IP", "10")?,
            signup_bonus_giftable_unverified: match get("EASEL_SIGNUP_BONUS_GIFTABLE").as_deref() {
                None | Some("verified") => false,
                Some("unverified") => true,
                Some(other) => bail!(
                    "EASEL_SIGNUP_BONUS_GIFTABLE must be `verified` or `unverified`, not `{other}`"
                ),
            },
            view_window: Duration::from_secs(parse(&get, "EASEL_VIEW_WINDOW_SECS", "3600")?),
            upload_max_decoded_bytes: parse(&get, "EASEL_UPLOAD_MAX_DECODED_BYTES", "134217728")?,
            upload_max_concurrent_decodes: parse(&get, "EASEL_UPLOAD_MAX_CONCURRENT_DECODES", "2")?,
            upload_max_per_hour: parse(&get, "EASEL_UPLOAD_MAX_PER_HOUR", "200")?,
            referral: referral_config(&get)?,
            retention: retention_config(&get)?,
            email: email_config(&get)?,
            oauth: oauth_config(&get)?,
        };
        let mut config = config;
        config.public_url = get("EASEL_PUBLIC_URL")
            .unwrap_or_else(|| format!("http://{}", config.bind))
            .trim_end_matches('/')
            .to_string();
        for gateway in &config.payment_gateways {
            if !matches!(gateway.as_str(), "sandbox" | "stripe") {
                bail!(
                    "EASEL_PAYMENT_GATEWAYS: unknown gateway `{gateway}` (known: sandbox, stripe)"
                );
            }
        }
        if config.payment_gateways.iter().any(|g| g == "stripe") {
            config.stripe = Some(StripeConfig {
                api_url: get("EASEL_STRIPE_API_URL")
                    .unwrap_or_else(|| "https://api.stripe.com".into())
                    .trim_end_matches('/')
                    .to_string(),
                secret_key: get("EASEL_STRIPE_SECRET_KEY")
                    .map(SecretString::from)
                    .context("the stripe gateway needs EASEL_STRIPE_SECRET_KEY")?,
                webhook_secret: get("EASEL_STRIPE_WEBHOOK_SECRET")
                    .map(SecretString::from)
                    .context("the stripe gateway needs EASEL_STRIPE_WEBHOOK_SECRET")?,
            });
        }
        if config.chat_max_threads_per_user < 1
            || config.chat_max_message_chars == 0
            || config.chat_max_images_per_message == 0
        {
            bail!(
                "EASEL_CHAT_MAX_THREADS_PER_USER, EASEL_CHAT_MAX_MESSAGE_CHARS and EASEL_CHAT_MAX_IMAGES_PER_MESSAGE must be at least 1"
            );
        }
        if config.upload_max_side == 0 || config.thumbnail_side == 0 {
            bail!("EASEL_UPLOAD_MAX_SIDE and EASEL_THUMBNAIL_SIDE must be at least 1");
        }
        if config.upload_max_decoded_bytes == 0
            || config.upload_max_concurrent_decodes == 0
            || config.upload_max_per_hour < 1
        {
            bail!(
                "EASEL_UPLOAD_MAX_DECODED_BYTES, EASEL_UPLOAD_MAX_CONCURRENT_DECODES and EASEL_UPLOAD_MAX_PER_HOUR must be at least 1"
            );
        }
        if !(1..=86_400).contains(&config.view_window.as_secs()) {
            bail!("EASEL_VIEW_WINDOW_SECS must be between 1 and 86400");
        }
        if config.db_pool_size == 0 {
            bail!("EASEL_DB_POOL_SIZE must be at least 1");
        }
        if config.graphql_max_nesting == 0
            || config.graphql_max_tokens == 0
            || config.graphql_max_fields == 0
            || config.max_connections == 0
            || config.ws_max_subscriptions == 0
            || config.ws_max_subscriptions_per_user == 0
        {
            bail!(
                "EASEL_GRAPHQL_MAX_NESTING, _MAX_TOKENS, _MAX_FIELDS, EASEL_MAX_CONNECTIONS and EASEL_WS_MAX_SUBSCRIPTIONS(_PER_USER) must be at least 1"
            );
        }
        if config.header_read_timeout.is_zero() {
            bail!("EASEL_HEADER_READ_TIMEOUT_SECS must be at least 1");
        }
        if config.ws_init_timeout.is_zero() {
            bail!("EASEL_WS_INIT_TIMEOUT_SECS must be at least 1");
        }
        if config.job_max_attempts < 1 || config.job_lease.is_zero() {
            bail!("EASEL_JOB_MAX_ATTEMPTS must be at least 1 and EASEL_JOB_LEASE_SECS positive");
        }
        if config.signup_bonus < 0 {
            bail!("EASEL_SIGNUP_BONUS must not be negative");
        }
        if config.signup_max_per_hour_per_ip < 1 {
            bail!("EASEL_SIGNUP_MAX_PER_HOUR_PER_IP must be at least 1");
        }
        if config.env == Environment::Production {
            if matches!(config.sms_sender, SmsSender::Log) {
                bail!(
                    "EASEL_ENV=production refuses the `log` SMS sender (codes would only reach the log): set EASEL_SMS_SENDER=http with EASEL_SMS_HTTP_URL"
                );
            }
            match &config.jwt_secret {
                None => bail!(
                    "EASEL_ENV=production needs EASEL_JWT_SECRET (at least 32 random bytes, e.g. `openssl rand -base64 48`)"
                ),
                Some(s) if secrecy::ExposeSecret::expose_secret(s).len() < 32 => {
                    bail!("EASEL_JWT_SECRET must be at least 32 characters")
                }
                Some(_) => {}
            }
            if config.payment_gateways.iter().any(|g| g == "sandbox") {
                if !config.allow_sandbox_in_production {
                    bail!(
                        "EASEL_ENV=production refuses the `sandbox` gateway: anyone who opens a sandbox checkout link can grant themselves its credits without paying. \
                         Remove `sandbox` from EASEL_PAYMENT_GATEWAYS (use `stripe`; with the variable unset production enables no gateway). \
                         Only for a server where free credits are intended (a public demo or staging), set \
                         EASEL_ALLOW_SANDBOX_IN_PRODUCTION={ALLOW_SANDBOX_IN_PRODUCTION} together with a private EASEL_SANDBOX_WEBHOOK_SECRET"
                    );
                }
                if get("EASEL_SANDBOX_WEBHOOK_SECRET").is_none_or(|s| s == DEV_SANDBOX_SECRET) {
                    bail!(
                        "EASEL_ALLOW_SANDBOX_IN_PRODUCTION is set, but the sandbox then needs a private EASEL_SANDBOX_WEBHOOK_SECRET (the development key is public, so anyone could sign its webhooks)"
                    );
                }
            }
        }
        Ok(config)
    }

    /// Where the local media store keeps its files.
    pub fn media_dir(&self) -> PathBuf {
        self.data_dir.join("media")
    }

    /// Where the embedded PostgreSQL cluster lives.
    pub fn embedded_pg_dir(&self) -> PathBuf {
        self.data_dir.join("postgres")
    }
}

fn media_store(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<MediaStoreConfig> {
    match get("EASEL_MEDIA_STORE").as_deref() {
        None | Some("local") => Ok(MediaStoreConfig::Local),
        Some("s3") => {
            let need = |name: &str| {
                get(name).with_context(|| format!("EASEL_MEDIA_STORE=s3 needs {name}"))
            };
            let prefix = get("EASEL_S3_PREFIX")
                .map(|p| format!("{}/", p.trim_matches('/')))
                .filter(|p| p != "/")
                .unwrap_or_default();
            Ok(MediaStoreConfig::S3(S3Config {
                bucket: need("EASEL_S3_BUCKET")?,
                region: get("EASEL_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
                endpoint: get("EASEL_S3_ENDPOINT").map(|e| e.trim_end_matches('/').to_string()),
                access_key_id: need("EASEL_S3_ACCESS_KEY_ID")?,
                secret_access_key: SecretString::from(need("EASEL_S3_SECRET_ACCESS_KEY")?),
                prefix,
            }))
        }
        Some(other) => bail!("EASEL_MEDIA_STORE must be `local` or `s3`, not `{other}`"),
    }
}

fn retention_config(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<RetentionConfig> {
    let config = RetentionConfig {
        interval: Duration::from_secs(parse(get, "EASEL_RETENTION_INTERVAL_SECS", "3600")?),
        batch: parse(get, "EASEL_RETENTION_BATCH", "1000")?,
        job_days: parse(get, "EASEL_RETENTION_JOB_DAYS", "90")?,
        outbox_days: parse(get, "EASEL_RETENTION_OUTBOX_DAYS", "30")?,
        otp_days: parse(get, "EASEL_RETENTION_OTP_DAYS", "1")?,
        session_days: parse(get, "EASEL_RETENTION_SESSION_DAYS", "30")?,
        chat_deleted_days: parse(get, "EASEL_RETENTION_CHAT_DELETED_DAYS", "30")?,
        export_ttl_hours: parse(get, "EASEL_EXPORT_TTL_HOURS", "72")?,
    };
    if config.interval.is_zero()
        || !(1..=100_000).contains(&config.batch)
        || [
            config.job_days,
            config.outbox_days,
            config.otp_days,
            config.session_days,
            config.chat_deleted_days,
        ]
        .iter()
        .any(|d| !(1..=36_500).contains(d))
        || !(1..=8_760).contains(&config.export_ttl_hours)
    {
        bail!(
            "EASEL_RETENTION_INTERVAL_SECS must be at least 1, EASEL_RETENTION_BATCH 1 to 100000, each EASEL_RETENTION_*_DAYS 1 to 36500, and EASEL_EXPORT_TTL_HOURS 1 to 8760"
        );
    }
    Ok(config)
}

fn referral_config(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<ReferralConfig> {
    let reward = match get("EASEL_REFERRAL_REWARD").as_deref().map(str::trim) {
        None | Some("credits") => {
            let referrer: i64 = parse(get, "EASEL_REFERRAL_REFERRER_CREDITS", "50")?;
            let referred: i64 = parse(get, "EASEL_REFERRAL_REFERRED_CREDITS", "25")?;
            for (name, v) in [
                ("EASEL_REFERRAL_REFERRER_CREDITS", referrer),
                ("EASEL_REFERRAL_REFERRED_CREDITS", referred),
            ] {
                if !(0..=1_000_000_000).contains(&v) {
                    bail!("{name} must be between 0 and 1000000000");
                }
            }
            ReferralReward::Credits { referrer, referred }
        }
        Some("plan_days") => {
            let plan = get("EASEL_REFERRAL_PLAN")
                .map(|p| p.trim().to_string())
                .unwrap_or_else(|| "pro".into());
            let days: i32 = parse(get, "EASEL_REFERRAL_PLAN_DAYS", "7")?;
            if plan.is_empty() || !(1..=366).contains(&days) {
                bail!(
                    "EASEL_REFERRAL_PLAN must name a plan and EASEL_REFERRAL_PLAN_DAYS be 1 to 366"
                );
            }
            ReferralReward::PlanDays { plan, days }
        }
        Some("none") => ReferralReward::None,
        Some(other) => {
            bail!("EASEL_REFERRAL_REWARD must be `credits`, `plan_days` or `none`, not `{other}`")
        }
    };
    let reward_at_signup = match get("EASEL_REFERRAL_REWARD_ON").as_deref().map(str::trim) {
        None | Some("first_payment") => false,
        Some("signup") => true,
        Some(other) => {
            bail!("EASEL_REFERRAL_REWARD_ON must be `first_payment` or `signup`, not `{other}`")
        }
    };
    Ok(ReferralConfig {
        reward,
        reward_at_signup,
    })
}

/// Social sign-in: the identity providers this server signs users in with, and where they may
/// send users back to.
#[derive(Debug, Clone, Default)]
pub struct OAuthConfig {
    /// The exact redirect URIs `startOAuth` accepts.
    pub redirect_uris: Vec<String>,
    /// Google (OpenID Connect).
    pub google: Option<OidcConfig>,
    /// GitHub (OAuth 2 and its REST API).
    pub github: Option<GithubConfig>,
    /// One configured OpenID Connect issuer, under its own name.
    pub oidc: Option<OidcConfig>,
}

/// An OpenID Connect issuer and this app's client there.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The provider's name in the API (`google`, or `EASEL_OIDC_NAME`).
    pub name: String,
    /// The issuer URL, without a trailing slash.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SecretString,
}

/// GitHub's endpoints and this app's OAuth app there.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// The web base URL (`/login/oauth/authorize`, `/login/oauth/access_token`).
    pub base_url: String,
    /// The REST API base URL (`/user`, `/user/emails`).
    pub api_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
}

/// A provider's client id and secret: the id turns the provider on, and then the secret is
/// required (a secret alone is ignored, as the deployment's empty Secret keys are).
fn client_credentials(
    get: &impl Fn(&str) -> Option<String>,
    id_var: &str,
    secret_var: &str,
) -> anyhow::Result<Option<(String, SecretString)>> {
    let Some(id) = get(id_var) else {
        return Ok(None);
    };
    let secret = get(secret_var).with_context(|| format!("{id_var} is set: {secret_var} too"))?;
    Ok(Some((id.trim().to_string(), SecretString::from(secret))))
}

fn oauth_config(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<OAuthConfig> {
    let redirect_uris = get("EASEL_OAUTH_REDIRECT_URIS")
        .map(|v| list(&v))
        .unwrap_or_default();
    for uri in &redirect_uris {
        let parsed = reqwest::Url::parse(uri)
            .with_context(|| format!("EASEL_OAUTH_REDIRECT_URIS: `{uri}` is not a URL"))?;
        if parsed.fragment().is_some() {
            bail!("EASEL_OAUTH_REDIRECT_URIS: `{uri}` has a fragment, which OAuth 2 forbids");
        }
    }
    let google = client_credentials(
        get,
        "EASEL_OAUTH_GOOGLE_CLIENT_ID",
        "EASEL_OAUTH_GOOGLE_CLIENT_SECRET",
    )?
    .map(|(client_id, client_secret)| OidcConfig {
        name: "google".into(),
        issuer: base_url(
            get,
            "EASEL_OAUTH_GOOGLE_ISSUER",
            "https://accounts.google.com",
        ),
        client_id,
        client_secret,
    });
    let github = client_credentials(
        get,
        "EASEL_OAUTH_GITHUB_CLIENT_ID",
        "EASEL_OAUTH_GITHUB_CLIENT_SECRET",
    )?
    .map(|(client_id, client_secret)| GithubConfig {
        base_url: base_url(get, "EASEL_OAUTH_GITHUB_URL", "https://github.com"),
        api_url: base_url(get, "EASEL_OAUTH_GITHUB_API_URL", "https://api.github.com"),
        client_id,
        client_secret,
    });
    let oidc = match client_credentials(get, "EASEL_OIDC_CLIENT_ID", "EASEL_OIDC_CLIENT_SECRET")? {
        None => None,
        Some((client_id, client_secret)) => {
            let need = |name: &str| {
                get(name)
                    .map(|v| v.trim().trim_end_matches('/').to_string())
                    .with_context(|| format!("EASEL_OIDC_CLIENT_ID is set: {name} too"))
            };
            let (name, issuer) = (need("EASEL_OIDC_NAME")?, need("EASEL_OIDC_ISSUER")?);
            let valid = name.len() <= 32
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid || name == "google" || name == "github" {
                bail!(
                    "EASEL_OIDC_NAME must match ^[a-z][a-z0-9_]{{0,31}}$ and not be `google` or `github`, not `{name}`"
                );
            }
            reqwest::Url::parse(&issuer)
                .with_context(|| format!("EASEL_OIDC_ISSUER: `{issuer}` is not a URL"))?;
            Some(OidcConfig {
                name,
                issuer,
                client_id,
                client_secret,
            })
        }
    };
    Ok(OAuthConfig {
        redirect_uris,
        google,
        github,
        oidc,
    })
}

fn parse<T>(get: &impl Fn(&str) -> Option<String>, name: &str, default: &str) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let raw = get(name).unwrap_or_else(|| default.to_string());
    raw.trim()
        .parse()
        .with_context(|| format!("{name}=`{raw}` is not valid"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn providers_allow_list_orders_and_models() {
        let c = config(&[]).unwrap().providers;
        assert_eq!(
            (c.enabled, c.default),
            (vec!["procedural".to_string()], "procedural".to_string())
        );
        // The single-provider variable alone still works as before.
        let c = config(&[("EASEL_PROVIDER", "openai"), ("EASEL_OPENAI_API_KEY", "k")])
            .unwrap()
            .providers;
        assert_eq!(c.enabled, ["openai"]);
        assert_eq!(c.openai.unwrap().models, ["gpt-image-1"]);
        let c = config(&[
            ("EASEL_PROVIDERS", "procedural, openai,replicate"),
            ("EASEL_OPENAI_API_KEY", "k"),
            ("EASEL_OPENAI_MODELS", "dall-e-3"),
            ("EASEL_REPLICATE_API_TOKEN", "r8"),
            ("EASEL_REPLICATE_MODELS", "upscale=a/b, logo=c/d:v1"),
            ("EASEL_PROVIDER_ORDER_UPSCALE", "replicate,procedural"),
        ])
        .unwrap()
        .providers;
        assert_eq!(c.default, "procedural");
        assert_eq!(
            c.orders,
            [(
                "upscale".to_string(),
                vec!["replicate".to_string(), "procedural".to_string()]
            )]
        );
        assert_eq!(c.openai.unwrap().models, ["gpt-image-1", "dall-e-3"]);
        assert_eq!(
            c.replicate.unwrap().models,
            [
                ("upscale".to_string(), "a/b".to_string()),
                ("logo".to_string(), "c/d:v1".to_string())
            ]
        );
        for (vars, want) in [
            (vec![("EASEL_PROVIDERS", "midjourney")], "unknown provider"),
            (
                vec![
                    ("EASEL_PROVIDERS", "procedural"),
                    ("EASEL_PROVIDER", "openai"),
                ],
                "not in EASEL_PROVIDERS",
            ),
            (
                vec![("EASEL_PROVIDER_ORDER_LOGO", "openai")],
                "not in EASEL_PROVIDERS",
            ),
            (vec![("EASEL_PROVIDERS", "openai")], "EASEL_OPENAI_API_KEY"),
            (vec![("EASEL_PROVIDERS", "gemini")], "EASEL_GEMINI_API_KEY"),
            (
                vec![
                    ("EASEL_PROVIDERS", "replicate"),
                    ("EASEL_REPLICATE_API_TOKEN", "r8"),
                    ("EASEL_REPLICATE_MODELS", "upscale:a/b"),
                ],
                "kind=owner/name",
            ),
        ] {
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.contains(want), "{vars:?}: {err}");
        }
    }

    #[test]
    fn defaults_need_no_environment() {
        let c = config(&[]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.env, Environment::Development);
        assert!(c.database_url.is_none());
        assert_eq!(c.embedded_pg_dir(), PathBuf::from("./data/postgres"));
        assert_eq!(c.cors_origins, vec!["*"]);
    }

    #[test]
    fn the_s3_media_store_needs_its_bucket_and_keys() {
        assert!(matches!(
            config(&[]).unwrap().media_store,
            MediaStoreConfig::Local
        ));
        let err = config(&[("EASEL_MEDIA_STORE", "s3")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("EASEL_S3_BUCKET"), "{err}");
        let err = config(&[("EASEL_MEDIA_STORE", "s3"), ("EASEL_S3_BUCKET", "media")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("EASEL_S3_ACCESS_KEY_ID"), "{err}");
        let err = config(&[("EASEL_MEDIA_STORE", "gcs")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("EASEL_MEDIA_STORE"), "{err}");
        let c = config(&[
            ("EASEL_MEDIA_STORE", "s3"),
            ("EASEL_S3_BUCKET", "media"),
            ("EASEL_S3_ENDPOINT", "http://127.0.0.1:9000/"),
            ("EASEL_S3_ACCESS_KEY_ID", "id"),
            ("EASEL_S3_SECRET_ACCESS_KEY", "secret"),
            ("EASEL_S3_PREFIX", "/easel/"),
        ])
        .unwrap();
        let MediaStoreConfig::S3(s3) = c.media_store else {
            panic!("s3 expected")
        };
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(
            (s3.region.as_str(), s3.prefix.as_str()),
            ("us-east-1", "easel/")
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = config(&[("EASEL_BIND", "nowhere")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("EASEL_BIND"), "{err}");
        let err = config(&[("EASEL_WORKER_BIND", "9090")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("EASEL_WORKER_BIND"), "{err}");
        assert_eq!(
            config(&[("EASEL_WORKER_BIND", "0.0.0.0:9090")])
                .unwrap()
                .worker_bind,
            Some("0.0.0.0:9090".parse().unwrap())
        );
        assert_eq!(config(&[]).unwrap().worker_bind, None);
        let err = config(&[("EASEL_ENV", "staging")]).unwrap_err().to_string();
        assert!(err.contains("EASEL_ENV"), "{err}");
        assert!(config(&[("EASEL_DB_POOL_SIZE", "0")]).is_err());
    }

    #[test]
    fn production_refuses_development_defaults() {
        let err = config(&[
            ("EASEL_ENV", "production"),
            ("EASEL_JWT_SECRET", &"k".repeat(40)),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("`log` SMS sender"), "{err}");
        let http = [
            ("EASEL_ENV", "production"),
            ("EASEL_SMS_SENDER", "http"),
            ("EASEL_SMS_HTTP_URL", "https://sms.example/send"),
        ];
        let err = config(&http).unwrap_err().to_string();
        assert!(err.contains("EASEL_JWT_SECRET"), "{err}");
        let secret = "k".repeat(40);
        let mut ok = http.to_vec();
        ok.push(("EASEL_JWT_SECRET", &secret));
        let c = config(&ok).unwrap();
        assert!(
            c.payment_gateways.is_empty(),
            "production enables no gateway by default: {:?}",
            c.payment_gateways
        );
        let stripe_without_keys = [("EASEL_PAYMENT_GATEWAYS", "stripe")];
        assert!(
            config(&stripe_without_keys)
                .unwrap_err()
                .to_string()
                .contains("EASEL_STRIPE_SECRET_KEY")
        );
        assert!(
            config(&[("EASEL_SMS_SENDER", "http")]).is_err(),
            "http sender needs a URL"
        );
    }

    /// The production settings every sandbox case below starts from.
    fn production(extra: &[(&'static str, &'static str)]) -> anyhow::Result<Config> {
        let mut vars = vec![
            ("EASEL_ENV", "production"),
            ("EASEL_SMS_SENDER", "http"),
            ("EASEL_SMS_HTTP_URL", "https://sms.example/send"),
            ("EASEL_JWT_SECRET", "0123456789abcdef0123456789abcdef0123"),
        ];
        vars.extend_from_slice(extra);
        config(&vars)
    }

    #[test]
    fn production_refuses_the_sandbox_without_the_loud_flag() {
        // Listing the sandbox is refused, even with a private secret (the old advice).
        for extra in [
            vec![("EASEL_PAYMENT_GATEWAYS", "sandbox")],
            vec![
                ("EASEL_PAYMENT_GATEWAYS", "sandbox,stripe"),
                ("EASEL_STRIPE_SECRET_KEY", "sk_live_1"),
                ("EASEL_STRIPE_WEBHOOK_SECRET", "whsec_1"),
                ("EASEL_SANDBOX_WEBHOOK_SECRET", "a-private-sandbox-key"),
            ],
        ] {
            let err = production(&extra).unwrap_err().to_string();
            assert!(
                err.contains("refuses the `sandbox` gateway")
                    && err
                        .contains("EASEL_ALLOW_SANDBOX_IN_PRODUCTION=yes-anyone-can-mint-credits"),
                "{err}"
            );
            assert!(
                !err.contains("needs its own EASEL_SANDBOX_WEBHOOK_SECRET"),
                "the message no longer suggests that a secret is enough: {err}"
            );
        }
        // A flag that is not the exact value is an error, not a yes.
        let err = production(&[
            ("EASEL_PAYMENT_GATEWAYS", "sandbox"),
            ("EASEL_ALLOW_SANDBOX_IN_PRODUCTION", "yes"),
            ("EASEL_SANDBOX_WEBHOOK_SECRET", "a-private-sandbox-key"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("must be exactly"), "{err}");
        // The flag still needs a private secret: the development key is public.
        for secret in [None, Some(DEV_SANDBOX_SECRET)] {
            let mut extra = vec![
                ("EASEL_PAYMENT_GATEWAYS", "sandbox"),
                (
                    "EASEL_ALLOW_SANDBOX_IN_PRODUCTION",
                    ALLOW_SANDBOX_IN_PRODUCTION,
                ),
            ];
            extra.extend(secret.map(|s| ("EASEL_SANDBOX_WEBHOOK_SECRET", s)));
            let err = production(&extra).unwrap_err().to_string();
            assert!(
                err.contains("private EASEL_SANDBOX_WEBHOOK_SECRET"),
                "{err}"
            );
        }
        let c = production(&[
            ("EASEL_PAYMENT_GATEWAYS", "sandbox"),
            (
                "EASEL_ALLOW_SANDBOX_IN_PRODUCTION",
                ALLOW_SANDBOX_IN_PRODUCTION,
            ),
            ("EASEL_SANDBOX_WEBHOOK_SECRET", "a-private-sandbox-key"),
        ])
        .unwrap();
        assert_eq!(c.payment_gateways, vec!["sandbox"]);
        assert!(c.allow_sandbox_in_production);
        // Stripe alone is fine, and the default is no gateway at all.
        let c = production(&[
            ("EASEL_PAYMENT_GATEWAYS", "stripe"),
            ("EASEL_STRIPE_SECRET_KEY", "sk_live_1"),
            ("EASEL_STRIPE_WEBHOOK_SECRET", "whsec_1"),
        ])
        .unwrap();
        assert_eq!(c.payment_gateways, vec!["stripe"]);
        assert!(production(&[]).unwrap().payment_gateways.is_empty());
        assert!(
            production(&[("EASEL_PAYMENT_GATEWAYS", "none")])
                .unwrap()
                .payment_gateways
                .is_empty()
        );
        // Development keeps the sandbox by default; `none` switches every gateway off.
        assert_eq!(config(&[]).unwrap().payment_gateways, vec!["sandbox"]);
        assert!(
            config(&[("EASEL_PAYMENT_GATEWAYS", "none")])
                .unwrap()
                .payment_gateways
                .is_empty()
        );
    }

    #[test]
    fn sign_up_limits_and_bonus_gifting_are_configurable() {
        let c = config(&[]).unwrap();
        assert_eq!(c.signup_max_per_hour_per_ip, 10);
        assert!(!c.signup_bonus_giftable_unverified);
        let c = config(&[
            ("EASEL_SIGNUP_MAX_PER_HOUR_PER_IP", "3"),
            ("EASEL_SIGNUP_BONUS_GIFTABLE", "unverified"),
        ])
        .unwrap();
        assert_eq!(c.signup_max_per_hour_per_ip, 3);
        assert!(c.signup_bonus_giftable_unverified);
        assert!(config(&[("EASEL_SIGNUP_MAX_PER_HOUR_PER_IP", "0")]).is_err());
        let err = config(&[("EASEL_SIGNUP_BONUS_GIFTABLE", "always")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("EASEL_SIGNUP_BONUS_GIFTABLE"), "{err}");
    }

    #[test]
    fn referral_rewards_are_configurable() {
        let c = config(&[]).unwrap();
        assert_eq!(
            c.referral,
            ReferralConfig {
                reward: ReferralReward::Credits {
                    referrer: 50,
                    referred: 25
                },
                reward_at_signup: false,
            }
        );
        let c = config(&[
            ("EASEL_REFERRAL_REWARD", "plan_days"),
            ("EASEL_REFERRAL_PLAN", "premium"),
            ("EASEL_REFERRAL_PLAN_DAYS", "14"),
            ("EASEL_REFERRAL_REWARD_ON", "signup"),
        ])
        .unwrap();
        assert_eq!(
            c.referral.reward,
            ReferralReward::PlanDays {
                plan: "premium".into(),
                days: 14
            }
        );
        assert!(c.referral.reward_at_signup);
        let none = config(&[("EASEL_REFERRAL_REWARD", "none")]).unwrap();
        assert_eq!(none.referral.reward, ReferralReward::None);
        for bad in [
            ("EASEL_REFERRAL_REWARD", "cash"),
            ("EASEL_REFERRAL_REWARD_ON", "later"),
            ("EASEL_REFERRAL_REFERRER_CREDITS", "-1"),
        ] {
            let err = config(&[bad]).unwrap_err().to_string();
            assert!(err.contains(bad.0), "{err}");
        }
        assert!(
            config(&[
                ("EASEL_REFERRAL_REWARD", "plan_days"),
                ("EASEL_REFERRAL_PLAN_DAYS", "0")
            ])
            .is_err()
        );
    }

    #[test]
    fn lists_and_urls_are_normalised() {
        let c = config(&[
            (
                "EASEL_CORS_ORIGINS",
                "https://a.example/, https://b.example",
            ),
            ("EASEL_GRAPHIQL_ASSETS_URL", "http://127.0.0.1:9000/assets/"),
        ])
        .unwrap();
        assert_eq!(
            c.cors_origins,
            vec!["https://a.example", "https://b.example"]
        );
        assert_eq!(c.graphiql_assets_url, "http://127.0.0.1:9000/assets");
    }

    #[test]
    fn the_view_window_has_a_default_and_bounds() {
        assert_eq!(config(&[]).unwrap().view_window, Duration::from_secs(3600));
        for bad in ["0", "86401"] {
            let err = config(&[("EASEL_VIEW_WINDOW_SECS", bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("EASEL_VIEW_WINDOW_SECS"), "{err}");
        }
    }

    #[test]
    fn upload_limits_have_defaults_and_bounds() {
        let c = config(&[]).unwrap();
        assert_eq!(c.upload_max_decoded_bytes, 128 << 20);
        assert_eq!(c.upload_max_concurrent_decodes, 2);
        assert_eq!(c.upload_max_per_hour, 200);
        for name in [
            "EASEL_UPLOAD_MAX_DECODED_BYTES",
            "EASEL_UPLOAD_MAX_CONCURRENT_DECODES",
            "EASEL_UPLOAD_MAX_PER_HOUR",
        ] {
            let err = config(&[(name, "0")]).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn retention_has_defaults_and_bounds() {
        let c = config(&[]).unwrap().retention;
        assert_eq!(c.interval, Duration::from_secs(3600));
        assert_eq!((c.batch, c.job_days, c.outbox_days), (1000, 90, 30));
        assert_eq!(
            (c.otp_days, c.session_days, c.chat_deleted_days),
            (1, 30, 30)
        );
        let c = config(&[("EASEL_RETENTION_JOB_DAYS", "7")]).unwrap();
        assert_eq!(c.retention.job_days, 7);
        for (name, bad) in [
            ("EASEL_RETENTION_INTERVAL_SECS", "0"),
            ("EASEL_RETENTION_BATCH", "0"),
            ("EASEL_RETENTION_JOB_DAYS", "0"),
            ("EASEL_RETENTION_OUTBOX_DAYS", "-1"),
            ("EASEL_RETENTION_SESSION_DAYS", "40000"),
        ] {
            let err = config(&[(name, bad)]).unwrap_err().to_string();
            assert!(err.contains("EASEL_RETENTION"), "{name}: {err}");
        }
    }

    #[test]
    fn oauth_providers_need_their_credentials_together() {
        let c = config(&[]).unwrap().oauth;
        assert!(c.google.is_none() && c.github.is_none() && c.oidc.is_none());
        assert!(c.redirect_uris.is_empty());
        // A secret alone (the deployment's empty Secret keys filled in) turns nothing on.
        let c = config(&[("EASEL_OAUTH_GITHUB_CLIENT_SECRET", "hs")])
            .unwrap()
            .oauth;
        assert!(c.github.is_none());
        let c = config(&[
            (
                "EASEL_OAUTH_REDIRECT_URIS",
                "https://app.example/cb, com.example.app:/oauth",
            ),
            ("EASEL_OAUTH_GOOGLE_CLIENT_ID", "g"),
            ("EASEL_OAUTH_GOOGLE_CLIENT_SECRET", "gs"),
            ("EASEL_OAUTH_GITHUB_CLIENT_ID", "h"),
            ("EASEL_OAUTH_GITHUB_CLIENT_SECRET", "hs"),
            ("EASEL_OAUTH_GITHUB_API_URL", "http://127.0.0.1:9/api/"),
            ("EASEL_OIDC_NAME", "acme"),
            ("EASEL_OIDC_ISSUER", "https://id.acme.example/"),
            ("EASEL_OIDC_CLIENT_ID", "a"),
            ("EASEL_OIDC_CLIENT_SECRET", "as"),
        ])
        .unwrap()
        .oauth;
        assert_eq!(
            c.redirect_uris,
            ["https://app.example/cb", "com.example.app:/oauth"]
        );
        assert_eq!(c.google.unwrap().issuer, "https://accounts.google.com");
        let github = c.github.unwrap();
        assert_eq!(
            (github.base_url.as_str(), github.api_url.as_str()),
            ("https://github.com", "http://127.0.0.1:9/api")
        );
        let oidc = c.oidc.unwrap();
        assert_eq!(
            (oidc.name.as_str(), oidc.issuer.as_str()),
            ("acme", "https://id.acme.example")
        );
        for bad in [
            &[("EASEL_OAUTH_GOOGLE_CLIENT_ID", "g")][..],
            &[
                ("EASEL_OIDC_NAME", "acme"),
                ("EASEL_OIDC_CLIENT_ID", "a"),
                ("EASEL_OIDC_CLIENT_SECRET", "s"),
            ],
            &[
                ("EASEL_OIDC_NAME", "google"),
                ("EASEL_OIDC_ISSUER", "https://x.example"),
                ("EASEL_OIDC_CLIENT_ID", "a"),
                ("EASEL_OIDC_CLIENT_SECRET", "s"),
            ],
            &[
                ("EASEL_OIDC_NAME", "Acme!"),
                ("EASEL_OIDC_ISSUER", "https://x.example"),
                ("EASEL_OIDC_CLIENT_ID", "a"),
                ("EASEL_OIDC_CLIENT_SECRET", "s"),
            ],
            &[("EASEL_OAUTH_REDIRECT_URIS", "not a url")],
            &[("EASEL_OAUTH_REDIRECT_URIS", "https://app.example/cb#frag")],
        ] {
            assert!(config(bad).is_err(), "{bad:?}");
        }
    }
}
