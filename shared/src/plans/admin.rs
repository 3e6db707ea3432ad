//! What platform admins do to the catalog: create a plan with its first version, edit it
//! (a change of terms writes the next version), activate or deactivate it, delete an unused
//! one; each audited.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use super::catalog::{
    load_items, name_key, plan_json, plan_key, plan_subs_index, terms_of, version_item,
    version_key, BillingCycle, PlanView, VersionTerms, PLAN_INDEX,
};
use super::policies::{self, double_option, LimitSpec, ResetPeriod};
use super::rates::RateLimit;
use crate::audit::{self, Change};
use crate::auth::Caller;
use crate::billing::pricing::{SeatPrice, TopUp, UsageCharge};
use crate::error::ApiError;
use crate::ids::new_id;
use crate::money::Currency;
use crate::store::{Condition, Item, Query, Store, UpdateAction, WriteOp};
use crate::time;
use crate::AppContext;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlanRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// A decimal string in the currency's minor unit, like "30.00".
    pub price: String,
    /// ISO 4217, like "USD".
    pub currency: String,
    /// `monthly` or `yearly`.
    pub billing_cycle: String,
    #[serde(default)]
    pub trial_days: Option<u32>,
    /// Number of billing cycles the plan lasts; absent or `null` is open-ended.
    #[serde(default)]
    pub duration_cycles: Option<u32>,
    #[serde(default)]
    #[schema(max_items = 20)]
    pub limit_policy_ids: Vec<String>,
    /// A per-seat price on top of `price`: each member past `included` costs `unit_price` per
    /// cycle.
    #[serde(default)]
    pub seats: Option<SeatPrice>,
    /// What usage past an allowance costs, one charge per metric, billed in arrears on the
    /// renewal invoice. A charged metric that also has a limit must reset per billing period.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub usage_charges: Vec<UsageCharge>,
    /// Packs of units a tenant admin may buy on top of the plan, charged at once and good
    /// for the rest of the billing period; one per metric, on a metric the plan limits or
    /// charges per billing period.
    #[serde(default)]
    #[schema(max_items = 10)]
    pub top_ups: Vec<TopUp>,
    /// Feature values by key (each defined first with `POST /v1/features`, of its type).
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, super::features::FeatureValue>, example = json!({"priority_support": true, "max_projects": 10}))]
    pub features: BTreeMap<String, serde_json::Value>,
    /// The plans a subscription may change to from this one (plan ids); absent or `null`: any.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub allowed_changes: Option<Vec<String>>,
    /// Request-rate limits per named bucket (GCRA: a burst of `limit`, then one every
    /// `per / limit`); the bucket `eshtarek_api` limits the tenant's calls to this API.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub rate_limits: Vec<RateLimit>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchPlanRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<String>,
    pub currency: Option<String>,
    pub billing_cycle: Option<String>,
    pub trial_days: Option<u32>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub duration_cycles: Option<Option<u32>>,
    pub limit_policy_ids: Option<Vec<String>>,
    /// A per-seat price; `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<SeatPrice>)]
    pub seats: Option<Option<SeatPrice>>,
    /// Replaces the usage charges (`[]` removes them all).
    #[schema(max_items = 20)]
    pub usage_charges: Option<Vec<UsageCharge>>,
    /// Replaces the top-up packs (`[]` removes them all).
    #[schema(max_items = 10)]
    pub top_ups: Option<Vec<TopUp>>,
    /// Replaces the feature values (`{}` removes them all).
    #[schema(value_type = Option<BTreeMap<String, super::features::FeatureValue>>)]
    pub features: Option<BTreeMap<String, serde_json::Value>>,
    /// Replaces the plans it may change to; `null`: any.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>, max_items = 50)]
    pub allowed_changes: Option<Option<Vec<String>>>,
    /// Replaces the rate limits (`[]` removes them all).
    #[schema(max_items = 20)]
    pub rate_limits: Option<Vec<RateLimit>>,
}

fn check_plan_name(raw: &str) -> Result<String, ApiError> {
    if raw.trim().chars().count() > 80 {
        return Err(ApiError::validation("name", "use 1 to 80 characters"));
    }
    crate::text::check_name(raw, "name")
}

fn check_description(raw: Option<&str>) -> Result<String, ApiError> {
    let text = raw.unwrap_or_default().trim();
    if text.chars().count() > 2000 {
        return Err(ApiError::validation("description", "up to 2000 characters"));
    }
    Ok(text.to_owned())
}

fn check_trial(days: u32) -> Result<u32, ApiError> {
    if days > 365 {
        return Err(ApiError::validation("trial_days", "0 to 365 days"));
    }
    Ok(days)
}

fn check_duration(cycles: Option<u32>) -> Result<Option<u32>, ApiError> {
    match cycles {
        Some(0) | Some(1001..) => Err(ApiError::validation(
            "duration_cycles",
            "1 to 1000 cycles, or null for open-ended",
        )),
        other => Ok(other),
    }
}

/// Checks a version's price components against its currency and limits: the seat price in
/// the currency's minor unit; at most one charge per metric, none on `max_users` (members are
/// priced by `seats`), and a charged metric with a limit counting per billing period (usage is
/// billed per period from that counter).
fn check_components(mut terms: VersionTerms) -> Result<VersionTerms, ApiError> {
    terms.seats = terms
        .seats
        .map(|seats| seats.check(terms.currency))
        .transpose()?;
    if terms.usage_charges.len() > 20 {
        return Err(ApiError::validation(
            "usage_charges",
            "at most 20 usage charges per plan",
        ));
    }
    let mut metrics = HashSet::new();
    for (i, charge) in terms.usage_charges.iter().enumerate() {
        let field = format!("usage_charges[{i}]");
        charge.check(&field)?;
        let bad = |why: &str| ApiError::validation(format!("{field}.metric"), why.to_owned());
        if charge.metric == "max_users" {
            return Err(bad("members are priced by `seats`, not a usage charge"));
        }
        if !metrics.insert(charge.metric.as_str()) {
            return Err(bad("one usage charge per metric"));
        }
        let limit = terms.limits.iter().find(|l| l.metric == charge.metric);
        if limit.is_some_and(|l| l.reset_period != ResetPeriod::BillingPeriod) {
            return Err(bad(
                "this metric's limit policy does not reset per billing period; a charged metric is counted per billing period",
            ));
        }
    }
    check_top_ups(terms)
}

/// Checks the top-up packs: in the plan's currency, one per metric, each on a metric the
/// plan limits or charges and counts per billing period (bought units last the period).
fn check_top_ups(mut terms: VersionTerms) -> Result<VersionTerms, ApiError> {
    if terms.top_ups.len() > 10 {
        return Err(ApiError::validation(
            "top_ups",
            "at most 10 top-ups per plan",
        ));
    }
    let mut metrics = HashSet::new();
    let mut checked = Vec::new();
    for (i, pack) in terms.top_ups.iter().enumerate() {
        let field = format!("top_ups[{i}]");
        let pack = pack.check(&field, terms.currency)?;
        let bad = |why: &str| ApiError::validation(format!("{field}.metric"), why.to_owned());
        if !metrics.insert(pack.metric.clone()) {
            return Err(bad("one top-up per metric"));
        }
        let limit = terms.limits.iter().find(|l| l.metric == pack.metric);
        let charged = terms.usage_charge(&pack.metric).is_some();
        match limit {
            Some(l) if l.reset_period != ResetPeriod::BillingPeriod => {
                return Err(bad(
                    "this metric's limit does not reset per billing period; top-ups last a billing period",
                ))
            }
            None if !charged => return Err(bad("the plan neither limits nor charges this metric")),
            _ => {}
        }
        checked.push(pack);
    }
    terms.top_ups = checked;
    Ok(terms)
}

/// Checks the plans a plan may change to: existing plans, each once, not itself, at most 50.
async fn check_allowed(
    ctx: &AppContext,
    own: Option<&str>,
    list: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = list else {
        return Ok(None);
    };
    if list.len() > 50 {
        return Err(ApiError::validation("allowed_changes", "at most 50 plans"));
    }
    let mut seen = HashSet::new();
    for (i, id) in list.iter().enumerate() {
        let field = format!("allowed_changes[{i}]");
        if Some(id.as_str()) == own {
            return Err(ApiError::validation(
                field,
                "a plan does not change to itself",
            ));
        }
        if !seen.insert(id.as_str()) {
            return Err(ApiError::validation(field, "listed twice"));
        }
        let exists = crate::ids::is_key_safe(id)
            && ctx.stores.platform().get(&plan_key(id)).await?.is_some();
        if !exists {
            return Err(ApiError::validation(field, format!("no plan {id:?}")));
        }
    }
    Ok(Some(list))
}

/// Snapshots the named policies' limits; one limit per metric.
async fn snapshot_limits(ctx: &AppContext, ids: &[String]) -> Result<Vec<LimitSpec>, ApiError> {
    if ids.len() > 20 {
        return Err(ApiError::validation(
            "limit_policy_ids",
            "at most 20 limit policies per plan",
        ));
    }
    let mut limits = Vec::new();
    let mut metrics = HashSet::new();
    for id in ids {
        let policy = policies::load(ctx, id).await?.ok_or_else(|| {
            ApiError::validation("limit_policy_ids", format!("no limit policy {id:?}"))
        })?;
        if !metrics.insert(policy.spec.metric.clone()) {
            return Err(ApiError::validation(
                "limit_policy_ids",
                format!("metric {} is limited twice", policy.spec.metric),
            ));
        }
        limits.push(policy.spec);
    }
    limits.sort_by(|a, b| a.metric.cmp(&b.metric));
    Ok(limits)
}

pub async fn create(
    ctx: &AppContext,
    caller: &Caller,
    req: CreatePlanRequest,
) -> Result<PlanView, ApiError> {
    ctx.hot.plans_changed();
    caller.require_platform_admin()?;
    let name = check_plan_name(&req.name)?;
    let description = check_description(req.description.as_deref())?;
    let currency = Currency::parse(&req.currency, "currency")?;
    let terms = VersionTerms {
        price: currency.parse_amount(&req.price, "price")?,
        currency,
        billing_cycle: BillingCycle::parse(&req.billing_cycle)?,
        trial_days: check_trial(req.trial_days.unwrap_or(0))?,
        duration_cycles: check_duration(req.duration_cycles)?,
        limits: snapshot_limits(ctx, &req.limit_policy_ids).await?,
        seats: req.seats,
        usage_charges: req.usage_charges,
        top_ups: req.top_ups,
        features: req.features,
        allowed_changes: check_allowed(ctx, None, req.allowed_changes).await?,
        rate_limits: super::rates::check(req.rate_limits)?,
    };
    let terms = check_components(terms)?;
    super::features::check_values(ctx, &terms.features).await?;
    let now = ctx.clock.now();
    let at = time::fmt(now);
    let id = new_id("plan");
    let meta = Item::new(plan_key(&id))
        .with("plan_id", id.as_str())
        .with("name", name.as_str())
        .with("description", description)
        .with("active", true)
        .with("current_version", 1)
        .with("created_at", at.as_str())
        .with("updated_at", at.as_str())
        .with_gsi1(PLAN_INDEX, format!("{}#{id}", name.to_lowercase()));
    let version = version_item(&id, 1, &terms, &at);
    let view = PlanView::from_items(&meta, &version)?;
    let change = Change {
        action: "plan.created",
        resource_type: "plan",
        resource_id: &id,
        before: None,
        after: Some(plan_json(&view)),
        reason: None,
    };
    ctx.stores
        .transaction()
        .platform(WriteOp::Put {
            item: Item::new(name_key(&name)).with("plan_id", id.as_str()),
            condition: Some(Condition::ItemNotExists),
        })
        .platform(WriteOp::Put {
            item: meta,
            condition: Some(Condition::ItemNotExists),
        })
        .platform(WriteOp::Put {
            item: version,
            condition: Some(Condition::ItemNotExists),
        })
        .platform(audit::platform_op(caller, change, now))
        .commit()
        .await
        .map_err(|e| match e.failed_condition_index() {
            Some(0) => duplicate_name(),
            _ => e.into(),
        })?;
    Ok(view)
}

fn duplicate_name() -> ApiError {
    ApiError::conflict("a plan with this name exists").field("name")
}

/// Edits a plan. Changing price, currency, cycle, trial, duration or limits writes version n+1
/// and makes it current; existing subscriptions keep theirs. Name and description are cosmetic.
pub async fn patch(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    req: PatchPlanRequest,
) -> Result<PlanView, ApiError> {
    let (meta, current_item, before) = load_to_change(ctx, caller, id).await?;
    let current = terms_of(&current_item)?;
    let current_version = before.current_version;

    let currency = match &req.currency {
        Some(code) => Currency::parse(code, "currency")?,
        None => current.currency,
    };
    let terms = VersionTerms {
        price: match &req.price {
            Some(price) => currency.parse_amount(price, "price")?,
            None => currency.round(current.price),
        },
        currency,
        billing_cycle: match &req.billing_cycle {
            Some(cycle) => BillingCycle::parse(cycle)?,
            None => current.billing_cycle,
        },
        trial_days: check_trial(req.trial_days.unwrap_or(current.trial_days))?,
        duration_cycles: match req.duration_cycles {
            Some(cycles) => check_duration(cycles)?,
            None => current.duration_cycles,
        },
        limits: match &req.limit_policy_ids {
            Some(ids) => snapshot_limits(ctx, ids).await?,
            None => current.limits.clone(),
        },
        seats: match req.seats {
            Some(seats) => seats,
            None => current.seats.clone(),
        },
        usage_charges: req
            .usage_charges
            .unwrap_or_else(|| current.usage_charges.clone()),
        top_ups: req.top_ups.unwrap_or_else(|| current.top_ups.clone()),
        features: req.features.unwrap_or_else(|| current.features.clone()),
        allowed_changes: match req.allowed_changes {
            Some(list) => check_allowed(ctx, Some(id), list).await?,
            None => current.allowed_changes.clone(),
        },
        rate_limits: match req.rate_limits {
            Some(rates) => super::rates::check(rates)?,
            None => current.rate_limits.clone(),
        },
    };
    let terms = check_components(terms)?;
    if terms.features != current.features {
        super::features::check_values(ctx, &terms.features).await?;
    }
    let name = req.name.as_deref().map(check_plan_name).transpose()?;
    let description = req
        .description
        .as_deref()
        .map(|d| check_description(Some(d)))
        .transpose()?;
    let new_version = terms != current;
    if !new_version && name.is_none() && description.is_none() {
        return Ok(before);
    }

    let now = ctx.clock.now();
    let at = time::fmt(now);
    let next = current_version + 1;
    let mut actions = vec![UpdateAction::set("updated_at", at.as_str())];
    if new_version {
        actions.push(UpdateAction::set("current_version", i64::from(next)));
    }
    if let Some(description) = &description {
        actions.push(UpdateAction::set("description", description.as_str()));
    }
    let renamed = name
        .as_ref()
        .filter(|n| n.to_lowercase() != before.name.to_lowercase());
    if let Some(name) = &name {
        actions.push(UpdateAction::set("name", name.as_str()));
        actions.push(UpdateAction::set(
            crate::store::GSI1SK,
            format!("{}#{id}", name.to_lowercase()),
        ));
    }
    // Concurrent edits: only one moves the plan from the version (and update time) it read.
    let mut tx = ctx.stores.transaction().platform(WriteOp::Update {
        key: plan_key(id),
        actions,
        condition: Some(Condition::And(vec![
            Condition::eq("current_version", i64::from(current_version)),
            Condition::eq("updated_at", before.updated_at.as_str()),
        ])),
    });
    let mut version_item_new = None;
    if new_version {
        let item = version_item(id, next, &terms, &at);
        version_item_new = Some(item.clone());
        tx = tx.platform(WriteOp::Put {
            item,
            condition: Some(Condition::ItemNotExists),
        });
    }
    if let Some(name) = renamed {
        tx = tx
            .platform(WriteOp::Put {
                item: Item::new(name_key(name)).with("plan_id", id),
                condition: Some(Condition::ItemNotExists),
            })
            .platform(WriteOp::Delete {
                key: name_key(&before.name),
                condition: Some(Condition::eq("plan_id", id)),
            });
    }
    let mut after_meta = meta.clone();
    after_meta
        .attrs
        .insert("updated_at".into(), at.as_str().into());
    if let Some(name) = &name {
        after_meta.attrs.insert("name".into(), name.as_str().into());
    }
    if let Some(description) = &description {
        after_meta
            .attrs
            .insert("description".into(), description.as_str().into());
    }
    let after = PlanView::from_items(
        &after_meta,
        version_item_new.as_ref().unwrap_or(&current_item),
    )?;
    let change = Change {
        action: if new_version {
            "plan.version_created"
        } else {
            "plan.updated"
        },
        resource_type: "plan",
        resource_id: id,
        before: Some(plan_json(&before)),
        after: Some(plan_json(&after)),
        reason: None,
    };
    let renamed_index = if new_version { 2 } else { 1 };
    tx.platform(audit::platform_op(caller, change, now))
        .commit()
        .await
        .map_err(|e| match e.failed_condition_index() {
            Some(0) => ApiError::conflict("the plan changed meanwhile; reload and retry"),
            Some(i) if i == renamed_index && renamed.is_some() => duplicate_name(),
            Some(_) => ApiError::conflict("the plan changed meanwhile; reload and retry"),
            None => e.into(),
        })?;
    Ok(after)
}

/// Activates or deactivates a plan. A deactivated plan takes no new subscriptions; existing
/// ones continue.
pub async fn set_active(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    active: bool,
) -> Result<PlanView, ApiError> {
    let (meta, version, before) = load_to_change(ctx, caller, id).await?;
    if before.active == active {
        return Ok(before);
    }
    let now = ctx.clock.now();
    let at = time::fmt(now);
    let mut after_meta = meta.clone();
    after_meta.attrs.insert("active".into(), active.into());
    after_meta
        .attrs
        .insert("updated_at".into(), at.as_str().into());
    let after = PlanView::from_items(&after_meta, &version)?;
    let change = Change {
        action: if active {
            "plan.activated"
        } else {
            "plan.deactivated"
        },
        resource_type: "plan",
        resource_id: id,
        before: Some(plan_json(&before)),
        after: Some(plan_json(&after)),
        reason: None,
    };
    ctx.stores
        .transaction()
        .platform(WriteOp::Update {
            key: plan_key(id),
            actions: vec![
                UpdateAction::set("active", active),
                UpdateAction::set("updated_at", at.as_str()),
            ],
            condition: Some(Condition::eq("active", !active)),
        })
        .platform(audit::platform_op(caller, change, now))
        .commit()
        .await
        .map_err(|e| {
            if e.is_condition_failure() {
                ApiError::conflict("the plan changed meanwhile; retry")
            } else {
                e.into()
            }
        })?;
    Ok(after)
}

/// Deletes a plan no subscription uses (409 otherwise), with its versions and name.
pub async fn delete(ctx: &AppContext, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let (_, _, before) = load_to_change(ctx, caller, id).await?;
    // Live subscriptions are indexed under their plan from the tenant's side (see
    // `plan_subs_index`); the index is read, not a count kept on the plan, so
    // no tenant's write ever touches the plan's item. Its versions stay (immutable, and what
    // a subscription racing this delete, or an invoice, refers to).
    let in_use = ctx
        .stores
        .platform()
        .query(&Query::gsi1(plan_subs_index(id)).limit(1))
        .await?;
    if !in_use.items.is_empty() {
        return Err(ApiError::conflict(
            "subscriptions use this plan; deactivate it instead",
        ));
    }
    let now = ctx.clock.now();
    let change = Change {
        action: "plan.deleted",
        resource_type: "plan",
        resource_id: id,
        before: Some(plan_json(&before)),
        after: None,
        reason: None,
    };
    ctx.stores
        .transaction()
        .platform(WriteOp::Delete {
            key: plan_key(id),
            condition: Some(Condition::eq(
                "current_version",
                i64::from(before.current_version),
            )),
        })
        .platform(WriteOp::Delete {
            key: name_key(&before.name),
            condition: None,
        })
        .platform(audit::platform_op(caller, change, now))
        .commit()
        .await
        .map_err(|e| {
            if e.is_condition_failure() {
                ApiError::conflict("subscriptions use this plan, or it changed meanwhile")
            } else {
                e.into()
            }
        })?;
    // Versions are immutable history; with the plan gone nothing reaches them, so they go too.
    let platform = ctx.stores.platform();
    for v in 1..=before.current_version {
        if let Err(e) = crate::store::StoreExt::delete(&platform, version_key(id, v), None).await {
            tracing::warn!(plan_id = id, version = v, error = %e, "could not delete a plan version");
        }
    }
    Ok(())
}

/// The plan a platform admin is about to change: its META and current version items and its
/// view before the change. Cached plan facts are dropped first, so no instance keeps serving
/// what is about to change.
async fn load_to_change(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<(Item, Item, PlanView), ApiError> {
    ctx.hot.plans_changed();
    caller.require_platform_admin()?;
    let (meta, version) = load_items(ctx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such plan"))?;
    let before = PlanView::from_items(&meta, &version)?;
    Ok((meta, version, before))
}
