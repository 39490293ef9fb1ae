//! GraphQL of what users manage about their own account beyond the profile: `Session`
//! (`User.sessions`), `revokeSession` and `updateVendorProfile`.

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::{
    accounts::{
        graphql::User,
        guards::{Authenticated, require_user},
        model::UserRow,
        service::{self, RequestMeta, VendorProfileInput},
    },
    graphql::{ContextExt, parse_id},
};

/// An active session: one sign-in on one device, kept alive by refreshing it.
#[derive(SimpleObject)]
pub struct Session {
    /// Stable identifier (pass it to `revokeSession`).
    id: ID,
    /// The `User-Agent` of the client's last sign-in or refresh, if it sent one.
    user_agent: Option<String>,
    /// The client IP of the last sign-in or refresh, if known.
    ip: Option<String>,
    /// When the user signed in.
    created_at: DateTime<Utc>,
    /// The last sign-in or refresh of the session.
    last_used_at: DateTime<Utc>,
    /// Whether this is the session of the request's access token.
    current: bool,
}

/// The active sessions of `user`, for the user themself only (null for anyone else).
pub async fn sessions_of(
    ctx: &Context<'_>,
    user: &UserRow,
) -> async_graphql::Result<Option<Vec<Session>>> {
    let Some(viewer) = ctx.viewer().user().filter(|v| v.id == user.id) else {
        return Ok(None);
    };
    let sessions = service::list_sessions(ctx.state()?, user.id).await?;
    Ok(Some(
        sessions
            .into_iter()
            .map(|s| Session {
                id: ID(s.id.to_string()),
                user_agent: s.user_agent,
                ip: s.ip.map(|ip| ip.addr().to_string()),
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                current: s.id == viewer.session_id,
            })
            .collect(),
    ))
}

/// Input of `updateVendorProfile`: omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateVendorProfileInput {
    /// The name shown on the vendor's albums, 1 to 100 characters.
    business_name: Option<String>,
    /// A JSON object of at most 4 kB, e.g. `{"email": "shop@example.com"}`.
    contact_info: Option<Json<serde_json::Value>>,
    /// A JSON object of at most 4 kB, e.g. `{"instagram": "https://instagram.com/shop"}`.
    social_links: Option<Json<serde_json::Value>>,
}

fn meta(ctx: &Context<'_>) -> RequestMeta {
    ctx.data_opt::<RequestMeta>().cloned().unwrap_or_default()
}

/// Session and vendor-profile mutations.
#[derive(Default)]
pub struct SelfServiceMutation;

#[Object]
impl SelfServiceMutation {
    /// Ends one of the viewer's sessions (see `me.sessions`): its refresh token and access
    /// tokens stop working at once. An id that is not an active session of the viewer is
    /// `NOT_FOUND`.
    #[graphql(guard = "Authenticated")]
    async fn revoke_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The session's `id`, from `me.sessions`.")] id: ID,
    ) -> async_graphql::Result<bool> {
        let viewer = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(service::revoke_session(ctx.state()?, &meta(ctx), viewer, id).await?)
    }

    /// Changes the viewer's vendor profile (vendors only: `FORBIDDEN` for others), with the
    /// rules of `becomeVendor`.
    #[graphql(guard = "Authenticated")]
    async fn update_vendor_profile(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: UpdateVendorProfileInput,
    ) -> async_graphql::Result<User> {
        let viewer = require_user(ctx)?;
        let (user, _) = service::update_vendor_profile(
            ctx.state()?,
            &meta(ctx),
            viewer.id,
            VendorProfileInput {
                business_name: input.business_name,
                contact_info: input.contact_info.map(|j| j.0),
                social_links: input.social_links.map(|j| j.0),
            },
        )
        .await?;
        Ok(User::new(user))
    }
}
