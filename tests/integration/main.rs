//! One integration test binary (one link step), a module per capability. Every test gets
//! its own database cloned from a migrated template in a throwaway PostgreSQL cluster.

mod support;

mod accounts;
mod admin;
mod architecture;
mod chat;
mod credits;
mod data_export;
mod data_rights;
mod deploy;
mod email;
mod foundation;
mod fuzz;
mod gallery;
mod generation;
mod growth;
mod js_clients;
mod oauth;
mod operability;
mod outage;
mod pgbouncer;
mod planner;
mod protocol;
mod providers;
mod replica;
mod security;
mod security_gallery;
mod security_payments;
mod shutdown;
mod subscriptions;
mod websocket;
