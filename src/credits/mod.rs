//! Credits: the ledger is the truth. This module is the only code that writes
//! `credit_accounts` and `credit_transactions`.

pub mod model;
