//! GraphQL root fields of password recovery and change, email verification, and linking the
//! other identifier to an account (the rules are in `service/recovery.rs`).

use async_graphql::{Context, InputObject, Object};

use super::{
    graphql::{AuthPayload, User},
    guards::{Authenticated, require_user},
    service::{self, RequestMeta, ResetProof, ResetTarget},
};
use crate::{error::AppError, graphql::ContextExt};

fn meta(ctx: &Context<'_>) -> RequestMeta {
    ctx.data_opt::<RequestMeta>().cloned().unwrap_or_default()
}

/// Input of `requestPasswordReset`: give `email` or `phone`, not both.
#[derive(InputObject)]
pub struct RequestPasswordResetInput {
    /// The account's email address: a reset link is emailed to it.
    email: Option<String>,
    /// The account's phone number (accounts with a password only): a 6-digit code is sent
    /// by SMS.
    phone: Option<String>,
}

/// Input of `resetPassword`: give `token`, or `phone` and `code`.
#[derive(InputObject)]
pub struct ResetPasswordInput {
    /// The token of the emailed link (its `token` query parameter).
    token: Option<String>,
    /// The phone number the SMS code was sent to.
    phone: Option<String>,
    /// The 6-digit code sent by SMS.
    code: Option<String>,
    /// The new password: 8 to 128 characters (as at sign-up).
    new_password: String,
}

/// Input of `changePassword`.
#[derive(InputObject)]
pub struct ChangePasswordInput {
    /// The account's password; required when it has one (accounts made with a phone code
    /// have none, and set their first one here).
    current_password: Option<String>,
    /// The new password: 8 to 128 characters (as at sign-up).
    new_password: String,
}

/// Input of `addEmail`.
#[derive(InputObject)]
pub struct AddEmailInput {
    /// The address to link to the account.
    email: String,
}

/// Input of `addPhone`.
#[derive(InputObject)]
pub struct AddPhoneInput {
    /// The number to link to the account, with country code, in any common format.
    phone: String,
}

/// Input of `verifyPhone`.
#[derive(InputObject)]
pub struct VerifyPhoneInput {
    /// The number given to `addPhone`.
    phone: String,
    /// The 6-digit code sent to it.
    code: String,
}

/// Password recovery, email verification and identifier linking.
#[derive(Default)]
pub struct RecoveryMutation;

#[Object]
impl RecoveryMutation {
    /// Sends a password-reset link to an account's email, or a 6-digit code by SMS to a phone
    /// account that has a password. Always answers `true` whether or not such an account
    /// exists (nothing is sent then). Limited per email or phone and per client
    /// (`RATE_LIMITED` with `retryAfterSeconds`). A link works once, for
    /// `EASEL_RECOVERY_TTL_SECS`; an SMS code for `EASEL_OTP_TTL_SECS`.
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: RequestPasswordResetInput,
    ) -> async_graphql::Result<bool> {
        let target = match (&input.email, &input.phone) {
            (Some(e), None) => ResetTarget::Email(e),
            (None, Some(p)) => ResetTarget::Phone(p),
            _ => {
                return Err(AppError::bad_input(
                    "input.email",
                    "give exactly one of `email` and `phone`",
                )
                .into());
            }
        };
        service::request_password_reset(ctx.state()?, &meta(ctx), target).await?;
        Ok(true)
    }

    /// Sets a new password with a reset link's token or an SMS code, and signs in: the token
    /// or code is used up, and every earlier session of the account is revoked (its access
    /// and refresh tokens stop working at once). A wrong, used, expired or exhausted token
    /// is `BAD_USER_INPUT` on `input.token` (or `input.code`) with `extensions.reason`
    /// `INVALID`, `USED`, `EXPIRED` or `TOO_MANY_ATTEMPTS`; a weak password is
    /// `BAD_USER_INPUT` on `input.newPassword` and spends nothing.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: ResetPasswordInput,
    ) -> async_graphql::Result<AuthPayload> {
        let proof = match (&input.token, &input.phone, &input.code) {
            (Some(token), None, None) => ResetProof::Token(token),
            (None, Some(phone), Some(code)) => ResetProof::PhoneCode { phone, code },
            _ => {
                return Err(AppError::bad_input(
                    "input.token",
                    "give `token`, or `phone` and `code`",
                )
                .into());
            }
        };
        let auth =
            service::reset_password(ctx.state()?, &meta(ctx), proof, &input.new_password).await?;
        Ok(auth.into())
    }

    /// Changes the viewer's password. A wrong `currentPassword` is `BAD_USER_INPUT` on
    /// `input.currentPassword` (tries are limited: `RATE_LIMITED`). Every other session of
    /// the account is revoked; this one stays signed in. Answers `true`.
    #[graphql(guard = "Authenticated")]
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: ChangePasswordInput,
    ) -> async_graphql::Result<bool> {
        let viewer = require_user(ctx)?;
        service::change_password(
            ctx.state()?,
            &meta(ctx),
            viewer,
            input.current_password.as_deref(),
            &input.new_password,
        )
        .await?;
        Ok(true)
    }

    /// Confirms an email address with the token of its verification link (sent at `signUp`
    /// and by `addEmail`): the address becomes the account's email, verified. Works without
    /// signing in. `CONFLICT` when another account has the address; a wrong, used or expired
    /// token is `BAD_USER_INPUT` on `token` with `extensions.reason`. Answers `true`.
    async fn verify_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token of the verification link (its `token` query parameter).")]
        token: String,
    ) -> async_graphql::Result<bool> {
        service::verify_email(ctx.state()?, &meta(ctx), &token).await?;
        Ok(true)
    }

    /// Emails a verification link to `email` for the viewer's account; once followed
    /// (`verifyEmail`) it becomes the account's email. Also resends the sign-up
    /// verification. Whether the address belongs to another account is only told by
    /// `verifyEmail`. Limited per account and client (`RATE_LIMITED`). Answers `true`.
    #[graphql(guard = "Authenticated")]
    async fn add_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")] input: AddEmailInput,
    ) -> async_graphql::Result<bool> {
        let viewer = require_user(ctx)?;
        service::add_email(ctx.state()?, &meta(ctx), viewer, &input.email).await?;
        Ok(true)
    }

    /// Sends a 6-digit code by SMS to `phone` for the viewer's account; `verifyPhone`
    /// confirms it. Limited per account and client (`RATE_LIMITED`). Answers `true`.
    #[graphql(guard = "Authenticated")]
    async fn add_phone(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")] input: AddPhoneInput,
    ) -> async_graphql::Result<bool> {
        let viewer = require_user(ctx)?;
        service::add_phone(ctx.state()?, &meta(ctx), viewer, &input.phone).await?;
        Ok(true)
    }

    /// Confirms the number of `addPhone` with its code: it becomes the account's phone,
    /// verified (it can then sign in with `requestOtp`). `CONFLICT` when another account has
    /// the number; a code dies after 5 wrong tries.
    #[graphql(guard = "Authenticated")]
    async fn verify_phone(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: VerifyPhoneInput,
    ) -> async_graphql::Result<User> {
        let viewer = require_user(ctx)?;
        let row =
            service::verify_phone(ctx.state()?, &meta(ctx), viewer, &input.phone, &input.code)
                .await?;
        Ok(User::new(row))
    }
}
