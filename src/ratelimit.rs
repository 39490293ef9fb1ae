//! Fixed-window rate limits counted in `rate_limits`, so a limit holds across every server
//! process sharing the database.

use std::time::Duration;

use diesel::{
    QueryableByName,
    sql_types::{BigInt, Double, Integer, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::error::AppError;

#[derive(QueryableByName)]
struct Hit {
    #[diesel(sql_type = Integer)]
    count: i32,
    #[diesel(sql_type = Double)]
    retry_after: f64,
}

/// Counts one event against `key` in the current window of `window`; refuses with
/// `RATE_LIMITED` (and how long until the window ends) once `max` is passed.
pub async fn hit(
    conn: &mut AsyncPgConnection,
    key: &str,
    window: Duration,
    max: i64,
) -> Result<(), AppError> {
    let secs = window.as_secs().max(1) as i64;
    let row: Hit = diesel::sql_query(
        "WITH w AS (SELECT to_timestamp(floor(extract(epoch FROM now()) / $2) * $2) AS start) \
         INSERT INTO rate_limits (key, window_start, count) SELECT $1, w.start, 1 FROM w \
         ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + 1 \
         RETURNING count, extract(epoch FROM (window_start + make_interval(secs => $2) - now()))::float8 AS retry_after",
    )
    .bind::<Text, _>(key)
    .bind::<BigInt, _>(secs)
    .get_result(conn)
    .await?;
    if i64::from(row.count) > max {
        return Err(AppError::RateLimited {
            retry_after_seconds: row.retry_after.ceil().max(1.0) as u64,
        });
    }
    Ok(())
}

/// Drops windows that ended long ago (called now and then by the server).
pub async fn prune(conn: &mut AsyncPgConnection) -> diesel::QueryResult<usize> {
    diesel::sql_query("DELETE FROM rate_limits WHERE window_start < now() - interval '2 days'")
        .execute(conn)
        .await
}
