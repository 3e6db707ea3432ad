//! What combines users, sessions, tenants and invitations for the person signed in: `me`.
//! (It sits above `auth`, `tenants` and `invitations`, so none of them needs the others'
//! views of a person.)

use serde::Serialize;

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::identity::{load_user, UserView};
use crate::tenants::{self, MembershipView};
use crate::AppContext;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeResponse {
    pub user: UserView,
    pub memberships: Vec<MembershipView>,
    pub current_tenant_id: Option<String>,
    pub role: Option<Role>,
    pub session_id: String,
    /// Invitations waiting for this person's answer (only once the email is verified).
    pub invitations: Vec<crate::invitations::PendingInvitation>,
}

pub async fn me(ctx: &AppContext, caller: &Caller) -> Result<MeResponse, ApiError> {
    let user = load_user(ctx, &caller.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("no such user"))?;
    let mut memberships = Vec::new();
    for (tenant_id, _) in tenants::records::user_memberships(ctx, &caller.user_id).await? {
        // The tenant's own membership item is the truth; the user-side copy is an index.
        let (Some(member), Some(tenant)) = (
            tenants::load_member(ctx, &tenant_id, &caller.user_id).await?,
            tenants::load_tenant(ctx, &tenant_id).await?,
        ) else {
            continue;
        };
        memberships.push(MembershipView {
            tenant_id: tenant.id,
            tenant_name: tenant.name,
            role: member.role,
            tenant_status: tenant.status,
        });
    }
    let user = UserView::from_item(&user)?;
    let invitations = if user.email_verified {
        crate::invitations::pending_for(ctx, &user.email).await?
    } else {
        Vec::new()
    };
    Ok(MeResponse {
        user,
        invitations,
        memberships,
        current_tenant_id: caller.tenant.as_ref().map(|t| t.to_string()),
        role: caller.role,
        session_id: caller.session_id.clone(),
    })
}
