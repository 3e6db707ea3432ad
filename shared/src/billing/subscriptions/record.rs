//! A subscription as stored: its keys and index entries, the parsed record and its view,
//! loading (which clears a crashed change's lock), the plan version a tenant may move to, and
//! the one commit-and-reload step every change of a subscription goes through.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::discount::{Discount, Off};
use super::super::events;
use super::super::grants::Grant;
use super::super::state::Status;
use crate::error::ApiError;
use crate::money::Currency;
use crate::plans::{self, plan_subs_index, plan_subs_version_prefix, BillingCycle, VersionTerms};
use crate::store::{
    shard, Condition, Item, Key, Store, StoreError, StoreExt, TenantId, TenantStore, UpdateAction,
    WriteOp, GSI1PK, GSI1SK,
};
use crate::time;
use crate::AppContext;

/// Set while an immediate plan change is invoicing and charging, so nothing else (another
/// change, a cancel, a renewal) can move the subscription between the charge and the switch.
/// Epoch seconds; a lock left by a crashed request expires and is cleared on the next load.
pub(super) const CHANGE_LOCK: &str = "change_lock_until";
pub(super) const CHANGE_LOCK_SECS: i64 = 60;

pub(super) fn sub_key(t: &TenantStore, id: &str) -> Key {
    t.key("SUBS", format!("SUB#{id}"))
}

/// The tenant's pointer to its one live subscription.
pub(super) fn live_key(t: &TenantStore) -> Key {
    t.key("SUBS", "LIVE")
}

/// Shards of the renewal index, so no single index partition takes every subscription.
pub const RENEWAL_SHARDS: u32 = 16;

/// The renewal index's entry: due subscriptions by when they are next due, in the tenant's
/// shard (`store::shard`).
pub(super) fn renewal_index(
    tenant: &TenantId,
    sub_id: &str,
    due: DateTime<Utc>,
) -> [UpdateAction; 2] {
    [
        UpdateAction::set(GSI1PK, renewal_partition(shard::of(tenant, RENEWAL_SHARDS))),
        UpdateAction::set(GSI1SK, format!("{}#{tenant}#{sub_id}", time::fmt(due))),
    ]
}

fn renewal_partition(shard: u32) -> String {
    format!("IDX#RENEWAL#{shard:02}")
}

/// The renewal index partition a tenant's subscriptions are in.
pub fn renewal_shard(tenant: &TenantId) -> String {
    renewal_partition(shard::of(tenant, RENEWAL_SHARDS))
}

/// The renewal index's partitions: subscriptions by when they are next due.
pub fn renewal_partitions() -> Vec<String> {
    (0..RENEWAL_SHARDS).map(renewal_partition).collect()
}

/// One entry of the plan's index of live subscriptions (`plans::plan_subs_index`): GSI1 keys
/// on the tenant's `LIVE` pointer, so the entry moves in the tenant's own transaction, under
/// its credentials, and goes with the pointer when the subscription stops being live.
fn plan_subs_sort(version: u32, tenant: &TenantId, sub_id: &str) -> String {
    format!("{}{tenant}#{sub_id}", plan_subs_version_prefix(version))
}

/// The tenant's live-subscription pointer, indexed under its plan and version.
pub(super) fn live_item(t: &TenantStore, sub_id: &str, plan_id: &str, version: u32) -> Item {
    Item::new(live_key(t))
        .with("subscription_id", sub_id)
        .with_gsi1(
            plan_subs_index(plan_id),
            plan_subs_sort(version, t.tenant(), sub_id),
        )
}

/// Moves the live pointer's index entry to the plan and version the subscription now has (on
/// condition that the pointer is this subscription's).
pub(super) fn live_moved(t: &TenantStore, sub_id: &str, plan_id: &str, version: u32) -> WriteOp {
    WriteOp::Update {
        key: live_key(t),
        actions: vec![
            UpdateAction::set(GSI1PK, plan_subs_index(plan_id)),
            UpdateAction::set(GSI1SK, plan_subs_sort(version, t.tenant(), sub_id)),
        ],
        condition: Some(Condition::eq("subscription_id", sub_id)),
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduledChange {
    pub plan_id: String,
    pub plan_version: u32,
    pub effective_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubscriptionView {
    pub id: String,
    pub tenant_id: String,
    pub status: Status,
    pub plan_id: String,
    pub plan_version: u32,
    pub price: String,
    pub currency: String,
    pub billing_cycle: BillingCycle,
    pub current_period_start: String,
    pub current_period_end: String,
    pub trial_end: Option<String>,
    pub cancel_at_period_end: bool,
    pub scheduled_change: Option<ScheduledChange>,
    pub latest_invoice_id: Option<String>,
    /// A coupon applied to the coming invoices.
    pub discount: Option<DiscountView>,
    /// The seats paid for in this period, on a plan with a seat price.
    pub seats_billed: Option<u64>,
    /// The seats the tenant admin bought, on a plan whose seats are licensed (the next
    /// renewal bills these).
    pub seats_licensed: Option<u64>,
    pub created_at: String,
    pub ended_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DiscountView {
    #[schema(example = "SAVE20")]
    pub coupon: String,
    /// Percent off, like "20"; or `amount_off`.
    pub percent_off: Option<String>,
    /// An amount off in the subscription's currency.
    pub amount_off: Option<String>,
    /// Invoices it still applies to; `null`: every one.
    pub invoices_left: Option<u32>,
}

/// A subscription as stored, parsed.
#[derive(Debug, Clone)]
pub struct Sub {
    pub key: Key,
    pub id: String,
    pub tenant_id: String,
    pub status: Status,
    pub plan_id: String,
    pub plan_version: u32,
    pub price: Decimal,
    pub currency: Currency,
    pub cycle: BillingCycle,
    pub anchor: DateTime<Utc>,
    pub period_index: u32,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub trial_end: Option<String>,
    pub trialing: bool,
    pub cancel_at_period_end: bool,
    /// A plan change waiting for the period's end: plan and version.
    pub scheduled: Option<(String, u32)>,
    /// Fixed-duration plans: how many cycles the subscription runs.
    pub duration_cycles: Option<i64>,
    pub latest_invoice_id: Option<String>,
    /// Failed charges of the current past-due period, and when dunning tries again.
    pub dunning_attempts: Option<i64>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: String,
    pub ended_at: Option<String>,
    pub rev: i64,
    /// A plan change holds the change lock ([`CHANGE_LOCK`]): it bills seats itself.
    pub(super) locked: bool,
    /// The period whose usage is closed for billing (its end, as written): set by the
    /// renewal before it reads the counters, so no event counts in a period once billed.
    pub usage_closed_at: Option<String>,
    /// The most seats paid for in this period (plans with a seat price; `seats`).
    pub seats_billed: Option<u64>,
    /// The seats the tenant admin bought, on a plan whose seats are licensed
    /// ([`SEATS_LICENSED`]).
    pub seats_licensed: Option<u64>,
    /// A seat charge decided and not yet invoiced (`seats`).
    pub(super) seats_pending: Option<PendingSeats>,
    /// A coupon applied to the coming invoices ([`DISCOUNT`]).
    pub discount: Option<Discount>,
    /// Units of metrics granted on top of the plan ([`GRANTS`]).
    pub grants: Vec<Grant>,
    /// Units of each charged metric billed already in this period, by a plan change
    /// ([`USAGE_BILLED`]): the renewal bills the rest.
    pub(super) usage_billed: std::collections::BTreeMap<String, u64>,
    /// Usage to date decided at a plan change and not yet invoiced ([`USAGE_PENDING`]).
    pub(super) usage_pending: Option<PendingUsage>,
}

/// The most seats paid for in the current period (`seats`).
pub(super) const SEATS_BILLED: &str = "seats_billed";
/// A seat charge decided and not yet invoiced (`seats`).
pub(super) const SEATS_PENDING: &str = "seats_pending";
/// The seats a tenant admin bought (plans whose seats are licensed).
pub(super) const SEATS_LICENSED: &str = "seats_licensed";

/// A seat charge decided and not yet invoiced: seats `from` → `to` at `at`, for the rest of
/// the period `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PendingSeats {
    pub from: u64,
    pub to: u64,
    pub at: String,
    pub start: String,
    pub end: String,
}

impl PendingSeats {
    /// As stored: a JSON string, which both stores compare in a condition.
    pub(super) fn text(&self) -> String {
        serde_json::to_string(self).expect("serializable")
    }
}

/// Units billed already in the current period, per metric, as a JSON object.
pub(super) const USAGE_BILLED: &str = "usage_billed";
/// A usage bill decided at a plan change, not yet invoiced ([`PendingUsage`], JSON).
pub(super) const USAGE_PENDING: &str = "usage_pending";

/// Usage to date billed at the version it was used under, decided when the subscription left
/// that version mid-period: per metric, units `to` minus `from`, over `[start, at)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PendingUsage {
    pub plan_id: String,
    pub version: u32,
    pub from: std::collections::BTreeMap<String, u64>,
    pub to: std::collections::BTreeMap<String, u64>,
    pub start: String,
    pub at: String,
}

impl PendingUsage {
    /// As stored: a JSON string, which both stores compare in a condition.
    pub(super) fn text(&self) -> String {
        serde_json::to_string(self).expect("serializable")
    }
}

/// Grants on the subscription, as a JSON list ([`Grant`]).
pub(super) const GRANTS: &str = "grants";

/// The coupon applied to a subscription, as a JSON string ([`Discount`]).
pub(super) const DISCOUNT: &str = "discount";

/// See [`Sub::usage_closed_at`].
pub(super) const USAGE_CLOSED: &str = "usage_closed_at";

impl Sub {
    /// Whether this period's usage is closed for billing: no event may count in it any more.
    pub fn usage_closed(&self) -> bool {
        self.usage_closed_at.as_deref() == Some(time::fmt(self.period_end).as_str())
    }

    pub fn parse(item: Item) -> Result<Self, ApiError> {
        let t = |name: &str| -> Result<DateTime<Utc>, ApiError> {
            time::parse(item.required_str(name)?)
                .ok_or_else(|| ApiError::internal(format!("bad time {name}")))
        };
        let owned = |name: &str| item.str(name).map(str::to_owned);
        Ok(Self {
            id: item.required_str("subscription_id")?.to_owned(),
            tenant_id: item.required_str("tenant_id")?.to_owned(),
            status: Status::parse(item.required_str("status")?)
                .ok_or_else(|| ApiError::internal("bad status"))?,
            plan_id: item.required_str("plan_id")?.to_owned(),
            plan_version: item.i64("plan_version").unwrap_or(1) as u32,
            price: item.decimal("price").unwrap_or_default(),
            currency: Currency::parse(item.required_str("currency")?, "currency")
                .map_err(|e| ApiError::internal(e.detail))?,
            cycle: if item.str("billing_cycle") == Some("yearly") {
                BillingCycle::Yearly
            } else {
                BillingCycle::Monthly
            },
            anchor: t("anchor")?,
            period_index: item.i64("period_index").unwrap_or(0) as u32,
            period_start: t("period_start")?,
            period_end: t("period_end")?,
            trial_end: owned("trial_end"),
            trialing: item.str("trial_end").is_some() && item.str("status") == Some("trialing"),
            cancel_at_period_end: item.bool("cancel_at_period_end").unwrap_or(false),
            scheduled: match (
                item.str("scheduled_plan_id"),
                item.i64("scheduled_plan_version"),
            ) {
                (Some(plan_id), Some(version)) => Some((plan_id.to_owned(), version as u32)),
                _ => None,
            },
            duration_cycles: item.i64("duration_cycles"),
            latest_invoice_id: owned("latest_invoice_id"),
            dunning_attempts: item.i64("dunning_attempts"),
            next_attempt_at: item.str("next_attempt_at").and_then(time::parse),
            created_at: item.required_str("created_at")?.to_owned(),
            ended_at: owned("ended_at"),
            rev: item.i64("rev").unwrap_or(0),
            locked: item.i64(CHANGE_LOCK).is_some(),
            usage_closed_at: owned(USAGE_CLOSED),
            seats_billed: item.i64(SEATS_BILLED).map(|n| n.max(0) as u64),
            seats_licensed: item.i64(SEATS_LICENSED).map(|n| n.max(0) as u64),
            seats_pending: item
                .str(SEATS_PENDING)
                .and_then(|text| serde_json::from_str(text).ok()),
            usage_billed: item
                .str(USAGE_BILLED)
                .map(serde_json::from_str)
                .transpose()
                .map_err(ApiError::internal)?
                .unwrap_or_default(),
            usage_pending: item
                .str(USAGE_PENDING)
                .map(serde_json::from_str)
                .transpose()
                .map_err(ApiError::internal)?,
            grants: item
                .str(GRANTS)
                .map(serde_json::from_str)
                .transpose()
                .map_err(ApiError::internal)?
                .unwrap_or_default(),
            discount: item
                .str(DISCOUNT)
                .map(serde_json::from_str)
                .transpose()
                .map_err(ApiError::internal)?,
            key: item.key,
        })
    }

    pub fn view(&self) -> Result<SubscriptionView, ApiError> {
        Ok(SubscriptionView {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            status: self.status,
            plan_id: self.plan_id.clone(),
            plan_version: self.plan_version,
            price: self.currency.format(self.price),
            currency: self.currency.code().to_owned(),
            billing_cycle: self.cycle,
            current_period_start: time::fmt(self.period_start),
            current_period_end: time::fmt(self.period_end),
            trial_end: self.trial_end.clone(),
            cancel_at_period_end: self.cancel_at_period_end,
            scheduled_change: self
                .scheduled
                .as_ref()
                .map(|(plan_id, version)| ScheduledChange {
                    plan_id: plan_id.clone(),
                    plan_version: *version,
                    effective_at: time::fmt(self.period_end),
                }),
            latest_invoice_id: self.latest_invoice_id.clone(),
            discount: self.discount.as_ref().map(|d| DiscountView {
                coupon: d.code.clone(),
                percent_off: match &d.off {
                    Off::Percent(p) => Some(p.normalize().to_string()),
                    Off::Amount(_) => None,
                },
                amount_off: match &d.off {
                    Off::Amount(a) => Some(self.currency.format(*a)),
                    Off::Percent(_) => None,
                },
                invoices_left: d.cycles_left,
            }),
            seats_billed: self.seats_billed,
            seats_licensed: self.seats_licensed,
            created_at: self.created_at.clone(),
            ended_at: self.ended_at.clone(),
        })
    }

    /// The condition every write of this subscription carries: nobody changed it since.
    pub(super) fn unchanged(&self) -> Condition {
        Condition::And(vec![
            Condition::eq("rev", self.rev),
            Condition::not_exists(CHANGE_LOCK),
        ])
    }

    /// The condition of the request that holds the change lock (it set `rev` itself).
    pub(super) fn owned(&self) -> Condition {
        Condition::eq("rev", self.rev)
    }

    /// The write of `actions` to this subscription with its revision bumped, on condition
    /// that nobody changed it since it was read.
    pub(super) fn write(&self, actions: Vec<UpdateAction>) -> WriteOp {
        self.write_if(actions, self.unchanged())
    }

    /// That write alone, outside a transaction (a change that records no event).
    pub(super) async fn update(
        &self,
        t: &TenantStore,
        mut actions: Vec<UpdateAction>,
    ) -> Result<(), StoreError> {
        actions.push(UpdateAction::set("rev", self.rev + 1));
        t.update(self.key.clone(), actions, Some(self.unchanged()))
            .await
            .map(drop)
    }

    /// The same, on another condition (`owned` while this request holds the change lock).
    pub(super) fn write_if(&self, mut actions: Vec<UpdateAction>, condition: Condition) -> WriteOp {
        actions.push(UpdateAction::set("rev", self.rev + 1));
        WriteOp::Update {
            key: self.key.clone(),
            actions,
            condition: Some(condition),
        }
    }
}

/// A conditional write of a subscription lost to a concurrent change: 409, retry.
pub(super) fn changed_meanwhile(e: StoreError) -> ApiError {
    if e.is_condition_failure() {
        ApiError::conflict("the subscription changed meanwhile; retry")
    } else {
        e.into()
    }
}

/// Commits one change of a subscription: its write (first), the event it records, and any
/// writes beside it, in one transaction of the tenant's; a lost race is a 409.
pub(super) async fn commit(
    ctx: &AppContext,
    t: &TenantStore,
    write: WriteOp,
    event: (&str, Value),
    also: Vec<WriteOp>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    try_commit(ctx, t, write, event, also, now)
        .await
        .map_err(changed_meanwhile)
}

/// The same, with the store's own error (for a caller that treats a lost race as done).
pub(super) async fn try_commit(
    ctx: &AppContext,
    t: &TenantStore,
    write: WriteOp,
    event: (&str, Value),
    also: Vec<WriteOp>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = ctx
        .stores
        .transaction()
        .tenant(t, write)
        .tenant(t, events::op(t, event.0, event.1, now));
    for op in also {
        tx = tx.tenant(t, op);
    }
    tx.commit().await
}

pub async fn load(ctx: &AppContext, tenant: &TenantId, id: &str) -> Result<Option<Sub>, ApiError> {
    if !crate::ids::is_key_safe(id) {
        return Ok(None);
    }
    let t = ctx.stores.tenant(tenant);
    let key = sub_key(&t, id);
    let Some(item) = t.get(&key).await? else {
        return Ok(None);
    };
    if let Some(until) = item.i64(CHANGE_LOCK) {
        if until < ctx.clock.now().timestamp() {
            // A change that never finished: release its lock (only if it is still that one).
            let cleared = t
                .update(
                    key.clone(),
                    vec![UpdateAction::remove(CHANGE_LOCK)],
                    Some(Condition::eq(CHANGE_LOCK, until)),
                )
                .await;
            if let Err(e) = cleared {
                if !e.is_condition_failure() {
                    return Err(e.into());
                }
            }
            return t.get(&key).await?.map(Sub::parse).transpose();
        }
    }
    Sub::parse(item).map(Some)
}

/// The subscription as it is after a change this request just committed.
pub(super) async fn reload(ctx: &AppContext, tenant: &TenantId, id: &str) -> Result<Sub, ApiError> {
    load(ctx, tenant, id)
        .await?
        .ok_or_else(|| ApiError::internal("subscription vanished"))
}

/// A subscription of the tenant's, or 404.
pub(super) async fn found(ctx: &AppContext, tenant: &TenantId, id: &str) -> Result<Sub, ApiError> {
    load(ctx, tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such subscription"))
}

/// A tenant's live subscription, if it has one.
pub async fn live(ctx: &AppContext, tenant: &TenantId) -> Result<Option<Sub>, ApiError> {
    let t = ctx.stores.tenant(tenant);
    match t.get(&live_key(&t)).await? {
        Some(live) => load(ctx, tenant, live.required_str("subscription_id")?).await,
        None => Ok(None),
    }
}

/// The tenant's live subscription, or 404.
pub(super) async fn live_sub(ctx: &AppContext, tenant: &TenantId) -> Result<Sub, ApiError> {
    live(ctx, tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("the tenant has no live subscription"))
}

/// A plan version's terms (cached: versions never change once written).
pub async fn load_version(
    ctx: &AppContext,
    plan_id: &str,
    version: u32,
) -> Result<VersionTerms, ApiError> {
    if let Some(terms) = ctx.hot.version(plan_id, version) {
        return Ok((*terms).clone());
    }
    let item = ctx
        .stores
        .platform()
        .get(&plans::version_key(plan_id, version))
        .await?
        .ok_or_else(|| ApiError::not_found("no such plan version"))?;
    let terms = plans::terms_of(&item)?;
    ctx.hot
        .remember_version(plan_id, version, std::sync::Arc::new(terms.clone()));
    Ok(terms)
}

/// A plan version a subscription moves to.
pub(super) struct Target {
    pub id: String,
    pub version: u32,
    pub terms: VersionTerms,
    pub name: String,
}

/// The plan a tenant may subscribe or change to: active, at its current version.
pub(super) async fn current_version(ctx: &AppContext, plan_id: &str) -> Result<Target, ApiError> {
    let invalid = || ApiError::validation("plan_id", "no such plan");
    if !crate::ids::is_key_safe(plan_id) {
        return Err(invalid());
    }
    let meta = ctx
        .stores
        .platform()
        .get(&plans::plan_key(plan_id))
        .await?
        .ok_or_else(invalid)?;
    if !meta.bool("active").unwrap_or(false) {
        return Err(ApiError::validation(
            "plan_id",
            "this plan takes no new subscriptions",
        ));
    }
    let version = meta.i64("current_version").unwrap_or(1) as u32;
    Ok(Target {
        id: plan_id.to_owned(),
        version,
        terms: load_version(ctx, plan_id, version).await?,
        name: meta.str("name").unwrap_or_default().to_owned(),
    })
}
