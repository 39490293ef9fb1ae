//! `easel bench gallery`: seeds a realistic gallery (2,000 users, 50,000 characters,
//! 150,000 images), drives `galleryFeed` over real HTTP at a fixed concurrency against
//! `easel serve` in a child process, then runs `pgbench` at the same concurrency on the same
//! database twice: with one hand-written statement that returns the same page (the limit no
//! resolver design can beat), and with the 5 statements of the dataloader path.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use uuid::Uuid;

use super::{
    Run, count, measure, ms, percentile,
    server::{ServerEnv, ServerProcess, mib},
};
use crate::{
    config::Config,
    db,
    gallery::{
        model::CHARACTER_IMAGES_SQL,
        service::{self, CharacterRow, FeedOrder, FeedRequest},
    },
    server::{self, Database},
};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Seconds each side runs.
    pub seconds: u64,
    /// Concurrent clients (HTTP clients and pgbench clients alike).
    pub concurrency: usize,
    /// Characters per feed page.
    pub first: i64,
    /// The pgbench binary.
    pub pgbench: String,
    /// pgbench's query protocol (`-M`): `simple` (each statement parsed and planned every
    /// time, as Easel's dynamically built statements are), `extended` or `prepared`.
    pub pgbench_protocol: String,
    /// More server configurations to measure over HTTP, one row each: the environment
    /// variables (`NAME=value`) the child server gets on top of the benchmark's (e.g.
    /// `EASEL_QUERY_PLANNER=false`).
    pub variants: Vec<Vec<(String, String)>>,
}

pub(super) const FEED: &str = "query Feed($n: Int) { galleryFeed(first: $n) { edges { cursor node { id name styleType likeCount owner { id username displayName } primaryImage { url thumbnailUrl width height } images(first: 4) { id thumbnailUrl } averageRating } } pageInfo { hasNextPage endCursor } } }";

/// Runs the gallery benchmark on the configured database (embedded by default).
pub async fn gallery(config: Config, options: BenchOptions) -> anyhow::Result<()> {
    let database = Database::open(&config).await?;
    let result = run(config, &database.url, &options).await;
    database.close().await;
    result
}

async fn run(config: Config, url: &str, o: &BenchOptions) -> anyhow::Result<()> {
    let log = config.data_dir.join("bench-server.log");
    let mut env = ServerEnv::default();
    env.set("EASEL_DB_POOL_SIZE", config.db_pool_size.max(o.concurrency))
        // The queue stays as it is: no job may be claimed during the run.
        .set("EASEL_WORKERS", 0)
        .set("EASEL_SHUTDOWN_GRACE_SECS", 5);

    let state = server::app_state(config, url)?;
    let mut conn = db::conn(&state.pool)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    let have = seeded_characters(&mut conn).await?;
    if have < 50_000 {
        println!("seeding 2,000 users, 50,000 characters, 150,000 images ...");
        let started = Instant::now();
        seed(&mut conn, 2_000, 50_000).await?;
        println!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    }
    let newest = FeedRequest {
        style_type: None,
        tags: vec![],
        featured: None,
        search: None,
        order: FeedOrder::Newest,
        featured_first: false,
    };
    let page: Vec<CharacterRow> = service::feed(
        &state,
        &newest,
        None,
        o.first,
        &service::CharacterWants::default(),
        service::Seer::default(),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.message()))?
    .into_iter()
    .map(|(row, _)| row)
    .collect();
    let script = pgbench_script(&page, o.first);
    let one = one_statement(o.first);

    println!();
    println!(
        "galleryFeed(first: {}) with owner, primaryImage, images(first: 4), averageRating; concurrency {}, {} s each",
        o.first, o.concurrency, o.seconds
    );
    println!(
        "server: `easel serve` in a child process (log: {}), environment: {}",
        log.display(),
        env.describe()
    );
    println!(
        "pgbench: {} clients, {} threads, -M {}, on the same database",
        o.concurrency,
        pgbench_threads(o),
        o.pgbench_protocol
    );

    // Easel over HTTP, once per server configuration.
    let body = json!({ "query": FEED, "variables": { "n": o.first } }).to_string();
    let mut easel = vec![http_phase("Easel over HTTP", url, &env, &log, &body, o).await?];
    for variant in &o.variants {
        let name = variant
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        easel.push(
            http_phase(
                &format!("Easel over HTTP, {name}"),
                url,
                &env.with(variant),
                &log,
                &body,
                o,
            )
            .await?,
        );
    }

    // The one statement must answer the same page as Easel did.
    let limit_page = one_statement_page(&mut conn, &one).await?;
    drop(conn);
    anyhow::ensure!(
        limit_page.len() as i64 == o.first + 1 && limit_page.iter().all(|(_, n)| *n <= 4),
        "the one statement returned {} characters (not first + 1 = {}) or more than 4 images for one: {limit_page:?}",
        limit_page.len(),
        o.first + 1
    );
    let limit_ids: Vec<String> = limit_page.into_iter().map(|(id, _)| id).collect();
    for row in &easel {
        anyhow::ensure!(
            limit_ids[..o.first as usize] == row.ids[..],
            "the one statement's page differs from {}'s:\n{:?}\n{:?}",
            row.name,
            &limit_ids[..o.first as usize],
            row.ids
        );
    }

    let scratch = pgbench_scratch(&state.config.data_dir)?;
    let limit = pgbench(o, url, &one, &scratch).await?;
    let loader = pgbench(o, url, &script, &scratch).await?;
    let _ = std::fs::remove_dir_all(&scratch);

    println!();
    println!("| what | requests/s | p50 ms | p99 ms | errors | SQL statements/request |");
    println!("|---|---|---|---|---|---|");
    for row in &easel {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {:.2} |",
            row.name,
            row.rps(),
            ms(row.run.p50),
            ms(row.run.p99),
            row.run.errors,
            row.statements
        );
    }
    for (name, p) in [
        ("pgbench, one statement (the limit)", &limit),
        (
            &*format!(
                "pgbench, the loader path's {} statements",
                script.lines().count()
            ),
            &loader,
        ),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {} | {} |",
            p.tps,
            ms(p.p50),
            ms(p.p99),
            p.failed,
            p.statements
        );
    }
    for row in &easel {
        let who = row.name.replacen("Easel over HTTP", "Easel", 1);
        println!(
            "| {who} / one statement | {:.2} | | {:.2} | | |",
            row.rps() / limit.tps,
            ms(row.run.p99) / ms(limit.p99).max(f64::MIN_POSITIVE)
        );
        println!(
            "| {who} / loader path's statements | {:.2} | | {:.2} | | |",
            row.rps() / loader.tps,
            ms(row.run.p99) / ms(loader.p99).max(f64::MIN_POSITIVE)
        );
    }
    println!();
    for row in &easel {
        println!(
            "server peak RSS: {:.1} MiB ({}; its idle background, {:.1} SQL statements/s, is not counted above)",
            mib(row.peak_rss),
            row.name,
            row.idle_rate
        );
    }
    println!(
        "(ratio rows: requests/s over tps, and p99 over p99; pgbench p50/p99 from its per-transaction log)"
    );
    Ok(())
}

/// Where pgbench writes its per-transaction logs (removed afterwards).
pub(super) fn pgbench_scratch(data_dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let dir = data_dir.join(format!("bench-pgbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// One "Easel over HTTP" row.
struct HttpRow {
    name: String,
    run: Run,
    /// SQL statements per successful request.
    statements: f64,
    /// The server's peak RSS, in bytes.
    peak_rss: u64,
    /// SQL statements per second the idle server ran on its own (subtracted).
    idle_rate: f64,
    /// The character ids of the page, in order.
    ids: Vec<String>,
}

impl HttpRow {
    fn rps(&self) -> f64 {
        self.run.ok as f64 / self.run.elapsed.as_secs_f64()
    }
}

/// The HTTP phase for one server configuration: starts `easel serve` with `env`, checks one
/// answer, measures `galleryFeed` from `o.concurrency` clients for `o.seconds` (after a
/// 2-second warm-up), reads the server's peak RSS and stops it.
async fn http_phase(
    name: &str,
    url: &str,
    env: &ServerEnv,
    log: &Path,
    body: &str,
    o: &BenchOptions,
) -> anyhow::Result<HttpRow> {
    let server = ServerProcess::start(url, env, log).await?;
    let result = async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(o.concurrency)
            .build()?;
        let check: serde_json::Value = client
            .post(format!("http://{}/graphql", server.addr()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?
            .json()
            .await?;
        let edges = check["data"]["galleryFeed"]["edges"]
            .as_array()
            .with_context(|| format!("unexpected answer: {check}"))?;
        anyhow::ensure!(edges.len() as i64 == o.first, "a short page: {check}");
        let ids = edges
            .iter()
            .map(|e| e["node"]["id"].as_str().map(str::to_string))
            .collect::<Option<Vec<String>>>()
            .with_context(|| format!("a node without id: {check}"))?;
        let (run, statements) = measure(
            &server,
            &client,
            &[(body.to_string(), None)],
            o.concurrency,
            (Duration::from_secs(2), Duration::from_secs(o.seconds)),
        )
        .await?;
        Ok((run, statements, ids))
    }
    .await;
    let idle_rate = server.idle_rate();
    let peak_rss = server.stop().await?;
    let (run, statements, ids) = result?;
    Ok(HttpRow {
        name: name.to_string(),
        statements: statements as f64 / run.ok.max(1) as f64,
        run,
        peak_rss,
        idle_rate,
        ids,
    })
}

/// pgbench's threads (`-j`): one per core, at most one per client.
fn pgbench_threads(o: &BenchOptions) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    cores.min(o.concurrency)
}

/// What a pgbench run measured.
pub(super) struct Pgbench {
    pub(super) tps: f64,
    pub(super) p50: Duration,
    pub(super) p99: Duration,
    /// Failed transactions (pgbench 15 reports them).
    pub(super) failed: u64,
    /// Statements per transaction (lines of the script).
    statements: usize,
}

/// Runs `script` with pgbench at `o.concurrency` clients for `o.seconds`, with a
/// per-transaction log (`-l`) in `scratch`, from which p50 and p99 are read (its third
/// column is the latency in microseconds).
pub(super) async fn pgbench(
    o: &BenchOptions,
    url: &str,
    script: &str,
    scratch: &Path,
) -> anyhow::Result<Pgbench> {
    let file = scratch.join("script.sql");
    std::fs::write(&file, script)?;
    let prefix = scratch.join("pgb");
    let output = tokio::process::Command::new(&o.pgbench)
        .args(["-n", "-c", &o.concurrency.to_string()])
        .args(["-j", &pgbench_threads(o).to_string()])
        .args([
            "-T",
            &o.seconds.to_string(),
            "-M",
            &o.pgbench_protocol,
            "-l",
        ])
        .arg(format!("--log-prefix={}", prefix.display()))
        .arg("-f")
        .arg(&file)
        .arg(url)
        .output()
        .await
        .with_context(|| format!("running {}", o.pgbench))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let tps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .with_context(|| {
            format!(
                "no tps in pgbench output:\n{text}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    let failed = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("number of failed transactions: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(scratch)? {
        let path = entry?.path();
        let is_log = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pgb."));
        if !is_log {
            continue;
        }
        let log = std::fs::read_to_string(&path)?;
        latencies.extend(
            log.lines()
                .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
                .map(Duration::from_micros),
        );
        std::fs::remove_file(&path)?;
    }
    std::fs::remove_file(&file)?;
    anyhow::ensure!(
        !latencies.is_empty(),
        "pgbench wrote no per-transaction log under {}",
        scratch.display()
    );
    latencies.sort();
    Ok(Pgbench {
        tps,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        failed,
        statements: script.lines().count(),
    })
}

// ---- the data set ------------------------------------------------------------------------

/// How many benchmark characters exist (named `Character <n>`).
pub(super) async fn seeded_characters(conn: &mut AsyncPgConnection) -> anyhow::Result<i64> {
    count(
        conn,
        "SELECT count(*) AS n FROM characters WHERE name LIKE 'Character %' AND prompt = 'bench'",
    )
    .await
}

/// Seeds the benchmark data set in bulk: `users` users, `characters` characters (90 %
/// public, spread over the users and the ten styles), three images each (the first is the
/// primary image) and one rating each.
pub(super) async fn seed(
    conn: &mut AsyncPgConnection,
    users: i64,
    characters: i64,
) -> anyhow::Result<()> {
    let statements = [
        format!(
            "INSERT INTO users (id, phone, username, referral_code, created_at) \
             SELECT gen_random_uuid(), '+1999' || lpad(g::text, 8, '0'), 'bench_' || g, \
                    'BENCH' || g, now() - g * interval '1 minute' \
             FROM generate_series(1, {users}) g ON CONFLICT DO NOTHING"
        ),
        format!(
            "WITH u AS (SELECT array_agg(id ORDER BY id) AS a FROM users \
                        WHERE referral_code LIKE 'BENCH%') \
             INSERT INTO characters (id, owner_id, name, description, prompt, style_type, tags, \
                                     is_public, published_at, like_count, view_count, created_at) \
             SELECT gen_random_uuid(), u.a[1 + g % array_length(u.a, 1)], 'Character ' || g, \
                    'benchmark character number ' || g, 'bench', \
                    (ARRAY['anime','realistic','cartoon','fantasy','cyberpunk','steampunk', \
                           'minimalist','comic','portrait','artistic'])[1 + g % 10], \
                    ARRAY['tag' || (g % 50), 'set' || (g % 7)], g % 10 <> 0, now(), \
                    g % 997, g % 7919, now() - g * interval '7 seconds' \
             FROM generate_series(1, {characters}) g, u"
        ),
        "INSERT INTO images (id, owner_id, kind, storage_key, mime_type, byte_size, width, \
                             height, thumbnail_key, is_public) \
         SELECT gen_random_uuid(), c.owner_id, 'upload', 'bench/' || c.id || '/' || k || '.png', \
                'image/png', 250000, 1024, 1024, \
                'bench/' || c.id || '/' || k || '_thumb.jpg', true \
         FROM characters c, generate_series(0, 2) k WHERE c.prompt = 'bench'"
            .to_string(),
        "INSERT INTO character_images (character_id, image_id, position) \
         SELECT split_part(storage_key, '/', 2)::uuid, id, \
                split_part(split_part(storage_key, '/', 3), '.', 1)::int \
         FROM images WHERE storage_key LIKE 'bench/%'"
            .to_string(),
        "UPDATE characters c SET primary_image_id = ci.image_id FROM character_images ci \
         WHERE ci.character_id = c.id AND ci.position = 0 AND c.prompt = 'bench'"
            .to_string(),
        "WITH u AS (SELECT array_agg(id ORDER BY id) AS a FROM users \
                    WHERE referral_code LIKE 'BENCH%') \
         INSERT INTO character_ratings (id, character_id, user_id, rating) \
         SELECT gen_random_uuid(), c.id, u.a[1 + (hashtext(c.id::text) & 1023)], \
                1 + (hashtext(c.name) & 3) \
         FROM characters c, u WHERE c.prompt = 'bench' ON CONFLICT DO NOTHING"
            .to_string(),
        "ANALYZE".to_string(),
    ];
    for sql in statements {
        diesel::sql_query(sql).execute(conn).await?;
    }
    Ok(())
}

fn uuid_array(ids: impl IntoIterator<Item = Uuid>) -> String {
    let list: Vec<String> = ids.into_iter().map(|i| i.to_string()).collect();
    format!("'{{{}}}'::uuid[]", list.join(","))
}

/// The SQL a `galleryFeed(first: N)` page with owner, primary image, first 4 images and
/// average rating runs (anonymous viewer), for pgbench: the feed statement, then the four
/// loader statements with the page's ids inlined.
fn pgbench_script(page: &[CharacterRow], first: i64) -> String {
    let characters = uuid_array(page.iter().map(|c| c.id));
    let owners = uuid_array(page.iter().map(|c| c.owner_id));
    let primaries = uuid_array(page.iter().filter_map(|c| c.primary_image_id));
    let images = CHARACTER_IMAGES_SQL
        .replace("$1", &characters)
        .replace("$2", "NULL::uuid")
        .replace("$3", "false")
        .replace("$4", "4");
    format!(
        "SELECT characters.* FROM characters INNER JOIN users ON users.id = characters.owner_id \
         WHERE characters.is_public = true AND users.allow_gallery_showcase = true \
         AND users.account_status = 'active' \
         ORDER BY characters.created_at DESC, characters.id DESC LIMIT {limit};\n\
         SELECT id, phone, email, username, display_name, avatar_url, bio, role, subscription_tier, \
         account_status, phone_verified_at, email_verified_at, preferred_language, timezone, \
         profile_visibility, allow_gallery_showcase, referral_code, last_login_at, created_at \
         FROM users WHERE id = ANY({owners});\n\
         SELECT id, owner_id, job_id, kind, storage_key, mime_type, byte_size, width, height, \
         thumbnail_key, is_public, tags, created_at FROM images WHERE id = ANY({primaries});\n\
         {images};\n\
         SELECT character_id, avg(rating)::float8, count(*) FROM character_ratings \
         WHERE character_id = ANY({characters}) GROUP BY character_id;\n",
        limit = first + 1,
    )
}

/// ONE statement that returns the page `galleryFeed(first: N)` answers an anonymous viewer
/// (plus one character for `hasNextPage`), with everything the benchmark's query selects: the
/// feed's filter and order, the owner, the primary image when public, the average rating
/// (with the rating count), and the first 4 public images by position.
///
/// The images come as rows (a character with k visible images gives k rows, at least one),
/// not as a `json_agg` array per character: building the JSON made the statement's execution
/// about 20 % slower on the seeded data set (0.92 against 0.76 ms a statement for one pgbench
/// client with `-M prepared`; at 32 clients with the simple protocol, where planning takes
/// more than half of the time, rows were 1 to 18 % faster in four pairs of runs). The price is that
/// every character and owner column repeats on each of a character's rows (63 rows instead of
/// 21 for 20 characters with three images each), which costs nothing measurable on a local
/// socket. The page is taken first (`LIMIT N + 1` in a subquery, the plan walking
/// `characters_public_created_at_idx` in order), so the lateral subqueries run only for its
/// characters.
fn one_statement(first: i64) -> String {
    format!(
        "SELECT page.*, f.id AS image_id, f.thumbnail_key AS image_thumbnail_key \
         FROM (SELECT c.id, c.name, c.style_type, c.like_count, c.created_at, \
         u.id AS owner_id, u.username, u.display_name, \
         p.storage_key AS primary_storage_key, p.thumbnail_key AS primary_thumbnail_key, \
         p.width AS primary_width, p.height AS primary_height, \
         r.average_rating, r.rating_count \
         FROM characters c \
         JOIN users u ON u.id = c.owner_id \
         LEFT JOIN images p ON p.id = c.primary_image_id AND p.is_public \
         LEFT JOIN LATERAL (\
         SELECT avg(cr.rating)::float8 AS average_rating, count(*) AS rating_count \
         FROM character_ratings cr WHERE cr.character_id = c.id) r ON true \
         WHERE c.is_public = true AND u.allow_gallery_showcase = true \
         AND u.account_status = 'active' \
         ORDER BY c.created_at DESC, c.id DESC LIMIT {limit}) page \
         LEFT JOIN LATERAL (\
         SELECT i.id, i.thumbnail_key, ci.position \
         FROM character_images ci JOIN images i ON i.id = ci.image_id \
         WHERE ci.character_id = page.id AND i.is_public \
         ORDER BY ci.position, ci.image_id LIMIT 4) f ON true \
         ORDER BY page.created_at DESC, page.id DESC, f.position, f.id;\n",
        limit = first + 1,
    )
}

#[derive(diesel::QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// The characters [`one_statement`] returns, in order (the statement as pgbench runs it),
/// each with its number of rows (its images, at least one).
async fn one_statement_page(
    conn: &mut AsyncPgConnection,
    statement: &str,
) -> anyhow::Result<Vec<(String, usize)>> {
    let rows: Vec<IdRow> = diesel::sql_query(statement.trim_end().trim_end_matches(';'))
        .load(conn)
        .await
        .context("running the one statement")?;
    let mut page: Vec<(String, usize)> = Vec::new();
    for row in rows {
        let id = row.id.to_string();
        match page.last_mut() {
            Some((last, n)) if *last == id => *n += 1,
            _ => page.push((id, 1)),
        }
    }
    Ok(page)
}
