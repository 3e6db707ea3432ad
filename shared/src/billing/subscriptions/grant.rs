//! A platform admin grants a tenant units of a metric on top of its plan, until an expiry
//! (by default the end of the current period), with a reason; written on the live
//! subscription with its event and the audit entry in one tenant transaction.

use serde::Deserialize;
use serde_json::json;

use super::super::grants::{in_force_after, Grant};
use super::record::{commit, live_sub, load_version, GRANTS};
use crate::audit::{self, Change};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::ids::new_id;
use crate::plans::policies::ResetPeriod;
use crate::store::UpdateAction;
use crate::time;
use crate::AppContext;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// A metric the tenant's plan limits or charges, counted per period (not a gauge).
    #[schema(pattern = "^[a-z][a-z0-9_]{0,63}$", example = "api_calls")]
    pub metric: String,
    #[schema(minimum = 1, maximum = 1_000_000_000_000u64)]
    pub units: u64,
    /// Why (kept in the audit log), 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
    /// RFC 3339, within a year; absent: the end of the current billing period.
    #[serde(default)]
    pub expires_at: Option<String>,
}

pub async fn grant(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    req: GrantRequest,
) -> Result<Grant, ApiError> {
    let tenant = crate::access::admin_named_tenant(ctx, caller, tenant_id).await?;
    let reason = crate::text::check_reason(&req.reason, "reason")?;
    crate::plans::policies::check_metric(&req.metric)?;
    if req.units == 0 || req.units > 1_000_000_000_000 {
        return Err(ApiError::validation("units", "1 to 10^12 units"));
    }
    let sub = live_sub(ctx, &tenant).await?;
    let terms = load_version(ctx, &sub.plan_id, sub.plan_version).await?;
    let limit = terms.limits.iter().find(|l| l.metric == req.metric);
    let charged = terms.usage_charge(&req.metric).is_some();
    if limit.is_none() && !charged {
        return Err(ApiError::validation(
            "metric",
            "the tenant's plan neither limits nor charges this metric",
        ));
    }
    if limit.is_some_and(|l| l.reset_period == ResetPeriod::None) {
        return Err(ApiError::validation(
            "metric",
            "grants add units to a counted metric, not to a gauge",
        ));
    }
    let now = ctx.clock.now();
    let expires = match &req.expires_at {
        Some(text) => {
            let at = time::parse(text)
                .ok_or_else(|| ApiError::validation("expires_at", "an RFC 3339 time"))?;
            if at <= now || at > now + chrono::Duration::days(366) {
                return Err(ApiError::validation(
                    "expires_at",
                    "a time in the future, within a year",
                ));
            }
            at
        }
        None => sub.period_end,
    };
    let grant = Grant {
        id: new_id("grant"),
        metric: req.metric.clone(),
        units: req.units,
        granted_at: time::fmt(now),
        expires_at: time::fmt(expires),
        reason: reason.clone(),
        invoice_id: None,
    };
    let mut grants = in_force_after(&sub.grants, now);
    if grants.len() >= 50 {
        return Err(ApiError::conflict(
            "the tenant has 50 grants in force; let some expire",
        ));
    }
    grants.push(grant.clone());
    let t = ctx.stores.tenant(&tenant);
    let change = Change {
        action: "tenant.units_granted",
        resource_type: "tenant",
        resource_id: tenant.as_str(),
        before: None,
        after: Some(json!(grant)),
        reason: Some(reason.as_str()),
    };
    let write = sub.write(vec![
        UpdateAction::set(
            GRANTS,
            serde_json::to_string(&grants).expect("serializable"),
        ),
        UpdateAction::set("updated_at", time::fmt(now)),
    ]);
    let event = json!({"subscription_id": sub.id, "grant": grant});
    commit(
        ctx,
        &t,
        write,
        ("customer.grant.created", event),
        vec![audit::tenant_op(&t, caller, change, now)],
        now,
    )
    .await?;
    // The hot path's cached subscription is a revision behind now; drop it here at once.
    ctx.hot.forget_limits(tenant.as_str());
    Ok(grant)
}
