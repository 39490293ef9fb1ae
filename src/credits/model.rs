//! Rows and queries of the credit ledger.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::schema::{credit_accounts, credit_transactions};

/// Opens a user's credit account with the sign-up bonus: the balance and its ledger row are
/// written together (call inside the sign-up transaction).
pub async fn open_account(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    signup_bonus: i64,
) -> QueryResult<()> {
    diesel::insert_into(credit_accounts::table)
        .values((
            credit_accounts::user_id.eq(user),
            credit_accounts::balance.eq(signup_bonus),
            credit_accounts::total_earned.eq(signup_bonus),
            credit_accounts::last_transaction_at.eq((signup_bonus > 0).then(chrono::Utc::now)),
        ))
        .execute(conn)
        .await?;
    if signup_bonus > 0 {
        diesel::insert_into(credit_transactions::table)
            .values((
                credit_transactions::id.eq(Uuid::now_v7()),
                credit_transactions::user_id.eq(user),
                credit_transactions::kind.eq("signup_bonus"),
                credit_transactions::amount.eq(signup_bonus),
                credit_transactions::balance_after.eq(signup_bonus),
                credit_transactions::description.eq("Welcome bonus"),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// A user's balance (None without an account).
pub async fn balance(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<Option<i64>> {
    credit_accounts::table
        .find(user)
        .select(credit_accounts::balance)
        .first(conn)
        .await
        .optional()
}
