//! Accepting through the mailed link, which proves the address: a new account, or an
//! unverified one claimed by the mailbox's owner, joins and signs in.

use serde::Deserialize;

use super::record::{join, load};
use crate::auth::service::{self, start_session, AuthResponse};
use crate::auth::sessions::revoke_user_sessions;
use crate::auth::tokens::{same_secret, sha256_hex};
use crate::auth::{password, verification};
use crate::error::ApiError;
use crate::identity::{
    find_user_id_by_email, load_user, new_user_ops, user_item, user_key, UserView,
};
use crate::ids::new_id;
use crate::store::{Condition, StoreExt, TenantId, UpdateAction};
use crate::tenants::{self};
use crate::text::check_name;
use crate::AppContext;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptLinkRequest {
    /// The token from the invitation link.
    #[schema(min_length = 1, max_length = 256)]
    pub token: String,
    /// The new account's password (10 to 256 characters). Needed unless the email already
    /// has a verified account (then sign in and accept from it).
    #[serde(default)]
    #[schema(min_length = 10, max_length = 256)]
    pub password: Option<String>,
    /// The new account's name (default: the invitation's, or the email before `@`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
}

/// Accepts through the mailed link, which proves the address: a new account (verified) with
/// the given password, or an existing *unverified* one claimed by the mailbox's owner (its
/// password replaced, its other sessions ended: whoever registered the address without
/// owning it loses it). A verified account signs in and accepts from there. Signs in to the
/// tenant.
pub async fn accept_link(
    ctx: &AppContext,
    req: AcceptLinkRequest,
) -> Result<AuthResponse, ApiError> {
    let invalid =
        || ApiError::validation("token", "this invitation link is invalid, used or expired");
    let mut parts = req.token.splitn(3, '.');
    let (Some(tenant), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    let tenant_id = TenantId::parse(tenant).map_err(|_| invalid())?;
    let t = ctx.stores.tenant(&tenant_id);
    let invitation = load(&t, id).await?.ok_or_else(invalid)?;
    if !same_secret(
        &sha256_hex(secret),
        invitation.str("secret_hash").unwrap_or_default(),
    ) || invitation.i64("expires_epoch").unwrap_or(0) <= ctx.clock.now().timestamp()
    {
        return Err(invalid());
    }
    let email = invitation.required_str("email")?.to_owned();
    let password_text = req
        .password
        .ok_or_else(|| ApiError::validation("password", "choose a password for your account"))?;
    password::check_policy(&password_text, &email, "password")?;
    let name = match req.name.as_deref().or(invitation.str("name")) {
        Some(n) => check_name(n, "name")?,
        None => email.split('@').next().unwrap_or("member").to_owned(),
    };
    let now = ctx.clock.now();
    let existing = match find_user_id_by_email(ctx, &email).await? {
        Some(id) => load_user(ctx, &id).await?,
        None => None,
    };
    let user = match existing {
        Some(user) if user.bool("email_verified").unwrap_or(false) => {
            return Err(ApiError::conflict(
                "an account with this email exists: sign in and accept the invitation there",
            )
            .with("code", "account_exists"));
        }
        Some(user) => {
            // The owner takes the account over as if new: their password and name, none of
            // the squatter's sessions or memberships, no remembered tenant. The account is the
            // first step (the platform's): the link proves the address, so it is the owner's
            // even if the membership is then refused (seats taken, the invitation used
            // meanwhile), and the squatter's hold on it ends either way.
            let user_id = user.required_str("user_id")?.to_owned();
            let hash = password::hash(password_text).await?;
            ctx.stores
                .platform()
                .update(
                    user_key(&user_id),
                    vec![
                        UpdateAction::set("password_hash", hash),
                        UpdateAction::set("email_verified", true),
                        UpdateAction::set("name", name.as_str()),
                        UpdateAction::remove("last_tenant_id"),
                    ],
                    Some(Condition::eq("email_verified", false)),
                )
                .await
                .map_err(account_changed)?;
            let user = user.with("name", name.as_str());
            let joined = join(ctx, &tenant_id, &invitation, &user).await;
            revoke_user_sessions(ctx, &user_id, None).await?;
            tenants::drop_memberships_of(ctx, &user_id, Some(&tenant_id)).await?;
            joined?;
            user
        }
        None => {
            let hash = password::hash(password_text).await?;
            let user_id = new_id("usr");
            let user = user_item(&user_id, &email, &name, Some(&hash), false, true, now);
            // The account first (its email claim makes a link used twice at once create one
            // account), then the membership; a refused membership takes the new account back.
            new_user_ops(ctx.stores.transaction(), &user, &email)
                .commit()
                .await
                .map_err(account_changed)?;
            if let Err(e) = join(ctx, &tenant_id, &invitation, &user).await {
                crate::identity::delete_new_user(ctx, &user_id, &email).await;
                return Err(e);
            }
            user
        }
    };
    let user_id = user.required_str("user_id")?.to_owned();
    let (role, tenant) = service::active_membership(ctx, &user_id, &tenant_id).await?;
    let tokens = start_session(ctx, &user_id, Some((&tenant_id, role))).await?;
    let user = load_user(ctx, &user_id)
        .await?
        .ok_or_else(|| ApiError::internal("user vanished"))?;
    Ok(AuthResponse {
        user: UserView::from_item(&user)?,
        tenant: Some(tenant),
        tokens,
    })
}

fn account_changed(e: crate::store::StoreError) -> ApiError {
    if e.is_condition_failure() {
        ApiError::conflict("the account changed meanwhile; retry").field("email")
    } else {
        e.into()
    }
}

/// Marks an account verified (the demo seed's accounts, whose addresses are the seed's own).
pub async fn mark_verified(ctx: &AppContext, user_id: &str) -> Result<(), ApiError> {
    ctx.stores
        .transaction()
        .platform(verification::mark_verified_op(user_id))
        .commit()
        .await?;
    Ok(())
}
