//! The platform overview a platform admin's dashboard opens on: tenants by subscription status,
//! live subscriptions by plan, and monthly recurring revenue.
//!
//! It walks the tenant index a page at a time and reads each tenant's live subscription (two
//! reads per tenant, at most `CONCURRENCY` in flight). That is exact and needs no counters that
//! could drift, at a cost that grows with the number of tenants: fine for thousands of
//! tenants; a platform with far more would keep aggregate items updated with each status change.
//!
//! MRR rules: active and past-due subscriptions count (a past-due one is still owed; Stripe counts
//! it the same way), trials do not. A subscription's recurring price is its base price and the
//! seats paid for (usage charges vary, so they are not recurring). A yearly price counts as
//! price / 12. Amounts are summed
//! exactly per currency and rounded once at the end to the currency's minor unit, half to even.

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt, TryStreamExt};
use rust_decimal::Decimal;
use serde::Serialize;

use super::state::Status;
use super::subscriptions::{self, Sub};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::money::{Currency, MoneyView};
use crate::plans::BillingCycle;
use crate::store::TenantId;
use crate::{tenants, time, AppContext};

const CONCURRENCY: usize = 16;

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct StatusCounts {
    pub trialing: u64,
    pub active: u64,
    pub past_due: u64,
    /// Tenants without a live subscription (never subscribed, cancelled or expired).
    pub none: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanCount {
    pub plan_id: String,
    pub subscriptions: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Overview {
    pub tenants: u64,
    pub suspended_tenants: u64,
    /// Tenants by the status of their live subscription.
    pub subscriptions: StatusCounts,
    /// Live subscriptions per plan, most first.
    pub plans: Vec<PlanCount>,
    /// Monthly recurring revenue, one entry per currency.
    pub mrr: Vec<MoneyView>,
    pub as_of: String,
}

/// The monthly value of a subscription's price (yearly / 12), unrounded.
/// A subscription's recurring price (base and seats paid for) per month.
async fn monthly(ctx: &AppContext, sub: &Sub) -> Result<Decimal, ApiError> {
    let price = subscriptions::recurring_price(ctx, sub).await?;
    Ok(match sub.cycle {
        BillingCycle::Monthly => price,
        BillingCycle::Yearly => price / Decimal::from(12),
    })
}

pub async fn overview(ctx: &AppContext, caller: &Caller) -> Result<Overview, ApiError> {
    caller.require_platform_admin()?;
    let mut counts = StatusCounts::default();
    let mut plans: BTreeMap<String, u64> = BTreeMap::new();
    let mut mrr: BTreeMap<&'static str, (Currency, Decimal)> = BTreeMap::new();
    let (mut total, mut suspended) = (0u64, 0u64);
    let mut cursor = None;
    loop {
        let page = tenants::tenant_page(ctx, 100, cursor).await?;
        total += page.data.len() as u64;
        suspended += page.data.iter().filter(|t| t.status == "suspended").count() as u64;
        let ids = page
            .data
            .iter()
            .map(|t| TenantId::parse(&t.id).map_err(|_| ApiError::internal("bad tenant id")))
            .collect::<Result<Vec<_>, _>>()?;
        let live: Vec<Option<Sub>> = stream::iter(ids)
            .map(|id| async move { subscriptions::live(ctx, &id).await })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        for sub in live {
            let Some(sub) = sub else {
                counts.none += 1;
                continue;
            };
            match sub.status {
                Status::Trialing => counts.trialing += 1,
                Status::Active => counts.active += 1,
                Status::PastDue => counts.past_due += 1,
                _ => {
                    counts.none += 1;
                    continue;
                }
            }
            *plans.entry(sub.plan_id.clone()).or_default() += 1;
            if matches!(sub.status, Status::Active | Status::PastDue) {
                let entry = mrr
                    .entry(sub.currency.code())
                    .or_insert((sub.currency, Decimal::ZERO));
                entry.1 += monthly(ctx, &sub).await?;
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut plans: Vec<PlanCount> = plans
        .into_iter()
        .map(|(plan_id, subscriptions)| PlanCount {
            plan_id,
            subscriptions,
        })
        .collect();
    plans.sort_by_key(|p| std::cmp::Reverse(p.subscriptions));
    Ok(Overview {
        tenants: total,
        suspended_tenants: suspended,
        subscriptions: counts,
        plans,
        mrr: mrr
            .into_values()
            .map(|(currency, amount)| MoneyView {
                amount: currency.format(amount),
                currency: currency.code().to_owned(),
            })
            .collect(),
        as_of: time::fmt(ctx.clock.now()),
    })
}
