//! GraphQL types and root fields of growth: admin invite tokens and `redeemInvite`. (The
//! referral fields of `User` are in [`super::referrals`].)

use async_graphql::{
    Context, ID, InputObject, Object, SimpleObject,
    connection::{Connection, OpaqueCursor},
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    InviteTokenStatus,
    model::InviteRow,
    service::{self, InviteSpec},
};
use crate::{
    accounts::{
        Role,
        graphql::User,
        guards::{Authenticated, HasRole, require_user},
    },
    graphql::{
        ContextExt,
        pagination::{Page, connection},
        parse_id,
    },
};

/// An invite token as admins see it (never its text, which is shown once, at creation).
pub struct InviteToken(pub InviteRow);

/// An invite token: what it grants, how often it may be used, and how often it was.
#[Object]
impl InviteToken {
    /// Stable identifier (what `revokeInviteToken` takes).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Whether it can still be redeemed, and if not, why.
    async fn status(&self) -> InviteTokenStatus {
        self.0.status()
    }

    /// How many users may redeem it.
    async fn max_uses(&self) -> i32 {
        self.0.max_uses
    }

    /// How many users redeemed it.
    async fn use_count(&self) -> i32 {
        self.0.use_count
    }

    /// Credits each redeemer gets (a `BONUS` ledger entry).
    async fn credits(&self) -> i64 {
        self.0.credits
    }

    /// The plan whose days each redeemer gets.
    async fn plan_id(&self) -> Option<ID> {
        self.0.plan_id.map(|id| ID(id.to_string()))
    }

    /// Days of `planId` each redeemer gets (0 for none).
    async fn plan_days(&self) -> i32 {
        self.0.plan_days
    }

    /// The role each redeemer gets (`VENDOR`: a verified vendor), if any.
    async fn role(&self) -> Option<Role> {
        self.0.role.as_deref().and_then(Role::from_db)
    }

    /// The admin's note (shown in the redeemer's ledger entry).
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }

    /// When it stops working (null: never).
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }

    /// When it was revoked.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }

    /// The admin who created it.
    async fn created_by(&self) -> ID {
        ID(self.0.referrer_id.to_string())
    }

    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it was last redeemed.
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.used_at
    }
}

/// Input of `createInviteToken`: give at least one of `credits`, `planId` + `planDays`,
/// `role`.
#[derive(InputObject)]
pub struct CreateInviteTokenInput {
    /// How many users may redeem it, 1 (default) to 1000000; each user once.
    max_uses: Option<i32>,
    /// Credits each redeemer gets, 0 to 1000000000.
    credits: Option<i64>,
    /// A plan on sale whose days each redeemer gets (with `planDays`).
    plan_id: Option<ID>,
    /// Days of `planId`, 1 to 3650.
    plan_days: Option<i32>,
    /// `VENDOR` makes each redeemer a verified vendor (they need a vendor profile from
    /// `becomeVendor` first). No other role can be given.
    role: Option<Role>,
    /// Up to 500 characters, for admins and in the redeemer's ledger entry ("Invite: ...").
    note: Option<String>,
    /// When it stops working (a future time; none: never).
    expires_at: Option<DateTime<Utc>>,
}

/// A new invite token.
#[derive(SimpleObject)]
pub struct CreateInviteTokenPayload {
    /// The token text to hand out (`XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`). Shown only now: the
    /// server keeps only its SHA-256.
    token: String,
    /// The invite as `inviteTokens` lists it.
    invite: InviteToken,
}

/// What redeeming an invite gave the viewer.
#[derive(SimpleObject)]
pub struct RedeemInvitePayload {
    /// Credits added to the balance (a `BONUS` ledger entry), 0 for none.
    credits: i64,
    /// The plan whose days were given.
    plan_id: Option<ID>,
    /// Days of `planId` given, 0 for none.
    plan_days: i32,
    /// The role given (`VENDOR`), if any. Access tokens carry the role: call
    /// `refreshSession` to get one that says so.
    role: Option<Role>,
    /// The viewer after the redemption.
    user: User,
}

/// Growth queries.
#[derive(Default)]
pub struct GrowthQuery;

#[Object]
impl GrowthQuery {
    /// Admin: every invite token, newest first.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn invite_tokens(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> async_graphql::Result<Connection<OpaqueCursor<(DateTime<Utc>, Uuid)>, InviteToken>> {
        let page = Page::<(DateTime<Utc>, Uuid)>::new(first, after)?;
        let rows = service::invites(ctx.state()?, page.after, page.limit()).await?;
        Ok(connection(
            &page,
            rows.into_iter().map(InviteToken).collect(),
            |t| (t.0.created_at, t.0.id),
        ))
    }
}

/// Growth mutations.
#[derive(Default)]
pub struct GrowthMutation;

#[Object]
impl GrowthMutation {
    /// Admin: creates an invite token carrying credits, days of a plan and/or the vendor
    /// role, for `maxUses` users. The answer holds the token text, shown only this once.
    /// Audit-logged.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn create_invite_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: CreateInviteTokenInput,
    ) -> async_graphql::Result<CreateInviteTokenPayload> {
        let admin = require_user(ctx)?;
        let plan_id = input
            .plan_id
            .as_ref()
            .map(|id| parse_id(id, "input.planId"))
            .transpose()?;
        let spec = InviteSpec {
            max_uses: input.max_uses,
            credits: input.credits,
            plan_id,
            plan_days: input.plan_days,
            role: input.role,
            note: input.note.as_deref(),
            expires_at: input.expires_at,
        };
        let (row, token) = service::create_invite(ctx.state()?, admin.id, &spec).await?;
        Ok(CreateInviteTokenPayload {
            token,
            invite: InviteToken(row),
        })
    }

    /// Admin: revokes an invite token: it can no longer be redeemed (what it granted stays).
    /// Revoking twice is harmless. Audit-logged.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn revoke_invite_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The invite token's `id`.")] id: ID,
    ) -> async_graphql::Result<InviteToken> {
        let admin = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(InviteToken(
            service::revoke_invite(ctx.state()?, admin.id, id).await?,
        ))
    }

    /// Redeems an invite token for the viewer: its credits, plan days and role, at once and
    /// once per user. A token that cannot be used answers `BAD_USER_INPUT` on `token` with
    /// `extensions.reason`: `UNKNOWN`, `EXPIRED`, `EXHAUSTED`, `REVOKED`, `ALREADY_REDEEMED`,
    /// `VENDOR_PROFILE_REQUIRED` or `PLAN_UNAVAILABLE`; a token with plan days answers
    /// `CONFLICT` to a user who pays for a plan. Nothing is used up then.
    #[graphql(guard = "Authenticated")]
    async fn redeem_invite(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token text as handed out (any case; dashes and spaces optional).")]
        token: String,
    ) -> async_graphql::Result<RedeemInvitePayload> {
        let viewer = require_user(ctx)?;
        let done = service::redeem_invite(ctx.state()?, viewer.id, &token).await?;
        Ok(RedeemInvitePayload {
            credits: done.redemption.credits,
            plan_id: done.redemption.plan_id.map(|id| ID(id.to_string())),
            plan_days: done.redemption.plan_days,
            role: done.redemption.role.as_deref().and_then(Role::from_db),
            user: User::to_owner(done.user),
        })
    }
}
