//! Which tenant a request acts on, decided from the caller in one place: the caller's own
//! tenant as its admin, a tenant a platform admin names in an admin path, or either, for the
//! endpoints both may call.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::TenantId;
use crate::tenants::records::load_tenant;
use crate::AppContext;

/// The token's tenant, for its admin (a platform admin's token acts in none).
pub fn own_admin_tenant(caller: &Caller) -> Result<TenantId, ApiError> {
    let tenant = caller.own_tenant()?.clone();
    caller.admin_tenant(tenant.as_str())
}

/// The tenant a platform admin names in an admin path, when it exists (else 404).
pub async fn admin_named_tenant(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
) -> Result<TenantId, ApiError> {
    caller.require_platform_admin()?;
    let tenant = caller.admin_tenant(tenant_id)?;
    match load_tenant(ctx, &tenant).await? {
        Some(_) => Ok(tenant),
        None => Err(ApiError::not_found("no such tenant")),
    }
}

/// The tenant of a request either may make: for a platform admin the existing tenant it names
/// (`named` required), for a tenant admin its own (naming another is a 404).
pub async fn target_tenant(
    ctx: &AppContext,
    caller: &Caller,
    named: Option<&str>,
) -> Result<TenantId, ApiError> {
    if caller.is_platform_admin() {
        let named = named
            .ok_or_else(|| ApiError::validation("tenant_id", "platform admins name the tenant"))?;
        return admin_named_tenant(ctx, caller, named).await;
    }
    if named.is_some_and(|n| Some(n) != caller.tenant.as_ref().map(TenantId::as_str)) {
        return Err(ApiError::not_found("no such tenant"));
    }
    own_admin_tenant(caller)
}
