//! What combines users, sessions, tenants and invitations for the person signed in: `me`.
//! (It sits above `auth`, `tenants` and `invitations`, so none of them needs the others'
//! views of a person.)

use serde::Serialize;

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::identity::UserView;
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

/// `/v1/auth/me` with the account read already (in the caller's session batch: [`Me`]).
pub async fn me_with(
    ctx: &AppContext,
    caller: &Caller,
    user: Option<crate::store::Item>,
) -> Result<MeResponse, ApiError> {
    let user = user.ok_or_else(|| ApiError::unauthenticated("no such user"))?;
    let mut memberships = Vec::new();
    for (tenant_id, _) in tenants::records::user_memberships(ctx, &caller.user_id).await? {
        // The tenant's own membership item is the truth; the user-side copy is an index. Both
        // it and the tenant in one batch.
        let (Some(member), Some(tenant)) =
            tenants::load_member_and_tenant(ctx, &tenant_id, &caller.user_id).await?
        else {
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

/// The caller of `/v1/auth/me` and its account, read with its session in one batch.
pub struct Me {
    pub caller: Caller,
    pub user: Option<crate::store::Item>,
}

impl axum::extract::FromRequestParts<AppContext> for Me {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        ctx: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        let (caller, mut items) = crate::auth::caller::caller_with(ctx, parts, |claims| {
            vec![crate::identity::user_key(&claims.sub)]
        })
        .await?;
        Ok(Me {
            caller,
            user: items.pop().flatten(),
        })
    }
}
