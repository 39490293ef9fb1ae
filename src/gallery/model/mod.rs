//! Rows and queries of the gallery capability, one file per concept: images, characters
//! (with likes, ratings and views), the showcase feed, collections and albums. Every SQL
//! statement of the gallery lives in this folder; the keyset and privacy fragments all of
//! them share live here.

mod albums;
mod characters;
mod collections;
mod feed;
mod images;
mod membership;
mod moderation;
mod plan;
mod removal;
mod social;

pub use albums::*;
pub use characters::*;
pub use collections::*;
pub use feed::*;
pub use images::*;
pub use membership::{ALBUM_IMAGES, CHARACTER_IMAGES, COLLECTION_CHARACTERS, Locked, Membership};
pub use moderation::*;
pub use plan::{
    CharacterExtras, CharacterWants, ImageExtras, ImageWants, PlannedCharacter, PlannedImage,
    character_json, job_outputs_json,
};
pub use removal::*;
pub use social::*;

use chrono::{DateTime, Utc};
use diesel::sql_types::Bool;
use uuid::Uuid;

use crate::db::Fragment;

type SqlUuid = diesel::sql_types::Uuid;

/// The sort key (and cursor) of newest-first lists: `(created_at, id)`.
pub type TimeKey = (DateTime<Utc>, Uuid);

/// The sort key (and cursor) of lists in their own order: `(position, id)` of a member in an
/// ordered membership, `(version_number, id)` of a variant.
pub type OrderKey = (i32, Uuid);

/// Who looks: decides which private rows a query may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seer {
    pub user: Option<Uuid>,
    pub admin: bool,
}

impl Seer {
    /// Whether a row owned by `owner` with this visibility may be shown.
    pub fn sees(&self, owner: Uuid, is_public: bool) -> bool {
        is_public || self.admin || self.user == Some(owner)
    }
}

/// `(<table>.is_public OR <table>.owner_id = viewer OR admin)` for any query source.
fn visible(table: &str, seer: Seer) -> Fragment<Bool> {
    Fragment::new(format!("({table}.is_public OR {table}.owner_id = "))
        .maybe_uuid(seer.user)
        .sql(" OR ")
        .bool(seer.admin)
        .sql(")")
}

/// `(<a>, <b>) < ($1, $2)` on a timestamp and an id: the keyset of newest-first lists.
fn before_time(table: &str, column: &str, key: TimeKey) -> Fragment<Bool> {
    Fragment::new(format!("({table}.{column}, {table}.id) < ("))
        .time(key.0)
        .sql(", ")
        .uuid(key.1)
        .sql(")")
}

/// `(<position>, <id column>) > ($1, $2)`: the keyset of lists in their given order.
fn after_position(position: &str, id: &str, key: OrderKey) -> Fragment<Bool> {
    Fragment::new(format!("({position}, {id}) > ("))
        .int(key.0)
        .sql(", ")
        .uuid(key.1)
        .sql(")")
}
