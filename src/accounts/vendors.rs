//! Vendors' free gallery quota: how many more images a vendor without a running plan may put
//! in albums (`vendor_profiles.free_gallery_remaining`). The gallery spends it, inside the
//! transaction that adds the images, so a refused addition takes nothing.

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::model;
use crate::error::AppResult;

/// What taking from the quota came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// The images were taken from the quota.
    Taken,
    /// Fewer remain than asked for (nothing was taken); this many do.
    Short { remaining: i32 },
}

/// Takes `n` images of `user`'s free gallery quota, on the caller's connection (in its
/// transaction); all or nothing. A user without a vendor profile has none.
pub async fn take_free_gallery(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    n: i32,
) -> AppResult<Quota> {
    if model::take_free_gallery(conn, user, n).await? {
        return Ok(Quota::Taken);
    }
    let remaining = model::free_gallery_remaining(conn, user).await?;
    Ok(Quota::Short { remaining })
}
