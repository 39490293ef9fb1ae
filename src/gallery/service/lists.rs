//! The rules of the lists their owners edit (a collection's characters, an album's images),
//! written once for both: the parent is seen or not as any row, only its owner (or an admin)
//! changes it, every change runs under the parent's row lock, and a new order names every
//! member exactly once. The SQL is [`Membership`]'s.

use diesel::QueryResult;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::{ids, owns, seer_of};
use crate::{
    AppState,
    accounts::viewer::ViewerUser,
    db,
    error::{AppError, AppResult},
    gallery::model::{Locked, Membership, Seer},
};

/// A parent row whose owner edits an ordered list of members.
pub(super) trait Listed: Sized + Send {
    /// Where its members are.
    const MEMBERS: Membership;
    /// What it is called in `NOT_FOUND` errors.
    const NOUN: &'static str;
    /// The `FORBIDDEN` message to others than its owner.
    const OWNER_ONLY: &'static str;

    /// The row by id, whoever may see it.
    fn find(
        conn: &mut AsyncPgConnection,
        id: Uuid,
    ) -> impl Future<Output = QueryResult<Option<Self>>> + Send;

    /// Its owner and whether everyone may see it.
    fn owner(&self) -> (Uuid, bool);
}

/// The parent when `seer` may see it.
pub(super) async fn visible<P: Listed>(
    state: &AppState,
    seer: Seer,
    id: Uuid,
) -> AppResult<Option<P>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(P::find(&mut conn, id).await?.filter(|p| {
        let (owner, public) = p.owner();
        seer.sees(owner, public)
    }))
}

/// A parent the user may change: `NOT_FOUND` when they may not see it, `FORBIDDEN` when they
/// see it but neither own it nor are an admin.
pub(super) async fn own<P: Listed>(
    conn: &mut AsyncPgConnection,
    user: &ViewerUser,
    id: Uuid,
) -> AppResult<P> {
    let row = P::find(conn, id)
        .await?
        .ok_or(AppError::NotFound(P::NOUN))?;
    let (owner, public) = row.owner();
    if !seer_of(user).sees(owner, public) {
        return Err(AppError::NotFound(P::NOUN));
    }
    if !owns(user, owner) {
        return Err(AppError::Forbidden(P::OWNER_ONLY.into()));
    }
    Ok(row)
}

/// The parent's list, locked until the transaction ends.
pub(super) async fn lock<P: Listed>(conn: &mut AsyncPgConnection, id: Uuid) -> AppResult<Locked> {
    P::MEMBERS
        .lock(conn, id)
        .await?
        .ok_or(AppError::NotFound(P::NOUN))
}

/// The parent as it stands (after a change, with its counter).
pub(super) async fn reload<P: Listed>(conn: &mut AsyncPgConnection, id: Uuid) -> AppResult<P> {
    P::find(conn, id).await?.ok_or(AppError::NotFound(P::NOUN))
}

/// Takes members out of one of the user's lists (ids not in it are ignored).
pub(super) async fn remove<P: Listed>(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    members: &[Uuid],
    field: &str,
) -> AppResult<P> {
    let wanted = ids(members, field)?;
    let mut conn = db::conn(&state.pool).await?;
    own::<P>(&mut conn, user, id).await?;
    conn.transaction(async move |conn| {
        lock::<P>(conn, id).await?.remove(conn, &wanted).await?;
        reload(conn, id).await
    })
    .await
}

/// Puts one of the user's lists in a new order: `order` lists every member exactly once
/// (else `BAD_USER_INPUT` on `field`).
pub(super) async fn reorder<P: Listed>(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    order: &[Uuid],
    field: &str,
) -> AppResult<P> {
    let mut conn = db::conn(&state.pool).await?;
    own::<P>(&mut conn, user, id).await?;
    let order = order.to_vec();
    let field = field.to_string();
    conn.transaction(async move |conn| {
        let list = lock::<P>(conn, id).await?;
        let members = list.members(conn).await?;
        check_order(&order, &members, &field)?;
        list.reorder(conn, &order).await?;
        reload(conn, id).await
    })
    .await
}

/// Checks that `order` names every member exactly once.
fn check_order(order: &[Uuid], members: &[Uuid], field: &str) -> AppResult<()> {
    let mut a = order.to_vec();
    let mut b = members.to_vec();
    a.sort();
    b.sort();
    if a != b {
        return Err(AppError::bad_input(
            field,
            "list every item exactly once, in the new order",
        ));
    }
    Ok(())
}
