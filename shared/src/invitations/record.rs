//! An invitation as stored: its keys and index entry, its view, loading and closing it, and
//! joining the tenant through it (what accepting in the dashboard and through the link share).

use serde::Serialize;

use crate::audit::{self, Change};
use crate::auth::tokens::sha256_hex;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::identity::load_user;
use crate::store::{
    Condition, Item, Key, ScopedTransaction, Store, TenantId, TenantStore, WriteOp,
};
use crate::tenants::{join_error, join_ops};
use crate::AppContext;

/// Days an invitation (and its link) stays open.
pub(super) const INVITE_DAYS: i64 = 7;

pub(super) fn invitation_key(t: &TenantStore, id: &str) -> Key {
    t.key("INVITES", format!("INV#{id}"))
}

/// The GSI1 partition of an address's invitations, across tenants.
pub(super) fn invitee_index(email: &str) -> String {
    format!("IDX#INVITEE#{email}")
}

pub(super) fn invitation_id(tenant: &TenantId, email: &str) -> String {
    format!("inv_{}", &sha256_hex(&format!("{tenant}\n{email}"))[..24])
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InvitationView {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub role: Role,
    /// `pending` until accepted (then it becomes a membership), declined or revoked.
    pub status: String,
    pub invited_at: String,
    pub expires_at: String,
}

impl InvitationView {
    pub(super) fn from_item(item: &Item) -> Result<Self, ApiError> {
        Ok(Self {
            id: item.required_str("invitation_id")?.to_owned(),
            tenant_id: item.required_str("tenant_id")?.to_owned(),
            email: item.required_str("email")?.to_owned(),
            role: item
                .str("role")
                .and_then(Role::parse_member_role)
                .ok_or_else(|| ApiError::internal("invitation without a role"))?,
            status: "pending".into(),
            invited_at: item.required_str("invited_at")?.to_owned(),
            expires_at: item.required_str("expires")?.to_owned(),
        })
    }
}

/// Ends an invitation without a membership (withdrawn or declined), audited as `action`.
pub(super) async fn end(
    ctx: &AppContext,
    caller: &Caller,
    t: &TenantStore,
    item: &Item,
    action: &'static str,
) -> Result<(), ApiError> {
    let id = item.required_str("invitation_id")?;
    let email = item.required_str("email")?;
    let change = Change {
        action,
        resource_type: "invitation",
        resource_id: id,
        before: Some(serde_json::json!({"email": email, "role": item.str("role")})),
        after: None,
        reason: None,
    };
    close_ops(ctx.stores.transaction(), t, item, id)
        .tenant(t, audit::tenant_op(t, caller, change, ctx.clock.now()))
        .commit()
        .await
        .map_err(|e| {
            if e.is_condition_failure() {
                ApiError::not_found("no such invitation")
            } else {
                e.into()
            }
        })?;
    Ok(())
}

pub(super) async fn load(t: &TenantStore, id: &str) -> Result<Option<Item>, ApiError> {
    if !crate::ids::is_key_safe(id) {
        return Ok(None);
    }
    Ok(t.get(&invitation_key(t, id)).await?)
}

/// Deletes an invitation (its index entry goes with it), on condition that it is still the
/// one read (a re-invitation in between changes its secret).
pub(super) fn close_ops(
    tx: ScopedTransaction,
    t: &TenantStore,
    item: &Item,
    id: &str,
) -> ScopedTransaction {
    let secret_hash = item.str("secret_hash").unwrap_or_default();
    tx.tenant(
        t,
        WriteOp::Delete {
            key: invitation_key(t, id),
            condition: Some(Condition::eq("secret_hash", secret_hash)),
        },
    )
}

/// The membership, the end of the invitation and the audit entry: one transaction of the
/// tenant's, after any account step (a new account, a reclaimed one) has committed on the
/// platform's side.
pub(super) async fn join(
    ctx: &AppContext,
    tenant_id: &TenantId,
    invitation: &Item,
    user: &Item,
) -> Result<(), ApiError> {
    let t = ctx.stores.tenant(tenant_id);
    let id = invitation.required_str("invitation_id")?.to_owned();
    let email = invitation.required_str("email")?.to_owned();
    let role = invitation
        .str("role")
        .and_then(Role::parse_member_role)
        .ok_or_else(|| ApiError::internal("invitation without a role"))?;
    let user_id = user.required_str("user_id")?.to_owned();
    let seats = crate::entitlements::seat_limit(ctx, tenant_id).await?;
    let now = ctx.clock.now();
    let tx = close_ops(ctx.stores.transaction(), &t, invitation, &id);
    let (tx, meta_index) = join_ops(&t, tx, user, role, seats, now);
    let actor = Caller::synthetic(&user_id, Some(tenant_id), role, "invitation");
    let change = Change {
        action: "member.joined",
        resource_type: "member",
        resource_id: &user_id,
        before: None,
        after: Some(
            serde_json::json!({"user_id": user_id, "email": email, "role": role, "invitation_id": id}),
        ),
        reason: None,
    };
    tx.tenant(&t, audit::tenant_op(&t, &actor, change, now))
        .commit()
        .await
        .map_err(|e| match e.failed_condition_index() {
            Some(0) => {
                ApiError::validation("token", "this invitation was used, withdrawn or replaced")
            }
            _ => join_error(e, meta_index, seats),
        })?;
    // The member is in; a seat past those paid for is billed now. A failure here is not the
    // join's: the decision is retried with the next join and settled by the renewal.
    if let Err(e) = crate::billing::subscriptions::seats_added(ctx, tenant_id).await {
        tracing::warn!(tenant = %tenant_id, error = %e.detail, "could not bill an added seat yet");
    }
    Ok(())
}

pub(super) async fn verified_user(ctx: &AppContext, caller: &Caller) -> Result<Item, ApiError> {
    let user = load_user(ctx, &caller.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("no such user"))?;
    if !user.bool("email_verified").unwrap_or(false) {
        return Err(ApiError::forbidden(
            "verify your email address first: follow the link mailed to you",
        )
        .with("code", "email_unverified"));
    }
    Ok(user)
}
