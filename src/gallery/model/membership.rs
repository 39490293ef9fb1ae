//! Ordered memberships: a parent row with a list of members, kept in order by a dense
//! `position` (0, 1, 2, ... with no gaps), and on some parents a counter column kept equal to
//! the number of members. One implementation serves the three lists of the gallery: the
//! characters of a collection, the images of an album and the images of a character.
//!
//! A list is changed only through [`Locked`], which [`Membership::lock`] hands out after
//! locking the parent row: changes to one list are serialised until the transaction ends, so
//! positions and the counter stay exact under concurrent requests.

use diesel::{
    prelude::*,
    sql_types::{Array, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// Where an ordered list lives. The names are constants of this module, never input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// The membership table: `(<parent>, <member>, position)`, keyed by parent and member.
    table: &'static str,
    parent: &'static str,
    member: &'static str,
    /// The parent table (keyed by `id`).
    parent_table: &'static str,
    /// The parent's column counting the members, when it has one.
    counter: Option<&'static str>,
}

/// The characters of a collection (`collections.character_count` counts them).
pub const COLLECTION_CHARACTERS: Membership = Membership {
    table: "collection_characters",
    parent: "collection_id",
    member: "character_id",
    parent_table: "collections",
    counter: Some("character_count"),
};

/// The images of an album (`albums.image_count` counts them).
pub const ALBUM_IMAGES: Membership = Membership {
    table: "album_images",
    parent: "album_id",
    member: "image_id",
    parent_table: "albums",
    counter: Some("image_count"),
};

/// The images of a character (no counter).
pub const CHARACTER_IMAGES: Membership = Membership {
    table: "character_images",
    parent: "character_id",
    member: "image_id",
    parent_table: "characters",
    counter: None,
};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

impl Membership {
    /// Locks the parent row until the transaction ends and returns its list; `None` when
    /// there is no such parent.
    pub async fn lock(
        self,
        conn: &mut AsyncPgConnection,
        parent: Uuid,
    ) -> QueryResult<Option<Locked>> {
        let found: Vec<Id> =
            diesel::sql_query(self.sql("SELECT id FROM {parent_table} WHERE id = $1 FOR UPDATE"))
                .bind::<SqlUuid, _>(parent)
                .load(conn)
                .await?;
        Ok((!found.is_empty()).then_some(Locked { list: self, parent }))
    }

    /// `template` with this list's names in place of `{table}`, `{parent}`, `{member}`,
    /// `{parent_table}` and `{counter}`.
    fn sql(&self, template: &str) -> String {
        template
            .replace("{table}", self.table)
            .replace("{parent_table}", self.parent_table)
            .replace("{parent}", self.parent)
            .replace("{member}", self.member)
            .replace("{counter}", self.counter.unwrap_or_default())
    }
}

/// The list of one parent whose row is locked by this transaction.
#[derive(Debug, Clone, Copy)]
pub struct Locked {
    list: Membership,
    parent: Uuid,
}

/// `ids` without repeats, first occurrence first.
fn distinct(ids: &[Uuid]) -> Vec<Uuid> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(id) {
            out.push(*id);
        }
    }
    out
}

impl Locked {
    /// The members, in order.
    pub async fn members(&self, conn: &mut AsyncPgConnection) -> QueryResult<Vec<Uuid>> {
        self.ids(
            conn,
            "SELECT {member} AS id FROM {table} WHERE {parent} = $1 ORDER BY position, {member}",
            &[],
        )
        .await
    }

    /// Which of `ids` are not members yet, in the order given, without repeats.
    pub async fn absent(
        &self,
        conn: &mut AsyncPgConnection,
        ids: &[Uuid],
    ) -> QueryResult<Vec<Uuid>> {
        self.ids(
            conn,
            "SELECT x.id FROM unnest($2::uuid[]) WITH ORDINALITY AS x(id, n) \
             WHERE NOT EXISTS (SELECT 1 FROM {table} m WHERE m.{parent} = $1 AND m.{member} = x.id) \
             ORDER BY x.n",
            &distinct(ids),
        )
        .await
    }

    /// Appends the ids that are not members yet at the end, in the order given; returns how
    /// many were added.
    pub async fn append(&self, conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<usize> {
        let added = self.insert_new(conn, ids).await?;
        if added > 0 {
            self.recount(conn).await?;
        }
        Ok(added)
    }

    /// Takes members out and closes the gaps they leave; returns how many were removed.
    pub async fn remove(&self, conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<usize> {
        let removed = self
            .run(
                conn,
                "DELETE FROM {table} WHERE {parent} = $1 AND {member} = ANY($2)",
                ids,
            )
            .await?;
        if removed > 0 {
            self.run(
                conn,
                "UPDATE {table} m SET position = r.n - 1 \
                 FROM (SELECT {member} AS id, \
                              row_number() OVER (ORDER BY position, {member}) AS n \
                       FROM {table} WHERE {parent} = $1) r \
                 WHERE m.{parent} = $1 AND m.{member} = r.id AND m.position <> r.n - 1",
                &[],
            )
            .await?;
            self.recount(conn).await?;
        }
        Ok(removed)
    }

    /// Makes `ids` the whole list, in this order.
    pub async fn replace(&self, conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<()> {
        self.run(conn, "DELETE FROM {table} WHERE {parent} = $1", &[])
            .await?;
        self.insert_new(conn, ids).await?;
        self.recount(conn).await
    }

    /// Puts the members in the order of `order`, which names each of them exactly once (the
    /// caller checks it against [`Locked::members`]): `order[i]` gets position `i`.
    pub async fn reorder(&self, conn: &mut AsyncPgConnection, order: &[Uuid]) -> QueryResult<()> {
        self.run(
            conn,
            "UPDATE {table} m SET position = x.n - 1 \
             FROM unnest($2::uuid[]) WITH ORDINALITY AS x(id, n) \
             WHERE m.{parent} = $1 AND m.{member} = x.id",
            order,
        )
        .await?;
        Ok(())
    }

    /// Inserts the ids that are not members yet after the last member, densely, in the order
    /// given (the counter is left to the caller); returns how many were inserted.
    async fn insert_new(&self, conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<usize> {
        self.run(
            conn,
            "INSERT INTO {table} ({parent}, {member}, position) \
             SELECT $1, x.id, \
                    (SELECT coalesce(max(position) + 1, 0) FROM {table} WHERE {parent} = $1) \
                    + row_number() OVER (ORDER BY x.n) - 1 \
             FROM unnest($2::uuid[]) WITH ORDINALITY AS x(id, n) \
             WHERE NOT EXISTS \
                 (SELECT 1 FROM {table} m WHERE m.{parent} = $1 AND m.{member} = x.id)",
            &distinct(ids),
        )
        .await
    }

    /// Sets the parent's counter, if it has one, to the number of members.
    async fn recount(&self, conn: &mut AsyncPgConnection) -> QueryResult<()> {
        if self.list.counter.is_some() {
            self.run(
                conn,
                "UPDATE {parent_table} \
                 SET {counter} = (SELECT count(*) FROM {table} WHERE {parent} = $1) \
                 WHERE id = $1",
                &[],
            )
            .await?;
        }
        Ok(())
    }

    /// Runs a statement of this list (binds: the parent, `ids`); returns the rows it touched.
    async fn run(
        &self,
        conn: &mut AsyncPgConnection,
        template: &str,
        ids: &[Uuid],
    ) -> QueryResult<usize> {
        diesel::sql_query(self.list.sql(template))
            .bind::<SqlUuid, _>(self.parent)
            .bind::<Array<SqlUuid>, _>(ids)
            .execute(conn)
            .await
    }

    /// Loads the ids a query of this list selects (binds: the parent, `ids`).
    async fn ids(
        &self,
        conn: &mut AsyncPgConnection,
        template: &str,
        ids: &[Uuid],
    ) -> QueryResult<Vec<Uuid>> {
        let rows: Vec<Id> = diesel::sql_query(self.list.sql(template))
            .bind::<SqlUuid, _>(self.parent)
            .bind::<Array<SqlUuid>, _>(ids)
            .load(conn)
            .await?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }
}
