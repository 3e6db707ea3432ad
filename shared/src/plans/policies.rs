//! Limit policies: a metric, a limit (or unlimited), a reset period, hard or soft enforcement
//! and warning thresholds. Plans snapshot them into their versions, so editing a policy never
//! changes a plan version that exists.

use serde::{Deserialize, Deserializer, Serialize};

use crate::audit::{self, Change};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{ListParams, ListResponse};
use crate::ids::new_id;
use crate::store::{AttrValue, Condition, Item, Key, Query, Store, UpdateAction, WriteOp};
use crate::time;
use crate::AppContext;

const POLICY_INDEX: &str = "IDX#POLICIES";

pub fn policy_key(id: &str) -> Key {
    Key::new(format!("POLICY#{id}"), "META")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResetPeriod {
    /// A gauge (max_users, storage): never resets.
    None,
    Day,
    Month,
    /// Resets with the subscription's billing period.
    BillingPeriod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// Refuse usage past the limit.
    Hard,
    /// Allow it and flag the overage.
    Soft,
}

impl ResetPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetPeriod::None => "none",
            ResetPeriod::Day => "day",
            ResetPeriod::Month => "month",
            ResetPeriod::BillingPeriod => "billing_period",
        }
    }
    fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.into())).ok()
    }
}

impl Enforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Hard => "hard",
            Enforcement::Soft => "soft",
        }
    }
    fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.into())).ok()
    }
}

/// The limit part of a policy, as snapshotted into plan versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LimitSpec {
    pub metric: String,
    /// `null` is unlimited.
    pub limit: Option<u64>,
    pub reset_period: ResetPeriod,
    pub enforcement: Enforcement,
    /// Percentages of the limit at which the tenant is warned.
    pub warning_thresholds: Vec<u32>,
}

impl LimitSpec {
    pub fn to_attr(&self) -> AttrValue {
        AttrValue::from_json(&serde_json::to_value(self).expect("serializable"))
            .expect("plain JSON")
    }

    pub fn from_attr(value: &AttrValue) -> Result<Self, ApiError> {
        serde_json::from_value(value.to_json()).map_err(ApiError::internal)
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyView {
    pub id: String,
    pub description: String,
    #[serde(flatten)]
    pub spec: LimitSpec,
    pub created_at: String,
    pub updated_at: String,
}

impl PolicyView {
    pub fn from_item(item: &Item) -> Result<Self, ApiError> {
        Ok(Self {
            id: item.required_str("policy_id")?.to_owned(),
            description: item.str("description").unwrap_or_default().to_owned(),
            spec: LimitSpec::from_attr(
                item.get("spec")
                    .ok_or_else(|| ApiError::internal("policy without spec"))?,
            )?,
            created_at: item.required_str("created_at")?.to_owned(),
            updated_at: item.required_str("updated_at")?.to_owned(),
        })
    }
}

/// Distinguishes a field set to `null` from an absent one (PATCH).
pub fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePolicyRequest {
    /// A metric key: lower-case letters, digits and `_`, like `api_calls`.
    pub metric: String,
    /// A whole number, or `null` for unlimited.
    pub limit: Option<u64>,
    pub reset_period: String,
    pub enforcement: String,
    #[serde(default)]
    pub warning_thresholds: Option<Vec<u32>>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchPolicyRequest {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub limit: Option<Option<u64>>,
    pub reset_period: Option<String>,
    pub enforcement: Option<String>,
    pub warning_thresholds: Option<Vec<u32>>,
    pub description: Option<String>,
}

pub fn check_metric(metric: &str) -> Result<(), ApiError> {
    let ok = !metric.is_empty()
        && metric.len() <= 64
        && metric.starts_with(|c: char| c.is_ascii_lowercase())
        && metric
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "metric",
            "a metric is 1 to 64 of a-z, 0-9 and _, starting with a letter",
        ))
    }
}

fn check_limit(limit: Option<u64>) -> Result<Option<u64>, ApiError> {
    match limit {
        Some(n) if n > 1_000_000_000_000_000 => {
            Err(ApiError::validation("limit", "the limit is too large"))
        }
        other => Ok(other),
    }
}

fn check_thresholds(thresholds: Option<Vec<u32>>) -> Result<Vec<u32>, ApiError> {
    let mut thresholds = thresholds.unwrap_or_else(|| vec![80, 100]);
    thresholds.sort_unstable();
    thresholds.dedup();
    if thresholds.len() > 5 || thresholds.iter().any(|t| *t == 0 || *t > 1000) {
        return Err(ApiError::validation(
            "warning_thresholds",
            "up to 5 percentages from 1 to 1000",
        ));
    }
    Ok(thresholds)
}

fn check_description(text: Option<&str>) -> Result<String, ApiError> {
    let text = text.unwrap_or_default().trim();
    if text.chars().count() > 500 || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::validation("description", "up to 500 characters"));
    }
    Ok(text.to_owned())
}

fn parse_reset(text: &str) -> Result<ResetPeriod, ApiError> {
    ResetPeriod::parse(text).ok_or_else(|| {
        ApiError::validation("reset_period", "one of none, day, month, billing_period")
    })
}

fn parse_enforcement(text: &str) -> Result<Enforcement, ApiError> {
    Enforcement::parse(text).ok_or_else(|| ApiError::validation("enforcement", "`hard` or `soft`"))
}

fn policy_json(view: &PolicyView) -> serde_json::Value {
    serde_json::to_value(view).unwrap_or_default()
}

pub async fn create(
    ctx: &AppContext,
    caller: &Caller,
    req: CreatePolicyRequest,
) -> Result<PolicyView, ApiError> {
    caller.require_platform_admin()?;
    check_metric(&req.metric)?;
    let spec = LimitSpec {
        metric: req.metric,
        limit: check_limit(req.limit)?,
        reset_period: parse_reset(&req.reset_period)?,
        enforcement: parse_enforcement(&req.enforcement)?,
        warning_thresholds: check_thresholds(req.warning_thresholds)?,
    };
    let description = check_description(req.description.as_deref())?;
    let now = ctx.clock.now();
    let id = new_id("pol");
    let at = time::fmt(now);
    let item = Item::new(policy_key(&id))
        .with("policy_id", id.as_str())
        .with("description", description)
        .with("spec", spec.to_attr())
        .with("created_at", at.as_str())
        .with("updated_at", at.as_str())
        .with_gsi1(POLICY_INDEX, format!("{}#{id}", spec.metric));
    let view = PolicyView::from_item(&item)?;
    let change = Change {
        action: "limit_policy.created",
        resource_type: "limit_policy",
        resource_id: &id,
        before: None,
        after: Some(policy_json(&view)),
        reason: None,
    };
    ctx.stores
        .transaction()
        .platform(WriteOp::Put {
            item,
            condition: Some(Condition::ItemNotExists),
        })
        .platform(audit::platform_op(caller, change, now))
        .commit()
        .await?;
    Ok(view)
}

pub async fn load(ctx: &AppContext, id: &str) -> Result<Option<PolicyView>, ApiError> {
    if !crate::ids::is_key_safe(id) {
        return Ok(None);
    }
    ctx.stores
        .platform()
        .get(&policy_key(id))
        .await?
        .map(|i| PolicyView::from_item(&i))
        .transpose()
}

pub async fn get(ctx: &AppContext, caller: &Caller, id: &str) -> Result<PolicyView, ApiError> {
    caller.require_platform_admin()?;
    load(ctx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such limit policy"))
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    params: ListParams,
) -> Result<ListResponse<PolicyView>, ApiError> {
    caller.require_platform_admin()?;
    let page = ctx
        .stores
        .platform()
        .query(
            &Query::gsi1(POLICY_INDEX)
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    ListResponse::from_page(page, PolicyView::from_item)
}

/// Every metric some limit policy meters (for the `limit-warnings` sweep).
pub async fn all_metrics(ctx: &AppContext) -> Result<Vec<String>, ApiError> {
    let mut metrics = std::collections::BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = ctx
            .stores
            .platform()
            .query(&Query::gsi1(POLICY_INDEX).limit(1000).after(cursor))
            .await?;
        metrics.extend(
            page.items
                .iter()
                // The index's sort key is `<metric>#<policy id>`.
                .filter_map(|i| i.str(crate::store::GSI1SK)?.split_once('#'))
                .map(|(metric, _)| metric.to_owned()),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(metrics.into_iter().collect()),
        }
    }
}

/// Edits a policy. Plan versions made with it keep their snapshot; new versions see the edit.
pub async fn patch(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    req: PatchPolicyRequest,
) -> Result<PolicyView, ApiError> {
    ctx.hot.plans_changed();
    caller.require_platform_admin()?;
    let before = load(ctx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such limit policy"))?;
    let mut spec = before.spec.clone();
    if let Some(limit) = req.limit {
        spec.limit = check_limit(limit)?;
    }
    if let Some(reset) = &req.reset_period {
        spec.reset_period = parse_reset(reset)?;
    }
    if let Some(enforcement) = &req.enforcement {
        spec.enforcement = parse_enforcement(enforcement)?;
    }
    if req.warning_thresholds.is_some() {
        spec.warning_thresholds = check_thresholds(req.warning_thresholds)?;
    }
    let description = match &req.description {
        Some(d) => check_description(Some(d))?,
        None => before.description.clone(),
    };
    let now = ctx.clock.now();
    let after = PolicyView {
        spec: spec.clone(),
        description: description.clone(),
        updated_at: time::fmt(now),
        ..before.clone()
    };
    let change = Change {
        action: "limit_policy.updated",
        resource_type: "limit_policy",
        resource_id: id,
        before: Some(policy_json(&before)),
        after: Some(policy_json(&after)),
        reason: None,
    };
    ctx.stores
        .transaction()
        .platform(WriteOp::Update {
            key: policy_key(id),
            actions: vec![
                UpdateAction::set("spec", spec.to_attr()),
                UpdateAction::set("description", description),
                UpdateAction::set("updated_at", after.updated_at.as_str()),
            ],
            // Optimistic: nobody changed it since we read it.
            condition: Some(Condition::eq("updated_at", before.updated_at.as_str())),
        })
        .platform(audit::platform_op(caller, change, now))
        .commit()
        .await
        .map_err(|e| {
            if e.is_condition_failure() {
                ApiError::conflict("the policy changed meanwhile; retry")
            } else {
                e.into()
            }
        })?;
    Ok(after)
}
