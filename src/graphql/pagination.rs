//! Relay connections with opaque keyset cursors.
//!
//! A capability's model loads `limit + 1` rows ordered by its sort key and filtered with
//! `WHERE (key...) < (cursor...)`; [`connection`] turns them into a Relay connection whose
//! cursors encode the sort key of each row. Cursors are opaque to clients (base64url JSON)
//! and stay valid while new rows arrive, because they name a position, not an offset.

use async_graphql::{
    OutputType,
    connection::{Connection, CursorType, Edge, OpaqueCursor},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::AppError;

/// The page size when a client gives no `first`.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
/// The largest `first` a client may ask for.
pub const MAX_PAGE_SIZE: i64 = 100;

/// A validated page request: how many rows, and after which sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<K> {
    /// Rows to return (the model loads one more to learn whether a next page exists).
    pub first: i64,
    /// The sort key of the last row of the previous page.
    pub after: Option<K>,
}

impl<K: Serialize + DeserializeOwned + Send + Sync> Page<K> {
    /// Validates `first` (1..=100) and decodes `after`.
    pub fn new(first: Option<i32>, after: Option<String>) -> Result<Self, AppError> {
        let first = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if n < 0 => {
                return Err(AppError::bad_input("first", "first must not be negative"));
            }
            Some(n) if i64::from(n) > MAX_PAGE_SIZE => {
                return Err(AppError::bad_input(
                    "first",
                    format!("first may be at most {MAX_PAGE_SIZE}"),
                ));
            }
            Some(n) => i64::from(n),
        };
        let after = after
            .map(|c| {
                OpaqueCursor::<K>::decode_cursor(&c)
                    .map(|c| c.0)
                    .map_err(|_| {
                        AppError::bad_input("after", "after is not a cursor from this list")
                    })
            })
            .transpose()?;
        Ok(Page { first, after })
    }

    /// How many rows the model should load.
    pub fn limit(&self) -> i64 {
        self.first + 1
    }
}

/// Builds a connection from up to `page.limit()` rows in list order; `key` gives each row's
/// sort key, which becomes its cursor.
pub fn connection<K, N>(
    page: &Page<K>,
    mut rows: Vec<N>,
    key: impl Fn(&N) -> K,
) -> Connection<OpaqueCursor<K>, N>
where
    K: Serialize + DeserializeOwned + Send + Sync,
    N: OutputType,
{
    let has_next = rows.len() as i64 > page.first;
    rows.truncate(page.first as usize);
    let mut conn = Connection::new(page.after.is_some(), has_next);
    conn.edges.extend(
        rows.into_iter()
            .map(|n| Edge::new(OpaqueCursor(key(&n)), n)),
    );
    conn
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    use uuid::Uuid;

    type Key = (DateTime<Utc>, Uuid);

    #[test]
    fn first_is_bounded() {
        assert_eq!(
            Page::<Key>::new(None, None).unwrap().first,
            DEFAULT_PAGE_SIZE
        );
        assert_eq!(Page::<Key>::new(Some(100), None).unwrap().limit(), 101);
        for bad in [-1, 101] {
            let err = Page::<Key>::new(Some(bad), None).unwrap_err();
            assert!(matches!(err, AppError::BadUserInput { ref field, .. } if field == "first"));
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let key: Key = (
            Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap(),
            Uuid::now_v7(),
        );
        let cursor = OpaqueCursor(key).encode_cursor();
        assert!(
            !cursor.contains(&key.1.to_string()),
            "cursor is opaque: {cursor}"
        );
        let page = Page::<Key>::new(Some(5), Some(cursor)).unwrap();
        assert_eq!(page.after, Some(key));
        for garbage in ["", "not base64!", "bm90IGpzb24", "WzEsMl0"] {
            let err = Page::<Key>::new(None, Some(garbage.into())).unwrap_err();
            assert!(matches!(err, AppError::BadUserInput { ref field, .. } if field == "after"));
        }
    }

    #[test]
    fn connection_reports_next_page_from_the_extra_row() {
        let page = Page::<i64> {
            first: 3,
            after: None,
        };
        let full = connection(&page, vec![10i64, 9, 8, 7], |n| *n);
        assert!(full.has_next_page);
        assert_eq!(
            full.edges.iter().map(|e| e.node).collect::<Vec<_>>(),
            vec![10, 9, 8]
        );
        assert_eq!(full.edges.last().unwrap().cursor.0, 8);
        let last = connection(&page, vec![2i64, 1], |n| *n);
        assert!(!last.has_next_page);
        assert_eq!(last.edges.len(), 2);
    }
}
