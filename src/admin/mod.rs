//! Admin tools: figures about the service (`adminStats`), finding users (`adminUsers`),
//! reading the audit log (`auditLog`), and the admin mutations `setCharacterFeatured`,
//! `verifyVendor` and `setUserRole` (each audited). Moderation of reported content is in
//! [`crate::moderation`].

pub mod graphql;
pub mod model;
pub mod service;
