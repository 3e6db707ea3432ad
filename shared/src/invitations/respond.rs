//! What the invitee does, signed in to a verified account with the invited email: see their
//! open invitations, accept one, decline one.

use serde::Serialize;

use super::record::{end, invitee_index, join, load, verified_user, InvitationView};
use crate::auth::service;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::store::{Item, Query, Store, TenantId};
use crate::tenants::{load_tenant, MembershipView};
use crate::AppContext;

/// An invitation as its invitee sees it (in `GET /v1/auth/me`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PendingInvitation {
    pub id: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub role: Role,
    pub expires_at: String,
}

/// The open invitations for `email` (the caller has verified it), checked against the tenant's
/// own items.
pub async fn pending_for(
    ctx: &AppContext,
    email: &str,
) -> Result<Vec<PendingInvitation>, ApiError> {
    let now = ctx.clock.now().timestamp();
    let page = ctx
        .stores
        .platform()
        .query(&Query::gsi1(invitee_index(email)).limit(100))
        .await?;
    let mut pending = Vec::new();
    for entry in &page.items {
        // The tenant from the entry's partition key; the tenant's own item, read again, decides.
        let (Some((tenant_id, "INVITES")), Some(id)) =
            (TenantId::of_pk(&entry.key.pk), entry.str("invitation_id"))
        else {
            continue;
        };
        let t = ctx.stores.tenant(&tenant_id);
        let (Some(item), Some(tenant)) = (load(&t, id).await?, load_tenant(ctx, &tenant_id).await?)
        else {
            continue;
        };
        if item.str("email") != Some(email) || item.i64("expires_epoch").unwrap_or(0) <= now {
            continue;
        }
        let view = InvitationView::from_item(&item)?;
        pending.push(PendingInvitation {
            id: view.id,
            tenant_id: view.tenant_id,
            tenant_name: tenant.name,
            role: view.role,
            expires_at: view.expires_at,
        });
    }
    Ok(pending)
}

/// An open invitation for `email` by id, found through the invitee's index.
async fn find_for(ctx: &AppContext, email: &str, id: &str) -> Result<(TenantId, Item), ApiError> {
    let missing = || ApiError::not_found("no such invitation");
    let now = ctx.clock.now().timestamp();
    for pending in pending_for(ctx, email).await? {
        if pending.id == id {
            let tenant = TenantId::parse(&pending.tenant_id).map_err(|_| missing())?;
            let t = ctx.stores.tenant(&tenant);
            let item = load(&t, id).await?.ok_or_else(missing)?;
            if item.i64("expires_epoch").unwrap_or(0) > now {
                return Ok((tenant, item));
            }
        }
    }
    Err(missing())
}

/// The signed-in, verified invitee accepts: they become a member with the invited role.
pub async fn accept(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<MembershipView, ApiError> {
    let user = verified_user(ctx, caller).await?;
    let email = user.required_str("email")?.to_owned();
    let (tenant_id, invitation) = find_for(ctx, &email, id).await?;
    join(ctx, &tenant_id, &invitation, &user).await?;
    let (role, tenant) = service::active_membership(ctx, &caller.user_id, &tenant_id).await?;
    Ok(MembershipView {
        tenant_id: tenant.id,
        tenant_name: tenant.name,
        role,
        tenant_status: tenant.status,
    })
}

/// The signed-in, verified invitee says no: the invitation is gone.
pub async fn decline(ctx: &AppContext, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let user = verified_user(ctx, caller).await?;
    let email = user.required_str("email")?.to_owned();
    let (tenant_id, invitation) = find_for(ctx, &email, id).await?;
    let t = ctx.stores.tenant(&tenant_id);
    end(ctx, caller, &t, &invitation, "invitation.declined").await
}
