//! The plan catalog: plans, their immutable versions and the terms a version fixes (price,
//! currency, cycle, trial, duration, limits), their keys and views, and the reads (a plan, the
//! list, a plan's versions). A plan's price, cycle, trial, duration and limits live in numbered
//! versions (`PLAN#<id>` / `VERSION#<nnnnnn>`) that never change once written; the plan's
//! `META` item points at the current one. Subscriptions keep the version they bought.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::policies::LimitSpec;
use super::rates::RateLimit;
use crate::auth::Caller;
use crate::billing::pricing::{SeatPrice, TopUp, UsageCharge};
use crate::error::ApiError;
use crate::http::{ListParams, ListResponse};
use crate::money::Currency;
use crate::store::{AttrValue, Item, Key, Query, Store};
use crate::AppContext;

pub(super) const PLAN_INDEX: &str = "IDX#PLANS";

pub fn plan_key(id: &str) -> Key {
    Key::new(format!("PLAN#{id}"), "META")
}

pub fn version_key(id: &str, version: u32) -> Key {
    Key::new(format!("PLAN#{id}"), format!("VERSION#{version:06}"))
}

pub(super) fn name_key(name: &str) -> Key {
    Key::new(format!("PLANNAME#{}", name.to_lowercase()), "NAME")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BillingCycle {
    Monthly,
    Yearly,
}

impl BillingCycle {
    pub fn as_str(self) -> &'static str {
        match self {
            BillingCycle::Monthly => "monthly",
            BillingCycle::Yearly => "yearly",
        }
    }

    pub(super) fn parse(text: &str) -> Result<Self, ApiError> {
        match text {
            "monthly" => Ok(BillingCycle::Monthly),
            "yearly" => Ok(BillingCycle::Yearly),
            _ => Err(ApiError::validation(
                "billing_cycle",
                "`monthly` or `yearly`",
            )),
        }
    }
}

/// What a version fixes: everything a subscription's price and limits depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionTerms {
    pub price: Decimal,
    pub currency: Currency,
    pub billing_cycle: BillingCycle,
    pub trial_days: u32,
    /// Number of billing cycles; `None` is open-ended.
    pub duration_cycles: Option<u32>,
    pub limits: Vec<LimitSpec>,
    /// A per-seat price on top of `price`, if the plan charges per member.
    pub seats: Option<SeatPrice>,
    /// Per metric, what usage past an allowance costs, billed in arrears at renewal.
    pub usage_charges: Vec<UsageCharge>,
    /// Packs of units a tenant admin may buy on top of the plan.
    pub top_ups: Vec<TopUp>,
    /// Feature values by key (`plans::features`: boolean, number or string).
    pub features: BTreeMap<String, serde_json::Value>,
    /// The plans a subscription on this version may change to; `None`: any.
    pub allowed_changes: Option<Vec<String>>,
    /// Request-rate limits per bucket (`plans::rates`), sorted.
    pub rate_limits: Vec<RateLimit>,
}

impl VersionTerms {
    /// The usage charge on `metric`, if the version prices it.
    pub fn usage_charge(&self, metric: &str) -> Option<&UsageCharge> {
        self.usage_charges.iter().find(|c| c.metric == metric)
    }

    /// The top-up pack the version sells for `metric`, if any.
    pub fn top_up(&self, metric: &str) -> Option<&TopUp> {
        self.top_ups.iter().find(|t| t.metric == metric)
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanVersionView {
    pub plan_id: String,
    pub version: u32,
    #[schema(example = "30.00")]
    pub price: String,
    #[schema(example = "USD")]
    pub currency: String,
    pub billing_cycle: BillingCycle,
    pub trial_days: u32,
    pub duration_cycles: Option<u32>,
    pub limits: Vec<LimitSpec>,
    /// A per-seat price on top of `price` (per cycle, in `currency`), or `null`.
    pub seats: Option<SeatPrice>,
    /// Usage charges per metric, billed in arrears on the renewal invoice.
    pub usage_charges: Vec<UsageCharge>,
    /// Packs of units a tenant admin may buy on top of the plan, charged at once.
    pub top_ups: Vec<TopUp>,
    /// Feature values by key: `true`/`false`, a number or a string, as the feature's type says.
    #[schema(value_type = BTreeMap<String, super::features::FeatureValue>, example = json!({"priority_support": true, "max_projects": 10}))]
    pub features: BTreeMap<String, serde_json::Value>,
    /// The plans this one may change to; `null`: any.
    pub allowed_changes: Option<Vec<String>>,
    /// Request-rate limits per bucket; `eshtarek_api` is the tenant's calls to this API.
    pub rate_limits: Vec<RateLimit>,
    pub created_at: String,
}

impl PlanVersionView {
    pub fn from_item(item: &Item) -> Result<Self, ApiError> {
        let terms = terms_of(item)?;
        Ok(Self {
            plan_id: item.required_str("plan_id")?.to_owned(),
            version: item.i64("version").unwrap_or(0) as u32,
            price: terms.currency.format(terms.price),
            currency: terms.currency.code().to_owned(),
            billing_cycle: terms.billing_cycle,
            trial_days: terms.trial_days,
            duration_cycles: terms.duration_cycles,
            limits: terms.limits,
            seats: terms.seats,
            usage_charges: terms.usage_charges,
            top_ups: terms.top_ups,
            features: terms.features,
            allowed_changes: terms.allowed_changes,
            rate_limits: terms.rate_limits,
            created_at: item.required_str("created_at")?.to_owned(),
        })
    }
}

/// Reads a version item's terms.
pub fn terms_of(item: &Item) -> Result<VersionTerms, ApiError> {
    let currency = Currency::parse(item.required_str("currency")?, "currency")
        .map_err(|e| ApiError::internal(e.detail))?;
    let limits = match item.get("limits") {
        Some(AttrValue::L(list)) => list
            .iter()
            .map(LimitSpec::from_attr)
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    fn from_attr<T: serde::de::DeserializeOwned>(value: &AttrValue) -> Result<T, ApiError> {
        serde_json::from_value(value.to_json()).map_err(ApiError::internal)
    }
    let seats = item.get("seats").map(from_attr).transpose()?;
    let usage_charges = item
        .get("usage_charges")
        .map(from_attr)
        .transpose()?
        .unwrap_or_default();
    let top_ups = item
        .get("top_ups")
        .map(from_attr)
        .transpose()?
        .unwrap_or_default();
    let features = item
        .get("features")
        .map(from_attr)
        .transpose()?
        .unwrap_or_default();
    let allowed_changes = item.get("allowed_changes").map(from_attr).transpose()?;
    let rate_limits = item
        .get("rate_limits")
        .map(from_attr)
        .transpose()?
        .unwrap_or_default();
    Ok(VersionTerms {
        price: item
            .decimal("price")
            .ok_or_else(|| ApiError::internal("version without price"))?,
        currency,
        billing_cycle: BillingCycle::parse(item.required_str("billing_cycle")?)
            .map_err(|e| ApiError::internal(e.detail))?,
        trial_days: item.i64("trial_days").unwrap_or(0) as u32,
        duration_cycles: item.i64("duration_cycles").map(|n| n as u32),
        limits,
        seats,
        usage_charges,
        top_ups,
        features,
        allowed_changes,
        rate_limits,
    })
}

pub(super) fn version_item(plan_id: &str, version: u32, terms: &VersionTerms, at: &str) -> Item {
    let mut item = Item::new(version_key(plan_id, version))
        .with("plan_id", plan_id)
        .with("version", i64::from(version))
        .with("price", terms.price)
        .with("currency", terms.currency.code())
        .with("billing_cycle", terms.billing_cycle.as_str())
        .with("trial_days", i64::from(terms.trial_days))
        .with(
            "limits",
            AttrValue::L(terms.limits.iter().map(LimitSpec::to_attr).collect()),
        )
        .with("created_at", at);
    if let Some(cycles) = terms.duration_cycles {
        item = item.with("duration_cycles", i64::from(cycles));
    }
    let to_attr = |value: serde_json::Value| AttrValue::from_json(&value).expect("plain JSON");
    if let Some(seats) = &terms.seats {
        item = item.with("seats", to_attr(serde_json::json!(seats)));
    }
    if !terms.usage_charges.is_empty() {
        item = item.with(
            "usage_charges",
            to_attr(serde_json::json!(terms.usage_charges)),
        );
    }
    if !terms.top_ups.is_empty() {
        item = item.with("top_ups", to_attr(serde_json::json!(terms.top_ups)));
    }
    if !terms.features.is_empty() {
        item = item.with("features", to_attr(serde_json::json!(terms.features)));
    }
    if let Some(allowed) = &terms.allowed_changes {
        item = item.with("allowed_changes", to_attr(serde_json::json!(allowed)));
    }
    if !terms.rate_limits.is_empty() {
        item = item.with("rate_limits", to_attr(serde_json::json!(terms.rate_limits)));
    }
    item
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub active: bool,
    pub current_version: u32,
    #[schema(example = "30.00")]
    pub price: String,
    #[schema(example = "USD")]
    pub currency: String,
    pub billing_cycle: BillingCycle,
    pub trial_days: u32,
    pub duration_cycles: Option<u32>,
    pub limits: Vec<LimitSpec>,
    /// A per-seat price on top of `price` (per cycle, in `currency`), or `null`.
    pub seats: Option<SeatPrice>,
    /// Usage charges per metric, billed in arrears on the renewal invoice.
    pub usage_charges: Vec<UsageCharge>,
    /// Packs of units a tenant admin may buy on top of the plan, charged at once.
    pub top_ups: Vec<TopUp>,
    /// Feature values by key: `true`/`false`, a number or a string, as the feature's type says.
    #[schema(value_type = BTreeMap<String, super::features::FeatureValue>, example = json!({"priority_support": true, "max_projects": 10}))]
    pub features: BTreeMap<String, serde_json::Value>,
    /// The plans this one may change to; `null`: any.
    pub allowed_changes: Option<Vec<String>>,
    /// Request-rate limits per bucket; `eshtarek_api` is the tenant's calls to this API.
    pub rate_limits: Vec<RateLimit>,
    pub created_at: String,
    pub updated_at: String,
}

impl PlanView {
    pub(super) fn from_items(meta: &Item, version: &Item) -> Result<Self, ApiError> {
        let v = PlanVersionView::from_item(version)?;
        Ok(Self {
            id: meta.required_str("plan_id")?.to_owned(),
            name: meta.required_str("name")?.to_owned(),
            description: meta.str("description").unwrap_or_default().to_owned(),
            active: meta.bool("active").unwrap_or(false),
            current_version: v.version,
            price: v.price,
            currency: v.currency,
            billing_cycle: v.billing_cycle,
            trial_days: v.trial_days,
            duration_cycles: v.duration_cycles,
            limits: v.limits,
            seats: v.seats,
            usage_charges: v.usage_charges,
            top_ups: v.top_ups,
            features: v.features,
            allowed_changes: v.allowed_changes,
            rate_limits: v.rate_limits,
            created_at: meta.required_str("created_at")?.to_owned(),
            updated_at: meta.required_str("updated_at")?.to_owned(),
        })
    }
}

pub(super) fn plan_json(view: &PlanView) -> serde_json::Value {
    serde_json::to_value(view).unwrap_or_default()
}

/// The plan's META item and its current version item.
pub(super) async fn load_items(
    ctx: &AppContext,
    id: &str,
) -> Result<Option<(Item, Item)>, ApiError> {
    if !crate::ids::is_key_safe(id) {
        return Ok(None);
    }
    let platform = ctx.stores.platform();
    let Some(meta) = platform.get(&plan_key(id)).await? else {
        return Ok(None);
    };
    let current = meta.i64("current_version").unwrap_or(1) as u32;
    let version = platform
        .get(&version_key(id, current))
        .await?
        .ok_or_else(|| ApiError::internal(format!("plan {id} lacks version {current}")))?;
    Ok(Some((meta, version)))
}

/// A plan as its viewer may see it: inactive plans only to platform admins.
pub async fn get(
    ctx: &AppContext,
    caller: Option<&Caller>,
    id: &str,
) -> Result<PlanView, ApiError> {
    let (meta, version) = load_items(ctx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such plan"))?;
    let view = PlanView::from_items(&meta, &version)?;
    if !view.active && !caller.is_some_and(Caller::is_platform_admin) {
        return Err(ApiError::not_found("no such plan"));
    }
    Ok(view)
}

/// Plans by name; active ones for everybody (a pricing page needs no sign-in), inactive ones
/// too for platform admins.
pub async fn list(
    ctx: &AppContext,
    caller: Option<&Caller>,
    params: ListParams,
) -> Result<ListResponse<PlanView>, ApiError> {
    let admin = caller.is_some_and(Caller::is_platform_admin);
    let page = ctx
        .stores
        .platform()
        .query(
            &Query::gsi1(PLAN_INDEX)
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    let mut data = Vec::new();
    for meta in &page.items {
        if !admin && !meta.bool("active").unwrap_or(false) {
            continue;
        }
        let id = meta.required_str("plan_id")?;
        let current = meta.i64("current_version").unwrap_or(1) as u32;
        let version = ctx
            .stores
            .platform()
            .get(&version_key(id, current))
            .await?
            .ok_or_else(|| ApiError::internal("plan without its current version"))?;
        data.push(PlanView::from_items(meta, &version)?);
    }
    Ok(ListResponse {
        data,
        next_cursor: page.next_cursor,
    })
}

pub async fn versions(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    params: ListParams,
) -> Result<ListResponse<PlanVersionView>, ApiError> {
    caller.require_platform_admin()?;
    if load_items(ctx, id).await?.is_none() {
        return Err(ApiError::not_found("no such plan"));
    }
    let page = ctx
        .stores
        .platform()
        .query(
            &Query::table(format!("PLAN#{id}"))
                .begins_with("VERSION#")
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    ListResponse::from_page(page, PlanVersionView::from_item)
}

/// One version of a plan: what a subscription on it pays and may use. The plan's rule holds:
/// an inactive plan's versions only to platform admins.
pub async fn version(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    version: u32,
) -> Result<PlanVersionView, ApiError> {
    if !crate::ids::is_key_safe(id) || version == 0 {
        return Err(ApiError::not_found("no such plan version"));
    }
    get(ctx, Some(caller), id)
        .await
        .map_err(|e| match e.status.as_u16() {
            404 => ApiError::not_found("no such plan version"),
            _ => e,
        })?;
    let item = ctx
        .stores
        .platform()
        .get(&version_key(id, version))
        .await?
        .ok_or_else(|| ApiError::not_found("no such plan version"))?;
    PlanVersionView::from_item(&item)
}

/// The platform index (GSI1) of a plan's live subscriptions, by version: entries are the
/// tenants' live-subscription pointers, written by `billing::subscriptions` in each tenant's
/// own transactions.
pub fn plan_subs_index(plan_id: &str) -> String {
    format!("IDX#PLANSUBS#{plan_id}")
}

/// The sort-key prefix of one version's entries in [`plan_subs_index`].
pub fn plan_subs_version_prefix(version: u32) -> String {
    format!("{version:06}#")
}
