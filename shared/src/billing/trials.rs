//! One free trial per tenant. The tenant's profile records that its trial was used, in the
//! same transaction that starts a trial subscription; re-subscribing never starts a second one.
//! A platform admin may grant another (audited, with a reason).

use serde::{Deserialize, Serialize};

use crate::audit::{self, Change};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::{Condition, Store, TenantId, TenantStore, UpdateAction, WriteOp};
use crate::tenants::{meta_key, TRIAL_USED as USED};
use crate::AppContext;

/// Whether the tenant may still start a trial.
pub async fn available(ctx: &AppContext, tenant: &TenantId) -> Result<bool, ApiError> {
    let t = ctx.stores.tenant(tenant);
    let meta = t
        .get(&meta_key(&t))
        .await?
        .ok_or_else(|| ApiError::not_found("no such tenant"))?;
    Ok(!meta.bool(USED).unwrap_or(false))
}

/// The write that uses the trial up; it fails (and with it the subscription's transaction)
/// when another request used it meanwhile.
pub fn use_op(t: &TenantStore) -> WriteOp {
    WriteOp::Update {
        key: meta_key(t),
        actions: vec![UpdateAction::set(USED, true)],
        condition: Some(Condition::Or(vec![
            Condition::not_exists(USED),
            Condition::eq(USED, false),
        ])),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantTrialRequest {
    /// Why (kept in the audit log), 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TrialGrant {
    pub tenant_id: String,
    /// The tenant's next subscription to a plan with trial days starts with a trial.
    pub trial_available: bool,
}

/// A platform admin gives the tenant another trial.
pub async fn grant(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    req: GrantTrialRequest,
) -> Result<TrialGrant, ApiError> {
    let tenant = crate::access::admin_named_tenant(ctx, caller, tenant_id).await?;
    let reason = crate::text::check_reason(&req.reason, "reason")?;
    let reason = reason.as_str();
    let t = ctx.stores.tenant(&tenant);
    let change = Change {
        action: "tenant.trial_granted",
        resource_type: "tenant",
        resource_id: tenant.as_str(),
        before: None,
        after: Some(serde_json::json!({"trial_available": true})),
        reason: Some(reason),
    };
    ctx.stores
        .transaction()
        .tenant(
            &t,
            WriteOp::Update {
                key: meta_key(&t),
                actions: vec![UpdateAction::set(USED, false)],
                condition: Some(Condition::ItemExists),
            },
        )
        .tenant(&t, audit::tenant_op(&t, caller, change, ctx.clock.now()))
        .commit()
        .await?;
    Ok(TrialGrant {
        tenant_id: tenant.as_str().to_owned(),
        trial_available: true,
    })
}
