//! The gallery's rules: validation, ownership, privacy, and every multi-row change in one
//! transaction (counts move in the transaction that adds or removes the row they count).
//! One file per concept, as in the model; the checks they share live here. Resolvers call
//! these functions (and the loaders), never the model; so does generation ([`generation`]).

mod albums;
mod characters;
mod collections;
mod feed;
mod generation;
mod images;
mod lists;
pub mod moderation;
mod removal;
mod social;

pub use albums::*;
pub use characters::*;
pub use collections::*;
pub use feed::*;
pub use generation::*;
pub use images::*;
pub use removal::*;
pub use social::*;

/// The rows and list keys the functions here take and return (the API wraps the rows).
pub use super::model::{
    AlbumRow, CharacterExtras, CharacterRow, CharacterWants, CollectionRow, DeletedObjects,
    FeedKey, FeedOrder, ImageExtras, ImageRow, ImageWants, OrderKey, PlannedCharacter,
    PlannedImage, Seer, TimeKey, character_json, job_outputs_json,
};

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::model::Tenths;
use crate::{
    accounts::{Role, viewer::ViewerUser},
    error::{AppError, AppResult},
};

/// Most images one character, album change or collection change may name.
pub const MAX_IDS: usize = 50;

/// The seer a signed-in user is.
pub fn seer_of(user: &ViewerUser) -> Seer {
    Seer {
        user: Some(user.id),
        admin: user.role == Role::Admin,
    }
}

fn owns(user: &ViewerUser, owner: Uuid) -> bool {
    user.id == owner || user.role == Role::Admin
}

// ---- validation -------------------------------------------------------------------------

/// Trims and checks a text: `min..=max` characters, no control characters but newlines.
pub fn text(value: &str, field: &str, min: usize, max: usize) -> AppResult<String> {
    let v = value.trim();
    let n = v.chars().count();
    if n < min || n > max {
        return Err(AppError::bad_input(
            field,
            if min > 0 {
                format!("{min} to {max} characters")
            } else {
                format!("at most {max} characters")
            },
        ));
    }
    if v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::bad_input(
            field,
            "control characters are not allowed",
        ));
    }
    Ok(v.to_string())
}

/// An optional text; blank becomes `None`.
pub fn opt_text(value: Option<&str>, field: &str, max: usize) -> AppResult<Option<String>> {
    value
        .map(|v| text(v, field, 0, max))
        .transpose()
        .map(|v| v.filter(|s| !s.is_empty()))
}

/// Tags: at most 20, each 1 to 40 characters, lower-cased, duplicates dropped.
pub fn tags(values: &[String], field: &str) -> AppResult<Vec<String>> {
    if values.len() > 20 {
        return Err(AppError::bad_input(field, "at most 20 tags"));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for v in values {
        let t = v.trim().to_lowercase();
        if t.is_empty() || t.chars().count() > 40 {
            return Err(AppError::bad_input(
                field,
                "each tag has 1 to 40 characters",
            ));
        }
        if t.chars().any(|c| c.is_control() || c == ',') {
            return Err(AppError::bad_input(
                field,
                "tags may not hold commas or control characters",
            ));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// A colour palette: at most 12 colours as `#RRGGBB`, stored upper-case.
pub fn palette(values: &[String]) -> AppResult<Vec<String>> {
    if values.len() > 12 {
        return Err(AppError::bad_input(
            "input.colorPalette",
            "at most 12 colours",
        ));
    }
    values
        .iter()
        .map(|c| {
            let c = c.trim();
            let ok =
                c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit());
            if ok {
                Ok(c.to_ascii_uppercase())
            } else {
                Err(AppError::bad_input(
                    "input.colorPalette",
                    "colours are hex codes like #1A2B3C",
                ))
            }
        })
        .collect()
}

/// A CFG scale: 1.0 to 30.0 in steps of 0.1.
pub fn cfg_scale(value: f64) -> AppResult<Tenths> {
    let tenths = (value * 10.0).round();
    if !value.is_finite()
        || !(10.0..=300.0).contains(&tenths)
        || (value * 10.0 - tenths).abs() > 1e-6
    {
        return Err(AppError::bad_input(
            "input.generation.cfgScale",
            "between 1.0 and 30.0, with at most one decimal",
        ));
    }
    Ok(Tenths(tenths as i32))
}

/// Sampling steps: 1 to 150.
pub fn steps(value: i32) -> AppResult<i32> {
    if (1..=150).contains(&value) {
        Ok(value)
    } else {
        Err(AppError::bad_input(
            "input.generation.steps",
            "between 1 and 150",
        ))
    }
}

/// Ids: at most [`MAX_IDS`], repeats dropped (first occurrence first).
fn ids(values: &[Uuid], field: &str) -> AppResult<Vec<Uuid>> {
    if values.len() > MAX_IDS {
        return Err(AppError::bad_input(field, format!("at most {MAX_IDS} ids")));
    }
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(v) {
            out.push(*v);
        }
    }
    Ok(out)
}

/// An optional change of an optional text: `None` leaves it, `Some(None)` clears it.
fn opt_opt(
    v: Option<Option<String>>,
    field: &str,
    max: usize,
) -> AppResult<Option<Option<String>>> {
    v.map(|o| opt_text(o.as_deref(), field, max)).transpose()
}

/// Checks that every image belongs to the user (else `BAD_USER_INPUT` on `field`).
async fn check_images(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    wanted: &[Uuid],
    field: &str,
) -> AppResult<()> {
    if !wanted.is_empty() && !owns_images(conn, owner, wanted).await? {
        return Err(AppError::bad_input(field, "no such image of yours"));
    }
    Ok(())
}

/// Checks a new cover image (one of the owner's images), when one is given.
async fn check_cover(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    cover: Option<Option<Uuid>>,
) -> AppResult<()> {
    if let Some(Some(c)) = cover {
        check_images(conn, owner, &[c], "input.coverImageId").await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn field(e: AppError) -> String {
        match e {
            AppError::BadUserInput { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn views_are_keyed_by_user_else_address() {
        let user = Uuid::now_v7();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            viewer_key(Some(user), ip("10.0.0.1")),
            format!("user:{user}")
        );
        assert_eq!(viewer_key(None, ip("203.0.113.7")), "ip:203.0.113.7");
        assert_eq!(viewer_key(None, ip("::ffff:203.0.113.7")), "ip:203.0.113.7");
        assert_eq!(
            viewer_key(None, ip("2001:db8:1:2:aaaa::1")),
            viewer_key(None, ip("2001:db8:1:2:bbbb::2")),
            "one /64 is one viewer"
        );
        assert_eq!(
            viewer_key(None, ip("2001:db8:1:2::1")),
            "ip:2001:db8:1:2::/64"
        );
        assert_ne!(
            viewer_key(None, ip("2001:db8:1:3::1")),
            viewer_key(None, ip("2001:db8:1:2::1"))
        );
        assert_eq!(viewer_key(None, None), "ip:unknown");
    }

    #[test]
    fn character_fields_are_checked() {
        assert_eq!(cfg_scale(7.5).unwrap(), Tenths(75));
        assert_eq!(cfg_scale(1.0).unwrap(), Tenths(10));
        assert_eq!(cfg_scale(30.0).unwrap(), Tenths(300));
        for bad in [0.9, 30.1, 7.55, f64::NAN] {
            assert_eq!(
                field(cfg_scale(bad).unwrap_err()),
                "input.generation.cfgScale"
            );
        }
        assert!(steps(150).is_ok() && steps(0).is_err() && steps(151).is_err());
        assert_eq!(
            palette(&["#a1b2c3".into()]).unwrap(),
            vec!["#A1B2C3".to_string()]
        );
        assert!(palette(&["red".into()]).is_err());
        assert_eq!(
            tags(&[" Cat ".into(), "cat".into()], "input.tags").unwrap(),
            vec!["cat"]
        );
        assert!(tags(&vec!["x".to_string(); 21], "input.tags").is_err());
        assert!(tags(&["a".repeat(41)], "input.tags").is_err());
        assert_eq!(
            field(text("  ", "input.name", 1, 200).unwrap_err()),
            "input.name"
        );
    }
}
