//! Profiles and becoming a vendor.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::{RequestMeta, audit_user, validate_username, with_field};
use crate::{
    AppState,
    accounts::{
        ProfileVisibility, Role,
        model::{self, NewVendorProfile, ProfileChangeset, UserRow, VendorProfileRow},
    },
    db,
    error::{AppError, AppResult},
};

/// Profile changes; `Some(None)` clears an optional field.
#[derive(Debug, Default)]
pub struct ProfileInput {
    pub display_name: Option<Option<String>>,
    pub username: Option<Option<String>>,
    pub bio: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub profile_visibility: Option<ProfileVisibility>,
    pub allow_gallery_showcase: Option<bool>,
    pub preferred_language: Option<String>,
    pub timezone: Option<String>,
}

/// Validates and applies profile changes.
pub async fn update_profile(
    state: &AppState,
    user: Uuid,
    input: ProfileInput,
) -> AppResult<UserRow> {
    let text =
        |v: Option<Option<String>>, field: &str, max: usize| -> AppResult<Option<Option<String>>> {
            v.map(|o| {
                o.map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        if s.chars().count() > max {
                            Err(AppError::bad_input(
                                field,
                                format!("at most {max} characters"),
                            ))
                        } else if s.chars().any(|c| c.is_control() && c != '\n') {
                            Err(AppError::bad_input(
                                field,
                                "control characters are not allowed",
                            ))
                        } else {
                            Ok(s)
                        }
                    })
                    .transpose()
            })
            .transpose()
        };
    let mut changes = ProfileChangeset {
        display_name: text(input.display_name, "input.displayName", 50)?,
        bio: text(input.bio, "input.bio", 500)?,
        username: input
            .username
            .map(|o| {
                o.map(|u| validate_username(&u, "input.username"))
                    .transpose()
            })
            .transpose()?,
        avatar_url: input
            .avatar_url
            .map(|o| o.map(|u| validate_url(&u, "input.avatarUrl")).transpose())
            .transpose()?,
        profile_visibility: input.profile_visibility,
        allow_gallery_showcase: input.allow_gallery_showcase,
        preferred_language: input
            .preferred_language
            .map(|l| validate_language(&l))
            .transpose()?,
        timezone: None,
    };
    let mut conn = db::conn(&state.pool).await?;
    if let Some(tz) = input.timezone {
        let tz = tz.trim().to_string();
        if tz.is_empty() || tz.len() > 64 || !model::timezone_exists(&mut conn, &tz).await? {
            return Err(AppError::bad_input(
                "input.timezone",
                "not an IANA time zone name (e.g. Europe/Berlin)",
            ));
        }
        changes.timezone = Some(tz);
    }
    model::update_profile(&mut conn, user, &changes)
        .await
        .map_err(|e| with_field(e.into(), "input.username", "input.username"))
}

/// The user with this username, if any (usernames are at most 30 characters).
pub async fn user_by_username(state: &AppState, username: &str) -> AppResult<Option<UserRow>> {
    if username.len() > 30 {
        return Ok(None);
    }
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::user_by_username(&mut conn, username).await?)
}

/// A user by id, read at once (no batching window: for root fields that load one user).
pub async fn user_by_id(state: &AppState, id: Uuid) -> AppResult<Option<UserRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::user_by_id(&mut conn, id).await?)
}

/// A user by id, on the caller's connection (inside its transaction).
pub async fn user_by_id_in(conn: &mut AsyncPgConnection, id: Uuid) -> AppResult<Option<UserRow>> {
    Ok(model::user_by_id(conn, id).await?)
}

/// Sets a user's subscription tier inside the caller's transaction (payments calls this
/// whenever a subscription starts, changes plan or ends).
pub async fn set_tier_in(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    tier: crate::accounts::SubscriptionTier,
) -> AppResult<()> {
    model::set_tier(conn, id, tier).await?;
    Ok(())
}

/// Makes the viewer a vendor with a vendor profile (admins keep their role).
pub async fn become_vendor(
    state: &AppState,
    meta: &RequestMeta,
    user_id: Uuid,
    business_name: &str,
    contact_info: serde_json::Value,
    social_links: serde_json::Value,
) -> AppResult<(UserRow, VendorProfileRow)> {
    let name = business_name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_input(
            "input.businessName",
            "1 to 100 characters",
        ));
    }
    for (value, field) in [
        (&contact_info, "input.contactInfo"),
        (&social_links, "input.socialLinks"),
    ] {
        if !value.is_object() || value.to_string().len() > 4096 {
            return Err(AppError::bad_input(field, "an object of at most 4 kB"));
        }
    }
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        let user = model::user_by_id(conn, user_id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        let profile = model::insert_vendor_profile(
            conn,
            &NewVendorProfile {
                user_id,
                business_name: name,
                contact_info: &contact_info,
                social_links: &social_links,
            },
        )
        .await
        .map_err(|e| match AppError::from(e) {
            AppError::Conflict(_) => AppError::Conflict("you are already a vendor".into()),
            other => other,
        })?;
        let user = if user.role == Role::User {
            model::set_role(conn, user_id, Role::Vendor).await?
        } else {
            user
        };
        audit_user(
            conn,
            &user,
            "account.role_changed",
            meta,
            json!({ "role": user.role.as_str(), "vendor": true }),
        )
        .await?;
        Ok((user, profile))
    })
    .await
}

/// Makes `user` a verified vendor inside the caller's transaction (an admin's vendor
/// invite): their vendor profile (made with `becomeVendor`) is marked verified and a `user`
/// becomes a `vendor` (admins keep their role). `Ok(None)` when the user has no vendor
/// profile: nothing changed.
pub async fn verify_vendor_in(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> AppResult<Option<UserRow>> {
    if !model::verify_vendor_profile(conn, user_id).await? {
        return Ok(None);
    }
    let user = model::user_by_id(conn, user_id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let user = if user.role == Role::User {
        model::set_role(conn, user_id, Role::Vendor).await?
    } else {
        user
    };
    audit_user(
        conn,
        &user,
        "account.role_changed",
        &RequestMeta::default(),
        json!({ "role": user.role.as_str(), "vendor": true, "verified": true }),
    )
    .await?;
    Ok(Some(user))
}

fn validate_url(url: &str, field: &str) -> AppResult<String> {
    let url = url.trim();
    let parsed =
        reqwest::Url::parse(url).map_err(|_| AppError::bad_input(field, "not a valid URL"))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || url.len() > 2048
    {
        return Err(AppError::bad_input(
            field,
            "an http(s) URL of at most 2048 characters",
        ));
    }
    Ok(parsed.to_string())
}

fn validate_language(lang: &str) -> AppResult<String> {
    let lang = lang.trim();
    let mut parts = lang.splitn(2, '-');
    let primary = parts.next().unwrap_or_default();
    let ok = (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_lowercase())
        && parts.next().is_none_or(|r| {
            (2..=8).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if !ok {
        return Err(AppError::bad_input(
            "input.preferredLanguage",
            "a language tag such as `en` or `pt-BR`",
        ));
    }
    Ok(lang.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_inputs_are_validated() {
        assert!(validate_url("https://cdn.example/a.png", "a").is_ok());
        for bad in [
            "javascript:alert(1)",
            "ftp://x.io/a",
            "not a url",
            "https://",
        ] {
            assert!(validate_url(bad, "a").is_err(), "{bad}");
        }
        assert!(validate_language("pt-BR").is_ok() && validate_language("en").is_ok());
        assert!(validate_language("english").is_err() && validate_language("EN").is_err());
    }
}
