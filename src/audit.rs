//! The append-only audit log: who did what, from where.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ipnet::IpNet;
use uuid::Uuid;

use crate::db::schema::audit_logs;

/// One audit entry.
pub struct AuditEntry<'a> {
    pub actor_id: Option<Uuid>,
    /// `system`, `user`, `vendor` or `admin`.
    pub actor_type: &'a str,
    pub action: &'a str,
    pub resource: Option<&'a str>,
    pub resource_id: Option<String>,
    pub ip: Option<IpNet>,
    pub metadata: serde_json::Value,
}

pub async fn record(conn: &mut AsyncPgConnection, entry: AuditEntry<'_>) -> QueryResult<()> {
    diesel::insert_into(audit_logs::table)
        .values((
            audit_logs::id.eq(Uuid::now_v7()),
            audit_logs::actor_id.eq(entry.actor_id),
            audit_logs::actor_type.eq(entry.actor_type),
            audit_logs::action.eq(entry.action),
            audit_logs::resource.eq(entry.resource),
            audit_logs::resource_id.eq(entry.resource_id),
            audit_logs::ip.eq(entry.ip),
            audit_logs::metadata.eq(entry.metadata),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Records an admin's change (inside the change's transaction).
pub async fn admin(
    conn: &mut AsyncPgConnection,
    admin: Uuid,
    action: &str,
    resource: &str,
    resource_id: String,
    metadata: serde_json::Value,
) -> QueryResult<()> {
    record(
        conn,
        AuditEntry {
            actor_id: Some(admin),
            actor_type: "admin",
            action,
            resource: Some(resource),
            resource_id: Some(resource_id),
            ip: None,
            metadata,
        },
    )
    .await
}
