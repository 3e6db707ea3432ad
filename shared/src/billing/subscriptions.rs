//! Subscriptions: subscribe (trial or first charge), plan changes with proration, cancel and
//! resume, paying an open invoice, and renewal at period end (what the `renew-billing` job
//! calls). Every status change goes through `state::Status::apply`; every write of a
//! subscription is conditional on its revision, so two concurrent changes cannot both win.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::events;
use super::gateway::MethodRef;
use super::invoices::{self, Draft, InvoiceView, Line, LineKind};
use super::payment_methods;
use super::period::period;
use super::proration::{is_upgrade, prorate};
use super::state::{Event, Status};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{ListParams, ListResponse};
use crate::ids::new_id;
use crate::money::Currency;
use crate::plans::{self, BillingCycle, VersionTerms};
use crate::store::{
    Condition, Item, Key, Query, Store, StoreError, StoreExt, TenantId, TenantStore, UpdateAction,
    WriteOp, GSI1PK, GSI1SK,
};
use crate::time;
use crate::AppContext;

/// Shards of the renewal index, so no single index partition takes every subscription.
pub const RENEWAL_SHARDS: u32 = 16;
/// Dunning: retry a failed renewal after these many days (from the failed period's start):
/// `ESHTAREK_DUNNING_DAYS`, default `1,3,5`.
pub fn dunning_days() -> &'static [i64] {
    static DAYS: std::sync::OnceLock<Vec<i64>> = std::sync::OnceLock::new();
    DAYS.get_or_init(|| {
        std::env::var("ESHTAREK_DUNNING_DAYS")
            .ok()
            .and_then(|v| parse_dunning_days(&v))
            .unwrap_or_else(|| vec![1, 3, 5])
    })
}

/// `1,3,5`: strictly increasing whole days, at least one.
pub fn parse_dunning_days(text: &str) -> Option<Vec<i64>> {
    let days = text
        .split(',')
        .map(|d| d.trim().parse::<i64>().ok().filter(|d| *d > 0))
        .collect::<Option<Vec<_>>>()?;
    (!days.is_empty() && days.windows(2).all(|w| w[0] < w[1])).then_some(days)
}

/// What the last failed retry does: `ESHTAREK_DUNNING_FINAL` = `cancel` (default) or `expire`.
fn dunning_final_event() -> Event {
    match std::env::var("ESHTAREK_DUNNING_FINAL").as_deref() {
        Ok("expire") => Event::Expire,
        _ => Event::Cancel,
    }
}

/// A conditional write of a subscription lost to a concurrent change: 409, retry.
fn changed_meanwhile(e: StoreError) -> ApiError {
    if e.is_condition_failure() {
        ApiError::conflict("the subscription changed meanwhile; retry")
    } else {
        e.into()
    }
}

fn sub_key(t: &TenantStore, id: &str) -> Key {
    t.key("SUBS", format!("SUB#{id}"))
}

fn live_key(t: &TenantStore) -> Key {
    t.key("SUBS", "LIVE")
}

pub fn renewal_shard(tenant: &TenantId) -> String {
    let hash = tenant
        .as_str()
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("IDX#RENEWAL#{:02}", hash % RENEWAL_SHARDS)
}

fn renewal_index(tenant: &TenantId, sub_id: &str, due: DateTime<Utc>) -> [UpdateAction; 2] {
    [
        UpdateAction::set(GSI1PK, renewal_shard(tenant)),
        UpdateAction::set(GSI1SK, format!("{}#{tenant}#{sub_id}", time::fmt(due))),
    ]
}

use plans::{plan_subs_index, plan_subs_version_prefix};

/// One entry of the plan's index of live subscriptions (`plans::plan_subs_index`): GSI1 keys
/// on the tenant's `LIVE` pointer, so the entry moves in the tenant's own transaction, under
/// its credentials, and goes with the pointer when the subscription stops being live.
fn plan_subs_sort(version: u32, tenant: &TenantId, sub_id: &str) -> String {
    format!("{}{tenant}#{sub_id}", plan_subs_version_prefix(version))
}

/// The tenant's live-subscription pointer, indexed under its plan and version.
fn live_item(t: &TenantStore, sub_id: &str, plan_id: &str, version: u32) -> Item {
    Item::new(live_key(t))
        .with("subscription_id", sub_id)
        .with_gsi1(
            plan_subs_index(plan_id),
            plan_subs_sort(version, t.tenant(), sub_id),
        )
}

/// Moves the live pointer's index entry to the plan and version the subscription now has (on
/// condition that the pointer is this subscription's).
fn live_moved(t: &TenantStore, sub_id: &str, plan_id: &str, version: u32) -> WriteOp {
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
    pub created_at: String,
    pub ended_at: Option<String>,
}

/// A subscription as stored, parsed.
#[derive(Debug, Clone)]
pub struct Sub {
    pub item: Item,
    pub id: String,
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
    pub trialing: bool,
    pub cancel_at_period_end: bool,
    pub rev: i64,
}

impl Sub {
    fn parse(item: Item) -> Result<Self, ApiError> {
        let t = |name: &str| -> Result<DateTime<Utc>, ApiError> {
            time::parse(item.required_str(name)?)
                .ok_or_else(|| ApiError::internal(format!("bad time {name}")))
        };
        Ok(Self {
            id: item.required_str("subscription_id")?.to_owned(),
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
            trialing: item.str("trial_end").is_some() && item.str("status") == Some("trialing"),
            cancel_at_period_end: item.bool("cancel_at_period_end").unwrap_or(false),
            rev: item.i64("rev").unwrap_or(0),
            item,
        })
    }

    pub fn view(&self) -> Result<SubscriptionView, ApiError> {
        let i = &self.item;
        let scheduled = match (i.str("scheduled_plan_id"), i.i64("scheduled_plan_version")) {
            (Some(plan_id), Some(version)) => Some(ScheduledChange {
                plan_id: plan_id.to_owned(),
                plan_version: version as u32,
                effective_at: time::fmt(self.period_end),
            }),
            _ => None,
        };
        Ok(SubscriptionView {
            id: self.id.clone(),
            tenant_id: i.required_str("tenant_id")?.to_owned(),
            status: self.status,
            plan_id: self.plan_id.clone(),
            plan_version: self.plan_version,
            price: self.currency.format(self.price),
            currency: self.currency.code().to_owned(),
            billing_cycle: self.cycle,
            current_period_start: time::fmt(self.period_start),
            current_period_end: time::fmt(self.period_end),
            trial_end: i.str("trial_end").map(str::to_owned),
            cancel_at_period_end: self.cancel_at_period_end,
            scheduled_change: scheduled,
            latest_invoice_id: i.str("latest_invoice_id").map(str::to_owned),
            created_at: i.required_str("created_at")?.to_owned(),
            ended_at: i.str("ended_at").map(str::to_owned),
        })
    }

    /// The condition every write of this subscription carries: nobody changed it since.
    fn unchanged(&self) -> Condition {
        Condition::And(vec![
            Condition::eq("rev", self.rev),
            Condition::not_exists(CHANGE_LOCK),
        ])
    }

    /// The condition of the request that holds the change lock (it set `rev` itself).
    fn owned(&self) -> Condition {
        Condition::eq("rev", self.rev)
    }
}

/// Set while an immediate plan change is invoicing and charging, so nothing else (another
/// change, a cancel, a renewal) can move the subscription between the charge and the switch.
/// Epoch seconds; a lock left by a crashed request expires and is cleared on the next load.
const CHANGE_LOCK: &str = "change_lock_until";
const CHANGE_LOCK_SECS: i64 = 60;

/// Which tenant a subscription request is for: the token's (its admin), or for platform
/// admins the `tenant_id` they name.
fn target_tenant(caller: &Caller, named: Option<&str>) -> Result<TenantId, ApiError> {
    if caller.is_platform_admin() {
        let named = named
            .ok_or_else(|| ApiError::validation("tenant_id", "platform admins name the tenant"))?;
        return caller.admin_tenant(named);
    }
    if named.is_some_and(|n| Some(n) != caller.tenant.as_ref().map(TenantId::as_str)) {
        return Err(ApiError::not_found("no such tenant"));
    }
    payment_methods::admin_tenant(caller)
}

pub async fn load(ctx: &AppContext, tenant: &TenantId, id: &str) -> Result<Option<Sub>, ApiError> {
    if id.is_empty() || id.len() > 64 || id.contains('#') {
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

async fn load_version(
    ctx: &AppContext,
    plan_id: &str,
    version: u32,
) -> Result<VersionTerms, ApiError> {
    let item = ctx
        .stores
        .platform()
        .get(&plans::version_key(plan_id, version))
        .await?
        .ok_or_else(|| ApiError::not_found("no such plan version"))?;
    plans::terms_of(&item)
}

/// The plan a tenant may subscribe or change to: active, at its current version.
async fn current_version(
    ctx: &AppContext,
    plan_id: &str,
) -> Result<(u32, VersionTerms, String), ApiError> {
    let invalid = || ApiError::validation("plan_id", "no such plan");
    if plan_id.is_empty() || plan_id.len() > 64 || plan_id.contains('#') {
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
    let name = meta.str("name").unwrap_or_default().to_owned();
    Ok((version, load_version(ctx, plan_id, version).await?, name))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscriptionRequest {
    pub plan_id: String,
    #[serde(default)]
    pub payment_method_id: Option<String>,
    /// Platform admins only: the tenant to subscribe.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriptionResult {
    pub subscription: SubscriptionView,
    pub invoice: Option<InvoiceView>,
}

/// Subscribes a tenant: a trial when the plan has trial days, else the first invoice charged
/// at once; a failed first charge leaves the subscription `incomplete`, granting nothing.
pub async fn create(
    ctx: &AppContext,
    caller: &Caller,
    req: CreateSubscriptionRequest,
) -> Result<SubscriptionResult, ApiError> {
    let tenant = target_tenant(caller, req.tenant_id.as_deref())?;
    if caller.is_platform_admin() {
        // A named tenant must exist: a subscription of no tenant would be billed to no one.
        crate::tenants::admin_named_tenant(ctx, caller, tenant.as_str()).await?;
    }
    let (version, terms, plan_name) = current_version(ctx, &req.plan_id).await?;
    let method = payment_methods::resolve(ctx, &tenant, req.payment_method_id.as_deref()).await?;
    // One trial per tenant: once used, a plan's trial days no longer apply to it.
    let trial = terms.trial_days > 0 && super::trials::available(ctx, &tenant).await?;
    if !trial && terms.price > Decimal::ZERO && method.is_none() {
        return Err(ApiError::validation(
            "payment_method_id",
            "add a payment method first",
        ));
    }
    let t = ctx.stores.tenant(&tenant);
    if let Some(live) = t.get(&live_key(&t)).await? {
        return Err(ApiError::conflict(
            "the tenant already has a live subscription; change its plan instead",
        )
        .with(
            "subscription_id",
            live.str("subscription_id").unwrap_or_default(),
        ));
    }
    let now = ctx.clock.now();
    let id = new_id("sub");
    let (anchor, period_start, period_end, status) = if trial {
        let trial_end = now + Duration::days(i64::from(terms.trial_days));
        (trial_end, now, trial_end, Status::Trialing)
    } else {
        let (start, end) = period(now, terms.cycle_or_default(), 0);
        (now, start, end, Status::Incomplete)
    };
    let at = time::fmt(now);
    let mut item = Item::new(sub_key(&t, &id))
        .with("subscription_id", id.as_str())
        .with("tenant_id", tenant.as_str())
        .with("status", status.as_str())
        .with("plan_id", req.plan_id.as_str())
        .with("plan_version", i64::from(version))
        .with("price", terms.price)
        .with("currency", terms.currency.code())
        .with("billing_cycle", terms.billing_cycle.as_str())
        .with("anchor", time::fmt(anchor))
        .with("period_index", 0)
        .with("period_start", time::fmt(period_start))
        .with("period_end", time::fmt(period_end))
        .with("cancel_at_period_end", false)
        .with("rev", 1)
        .with("created_at", at.as_str())
        .with("updated_at", at.as_str());
    if trial {
        item = item.with("trial_end", time::fmt(period_end));
        for action in renewal_index(&tenant, &id, period_end) {
            if let UpdateAction::Set(name, value) = action {
                item = item.with(name, value);
            }
        }
    }
    if let Some(cycles) = terms.duration_cycles {
        item = item.with("duration_cycles", i64::from(cycles));
    }
    let created = json!({"subscription_id": id, "plan_id": req.plan_id, "plan_name": plan_name, "status": status.as_str()});
    let tx = ctx
        .stores
        .transaction()
        .tenant(
            &t,
            WriteOp::Put {
                item: live_item(&t, &id, &req.plan_id, version),
                condition: Some(Condition::ItemNotExists),
            },
        )
        .tenant(
            &t,
            WriteOp::Put {
                item,
                condition: Some(Condition::ItemNotExists),
            },
        )
        .tenant(
            &t,
            events::op(&t, "customer.subscription.created", created, now),
        );
    let tx = if trial {
        tx.tenant(&t, super::trials::use_op(&t))
    } else {
        tx
    };
    tx.commit()
        .await
        .map_err(|e| match e.failed_condition_index() {
            Some(0) => ApiError::conflict("the tenant already has a live subscription"),
            Some(3) => ApiError::conflict("the tenant's trial was used meanwhile; retry"),
            _ => e.into(),
        })?;
    if trial {
        let sub = load(ctx, &tenant, &id)
            .await?
            .ok_or_else(|| ApiError::internal("subscription vanished"))?;
        return Ok(SubscriptionResult {
            subscription: sub.view()?,
            invoice: None,
        });
    }
    // First period: invoice and charge now.
    let line = Line {
        kind: LineKind::PlanCharge,
        description: format!("{plan_name} ({})", terms.billing_cycle.as_str()),
        amount: terms.currency.round(terms.price),
        period: Some((period_start, period_end)),
    };
    let draft = Draft {
        subscription_id: id.clone(),
        currency: terms.currency,
        lines: vec![line],
        period: (period_start, period_end),
        dedupe: format!("{id}#P0"),
    };
    let invoice = invoices::issue(ctx, &tenant, draft).await?;
    let sub = load(ctx, &tenant, &id)
        .await?
        .ok_or_else(|| ApiError::internal("subscription vanished"))?;
    let invoice = settle_first_invoice(ctx, &tenant, sub, invoice, method.as_ref()).await?;
    let sub = load(ctx, &tenant, &id)
        .await?
        .ok_or_else(|| ApiError::internal("subscription vanished"))?;
    Ok(SubscriptionResult {
        subscription: sub.view()?,
        invoice: Some(InvoiceView::from_item(&invoice)?),
    })
}

impl VersionTerms {
    fn cycle_or_default(&self) -> BillingCycle {
        self.billing_cycle
    }
}

/// Pays (or finds paid) the first invoice of an incomplete subscription and moves it on:
/// active when paid; otherwise it stays incomplete and frees the tenant's live slot.
async fn settle_first_invoice(
    ctx: &AppContext,
    tenant: &TenantId,
    sub: Sub,
    invoice: Item,
    method: Option<&MethodRef>,
) -> Result<Item, ApiError> {
    let mut invoice = invoice;
    let mut paid = invoice.str("status") == Some("paid");
    if !paid {
        if let Some(method) = method {
            let (after, decline) = invoices::attempt_payment(ctx, tenant, &invoice, method).await?;
            invoice = after;
            paid = decline.is_none();
        }
    }
    let t = ctx.stores.tenant(tenant);
    let now = ctx.clock.now();
    let invoice_id = invoice.str("invoice_id").unwrap_or_default().to_owned();
    if paid {
        let next = sub.status.apply(Event::FirstPaymentSucceeded)?;
        let mut actions = vec![
            UpdateAction::set("status", next.as_str()),
            UpdateAction::set("rev", sub.rev + 1),
            UpdateAction::set("latest_invoice_id", invoice_id.as_str()),
            UpdateAction::set("updated_at", time::fmt(now)),
        ];
        actions.extend(renewal_index(tenant, &sub.id, sub.period_end));
        ctx.stores
            .transaction()
            .tenant(
                &t,
                WriteOp::Update {
                    key: sub.item.key.clone(),
                    actions,
                    condition: Some(sub.unchanged()),
                },
            )
            .tenant(
                &t,
                WriteOp::Put {
                    item: live_item(&t, &sub.id, &sub.plan_id, sub.plan_version),
                    condition: Some(Condition::Or(vec![
                        Condition::ItemNotExists,
                        Condition::eq("subscription_id", sub.id.as_str()),
                    ])),
                },
            )
            .tenant(
                &t,
                events::op(
                    &t,
                    "customer.subscription.updated",
                    json!({"subscription_id": sub.id, "status": next.as_str()}),
                    now,
                ),
            )
            .commit()
            .await
            .map_err(|e| match e.failed_condition_index() {
                Some(1) => ApiError::conflict("the tenant already has another live subscription"),
                Some(_) => ApiError::conflict("the subscription changed meanwhile; retry"),
                None => e.into(),
            })?;
    } else {
        ctx.stores
            .transaction()
            .tenant(
                &t,
                WriteOp::Update {
                    key: sub.item.key.clone(),
                    actions: vec![
                        UpdateAction::set("rev", sub.rev + 1),
                        UpdateAction::set("latest_invoice_id", invoice_id.as_str()),
                    ],
                    condition: Some(sub.unchanged()),
                },
            )
            .tenant(
                &t,
                WriteOp::Delete {
                    key: live_key(&t),
                    condition: Some(Condition::eq("subscription_id", sub.id.as_str())),
                },
            )
            .commit()
            .await
            .map_err(changed_meanwhile)?;
    }
    Ok(invoice)
}

pub async fn current(ctx: &AppContext, caller: &Caller) -> Result<SubscriptionView, ApiError> {
    let tenant = caller.own_tenant()?.clone();
    live_sub(ctx, &tenant).await?.view()
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    params: ListParams,
) -> Result<ListResponse<SubscriptionView>, ApiError> {
    let tenant = caller.own_tenant()?.clone();
    let t = ctx.stores.tenant(&tenant);
    let page = t
        .query(
            &Query::table(t.pk("SUBS"))
                .begins_with("SUB#")
                .descending()
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    ListResponse::from_page(page, |i| Sub::parse(i.clone())?.view())
}

pub async fn get(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<SubscriptionView, ApiError> {
    let tenant = caller.own_tenant()?.clone();
    load(ctx, &tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such subscription"))?
        .view()
}

// ---- plan changes ----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effective {
    Now,
    PeriodEnd,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangePreview {
    pub subscription_id: String,
    pub plan_id: String,
    pub plan_version: u32,
    pub upgrade: bool,
    /// When the change would apply by default: upgrades now, downgrades at period end.
    pub default_effective: Effective,
    /// The lines an immediate change would bill (credit and charge).
    pub lines: Vec<invoices::LineView>,
    pub net: String,
    pub currency: String,
    pub restarts_period: bool,
}

struct Plan {
    id: String,
    version: u32,
    terms: VersionTerms,
    name: String,
}

/// What a change made now bills, and whether it restarts the period. During a trial nothing
/// was paid: to another plan with a trial, nothing (the trial keeps its end); to a plan
/// without one, the trial ends and the new plan's first period, from now, is billed in full.
fn change_lines(sub: &Sub, to: &Plan, at: DateTime<Utc>) -> (Vec<Line>, bool) {
    if !sub.trialing {
        return proration_lines(sub, to, at);
    }
    if to.terms.trial_days > 0 {
        return (Vec::new(), false);
    }
    let (start, end) = period(at, to.terms.billing_cycle, 0);
    let line = Line {
        kind: LineKind::PlanCharge,
        description: format!("{} ({})", to.name, to.terms.billing_cycle.as_str()),
        amount: to.terms.currency.round(to.terms.price),
        period: Some((start, end)),
    };
    (vec![line], true)
}

fn proration_lines(sub: &Sub, to: &Plan, at: DateTime<Utc>) -> (Vec<Line>, bool) {
    let restart = sub.cycle != to.terms.billing_cycle;
    let p = prorate(
        sub.currency,
        sub.price,
        to.terms.price,
        sub.period_start,
        sub.period_end,
        at,
        restart,
    );
    let new_end = if restart {
        period(at, to.terms.billing_cycle, 0).1
    } else {
        sub.period_end
    };
    let lines = vec![
        Line {
            kind: LineKind::ProrationCredit,
            description: "Unused time on the previous plan".into(),
            amount: p.credit,
            period: Some((at, sub.period_end)),
        },
        Line {
            kind: LineKind::ProrationCharge,
            description: format!("Remaining time on {}", to.name),
            amount: p.charge,
            period: Some((at, new_end)),
        },
    ];
    (lines, restart)
}

async fn change_target(ctx: &AppContext, sub: &Sub, plan_id: &str) -> Result<Plan, ApiError> {
    if !sub.status.is_live() {
        return Err(ApiError::conflict(format!(
            "a {} subscription cannot change plan",
            sub.status.as_str()
        )));
    }
    let (version, terms, name) = current_version(ctx, plan_id).await?;
    if plan_id == sub.plan_id && version == sub.plan_version {
        return Err(ApiError::validation(
            "plan_id",
            "the subscription is on this plan already",
        ));
    }
    if terms.currency != sub.currency {
        return Err(ApiError::validation(
            "plan_id",
            "plans in another currency cannot be switched to",
        ));
    }
    Ok(Plan {
        id: plan_id.to_owned(),
        version,
        terms,
        name,
    })
}

pub async fn preview(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    plan_id: &str,
) -> Result<ChangePreview, ApiError> {
    let tenant = payment_methods::admin_tenant(caller)?;
    let sub = load(ctx, &tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such subscription"))?;
    let to = change_target(ctx, &sub, plan_id).await?;
    let now = ctx.clock.now();
    let (lines, restarts_period) = change_lines(&sub, &to, now);
    let upgrade = is_upgrade(
        sub.price,
        sub.cycle == BillingCycle::Yearly,
        to.terms.price,
        to.terms.billing_cycle == BillingCycle::Yearly,
    );
    let net: Decimal = lines.iter().map(|l| l.amount).sum();
    Ok(ChangePreview {
        subscription_id: sub.id.clone(),
        plan_id: to.id,
        plan_version: to.version,
        upgrade,
        default_effective: if upgrade {
            Effective::Now
        } else {
            Effective::PeriodEnd
        },
        lines: lines
            .iter()
            .map(|l| invoices::LineView {
                kind: l.kind,
                description: l.description.clone(),
                amount: sub.currency.format(l.amount),
                period_start: l.period.map(|p| time::fmt(p.0)),
                period_end: l.period.map(|p| time::fmt(p.1)),
            })
            .collect(),
        net: sub.currency.format(net),
        currency: sub.currency.code().to_owned(),
        restarts_period,
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    pub plan_id: String,
    /// Default: upgrades now, downgrades at period end.
    #[serde(default)]
    pub effective: Option<Effective>,
    #[serde(default)]
    pub payment_method_id: Option<String>,
}

pub async fn change(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    req: ChangeRequest,
) -> Result<SubscriptionResult, ApiError> {
    let tenant = payment_methods::admin_tenant(caller)?;
    let sub = load(ctx, &tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such subscription"))?;
    let to = change_target(ctx, &sub, &req.plan_id).await?;
    let upgrade = is_upgrade(
        sub.price,
        sub.cycle == BillingCycle::Yearly,
        to.terms.price,
        to.terms.billing_cycle == BillingCycle::Yearly,
    );
    let effective = req.effective.unwrap_or(if upgrade {
        Effective::Now
    } else {
        Effective::PeriodEnd
    });
    // Leaving a trial for a plan without one is never deferred: the trial ends and the new
    // plan is billed now (otherwise a trial would hold the new plan's limits unpaid).
    let effective = if sub.trialing && to.terms.trial_days == 0 {
        Effective::Now
    } else {
        effective
    };
    let t = ctx.stores.tenant(&tenant);
    let now = ctx.clock.now();
    if effective == Effective::PeriodEnd {
        ctx.stores
            .transaction()
            .tenant(&t, WriteOp::Update {
                key: sub.item.key.clone(),
                actions: vec![
                    UpdateAction::set("scheduled_plan_id", to.id.as_str()),
                    UpdateAction::set("scheduled_plan_version", i64::from(to.version)),
                    UpdateAction::set("rev", sub.rev + 1),
                    UpdateAction::set("updated_at", time::fmt(now)),
                ],
                condition: Some(sub.unchanged()),
            })
            .tenant(&t, events::op(&t, "plan.changed", json!({"subscription_id": sub.id, "plan_id": to.id, "plan_version": to.version, "effective": "period_end"}), now))
            .commit()
            .await
            .map_err(changed_meanwhile)?;
        let sub = load(ctx, &tenant, id)
            .await?
            .ok_or_else(|| ApiError::internal("subscription vanished"))?;
        return Ok(SubscriptionResult {
            subscription: sub.view()?,
            invoice: None,
        });
    }
    if sub.trialing && to.terms.trial_days > 0 {
        // During a trial nothing was paid: switch to another plan with a trial without
        // proration (the trial keeps its end: a change never extends it).
        apply_plan(ctx, &t, &sub, &to, None, now, None, false).await?;
        let sub = load(ctx, &tenant, id)
            .await?
            .ok_or_else(|| ApiError::internal("subscription vanished"))?;
        return Ok(SubscriptionResult {
            subscription: sub.view()?,
            invoice: None,
        });
    }
    // Claim the change first (revision bump), so a concurrent change gets its 409 before any
    // invoice is written.
    let claimed = sub.rev + 1;
    t.update(
        sub.item.key.clone(),
        vec![
            UpdateAction::set("rev", claimed),
            UpdateAction::set(CHANGE_LOCK, now.timestamp() + CHANGE_LOCK_SECS),
        ],
        Some(sub.unchanged()),
    )
    .await
    .map_err(|e| {
        if e.is_condition_failure() {
            ApiError::conflict("the subscription is being changed by another request; retry")
        } else {
            e.into()
        }
    })?;
    let sub = Sub {
        rev: claimed,
        ..sub
    };
    let (lines, restart) = change_lines(&sub, &to, now);
    let period_end = lines
        .last()
        .and_then(|l| l.period)
        .map(|p| p.1)
        .unwrap_or(sub.period_end);
    let draft = Draft {
        subscription_id: sub.id.clone(),
        currency: sub.currency,
        lines,
        period: (now, period_end),
        dedupe: format!("{}#CHANGE#{}", sub.id, claimed),
    };
    let invoice = invoices::issue(ctx, &tenant, draft).await?;
    let mut invoice_after = invoice.clone();
    if invoice.str("status") == Some("open") {
        // Nothing to charge with, or a declined charge: the invoice is voided and the lock
        // released, so nothing is left open to pay for a change that did not happen.
        let undo = |invoice: Item| {
            let (t, sub, tenant) = (&t, &sub, &tenant);
            async move {
                invoices::close(ctx, tenant, &invoice, "void").await?;
                t.update(
                    sub.item.key.clone(),
                    vec![
                        UpdateAction::remove(CHANGE_LOCK),
                        UpdateAction::set("rev", claimed + 1),
                    ],
                    Some(sub.owned()),
                )
                .await?;
                Ok::<(), ApiError>(())
            }
        };
        let method =
            match payment_methods::resolve(ctx, &tenant, req.payment_method_id.as_deref()).await {
                Ok(Some(method)) => method,
                Ok(None) => {
                    undo(invoice.clone()).await?;
                    return Err(ApiError::validation(
                        "payment_method_id",
                        "add a payment method first",
                    ));
                }
                Err(e) => {
                    undo(invoice.clone()).await?;
                    return Err(e);
                }
            };
        let (after, decline) = invoices::attempt_payment(ctx, &tenant, &invoice, &method).await?;
        invoice_after = after;
        if let Some((code, message)) = decline {
            undo(invoice_after.clone()).await?;
            return Err(ApiError::new(
                axum::http::StatusCode::PAYMENT_REQUIRED,
                "payment-declined",
                "Payment declined",
            )
            .detail(format!("{message} The plan was not changed."))
            .with("code", code)
            .with("invoice_id", invoice.str("invoice_id").unwrap_or_default()));
        }
    }
    let restart_at = restart.then_some(now);
    apply_plan(
        ctx,
        &t,
        &sub,
        &to,
        restart_at,
        now,
        invoice.str("invoice_id"),
        true,
    )
    .await?;
    let sub = load(ctx, &tenant, id)
        .await?
        .ok_or_else(|| ApiError::internal("subscription vanished"))?;
    Ok(SubscriptionResult {
        subscription: sub.view()?,
        invoice: Some(InvoiceView::from_item(&invoice_after)?),
    })
}

/// Moves a subscription to another plan version now; with `restart_at`, its billing period
/// restarts there (a monthly/yearly switch).
#[allow(clippy::too_many_arguments)]
async fn apply_plan(
    ctx: &AppContext,
    t: &TenantStore,
    sub: &Sub,
    to: &Plan,
    restart_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    invoice_id: Option<&str>,
    holds_lock: bool,
) -> Result<(), ApiError> {
    let mut actions = vec![
        UpdateAction::set("plan_id", to.id.as_str()),
        UpdateAction::set("plan_version", i64::from(to.version)),
        UpdateAction::set("price", to.terms.price),
        UpdateAction::remove(CHANGE_LOCK),
        UpdateAction::set("billing_cycle", to.terms.billing_cycle.as_str()),
        UpdateAction::remove("scheduled_plan_id"),
        UpdateAction::remove("scheduled_plan_version"),
        UpdateAction::set("rev", sub.rev + 1),
        UpdateAction::set("updated_at", time::fmt(now)),
    ];
    if let Some(at) = restart_at {
        if sub.trialing {
            // Restarting a trial's period ends the trial: the new plan is paid from `at`.
            actions.push(UpdateAction::set("status", Status::Active.as_str()));
            actions.push(UpdateAction::remove("trial_end"));
        }
        let (start, end) = period(at, to.terms.billing_cycle, 0);
        actions.push(UpdateAction::set("anchor", time::fmt(at)));
        actions.push(UpdateAction::set("period_index", 0));
        actions.push(UpdateAction::set("period_start", time::fmt(start)));
        actions.push(UpdateAction::set("period_end", time::fmt(end)));
        actions.extend(renewal_index(t.tenant(), &sub.id, end));
    }
    if let Some(invoice_id) = invoice_id {
        actions.push(UpdateAction::set("latest_invoice_id", invoice_id));
    }
    let mut tx = ctx
        .stores
        .transaction()
        .tenant(t, WriteOp::Update { key: sub.item.key.clone(), actions, condition: Some(if holds_lock { sub.owned() } else { sub.unchanged() }) })
        .tenant(t, events::op(t, "plan.changed", json!({"subscription_id": sub.id, "from_plan_id": sub.plan_id, "plan_id": to.id, "plan_version": to.version, "effective": "now"}), now));
    tx = tx.tenant(t, live_moved(t, &sub.id, &to.id, to.version));
    tx.commit().await.map_err(changed_meanwhile)
}

pub async fn cancel_scheduled_change(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<SubscriptionView, ApiError> {
    let tenant = payment_methods::admin_tenant(caller)?;
    let sub = load(ctx, &tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such subscription"))?;
    if sub.item.str("scheduled_plan_id").is_none() {
        return Err(ApiError::conflict("no plan change is scheduled"));
    }
    let t = ctx.stores.tenant(&tenant);
    t.update(
        sub.item.key.clone(),
        vec![
            UpdateAction::remove("scheduled_plan_id"),
            UpdateAction::remove("scheduled_plan_version"),
            UpdateAction::set("rev", sub.rev + 1),
        ],
        Some(sub.unchanged()),
    )
    .await
    .map_err(changed_meanwhile)?;
    load(ctx, &tenant, id)
        .await?
        .ok_or_else(|| ApiError::internal("subscription vanished"))?
        .view()
}

// ---- cancel and resume -----------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[serde(default = "yes")]
    pub at_period_end: bool,
    /// With an immediate cancel: credit the unused part of the paid period to the balance.
    #[serde(default)]
    pub prorate: bool,
}

fn yes() -> bool {
    true
}

pub async fn cancel(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    req: CancelRequest,
) -> Result<SubscriptionView, ApiError> {
    let tenant = payment_methods::admin_tenant(caller)?;
    let sub = load(ctx, &tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such subscription"))?;
    let t = ctx.stores.tenant(&tenant);
    let now = ctx.clock.now();
    if req.at_period_end {
        if !sub.status.is_live() {
            return Err(ApiError::conflict(format!(
                "a {} subscription cannot be cancelled",
                sub.status.as_str()
            ))
            .with("code", "illegal_transition"));
        }
        ctx.stores
            .transaction()
            .tenant(
                &t,
                WriteOp::Update {
                    key: sub.item.key.clone(),
                    actions: vec![
                        UpdateAction::set("cancel_at_period_end", true),
                        UpdateAction::set("rev", sub.rev + 1),
                        UpdateAction::set("updated_at", time::fmt(now)),
                    ],
                    condition: Some(sub.unchanged()),
                },
            )
            .tenant(
                &t,
                events::op(
                    &t,
                    "customer.subscription.updated",
                    json!({"subscription_id": sub.id, "cancel_at_period_end": true}),
                    now,
                ),
            )
            .commit()
            .await
            .map_err(changed_meanwhile)?;
    } else {
        let credit = if req.prorate && !sub.trialing && sub.status == Status::Active {
            prorate(
                sub.currency,
                sub.price,
                Decimal::ZERO,
                sub.period_start,
                sub.period_end,
                now,
                false,
            )
            .credit
        } else {
            Decimal::ZERO
        };
        end(ctx, &t, &sub, Event::Cancel, now, -credit).await?;
    }
    load(ctx, &tenant, id)
        .await?
        .ok_or_else(|| ApiError::internal("subscription vanished"))?
        .view()
}

pub async fn resume(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<SubscriptionView, ApiError> {
    let tenant = payment_methods::admin_tenant(caller)?;
    let sub = load(ctx, &tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such subscription"))?;
    if !sub.status.is_live() || !sub.cancel_at_period_end {
        return Err(ApiError::conflict(
            "there is no pending cancellation to undo",
        ));
    }
    let t = ctx.stores.tenant(&tenant);
    let now = ctx.clock.now();
    ctx.stores
        .transaction()
        .tenant(
            &t,
            WriteOp::Update {
                key: sub.item.key.clone(),
                actions: vec![
                    UpdateAction::set("cancel_at_period_end", false),
                    UpdateAction::set("rev", sub.rev + 1),
                ],
                condition: Some(sub.unchanged()),
            },
        )
        .tenant(
            &t,
            events::op(
                &t,
                "customer.subscription.updated",
                json!({"subscription_id": sub.id, "cancel_at_period_end": false}),
                now,
            ),
        )
        .commit()
        .await
        .map_err(changed_meanwhile)?;
    load(ctx, &tenant, id)
        .await?
        .ok_or_else(|| ApiError::internal("subscription vanished"))?
        .view()
}

/// Ends a subscription (cancelled or expired): frees the live slot, leaves the renewal index,
/// credits `credit` to the balance.
async fn end(
    ctx: &AppContext,
    t: &TenantStore,
    sub: &Sub,
    event: Event,
    now: DateTime<Utc>,
    credit: Decimal,
) -> Result<Status, ApiError> {
    let next = sub.status.apply(event)?;
    let mut tx = ctx
        .stores
        .transaction()
        .tenant(
            t,
            WriteOp::Update {
                key: sub.item.key.clone(),
                actions: vec![
                    UpdateAction::set("status", next.as_str()),
                    UpdateAction::set("ended_at", time::fmt(now)),
                    UpdateAction::set("rev", sub.rev + 1),
                    UpdateAction::remove(GSI1PK),
                    UpdateAction::remove(GSI1SK),
                ],
                condition: Some(sub.unchanged()),
            },
        )
        .tenant(
            t,
            WriteOp::Delete {
                key: live_key(t),
                condition: None,
            },
        )
        .tenant(
            t,
            events::op(
                t,
                "customer.subscription.deleted",
                json!({"subscription_id": sub.id, "status": next.as_str()}),
                now,
            ),
        );
    if credit > Decimal::ZERO {
        tx = tx.tenant(
            t,
            WriteOp::Update {
                key: payment_methods::billing_key(t),
                actions: vec![UpdateAction::add("credit_balance", credit)],
                condition: None,
            },
        );
    }
    tx.commit().await.map_err(changed_meanwhile)?;
    Ok(next)
}

// ---- paying an open invoice ------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    #[serde(default)]
    pub payment_method_id: Option<String>,
}

/// Retries an open invoice with the default or given method. Paying the first invoice of an
/// incomplete subscription activates it; paying a past-due one recovers it.
pub async fn pay_invoice(
    ctx: &AppContext,
    caller: &Caller,
    invoice_id: &str,
    req: PayRequest,
) -> Result<InvoiceView, ApiError> {
    let tenant = payment_methods::admin_tenant(caller)?;
    let invoice = invoices::load_by_id(ctx, &tenant, invoice_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such invoice"))?;
    if invoice.str("status") != Some("open") {
        return Err(ApiError::conflict(format!(
            "the invoice is {}, not open",
            invoice.str("status").unwrap_or("unknown")
        )));
    }
    let method = payment_methods::resolve(ctx, &tenant, req.payment_method_id.as_deref())
        .await?
        .ok_or_else(|| ApiError::validation("payment_method_id", "add a payment method first"))?;
    let sub_id = invoice.required_str("subscription_id")?.to_owned();
    let sub = load(ctx, &tenant, &sub_id).await?;
    match sub {
        Some(sub) if sub.status == Status::Incomplete => {
            let paid = settle_first_invoice(ctx, &tenant, sub, invoice, Some(&method)).await?;
            return InvoiceView::from_item(&paid);
        }
        _ => {}
    }
    let (after, decline) = invoices::attempt_payment(ctx, &tenant, &invoice, &method).await?;
    if decline.is_none() {
        if let Some(sub) = load(ctx, &tenant, &sub_id).await? {
            if sub.status == Status::PastDue {
                recover(ctx, &tenant, &sub).await?;
            }
        }
    }
    InvoiceView::from_item(&after)
}

/// A past-due subscription whose invoice got paid: active again, next renewal at period end.
async fn recover(ctx: &AppContext, tenant: &TenantId, sub: &Sub) -> Result<(), ApiError> {
    let t = ctx.stores.tenant(tenant);
    let now = ctx.clock.now();
    let next = sub.status.apply(Event::Recovered)?;
    let mut actions = vec![
        UpdateAction::set("status", next.as_str()),
        UpdateAction::set("rev", sub.rev + 1),
        UpdateAction::set("dunning_attempts", 0),
        UpdateAction::remove("next_attempt_at"),
    ];
    actions.extend(renewal_index(tenant, &sub.id, sub.period_end));
    ctx.stores
        .transaction()
        .tenant(
            &t,
            WriteOp::Update {
                key: sub.item.key.clone(),
                actions,
                condition: Some(sub.unchanged()),
            },
        )
        .tenant(
            &t,
            events::op(
                &t,
                "customer.subscription.updated",
                json!({"subscription_id": sub.id, "status": next.as_str()}),
                now,
            ),
        )
        .commit()
        .await
        .map_err(changed_meanwhile)
}

// ---- renewal (the renew-billing job) ---------------------------------------------------------

/// What one renewal did, for the job's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    NotDue,
    Renewed,
    PaymentFailed,
    Cancelled,
    Expired,
    DunningRetryFailed,
}

/// Processes one subscription whose period (or dunning retry) is due at `now`. Safe to run
/// twice or concurrently: invoices are unique per period and every write is conditional on the
/// revision read here.
pub async fn renew(
    ctx: &AppContext,
    tenant: &TenantId,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Renewal, ApiError> {
    let Some(sub) = load(ctx, tenant, id).await? else {
        return Ok(Renewal::NotDue);
    };
    let t = ctx.stores.tenant(tenant);
    if let Some(expiry) = expiry_due(ctx, tenant, &sub, now).await? {
        return Ok(if end_expired(ctx, &t, &sub, expiry, now).await? {
            Renewal::Expired
        } else {
            Renewal::NotDue
        });
    }
    if sub.status == Status::PastDue {
        return retry_dunning(ctx, tenant, sub, now).await;
    }
    if !sub.status.is_live() || sub.period_end > now {
        return Ok(Renewal::NotDue);
    }
    if sub.cancel_at_period_end {
        end(ctx, &t, &sub, Event::Cancel, sub.period_end, Decimal::ZERO).await?;
        return Ok(Renewal::Cancelled);
    }
    // The next period, on the scheduled plan if a downgrade waits for it.
    let (plan_id, version, price, cycle) = match (
        sub.item.str("scheduled_plan_id"),
        sub.item.i64("scheduled_plan_version"),
    ) {
        (Some(plan_id), Some(version)) => {
            let terms = load_version(ctx, plan_id, version as u32).await?;
            (
                plan_id.to_owned(),
                version as u32,
                terms.price,
                terms.billing_cycle,
            )
        }
        _ => (sub.plan_id.clone(), sub.plan_version, sub.price, sub.cycle),
    };
    let (anchor, index) = if sub.trialing || cycle != sub.cycle {
        (sub.period_end, 0)
    } else {
        (sub.anchor, sub.period_index + 1)
    };
    let (start, end_at) = period(anchor, cycle, index);
    let name = ctx
        .stores
        .platform()
        .get(&plans::plan_key(&plan_id))
        .await?
        .and_then(|m| m.str("name").map(str::to_owned))
        .unwrap_or_default();
    let draft = Draft {
        subscription_id: sub.id.clone(),
        currency: sub.currency,
        lines: vec![Line {
            kind: LineKind::PlanCharge,
            description: format!("{name} ({})", cycle.as_str()),
            amount: sub.currency.round(price),
            period: Some((start, end_at)),
        }],
        period: (start, end_at),
        dedupe: format!("{}#{}", sub.id, time::fmt(start)),
    };
    let invoice = invoices::issue(ctx, tenant, draft).await?;
    let mut paid = invoice.str("status") == Some("paid");
    let mut invoice_after = invoice.clone();
    if !paid {
        if let Some(method) = payment_methods::resolve(ctx, tenant, None).await? {
            let (after, decline) =
                invoices::attempt_payment(ctx, tenant, &invoice, &method).await?;
            paid = decline.is_none();
            invoice_after = after;
        }
    }
    let event = match (sub.trialing, paid) {
        (true, true) => Event::TrialConverted,
        (true, false) => Event::TrialPaymentFailed,
        (false, true) => Event::RenewalSucceeded,
        (false, false) => Event::RenewalFailed,
    };
    let next = sub.status.apply(event)?;
    let mut actions = vec![
        UpdateAction::set("status", next.as_str()),
        UpdateAction::set("plan_id", plan_id.as_str()),
        UpdateAction::set("plan_version", i64::from(version)),
        UpdateAction::set("price", price),
        UpdateAction::set("billing_cycle", cycle.as_str()),
        UpdateAction::set("anchor", time::fmt(anchor)),
        UpdateAction::set("period_index", i64::from(index)),
        UpdateAction::set("period_start", time::fmt(start)),
        UpdateAction::set("period_end", time::fmt(end_at)),
        UpdateAction::remove("scheduled_plan_id"),
        UpdateAction::remove("scheduled_plan_version"),
        UpdateAction::set(
            "latest_invoice_id",
            invoice_after.str("invoice_id").unwrap_or_default(),
        ),
        UpdateAction::set("rev", sub.rev + 1),
        UpdateAction::set("updated_at", time::fmt(now)),
    ];
    let due = if paid {
        actions.push(UpdateAction::set("dunning_attempts", 0));
        end_at
    } else {
        let retry = start + Duration::days(dunning_days()[0]);
        actions.push(UpdateAction::set("dunning_attempts", 1));
        actions.push(UpdateAction::set("next_attempt_at", time::fmt(retry)));
        retry
    };
    actions.extend(renewal_index(tenant, &sub.id, due));
    let mut tx = ctx
        .stores
        .transaction()
        .tenant(&t, WriteOp::Update { key: sub.item.key.clone(), actions, condition: Some(sub.unchanged()) })
        .tenant(&t, events::op(&t, "customer.subscription.updated", json!({"subscription_id": sub.id, "status": next.as_str(), "period_start": time::fmt(start), "period_end": time::fmt(end_at)}), now));
    if plan_id != sub.plan_id || version != sub.plan_version {
        tx = tx.tenant(&t, live_moved(&t, &sub.id, &plan_id, version));
    }
    match tx.commit().await {
        Ok(()) => Ok(if paid {
            Renewal::Renewed
        } else {
            Renewal::PaymentFailed
        }),
        // Another run renewed it first; the invoice was shared through its period key.
        Err(e) if e.is_condition_failure() => Ok(Renewal::NotDue),
        Err(e) => Err(e.into()),
    }
}

/// A past-due subscription at its next retry: charge the open invoice again; after the last
/// retry, give up (cancel; the invoice becomes uncollectible).
async fn retry_dunning(
    ctx: &AppContext,
    tenant: &TenantId,
    sub: Sub,
    now: DateTime<Utc>,
) -> Result<Renewal, ApiError> {
    let next_at = sub.item.str("next_attempt_at").and_then(time::parse);
    if next_at.is_none_or(|at| at > now) {
        return Ok(Renewal::NotDue);
    }
    let t = ctx.stores.tenant(tenant);
    let invoice_id = sub
        .item
        .str("latest_invoice_id")
        .unwrap_or_default()
        .to_owned();
    let invoice = invoices::load_by_id(ctx, tenant, &invoice_id).await?;
    let attempts = sub.item.i64("dunning_attempts").unwrap_or(1);
    if let Some(invoice) = invoice.filter(|i| i.str("status") == Some("open")) {
        if let Some(method) = payment_methods::resolve(ctx, tenant, None).await? {
            let (_, decline) = invoices::attempt_payment(ctx, tenant, &invoice, &method).await?;
            if decline.is_none() {
                recover(ctx, tenant, &sub).await?;
                return Ok(Renewal::Renewed);
            }
        }
        if attempts as usize >= dunning_days().len() {
            invoices::close(ctx, tenant, &invoice, "uncollectible").await?;
            let last = dunning_final_event();
            end(ctx, &t, &sub, last, now, Decimal::ZERO).await?;
            return Ok(if last == Event::Expire {
                Renewal::Expired
            } else {
                Renewal::Cancelled
            });
        }
        let retry = sub.period_start + Duration::days(dunning_days()[attempts as usize]);
        let mut actions = vec![
            UpdateAction::set("dunning_attempts", attempts + 1),
            UpdateAction::set("next_attempt_at", time::fmt(retry)),
            UpdateAction::set("rev", sub.rev + 1),
        ];
        actions.extend(renewal_index(tenant, &sub.id, retry));
        return match t
            .update(sub.item.key.clone(), actions, Some(sub.unchanged()))
            .await
        {
            Ok(_) => Ok(Renewal::DunningRetryFailed),
            Err(e) if e.is_condition_failure() => Ok(Renewal::NotDue),
            Err(e) => Err(e.into()),
        };
    }
    // The invoice was settled elsewhere (paid by hand): the subscription recovers.
    recover(ctx, tenant, &sub).await?;
    Ok(Renewal::Renewed)
}

/// Why a subscription ends without being renewed (the `expire-subscriptions` job, and the
/// renewal, which checks the same first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A fixed-duration plan ran all its cycles.
    DurationEnded,
    /// A trial ended and the tenant has no payment method to charge.
    TrialEndedWithoutPaymentMethod,
    /// Past due for longer than the grace period.
    GraceEnded,
}

impl Expiry {
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::DurationEnded => "duration_ended",
            Expiry::TrialEndedWithoutPaymentMethod => "trial_ended_without_payment_method",
            Expiry::GraceEnded => "grace_ended",
        }
    }

    /// When the subscription ended: at its period's end, or now for a lapsed grace period.
    fn ended_at(self, sub: &Sub, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Expiry::GraceEnded => now,
            _ => sub.period_end,
        }
    }
}

/// Days a subscription may stay past due (from the failed renewal's period start) before it
/// expires, whatever dunning did: `ESHTAREK_GRACE_DAYS`, default 7 (after the last retry).
pub fn grace_days() -> i64 {
    static DAYS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *DAYS.get_or_init(|| {
        std::env::var("ESHTAREK_GRACE_DAYS")
            .ok()
            .and_then(|d| d.parse().ok())
            .filter(|d| *d > 0)
            .unwrap_or(7)
    })
}

/// Whether `sub` should expire at `now`, and why.
pub async fn expiry_due(
    ctx: &AppContext,
    tenant: &TenantId,
    sub: &Sub,
    now: DateTime<Utc>,
) -> Result<Option<Expiry>, ApiError> {
    if sub.status == Status::PastDue {
        let lapsed = sub.period_start + Duration::days(grace_days()) <= now;
        return Ok(lapsed.then_some(Expiry::GraceEnded));
    }
    if !matches!(sub.status, Status::Trialing | Status::Active)
        || sub.period_end > now
        || sub.cancel_at_period_end
    {
        return Ok(None);
    }
    let completed = sub.period_index + u32::from(!sub.trialing);
    if let Some(cycles) = sub.item.i64("duration_cycles") {
        if i64::from(completed) >= cycles {
            return Ok(Some(Expiry::DurationEnded));
        }
    }
    if sub.trialing && payment_methods::resolve(ctx, tenant, None).await?.is_none() {
        return Ok(Some(Expiry::TrialEndedWithoutPaymentMethod));
    }
    Ok(None)
}

/// Ends `sub` if it is due to expire; `None` when it is not (or another run got there first).
pub async fn expire(
    ctx: &AppContext,
    tenant: &TenantId,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Expiry>, ApiError> {
    let Some(sub) = load(ctx, tenant, id).await? else {
        return Ok(None);
    };
    let Some(expiry) = expiry_due(ctx, tenant, &sub, now).await? else {
        return Ok(None);
    };
    let t = ctx.stores.tenant(tenant);
    Ok(end_expired(ctx, &t, &sub, expiry, now)
        .await?
        .then_some(expiry))
}

/// Ends `sub` as expired; `false` when another run changed it first (it has that one's end).
async fn end_expired(
    ctx: &AppContext,
    t: &TenantStore,
    sub: &Sub,
    expiry: Expiry,
    now: DateTime<Utc>,
) -> Result<bool, ApiError> {
    let ended_at = expiry.ended_at(sub, now);
    match end(ctx, t, sub, Event::Expire, ended_at, Decimal::ZERO).await {
        Ok(_) => Ok(true),
        Err(e) if e.status == axum::http::StatusCode::CONFLICT => Ok(false),
        Err(e) => Err(e),
    }
}

/// The renewal index's partitions: subscriptions by when they are next due.
pub fn renewal_partitions() -> Vec<String> {
    (0..RENEWAL_SHARDS)
        .map(|shard| format!("IDX#RENEWAL#{shard:02}"))
        .collect()
}

// ---- plan migrations -------------------------------------------------------------------------

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
                        UpdateAction::set("rev", sub.rev + 1),
                    ]
                }
                Effective::PeriodEnd => vec![
                    UpdateAction::set("scheduled_plan_id", plan_id),
                    UpdateAction::set("scheduled_plan_version", i64::from(req.to_version)),
                    UpdateAction::set("rev", sub.rev + 1),
                ],
            };
            let outcome = tx
                .tenant(&t, WriteOp::Update { key: sub.item.key.clone(), actions, condition: Some(sub.unchanged()) })
                .tenant(&t, events::op(&t, "plan.changed", json!({"subscription_id": sub.id, "plan_id": plan_id, "plan_version": req.to_version, "effective": req.effective, "migration": true}), now))
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
    let change = crate::audit::Change {
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
        .platform(crate::audit::platform_op(caller, change, now))
        .commit()
        .await?;
    Ok(MigrateResult { migrated, skipped })
}

// ---- platform admin overrides ----------------------------------------------------------------

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

/// A tenant's live subscription, if it has one.
pub async fn live(ctx: &AppContext, tenant: &TenantId) -> Result<Option<Sub>, ApiError> {
    let t = ctx.stores.tenant(tenant);
    match t.get(&live_key(&t)).await? {
        Some(live) => load(ctx, tenant, live.required_str("subscription_id")?).await,
        None => Ok(None),
    }
}

/// The tenant's live subscription, or 404.
async fn live_sub(ctx: &AppContext, tenant: &TenantId) -> Result<Sub, ApiError> {
    live(ctx, tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("the tenant has no live subscription"))
}

pub async fn admin_get(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
) -> Result<SubscriptionView, ApiError> {
    let tenant = crate::tenants::admin_named_tenant(ctx, caller, tenant_id).await?;
    live_sub(ctx, &tenant).await?.view()
}

/// A platform admin's override of a tenant's live subscription, audited with its reason.
pub async fn admin_override(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    req: OverrideRequest,
) -> Result<SubscriptionView, ApiError> {
    let tenant = crate::tenants::admin_named_tenant(ctx, caller, tenant_id).await?;
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
        let (version, terms, name) = current_version(ctx, plan_id).await?;
        if terms.currency != sub.currency {
            return Err(ApiError::validation(
                "plan_id",
                "plans in another currency cannot be switched to",
            ));
        }
        if *plan_id == sub.plan_id && version == sub.plan_version {
            return Err(ApiError::conflict(
                "the subscription is already on this plan's current version",
            ));
        }
        let to = Plan {
            id: plan_id.clone(),
            version,
            terms,
            name,
        };
        let restart = (to.terms.billing_cycle != sub.cycle).then_some(now);
        apply_plan(ctx, &t, &sub, &to, restart, now, None, false).await?;
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
            UpdateAction::set("rev", sub.rev + 1),
        ];
        if sub.trialing {
            actions.push(UpdateAction::set("trial_end", time::fmt(end_at)));
        }
        actions.extend(renewal_index(&tenant, &sub.id, end_at));
        t.update(sub.item.key.clone(), actions, Some(sub.unchanged()))
            .await
            .map_err(changed_meanwhile)?;
    } else if let Some(status) = &req.status {
        match status.as_str() {
            "active" => recover(ctx, &tenant, &sub).await?,
            "cancelled" => {
                end(ctx, &t, &sub, Event::Cancel, now, Decimal::ZERO).await?;
            }
            "expired" => {
                end(ctx, &t, &sub, Event::Expire, now, Decimal::ZERO).await?;
            }
            _ => {
                return Err(ApiError::validation(
                    "status",
                    "`active`, `cancelled` or `expired`",
                ))
            }
        }
    }
    let after = load(ctx, &tenant, &sub.id)
        .await?
        .ok_or_else(|| ApiError::internal("subscription vanished"))?
        .view()?;
    let change = crate::audit::Change {
        action: "subscription.admin_override",
        resource_type: "subscription",
        resource_id: &sub.id,
        before: Some(serde_json::to_value(&before).unwrap_or_default()),
        after: Some(serde_json::to_value(&after).unwrap_or_default()),
        reason: Some(reason),
    };
    ctx.stores
        .transaction()
        .tenant(&t, crate::audit::tenant_op(&t, caller, change, now))
        .commit()
        .await?;
    Ok(after)
}

#[cfg(test)]
mod dunning_tests {
    use super::parse_dunning_days;

    #[test]
    fn dunning_days_are_increasing_whole_days() {
        assert_eq!(parse_dunning_days("1,3,5"), Some(vec![1, 3, 5]));
        assert_eq!(parse_dunning_days(" 2 , 4 "), Some(vec![2, 4]));
        assert_eq!(parse_dunning_days("3,1"), None);
        assert_eq!(parse_dunning_days("1,1"), None);
        assert_eq!(parse_dunning_days("0,2"), None);
        assert_eq!(parse_dunning_days("one"), None);
        assert_eq!(parse_dunning_days(""), None);
    }
}
