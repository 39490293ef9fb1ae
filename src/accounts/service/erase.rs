//! Deleting an account, the accounts part: the confirmation, and the tombstone (personal
//! fields erased, every session revoked). `rights::service::delete_account` runs it with the
//! rest of the account's data in one transaction.

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::sessions::revoke;
use crate::{
    accounts::{model, password},
    error::{AppError, AppResult},
};

/// What a user types to confirm deleting their account.
pub const DELETE_CONFIRMATION: &str = "DELETE";

/// Checks `deleteAccount`'s confirmation: `confirm` must be `DELETE`, and an account with a
/// password must give it (`BAD_USER_INPUT` on `input.confirm` / `input.password`). Locks the
/// user row until the transaction ends; `NOT_FOUND` when the account is already deleted.
pub async fn confirm_deletion_in(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    confirm: &str,
    given_password: Option<&str>,
) -> AppResult<()> {
    if confirm != DELETE_CONFIRMATION {
        return Err(AppError::bad_input(
            "input.confirm",
            format!("type {DELETE_CONFIRMATION} to delete your account"),
        ));
    }
    let (_, hash) = model::lock_live_user(conn, user)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    if let Some(hash) = hash {
        let Some(given) = given_password else {
            return Err(AppError::bad_input(
                "input.password",
                "give your password to delete your account",
            ));
        };
        if !password::verify(given.to_string(), Some(hash)).await? {
            return Err(AppError::bad_input("input.password", "wrong password"));
        }
    }
    Ok(())
}

/// Turns the user into a tombstone (see [`model::erase_user`]) and revokes every session in
/// the caller's transaction; returns the session families to hand to
/// `state.revocations.revoke` once it committed, and the phone/email it held.
pub async fn erase_in(
    conn: &mut AsyncPgConnection,
    user: Uuid,
) -> AppResult<(Vec<Uuid>, Vec<String>)> {
    let families = revoke(conn, user, None).await?;
    let destinations = model::erase_user(conn, user).await?;
    Ok((families, destinations))
}
