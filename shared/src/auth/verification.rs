//! Email verification: a signup's address is unproven until its owner follows the link mailed
//! to it. The token is kept as its SHA-256 only, for 48 hours, and works once.

use chrono::{DateTime, Utc};

use super::tokens::{random_secret, sha256_hex};
use super::{ratelimit, Caller};
use crate::error::ApiError;
use crate::identity::{load_user, user_key, UserView};
use crate::mail::{self, Message};
use crate::store::{Condition, Item, Key, Store, UpdateAction, WriteOp};
use crate::AppContext;

const VERIFY_HOURS: i64 = 48;

/// How long a new account has to confirm its address; past it, an unconfirmed account's
/// address may be registered again (see `service::register`).
pub fn window() -> chrono::Duration {
    chrono::Duration::hours(VERIFY_HOURS)
}

fn token_key(token: &str) -> Key {
    Key::new(format!("VERIFY#{}", sha256_hex(token)), "TOKEN")
}

/// The write that creates a verification token for `email`; returns the token (mailed, never
/// answered) and the write.
pub fn token_op(user_id: &str, email: &str, now: DateTime<Utc>) -> (String, WriteOp) {
    let token = random_secret();
    let expires = now + chrono::Duration::hours(VERIFY_HOURS);
    let item = Item::new(token_key(&token))
        .with("user_id", user_id)
        .with("email", email)
        .with("expires_epoch", expires.timestamp())
        .with_ttl(expires.timestamp());
    (
        token,
        WriteOp::Put {
            item,
            condition: Some(Condition::ItemNotExists),
        },
    )
}

/// Mails the verification link.
pub fn send(ctx: &AppContext, email: &str, token: &str) {
    let link = mail::link(&ctx.public_url, "verify-email", token);
    ctx.mail.send(Message {
        to: email.to_owned(),
        kind: "verify_email",
        subject: "Confirm your email address".into(),
        text: format!(
            "Confirm that this address is yours: {link}\nThe link works once, for 48 hours."
        ),
        link,
        token: token.to_owned(),
    });
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The token from the verification link.
    #[schema(min_length = 1, max_length = 128)]
    pub token: String,
}

/// Marks the account's email verified. The token must be for the account's current email, and
/// the caller signed in to that account: the link proves the mailbox, the session proves the
/// account, and only both together say they are one person's (a mailbox owner following a
/// link sent to an account someone else registered verifies nothing for them).
pub async fn verify(
    ctx: &AppContext,
    caller: &Caller,
    req: VerifyEmailRequest,
) -> Result<UserView, ApiError> {
    let invalid = || ApiError::validation("token", "this link is invalid, used or expired");
    if req.token.is_empty() || req.token.len() > 128 {
        return Err(invalid());
    }
    let key = token_key(&req.token);
    let platform = ctx.stores.platform();
    let item = platform.get(&key).await?.ok_or_else(invalid)?;
    if item.i64("expires_epoch").unwrap_or(0) <= ctx.clock.now().timestamp() {
        return Err(invalid());
    }
    let user_id = item.required_str("user_id")?.to_owned();
    if user_id != caller.user_id {
        return Err(invalid());
    }
    let email = item.required_str("email")?.to_owned();
    ctx.stores
        .transaction()
        .platform(WriteOp::Delete {
            key,
            condition: Some(Condition::ItemExists),
        })
        .platform(WriteOp::Update {
            key: user_key(&user_id),
            actions: vec![UpdateAction::set("email_verified", true)],
            condition: Some(Condition::eq("email", email.as_str())),
        })
        .commit()
        .await
        .map_err(|e| {
            if e.is_condition_failure() {
                invalid()
            } else {
                e.into()
            }
        })?;
    let user = load_user(ctx, &user_id).await?.ok_or_else(invalid)?;
    Ok(UserView::from_item(&user)?)
}

/// Mails a new link to the caller's address (5 per 15 minutes per account).
pub async fn resend(ctx: &AppContext, caller: &Caller) -> Result<(), ApiError> {
    let user = load_user(ctx, &caller.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("no such user"))?;
    let view = UserView::from_item(&user)?;
    if view.email_verified {
        return Err(ApiError::conflict("this email address is already verified"));
    }
    let now = ctx.clock.now();
    let limit = ratelimit::Limit {
        attempts: 5,
        window_secs: 900,
    };
    ratelimit::hit(ctx, "verify-resend", &caller.user_id, limit, now).await?;
    let (token, op) = token_op(&view.id, &view.email, now);
    ctx.stores.transaction().platform(op).commit().await?;
    send(ctx, &view.email, &token);
    Ok(())
}

/// Marks an account verified inside another transaction (an invitation link proves the
/// address as well as a verification link does).
pub fn mark_verified_op(user_id: &str) -> WriteOp {
    WriteOp::Update {
        key: user_key(user_id),
        actions: vec![UpdateAction::set("email_verified", true)],
        condition: Some(Condition::ItemExists),
    }
}
