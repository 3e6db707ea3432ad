//! What platform admins do to subscriptions: migrate a plan version's live subscriptions to
//! another version, read a tenant's, and override one (plan, period end, status), audited.

use chrono::Duration;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::super::state::Event;
use super::cancel::end;
use super::change::{apply_plan, Effective, Move};
use super::record::{
    changed_meanwhile, current_version, live_moved, live_sub, load, load_version, reload,
    renewal_index, SubscriptionView,
};
use super::renewal::recover;
use crate::access;
use crate::audit::{self, Change};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::plans::{plan_subs_index, plan_subs_version_prefix};
use crate::store::{Query, Store, TenantId, UpdateAction};
use crate::time;
use crate::AppContext;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    pub from_version: u32,
    pub to_version: u32,
    /// `now`: the new version's price and limits apply at once (no proration; the next
    /// renewal bills the new price). `period_end`: from each subscription's next period.
    pub effective: Effective,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MigrateResult {
    pub migrated: u32,
    pub skipped: u32,
}

/// Moves the live subscriptions on one version of a plan to another version of it (platform
/// admin; audited). Existing subscriptions never move without this.
pub async fn migrate(
    ctx: &AppContext,
    caller: &Caller,
    plan_id: &str,
    req: MigrateRequest,
) -> Result<MigrateResult, ApiError> {
    caller.require_platform_admin()?;
    if req
        .reason
        .as_deref()
        .is_some_and(|r| r.chars().count() > 500 || r.chars().any(char::is_control))
    {
        return Err(ApiError::validation(
            "reason",
            "the reason is at most 500 characters, without control characters",
        ));
    }
    if req.from_version == req.to_version {
        return Err(ApiError::validation(
            "to_version",
            "pick a version other than from_version",
        ));
    }
    let from = load_version(ctx, plan_id, req.from_version)
        .await
        .map_err(|_| ApiError::validation("from_version", "no such version of this plan"))?;
    let to = load_version(ctx, plan_id, req.to_version)
        .await
        .map_err(|_| ApiError::validation("to_version", "no such version of this plan"))?;
    if to.currency != from.currency {
        return Err(ApiError::validation(
            "to_version",
            "versions in different currencies cannot be migrated between",
        ));
    }
    if req.effective == Effective::Now && to.billing_cycle != from.billing_cycle {
        return Err(ApiError::validation(
            "effective",
            "a change of billing cycle takes effect at period end",
        ));
    }
    let platform = ctx.stores.platform();
    let (mut migrated, mut skipped) = (0u32, 0u32);
    let mut cursor = None;
    loop {
        let page = platform
            .query(
                &Query::gsi1(plan_subs_index(plan_id))
                    .begins_with(plan_subs_version_prefix(req.from_version))
                    .limit(100)
                    .after(cursor),
            )
            .await?;
        for entry in &page.items {
            // The tenant from the pointer's own partition key, never from an attribute.
            let (Some((tenant, "SUBS")), Some(sub_id)) =
                (TenantId::of_pk(&entry.key.pk), entry.str("subscription_id"))
            else {
                continue;
            };
            let Some(sub) = load(ctx, &tenant, sub_id).await? else {
                continue;
            };
            if !sub.status.is_live()
                || sub.plan_id != plan_id
                || sub.plan_version != req.from_version
            {
                skipped += 1;
                continue;
            }
            let t = ctx.stores.tenant(&tenant);
            let now = ctx.clock.now();
            let mut tx = ctx.stores.transaction();
            let actions = match req.effective {
                Effective::Now => {
                    tx = tx.tenant(&t, live_moved(&t, &sub.id, plan_id, req.to_version));
                    vec![
                        UpdateAction::set("plan_version", i64::from(req.to_version)),
                        UpdateAction::set("price", to.price),
                    ]
                }
                Effective::PeriodEnd => vec![
                    UpdateAction::set("scheduled_plan_id", plan_id),
                    UpdateAction::set("scheduled_plan_version", i64::from(req.to_version)),
                ],
            };
            let outcome = tx
                .tenant(&t, sub.write(actions))
                .tenant(&t, crate::billing::events::op(&t, "plan.changed", json!({"subscription_id": sub.id, "plan_id": plan_id, "plan_version": req.to_version, "effective": req.effective, "migration": true}), now))
                .commit()
                .await;
            match outcome {
                Ok(()) => migrated += 1,
                Err(e) if e.is_condition_failure() => skipped += 1,
                Err(e) => return Err(e.into()),
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let now = ctx.clock.now();
    let change = Change {
        action: "plan.migrated",
        resource_type: "plan",
        resource_id: plan_id,
        before: Some(json!({"version": req.from_version})),
        after: Some(
            json!({"version": req.to_version, "effective": req.effective, "migrated": migrated, "skipped": skipped}),
        ),
        reason: req.reason.as_deref(),
    };
    ctx.stores
        .transaction()
        .platform(audit::platform_op(caller, change, now))
        .commit()
        .await?;
    Ok(MigrateResult { migrated, skipped })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// Move to this plan's current version now, without charge or proration.
    #[serde(default)]
    pub plan_id: Option<String>,
    /// Push the current period's end (and the renewal) back by this many days (1 to 366).
    #[serde(default)]
    pub extend_days: Option<u32>,
    /// `active` (recover a past-due subscription), `cancelled` or `expired`.
    #[serde(default)]
    pub status: Option<String>,
    /// Why: required, kept in the audit log.
    pub reason: String,
}

pub async fn admin_get(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
) -> Result<SubscriptionView, ApiError> {
    let tenant = access::admin_named_tenant(ctx, caller, tenant_id).await?;
    live_sub(ctx, &tenant).await?.view()
}

/// A platform admin's override of a tenant's live subscription, audited with its reason.
pub async fn admin_override(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    req: OverrideRequest,
) -> Result<SubscriptionView, ApiError> {
    let tenant = access::admin_named_tenant(ctx, caller, tenant_id).await?;
    let reason = crate::text::check_reason(&req.reason, "reason")?;
    let reason = reason.as_str();
    let changes = usize::from(req.plan_id.is_some())
        + usize::from(req.extend_days.is_some())
        + usize::from(req.status.is_some());
    if changes != 1 {
        return Err(ApiError::validation(
            "plan_id",
            "give exactly one of plan_id, extend_days, status",
        ));
    }
    let sub = live_sub(ctx, &tenant).await?;
    let before = sub.view()?;
    let t = ctx.stores.tenant(&tenant);
    let now = ctx.clock.now();
    if let Some(plan_id) = &req.plan_id {
        let to = current_version(ctx, plan_id).await?;
        if to.terms.currency != sub.currency {
            return Err(ApiError::validation(
                "plan_id",
                "plans in another currency cannot be switched to",
            ));
        }
        if *plan_id == sub.plan_id && to.version == sub.plan_version {
            return Err(ApiError::conflict(
                "the subscription is already on this plan's current version",
            ));
        }
        let moved = Move {
            restart_at: (to.terms.billing_cycle != sub.cycle).then_some(now),
            ..Move::default()
        };
        apply_plan(ctx, &t, &sub, &to, moved, now).await?;
    } else if let Some(days) = req.extend_days {
        if !(1..=366).contains(&days) {
            return Err(ApiError::validation("extend_days", "1 to 366 days"));
        }
        let by = Duration::days(i64::from(days));
        let end_at = sub.period_end + by;
        let mut actions = vec![
            // The anchor moves with the end, so later periods follow on from the extension.
            UpdateAction::set("anchor", time::fmt(sub.anchor + by)),
            UpdateAction::set("period_end", time::fmt(end_at)),
        ];
        if sub.trialing {
            actions.push(UpdateAction::set("trial_end", time::fmt(end_at)));
        }
        actions.extend(renewal_index(&tenant, &sub.id, end_at));
        sub.update(&t, actions).await.map_err(changed_meanwhile)?;
    } else if let Some(status) = &req.status {
        match status.as_str() {
            "active" => recover(ctx, &tenant, &sub).await?,
            "cancelled" => {
                end(ctx, &t, &sub, Event::Cancel, now, Decimal::ZERO, Vec::new()).await?;
            }
            "expired" => {
                end(ctx, &t, &sub, Event::Expire, now, Decimal::ZERO, Vec::new()).await?;
            }
            _ => {
                return Err(ApiError::validation(
                    "status",
                    "`active`, `cancelled` or `expired`",
                ))
            }
        }
    }
    let after = reload(ctx, &tenant, &sub.id).await?.view()?;
    let change = Change {
        action: "subscription.admin_override",
        resource_type: "subscription",
        resource_id: &sub.id,
        before: Some(serde_json::to_value(&before).unwrap_or_default()),
        after: Some(serde_json::to_value(&after).unwrap_or_default()),
        reason: Some(reason),
    };
    ctx.stores
        .transaction()
        .tenant(&t, audit::tenant_op(&t, caller, change, now))
        .commit()
        .await?;
    Ok(after)
}
