//! The gallery benchmark's data set and pgbench script.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{CHARACTER_IMAGES_SQL, CharacterRow};
use crate::db::schema::characters;

/// How many benchmark characters exist (named `Character <n>`).
pub async fn bench_characters(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    characters::table
        .filter(characters::name.like("Character %"))
        .filter(characters::prompt.eq("bench"))
        .count()
        .get_result(conn)
        .await
}

/// Seeds the benchmark data set in bulk: `users` users, `characters` characters (90 %
/// public, spread over the users and the ten styles), three images each (the first is the
/// primary image) and one rating each.
pub async fn bench_seed(
    conn: &mut AsyncPgConnection,
    users: i64,
    characters: i64,
) -> QueryResult<()> {
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
pub fn bench_pgbench_script(page: &[CharacterRow], first: i64) -> String {
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
