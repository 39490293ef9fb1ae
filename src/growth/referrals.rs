//! The referral GraphQL types behind `User.referrals` and `User.referralStats`, apart from
//! the rest of the growth API because `accounts::graphql` returns them: this module uses
//! nothing of `accounts::graphql`, so the two API modules import no cycle (as
//! `credits::account` does for `User.credits`).

use async_graphql::{
    Context, ID, Object, SimpleObject,
    connection::{Connection, OpaqueCursor},
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{model::ReferralView, service};
use crate::{
    accounts::{
        AccountStatus, ProfileVisibility,
        loaders::{AccountsLoader, UserId},
        model::UserRow,
    },
    graphql::{
        ContextExt,
        pagination::{Page, connection},
    },
};

/// A user one referred (`User.referrals`).
pub struct Referral(pub ReferralView);

/// Someone who signed up with the viewer's referral code.
#[Object]
impl Referral {
    /// Stable identifier of the referral.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Who signed up: their public profile (id, username, display name, avatar), which is
    /// empty but for the id when their profile is private or the account not active.
    async fn referred_user(&self, ctx: &Context<'_>) -> async_graphql::Result<ReferredUser> {
        let row = ctx
            .loader::<AccountsLoader>()?
            .load_one(UserId(self.0.referred_id))
            .await?;
        Ok(ReferredUser {
            id: self.0.referred_id,
            row: row.filter(|u| {
                u.profile_visibility == ProfileVisibility::Public
                    && u.account_status == AccountStatus::Active
            }),
        })
    }

    /// When they signed up with the code.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the referral was rewarded (at their first payment or at sign-up, as the server
    /// is configured); null until then. A referral is rewarded at most once.
    async fn rewarded_at(&self) -> Option<DateTime<Utc>> {
        self.0.redeemed_at
    }

    /// Credits this referral earned the viewer (0 before it is rewarded, or when the reward
    /// is plan days).
    async fn credits_earned(&self) -> i64 {
        self.0.credits_earned
    }

    /// The plan whose days the reward gave (by name), when the reward was plan days.
    async fn reward_plan(&self) -> Option<&str> {
        self.0.plan_name.as_deref()
    }

    /// How many days of `rewardPlan` the reward gave each of the two users.
    async fn reward_plan_days(&self) -> Option<i32> {
        self.0.plan_days
    }
}

/// The public face of a referred user.
pub struct ReferredUser {
    id: Uuid,
    /// The row when its profile may be shown.
    row: Option<UserRow>,
}

/// A referred user as their referrer sees them: the public profile only.
#[Object]
impl ReferredUser {
    /// The user's id.
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    /// Their username (null when the profile is private).
    async fn username(&self) -> Option<&str> {
        self.row.as_ref().and_then(|u| u.username.as_deref())
    }

    /// Their display name (null when the profile is private).
    async fn display_name(&self) -> Option<&str> {
        self.row.as_ref().and_then(|u| u.display_name.as_deref())
    }

    /// Their avatar URL (null when the profile is private).
    async fn avatar_url(&self) -> Option<&str> {
        self.row.as_ref().and_then(|u| u.avatar_url.as_deref())
    }
}

/// A referrer's totals.
#[derive(SimpleObject)]
pub struct ReferralStats {
    /// Users who signed up with the referral code.
    pub invited: i64,
    /// Those whose referral was rewarded (see `Referral.rewardedAt`).
    pub converted: i64,
    /// Credits the referrals earned the user (`REFERRAL` ledger entries).
    pub credits_earned: i64,
}

/// `user`'s referrals, newest first (for `User.referrals`; the caller checks who may see).
pub async fn referrals_of(
    ctx: &Context<'_>,
    user: Uuid,
    first: Option<i32>,
    after: Option<String>,
) -> async_graphql::Result<Connection<OpaqueCursor<(DateTime<Utc>, Uuid)>, Referral>> {
    let page = Page::<(DateTime<Utc>, Uuid)>::new(first, after)?;
    let rows = service::referrals(ctx.state()?, user, page.after, page.limit()).await?;
    Ok(connection(
        &page,
        rows.into_iter().map(Referral).collect(),
        |r| (r.0.created_at, r.0.id),
    ))
}

/// `user`'s referral totals (for `User.referralStats`).
pub async fn stats_of(ctx: &Context<'_>, user: Uuid) -> async_graphql::Result<ReferralStats> {
    let s = service::referral_stats(ctx.state()?, user).await?;
    Ok(ReferralStats {
        invited: s.invited,
        converted: s.converted,
        credits_earned: s.credits_earned,
    })
}
