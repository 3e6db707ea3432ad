//! What a tenant admin does: invite an email (and mail the link), list and withdraw
//! invitations; and withdrawing the invitations of an admin who lost that authority.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::record::{
    end, invitation_id, invitation_key, invitee_index, load, verified_user, InvitationView,
    INVITE_DAYS,
};
use crate::audit::{self, Change};
use crate::auth::tokens::{random_secret, sha256_hex};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{ListParams, ListResponse};
use crate::identity::find_user_id_by_email;
use crate::mail::{self, Message};
use crate::store::{Item, Query, Store, TenantId, WriteOp};
use crate::tenants::{self, load_tenant, parse_role, seats_full};
use crate::text::{check_name, normalize_email};
use crate::time;
use crate::AppContext;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    #[schema(min_length = 3, max_length = 254)]
    pub email: String,
    /// `tenant_admin` or `tenant_user`.
    pub role: String,
    /// The name a new account starts with (its owner may give another when accepting);
    /// defaults to the part of the email before `@`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InviteResponse {
    pub invitation: InvitationView,
}

/// Invites `email` into the tenant and mails the link. Returns the invitation and the link's
/// token (for the mailer and the demo seed; handlers never answer it).
pub async fn invite(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    req: InviteRequest,
) -> Result<(InvitationView, String), ApiError> {
    let tenant_id = caller.admin_tenant(tenant_id)?;
    let email = normalize_email(&req.email, "email")?;
    let role = parse_role(&req.role)?;
    // Mail goes out in the inviter's name: only from a verified address, and at a measured
    // pace (per tenant, and per recipient: a re-invitation resends the mail).
    if !caller.is_platform_admin() {
        verified_user(ctx, caller).await?;
    }
    let now = ctx.clock.now();
    let per_tenant = crate::auth::ratelimit::Limit {
        attempts: 100,
        window_secs: 3600,
    };
    crate::auth::ratelimit::hit(ctx, "invite", tenant_id.as_str(), per_tenant, now).await?;
    let per_recipient = crate::auth::ratelimit::Limit {
        attempts: 3,
        window_secs: 3600,
    };
    let recipient = sha256_hex(&format!("{tenant_id}\n{email}"));
    crate::auth::ratelimit::hit(ctx, "invite-to", &recipient, per_recipient, now).await?;
    let name = req
        .name
        .as_deref()
        .map(|n| check_name(n, "name"))
        .transpose()?;
    let tenant = load_tenant(ctx, &tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such tenant"))?;
    if let Some(user_id) = find_user_id_by_email(ctx, &email).await? {
        if tenants::load_member(ctx, &tenant_id, &user_id)
            .await?
            .is_some()
        {
            return Err(
                ApiError::conflict("this user is already a member of the tenant").field("email"),
            );
        }
    }
    // Early word when the seats are already full; the join itself enforces it on condition.
    if let Some(limit) = crate::entitlements::seat_limit(ctx, &tenant_id).await? {
        if tenant.member_count >= limit as i64 {
            return Err(seats_full(limit));
        }
    }
    let expires = now + chrono::Duration::days(INVITE_DAYS);
    let id = invitation_id(&tenant_id, &email);
    let secret = random_secret();
    let token = format!("{tenant_id}.{id}.{secret}");
    let t = ctx.stores.tenant(&tenant_id);
    let mut item = Item::new(invitation_key(&t, &id))
        .with("invitation_id", id.as_str())
        .with("tenant_id", tenant_id.as_str())
        .with("email", email.as_str())
        .with("role", role.as_str())
        .with("secret_hash", sha256_hex(&secret))
        .with("invited_by", caller.user_id.as_str())
        .with("invited_at", time::fmt(now))
        .with("expires", time::fmt(expires))
        .with("expires_epoch", expires.timestamp())
        .with_ttl(expires.timestamp())
        .with_gsi1(invitee_index(&email), format!("{tenant_id}#{id}"));
    if let Some(name) = &name {
        item = item.with("name", name.as_str());
    }
    let change = Change {
        action: "member.invited",
        resource_type: "invitation",
        resource_id: &id,
        before: None,
        after: Some(serde_json::json!({"email": email, "role": role})),
        reason: None,
    };
    ctx.stores
        .transaction()
        .tenant(
            &t,
            WriteOp::Put {
                item: item.clone(),
                condition: None,
            },
        )
        .tenant(&t, audit::tenant_op(&t, caller, change, now))
        .commit()
        .await?;
    let link = mail::link(&ctx.public_url, "invitation", &token);
    ctx.mail.send(Message {
        to: email.clone(),
        kind: "invitation",
        subject: format!("You are invited to {}", tenant.name),
        text: format!(
            "You are invited to join {} on Eshtarek as {}. Accept: {link}\nThe link works for {INVITE_DAYS} days.",
            tenant.name,
            role.as_str()
        ),
        link,
        token: token.clone(),
    });
    Ok((InvitationView::from_item(&item)?, token))
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    params: ListParams,
) -> Result<ListResponse<InvitationView>, ApiError> {
    let tenant_id = caller.admin_tenant(tenant_id)?;
    let t = ctx.stores.tenant(&tenant_id);
    let now = ctx.clock.now().timestamp();
    let page = t
        .query(
            &Query::table(t.pk("INVITES"))
                .begins_with("INV#")
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    Ok(ListResponse {
        data: page
            .items
            .iter()
            .filter(|i| i.i64("expires_epoch").unwrap_or(0) > now)
            .map(InvitationView::from_item)
            .collect::<Result<_, _>>()?,
        next_cursor: page.next_cursor,
    })
}

/// Withdraws an invitation: its link stops working at once.
pub async fn revoke(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    invitation_id: &str,
) -> Result<(), ApiError> {
    let tenant_id = caller.admin_tenant(tenant_id)?;
    let t = ctx.stores.tenant(&tenant_id);
    let item = load(&t, invitation_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such invitation"))?;
    end(ctx, caller, &t, &item, "invitation.revoked").await
}

/// Withdraws the open invitations `user_id` sent in the tenant: for a member who left, was
/// removed, or is no longer an admin (their invitations spoke with an authority they lost).
pub async fn withdraw_sent_by(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    user_id: &str,
) -> Result<(), ApiError> {
    let Ok(tenant) = TenantId::parse(tenant_id) else {
        return Ok(());
    };
    let t = ctx.stores.tenant(&tenant);
    let mut cursor = None;
    loop {
        let page = t
            .query(
                &Query::table(t.pk("INVITES"))
                    .begins_with("INV#")
                    .limit(100)
                    .after(cursor),
            )
            .await?;
        for item in &page.items {
            if item.str("invited_by") == Some(user_id) {
                match end(ctx, caller, &t, item, "invitation.revoked").await {
                    // Accepted or withdrawn meanwhile: nothing left to withdraw.
                    Ok(())
                    | Err(ApiError {
                        status: StatusCode::NOT_FOUND,
                        ..
                    }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}
