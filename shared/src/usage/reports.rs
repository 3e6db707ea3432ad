//! Reading usage: a tenant's summary (every metric of its plan, used against limit), the
//! platform's view of one metric across tenants, "would this be allowed?" checks, and history
//! from the rollups.

use chrono::Datelike;
use serde::{Deserialize, Serialize};

use super::counters::{
    counter_key, counting_period, rollup_buckets, usage_index_partition, USAGE_INDEX_SHARDS,
};
use super::meter::Meter;
use super::model::unknown_metric;
use crate::billing::grants::granted_at;
use crate::entitlements::{limits_in_force, spec_for};
use crate::error::ApiError;
use crate::plans::policies::{Enforcement, LimitSpec, ResetPeriod};
use crate::store::Store;
use crate::time;
use crate::AppContext;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MetricUsage {
    pub metric: String,
    pub used: u64,
    /// The limit in force: the plan's plus what is granted now; `null` is unlimited.
    pub limit: Option<u64>,
    /// The plan's own limit.
    pub plan_limit: Option<u64>,
    /// Units granted on top of the plan, in force now.
    pub granted: u64,
    /// Percent of the limit used, rounded down; `null` when unlimited.
    pub percent: Option<u64>,
    pub enforcement: Enforcement,
    pub reset_period: ResetPeriod,
    pub period_start: String,
    pub period_end: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageSummary {
    pub plan_id: String,
    pub plan_version: u32,
    pub data: Vec<MetricUsage>,
}

/// A tenant's usage summary, for a platform admin looking at that tenant.
pub async fn admin_summary(
    ctx: &AppContext,
    caller: &crate::auth::Caller,
    tenant_id: &str,
) -> Result<UsageSummary, ApiError> {
    let meter = Meter {
        tenant: crate::access::admin_named_tenant(ctx, caller, tenant_id).await?,
        can_write: false,
        can_read: true,
    };
    summary(ctx, &meter).await
}

/// Every metric of the current plan with used / limit / percent.
pub async fn summary(ctx: &AppContext, meter: &Meter) -> Result<UsageSummary, ApiError> {
    if !meter.can_read {
        return Err(ApiError::forbidden("this key lacks the usage:read scope"));
    }
    let limits = limits_in_force(ctx, &meter.tenant).await?;
    let t = ctx.stores.tenant(&meter.tenant);
    let now = ctx.clock.now();
    let mut data = Vec::new();
    // Charged metrics without a limit count per billing period and are never refused.
    let charged_only = limits
        .charged_only()
        .filter_map(|metric| limits.spec_or_charged(metric));
    let specs: Vec<LimitSpec> = limits.limits.iter().cloned().chain(charged_only).collect();
    for spec in &specs {
        data.push(metric_usage(&t, &limits, spec, now).await?);
    }
    Ok(UsageSummary {
        plan_id: limits.sub.plan_id.clone(),
        plan_version: limits.sub.plan_version,
        data,
    })
}

/// One metric's use against the limit in force now (`spec`: its limit, or a charged
/// metric's count per billing period); one read.
pub(super) async fn metric_usage(
    t: &crate::store::TenantStore,
    limits: &crate::entitlements::Limits,
    spec: &LimitSpec,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<MetricUsage, ApiError> {
    let item = t.get(&usage_key(t, limits, spec, now)).await?;
    Ok(usage_of(item.as_ref(), limits, spec, now))
}

/// Where a metric's use is read: the tenant's member count for `max_users`, else the
/// metric's counter for the period counting now.
pub(super) fn usage_key(
    t: &crate::store::TenantStore,
    limits: &crate::entitlements::Limits,
    spec: &LimitSpec,
    now: chrono::DateTime<chrono::Utc>,
) -> crate::store::Key {
    if spec.metric == "max_users" {
        t.key("META", "TENANT")
    } else {
        let (start, _) = counting_period(spec.reset_period, &limits.sub, now);
        counter_key(t, &spec.metric, start)
    }
}

/// A metric's use from the item at its [`usage_key`] (`None`: nothing counted yet).
pub(super) fn usage_of(
    item: Option<&crate::store::Item>,
    limits: &crate::entitlements::Limits,
    spec: &LimitSpec,
    now: chrono::DateTime<chrono::Utc>,
) -> MetricUsage {
    let (start, end) = counting_period(spec.reset_period, &limits.sub, now);
    let field = if spec.metric == "max_users" {
        "member_count"
    } else {
        "used"
    };
    let used = item.and_then(|i| i.i64(field)).unwrap_or(0).max(0) as u64;
    let granted = granted_at(&limits.sub.grants, &spec.metric, now);
    let limit = spec.limit.map(|l| l + granted);
    MetricUsage {
        metric: spec.metric.clone(),
        used,
        limit,
        plan_limit: spec.limit,
        granted,
        percent: limit.filter(|l| *l > 0).map(|l| used * 100 / l),
        enforcement: spec.enforcement,
        reset_period: spec.reset_period,
        period_start: time::fmt(start),
        period_end: end.map(time::fmt),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdminUsageQuery {
    pub metric: String,
    /// `yyyy-mm`; default the current month.
    pub month: Option<String>,
    /// How many top tenants (1 to 100, default 10).
    pub top: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantUsage {
    pub tenant_id: String,
    pub used: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminUsage {
    pub metric: String,
    pub month: String,
    pub total: u64,
    pub tenants: u64,
    pub top: Vec<TenantUsage>,
}

/// Usage of one metric across tenants in a month: total and top tenants (platform admins).
pub async fn admin_usage(
    ctx: &AppContext,
    caller: &crate::auth::Caller,
    q: AdminUsageQuery,
) -> Result<AdminUsage, ApiError> {
    caller.require_platform_admin()?;
    crate::plans::policies::check_metric(&q.metric)?;
    let now = ctx.clock.now();
    let month = q
        .month
        .clone()
        .unwrap_or_else(|| format!("{:04}-{:02}", now.year(), now.month()));
    let valid = month.len() == 7
        && month.as_bytes()[4] == b'-'
        && month[..4].parse::<u32>().is_ok()
        && month[5..]
            .parse::<u32>()
            .is_ok_and(|m| (1..=12).contains(&m));
    if !valid {
        return Err(ApiError::validation("month", "use yyyy-mm"));
    }
    let top = q.top.unwrap_or(10);
    if !(1..=100).contains(&top) {
        return Err(ApiError::validation("top", "1 to 100"));
    }
    let mut per_tenant: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let platform = ctx.stores.platform();
    for shard in 0..USAGE_INDEX_SHARDS {
        let mut cursor = None;
        loop {
            let page = platform
                .query(
                    &crate::store::Query::gsi1(usage_index_partition(&q.metric, &month, shard))
                        .limit(1000)
                        .after(cursor),
                )
                .await?;
            for item in &page.items {
                let tenant = item
                    .str(crate::store::GSI1SK)
                    .unwrap_or_default()
                    .to_owned();
                *per_tenant.entry(tenant).or_default() +=
                    item.i64("used").unwrap_or(0).max(0) as u64;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    let total = per_tenant.values().sum();
    let tenants = per_tenant.len() as u64;
    let mut ranked: Vec<TenantUsage> = per_tenant
        .into_iter()
        .map(|(tenant_id, used)| TenantUsage { tenant_id, used })
        .collect();
    ranked.sort_by(|a, b| {
        b.used
            .cmp(&a.used)
            .then_with(|| a.tenant_id.cmp(&b.tenant_id))
    });
    ranked.truncate(top as usize);
    Ok(AdminUsage {
        metric: q.metric,
        month,
        total,
        tenants,
        top: ranked,
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub metric: String,
    pub quantity: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckResult {
    pub metric: String,
    /// Whether recording `quantity` now would be accepted.
    pub allowed: bool,
    pub used: u64,
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
}

/// Would this much usage be allowed now? Records nothing.
pub async fn check(
    ctx: &AppContext,
    meter: &Meter,
    req: CheckRequest,
) -> Result<CheckResult, ApiError> {
    if !meter.can_read {
        return Err(ApiError::forbidden("this key lacks the usage:read scope"));
    }
    crate::plans::policies::check_metric(&req.metric)?;
    if req.metric == "max_users" {
        // Seats are the member count (GET /v1/usage shows it), not a counter to check.
        return Err(ApiError::validation(
            "metric",
            "seats follow the tenant's members; see GET /v1/usage",
        ));
    }
    if req.quantity <= 0 || req.quantity > 1_000_000_000 {
        return Err(ApiError::validation(
            "quantity",
            "a whole number from 1 to 1000000000",
        ));
    }
    let limits = limits_in_force(ctx, &meter.tenant).await?;
    let spec = spec_for(&limits, &req.metric);
    if !limits.meters(&req.metric) && !ctx.free_metrics.contains(&req.metric) {
        return Err(unknown_metric());
    }
    let reset = spec.map_or(ResetPeriod::BillingPeriod, |s| s.reset_period);
    let (start, _) = counting_period(reset, &limits.sub, ctx.clock.now());
    let t = ctx.stores.tenant(&meter.tenant);
    let used = t
        .get(&counter_key(&t, &req.metric, start))
        .await?
        .and_then(|c| c.i64("used"))
        .unwrap_or(0)
        .max(0) as u64;
    let granted = granted_at(&limits.sub.grants, &req.metric, ctx.clock.now());
    let limit = spec.and_then(|s| s.limit).map(|l| l + granted);
    let hard = spec.is_some_and(|s| s.enforcement == Enforcement::Hard);
    Ok(CheckResult {
        metric: req.metric,
        allowed: !hard || limit.is_none_or(|l| used + req.quantity as u64 <= l),
        used,
        limit,
        remaining: limit.map(|l| l.saturating_sub(used)),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    pub metric: String,
    /// RFC 3339, inclusive.
    pub from: String,
    /// RFC 3339, inclusive.
    pub to: String,
    /// `hour`, `day` or `month`.
    pub granularity: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryBucket {
    /// The bucket's start: `2027-04-01T13`, `2027-04-01` or `2027-04`.
    pub bucket: String,
    pub total: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct History {
    pub metric: String,
    pub granularity: String,
    pub data: Vec<HistoryBucket>,
}

/// Totals per bucket from the rollups written with each event (no scan of raw events).
pub async fn history(
    ctx: &AppContext,
    meter: &Meter,
    q: HistoryQuery,
) -> Result<History, ApiError> {
    if !meter.can_read {
        return Err(ApiError::forbidden("this key lacks the usage:read scope"));
    }
    crate::plans::policies::check_metric(&q.metric)?;
    let from =
        time::parse(&q.from).ok_or_else(|| ApiError::validation("from", "use an RFC 3339 time"))?;
    let to =
        time::parse(&q.to).ok_or_else(|| ApiError::validation("to", "use an RFC 3339 time"))?;
    if to < from {
        return Err(ApiError::validation("to", "`to` is before `from`"));
    }
    let index = match q.granularity.as_str() {
        "hour" => 0,
        "day" => 1,
        "month" => 2,
        _ => return Err(ApiError::validation("granularity", "hour, day or month")),
    };
    let lower = rollup_buckets(&time::fmt(from))[index].clone();
    let upper = rollup_buckets(&time::fmt(to))[index].clone();
    let t = ctx.stores.tenant(&meter.tenant);
    let mut data = Vec::new();
    let mut cursor = None;
    loop {
        let page = t
            .query(
                &crate::store::Query::table(t.pk(&format!("USAGEHIST#{}", q.metric)))
                    .sk(crate::store::SortKeyCondition::Between(
                        lower.clone(),
                        upper.clone(),
                    ))
                    .limit(1000)
                    .after(cursor),
            )
            .await?;
        for item in &page.items {
            data.push(HistoryBucket {
                bucket: item.key.sk[2..].to_owned(),
                total: item.i64("total").unwrap_or(0).max(0) as u64,
            });
        }
        match page.next_cursor {
            Some(next) if data.len() < 10_000 => cursor = Some(next),
            _ => break,
        }
    }
    Ok(History {
        metric: q.metric,
        granularity: q.granularity,
        data,
    })
}
