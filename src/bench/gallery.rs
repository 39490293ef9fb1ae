//! `easel bench gallery`: seeds a realistic gallery (2,000 users, 50,000 characters,
//! 150,000 images), drives `galleryFeed` over real HTTP at a fixed concurrency, then runs
//! `pgbench` with the same statements at the same concurrency on the same database.

use std::time::{Duration, Instant};

use anyhow::Context;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use uuid::Uuid;

use super::{count, measure};
use crate::{
    config::Config,
    db,
    gallery::{
        model::CHARACTER_IMAGES_SQL,
        service::{self, CharacterRow, FeedOrder, FeedRequest},
    },
    http,
    server::{self, Database},
};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub seconds: u64,
    pub concurrency: usize,
    pub first: i64,
    pub pgbench: String,
}

const FEED: &str = "query Feed($n: Int) { galleryFeed(first: $n) { edges { cursor node { id name styleType likeCount owner { id username displayName } primaryImage { url thumbnailUrl width height } images(first: 4) { id thumbnailUrl } averageRating } } pageInfo { hasNextPage endCursor } } }";

/// Runs the gallery benchmark on the configured database (embedded by default).
pub async fn gallery(config: Config, options: BenchOptions) -> anyhow::Result<()> {
    let database = Database::open(&config).await?;
    let result = run(config, &database.url, &options).await;
    database.close().await;
    result
}

async fn run(mut config: Config, url: &str, o: &BenchOptions) -> anyhow::Result<()> {
    config.db_pool_size = config.db_pool_size.max(o.concurrency);
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
    drop(conn);
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

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(http::serve::serve(
        listener,
        http::router(state.clone()),
        http::serve::ServeOptions::from_config(&state.config),
        std::future::pending(),
    ));
    let endpoint = format!("http://{addr}/graphql");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.concurrency)
        .build()?;
    let body = json!({ "query": FEED, "variables": { "n": o.first } }).to_string();

    // Warm up connections and caches, and check the answer once.
    let check: serde_json::Value = client
        .post(&endpoint)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await?
        .json()
        .await?;
    let edges = check["data"]["galleryFeed"]["edges"]
        .as_array()
        .with_context(|| format!("unexpected answer: {check}"))?;
    anyhow::ensure!(edges.len() as i64 == o.first, "a short page: {check}");
    let (run, statements) = measure(
        &state,
        &client,
        &endpoint,
        &[(body, None)],
        o.concurrency,
        (Duration::from_secs(2), Duration::from_secs(o.seconds)),
    )
    .await?;
    server.abort();

    let file = std::env::temp_dir().join(format!("easel-bench-{}.sql", std::process::id()));
    std::fs::write(&file, &script)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let output = tokio::process::Command::new(&o.pgbench)
        .args(["-n", "-c", &o.concurrency.to_string()])
        .args(["-j", &threads.min(o.concurrency).to_string()])
        .args(["-T", &o.seconds.to_string(), "-f"])
        .arg(&file)
        .arg(url)
        .output()
        .await
        .with_context(|| format!("running {}", o.pgbench))?;
    let _ = std::fs::remove_file(&file);
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

    let rps = run.ok as f64 / run.elapsed.as_secs_f64();
    println!();
    println!(
        "galleryFeed(first: {}) with owner, primaryImage, images(first: 4), averageRating; concurrency {}, {} s",
        o.first, o.concurrency, o.seconds
    );
    println!("| what | requests/s | p50 ms | p99 ms | errors | SQL statements/request |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| Easel over HTTP | {rps:.0} | {:.2} | {:.2} | {} | {:.2} |",
        run.p50.as_secs_f64() * 1e3,
        run.p99.as_secs_f64() * 1e3,
        run.errors,
        statements as f64 / run.ok.max(1) as f64
    );
    println!(
        "| pgbench, same {} statements | {tps:.0} | | | | {} |",
        script.lines().count(),
        script.lines().count()
    );
    println!("| Easel / pgbench | {:.2} | | | | |", rps / tps);
    Ok(())
}

// ---- the data set ------------------------------------------------------------------------

/// How many benchmark characters exist (named `Character <n>`).
async fn seeded_characters(conn: &mut AsyncPgConnection) -> anyhow::Result<i64> {
    count(
        conn,
        "SELECT count(*) AS n FROM characters WHERE name LIKE 'Character %' AND prompt = 'bench'",
    )
    .await
}

/// Seeds the benchmark data set in bulk: `users` users, `characters` characters (90 %
/// public, spread over the users and the ten styles), three images each (the first is the
/// primary image) and one rating each.
async fn seed(conn: &mut AsyncPgConnection, users: i64, characters: i64) -> anyhow::Result<()> {
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
