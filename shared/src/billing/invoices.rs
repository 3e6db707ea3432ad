//! Invoices and payment attempts.
//!
//! Numbers are per tenant and sequential: the transaction that writes invoice n+1 moves the
//! tenant's counter from n to n+1 on condition, so concurrent invoices retry instead of taking
//! the same number, and a failed transaction leaves no gap. Each line is rounded once (half to
//! even, see `money`); the total is the exact sum of the lines. A positive credit balance is
//! applied as a line; a negative total (a net credit) goes to the balance.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::events;
use super::gateway::{ChargeOutcome, MethodRef};
use super::payment_methods::billing_key;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{ListParams, ListResponse};
use crate::ids::new_id;
use crate::money::Currency;
use crate::store::{
    AttrValue, Condition, Item, Key, Query, Store, StoreError, TenantId, TenantStore, UpdateAction,
    WriteOp,
};
use crate::time;
use crate::AppContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    PlanCharge,
    /// Seats past the included ones, for the period ahead.
    SeatCharge,
    /// A metric's usage past its allowance, for the period that closed (in arrears).
    UsageCharge,
    ProrationCredit,
    ProrationCharge,
    /// A coupon's discount (negative).
    Discount,
    /// Packs of units bought on top of the plan (a top-up), charged at once.
    TopUp,
    CreditBalanceApplied,
}

/// How a seat or usage line's amount came about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LineDetail {
    /// The metric billed; `max_users` for seats.
    #[schema(example = "api_calls")]
    pub metric: String,
    /// Seats, or units used in the period.
    pub quantity: u64,
    /// Seats or units the plan includes.
    pub included: u64,
    /// `quantity` past `included` and `granted`: what is priced.
    pub billable: u64,
    /// Units granted on top of the plan for the period, free before anything is billable.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub granted: u64,
    /// A seat's price per cycle (seat lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "12.00")]
    pub unit_price: Option<String>,
    /// The usage price with its tiers (usage lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<crate::billing::pricing::UsagePrice>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LineView {
    pub kind: LineKind,
    pub description: String,
    #[schema(example = "30.00")]
    pub amount: String,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    /// Quantities and prices of a seat or usage line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<LineDetail>,
}

/// A line before it is written: the amount is already rounded to the minor unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub kind: LineKind,
    pub description: String,
    pub amount: Decimal,
    pub period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub detail: Option<LineDetail>,
}

impl Line {
    pub fn view(&self, currency: Currency) -> LineView {
        LineView {
            kind: self.kind,
            description: self.description.clone(),
            amount: currency.format(self.amount),
            period_start: self.period.map(|p| time::fmt(p.0)),
            period_end: self.period.map(|p| time::fmt(p.1)),
            detail: self.detail.clone(),
        }
    }
}

/// What a new invoice bills.
pub struct Draft {
    pub subscription_id: String,
    pub currency: Currency,
    pub lines: Vec<Line>,
    pub period: (DateTime<Utc>, DateTime<Utc>),
    /// A key unique to what is billed (e.g. a subscription's period): a second draft with the
    /// same key returns the first invoice instead of billing twice.
    pub dedupe: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InvoiceView {
    pub id: String,
    pub number: u64,
    pub status: String,
    pub currency: String,
    pub lines: Vec<LineView>,
    pub subtotal: String,
    pub credit_applied: String,
    pub total: String,
    pub amount_due: String,
    pub amount_paid: String,
    pub period_start: String,
    pub period_end: String,
    pub subscription_id: String,
    pub attempt_count: u32,
    pub created_at: String,
    pub paid_at: Option<String>,
}

fn invoice_key(t: &TenantStore, number: u64) -> Key {
    t.key("INVOICES", format!("INV#{number:010}"))
}

fn id_key(t: &TenantStore, id: &str) -> Key {
    t.key("INVOICES", format!("ID#{id}"))
}

fn counter_key(t: &TenantStore) -> Key {
    t.key("INVOICES", "COUNTER")
}

fn dedupe_key(t: &TenantStore, dedupe: &str) -> Key {
    t.key("INVOICES", format!("FOR#{dedupe}"))
}

impl InvoiceView {
    pub fn from_item(item: &Item) -> Result<Self, ApiError> {
        let currency = Currency::parse(item.required_str("currency")?, "currency")
            .map_err(|e| ApiError::internal(e.detail))?;
        let money = |name: &str| currency.format(item.decimal(name).unwrap_or_default());
        let lines = match item.get("lines") {
            Some(AttrValue::L(lines)) => lines
                .iter()
                .map(|l| serde_json::from_value(l.to_json()).map_err(ApiError::internal))
                .collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        Ok(Self {
            id: item.required_str("invoice_id")?.to_owned(),
            number: item.i64("number").unwrap_or(0) as u64,
            status: item.required_str("status")?.to_owned(),
            currency: currency.code().to_owned(),
            lines,
            subtotal: money("subtotal"),
            credit_applied: money("credit_applied"),
            total: money("total"),
            amount_due: money("amount_due"),
            amount_paid: money("amount_paid"),
            period_start: item.required_str("period_start")?.to_owned(),
            period_end: item.required_str("period_end")?.to_owned(),
            subscription_id: item.required_str("subscription_id")?.to_owned(),
            attempt_count: item.i64("attempt_count").unwrap_or(0) as u32,
            created_at: item.required_str("created_at")?.to_owned(),
            paid_at: item.str("paid_at").map(str::to_owned),
        })
    }
}

fn line_attr(line: &Line, currency: Currency) -> AttrValue {
    AttrValue::from_json(&serde_json::to_value(line.view(currency)).expect("serializable"))
        .expect("plain JSON")
}

/// An invoice's sums: its lines with the credit balance applied as a last line, and the
/// balance after it.
pub struct Totals {
    pub lines: Vec<Line>,
    /// The lines before credit.
    pub subtotal: Decimal,
    /// Credit balance used (a positive amount).
    pub applied: Decimal,
    /// The exact sum of every line, credit included.
    pub total: Decimal,
    pub amount_due: Decimal,
    pub new_balance: Decimal,
}

/// Applies a credit `balance` to `lines` (rounded already): up to the subtotal, as a line; a
/// negative total (a net credit) goes to the balance.
pub fn totals(mut lines: Vec<Line>, balance: Decimal) -> Totals {
    let subtotal: Decimal = lines.iter().map(|l| l.amount).sum();
    let applied = if subtotal > Decimal::ZERO {
        balance.min(subtotal).max(Decimal::ZERO)
    } else {
        Decimal::ZERO
    };
    if applied > Decimal::ZERO {
        lines.push(Line {
            kind: LineKind::CreditBalanceApplied,
            description: "Credit balance applied".into(),
            amount: -applied,
            period: None,
            detail: None,
        });
    }
    let total: Decimal = lines.iter().map(|l| l.amount).sum();
    Totals {
        lines,
        subtotal,
        applied,
        total,
        amount_due: total.max(Decimal::ZERO),
        new_balance: balance - applied + (-total).max(Decimal::ZERO),
    }
}

/// Writes a new invoice (open, or paid when nothing is due). Applies the credit balance first;
/// a net credit goes to the balance.
pub async fn issue(ctx: &AppContext, tenant: &TenantId, draft: Draft) -> Result<Item, ApiError> {
    let t = ctx.stores.tenant(tenant);
    // Optimistic: contention is one tenant's invoices at the same instant, which is rare; back
    // off with jitter so a burst still drains in order.
    for attempt in 0..100u64 {
        if attempt > 0 {
            let jitter = rand::random::<u64>() % (2 * attempt.min(10) + 1);
            tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
        }
        if let Some(existing) = t.get(&dedupe_key(&t, &draft.dedupe)).await? {
            let number = existing.i64("number").unwrap_or(0) as u64;
            return t
                .get(&invoice_key(&t, number))
                .await?
                .ok_or_else(|| ApiError::internal("dedupe without invoice"));
        }
        let now = ctx.clock.now();
        let last = t
            .get(&counter_key(&t))
            .await?
            .and_then(|i| i.i64("last"))
            .unwrap_or(0) as u64;
        let billing = t.get(&billing_key(&t)).await?;
        let balance = billing
            .as_ref()
            .and_then(|b| b.decimal("credit_balance"))
            .unwrap_or_default();
        let Totals {
            lines,
            subtotal,
            applied,
            total,
            amount_due,
            new_balance,
        } = totals(draft.lines.clone(), balance);
        let number = last + 1;
        let id = new_id("in");
        let at = time::fmt(now);
        let paid = amount_due.is_zero();
        let mut item = Item::new(invoice_key(&t, number))
            .with("invoice_id", id.as_str())
            .with("number", number as i64)
            .with("status", if paid { "paid" } else { "open" })
            .with("currency", draft.currency.code())
            .with(
                "lines",
                AttrValue::L(lines.iter().map(|l| line_attr(l, draft.currency)).collect()),
            )
            .with("subtotal", subtotal)
            .with("credit_applied", applied)
            .with("total", total)
            .with("amount_due", amount_due)
            .with("amount_paid", Decimal::ZERO)
            .with("period_start", time::fmt(draft.period.0))
            .with("period_end", time::fmt(draft.period.1))
            .with("subscription_id", draft.subscription_id.as_str())
            .with("attempt_count", 0)
            .with("created_at", at.as_str());
        if paid {
            item = item.with("paid_at", at.as_str());
        }
        let counter_condition = if last == 0 {
            Condition::ItemNotExists
        } else {
            Condition::eq("last", last as i64)
        };
        let balance_condition = match billing.as_ref().and_then(|b| b.decimal("credit_balance")) {
            Some(old) => Condition::eq("credit_balance", old),
            None => Condition::not_exists("credit_balance"),
        };
        let summary = json!({"invoice_id": id, "number": number, "total": draft.currency.format(total), "currency": draft.currency.code(), "subscription_id": draft.subscription_id});
        let mut tx = ctx
            .stores
            .transaction()
            .tenant(
                &t,
                WriteOp::Put {
                    item: Item::new(counter_key(&t)).with("last", number as i64),
                    condition: Some(counter_condition),
                },
            )
            .tenant(
                &t,
                WriteOp::Put {
                    item: item.clone(),
                    condition: Some(Condition::ItemNotExists),
                },
            )
            .tenant(
                &t,
                WriteOp::Put {
                    item: Item::new(id_key(&t, &id)).with("number", number as i64),
                    condition: Some(Condition::ItemNotExists),
                },
            )
            .tenant(
                &t,
                WriteOp::Put {
                    item: Item::new(dedupe_key(&t, &draft.dedupe)).with("number", number as i64),
                    condition: Some(Condition::ItemNotExists),
                },
            )
            .tenant(
                &t,
                WriteOp::Update {
                    key: billing_key(&t),
                    actions: vec![
                        UpdateAction::set("credit_balance", new_balance),
                        // The balance is in the currency it was last used or given in.
                        UpdateAction::set(CREDIT_CURRENCY, draft.currency.code()),
                    ],
                    condition: Some(balance_condition),
                },
            )
            .tenant(&t, events::op(&t, "invoice.created", summary.clone(), now));
        if paid {
            tx = tx.tenant(
                &t,
                events::op(
                    &t,
                    "invoice.paid",
                    summary,
                    now + chrono::Duration::milliseconds(1),
                ),
            );
        }
        match tx.commit().await {
            Ok(()) => return Ok(item),
            // Another invoice took the number, or the balance moved: read again and retry.
            Err(e) if e.is_condition_failure() || e == StoreError::Conflict => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(
        "invoicing is busy for this tenant; retry",
    ))
}

/// Charges an open invoice once. Records the attempt; marks the invoice paid on success.
/// Returns the invoice as it is after the attempt and the decline, if any.
pub async fn attempt_payment(
    ctx: &AppContext,
    tenant: &TenantId,
    invoice: &Item,
    method: &MethodRef,
) -> Result<(Item, Option<(String, String)>), ApiError> {
    let t = ctx.stores.tenant(tenant);
    let view = InvoiceView::from_item(invoice)?;
    if view.status != "open" {
        return Err(ApiError::conflict(format!(
            "the invoice is {}, not open",
            view.status
        )));
    }
    let currency = Currency::parse(&view.currency, "currency")?;
    let due = invoice.decimal("amount_due").unwrap_or_default();
    let attempt = view.attempt_count + 1;
    let outcome = ctx
        .gateway
        .charge(method, due, currency, &format!("{}:{attempt}", view.id))
        .await?;
    let now = ctx.clock.now();
    let at = time::fmt(now);
    let payment_id = new_id("py");
    let (status, decline) = match &outcome {
        ChargeOutcome::Succeeded { .. } => ("paid", None),
        ChargeOutcome::Declined { code, message } => {
            ("open", Some((code.clone(), message.clone())))
        }
    };
    let mut payment = Item::new(t.key("PAYMENTS", format!("PAY#{at}#{payment_id}")))
        .with("payment_id", payment_id.as_str())
        .with("kind", "charge")
        .with("invoice_id", view.id.as_str())
        .with("invoice_number", view.number as i64)
        .with("amount", due)
        .with("currency", currency.code())
        .with("payment_method_id", method.id.as_str())
        .with(
            "outcome",
            if decline.is_some() {
                "failed"
            } else {
                "succeeded"
            },
        )
        .with("created_at", at.as_str());
    if let Some((code, _)) = &decline {
        payment = payment.with("failure_code", code.as_str());
    }
    let mut actions = vec![
        UpdateAction::set("attempt_count", i64::from(attempt)),
        UpdateAction::set("status", status),
    ];
    if decline.is_none() {
        actions.push(UpdateAction::set("amount_paid", due));
        actions.push(UpdateAction::set("amount_due", Decimal::ZERO));
        actions.push(UpdateAction::set("paid_at", at.as_str()));
    }
    let summary = json!({"invoice_id": view.id, "number": view.number, "amount": currency.format(due), "currency": currency.code(),
                         "failure_code": decline.as_ref().map(|d| d.0.clone())});
    let event = if decline.is_some() {
        "invoice.payment_failed"
    } else {
        "invoice.paid"
    };
    ctx.stores
        .transaction()
        .tenant(
            &t,
            WriteOp::Update {
                key: invoice.key.clone(),
                actions,
                condition: Some(Condition::And(vec![
                    Condition::eq("status", "open"),
                    Condition::eq("attempt_count", i64::from(view.attempt_count)),
                ])),
            },
        )
        .tenant(
            &t,
            WriteOp::Put {
                item: payment,
                condition: Some(Condition::ItemNotExists),
            },
        )
        .tenant(&t, events::op(&t, event, summary, now))
        .commit()
        .await
        .map_err(|e| {
            if e.is_condition_failure() {
                ApiError::conflict("the invoice changed meanwhile; retry")
            } else {
                e.into()
            }
        })?;
    let item = t
        .get(&invoice.key)
        .await?
        .ok_or_else(|| ApiError::internal("invoice vanished"))?;
    Ok((item, decline))
}

/// Marks an open invoice void or uncollectible. Voiding gives the credit balance it took back
/// (in the same transaction: the invoice never happened); an uncollectible invoice keeps it
/// (the credit paid that part).
/// The write that closes an open invoice as `status` (it fails, and with it its transaction,
/// when the invoice is no longer open: paid meanwhile, say).
pub fn close_op(invoice: &Item, status: &str) -> WriteOp {
    WriteOp::Update {
        key: invoice.key.clone(),
        actions: vec![UpdateAction::set("status", status)],
        condition: Some(Condition::eq("status", "open")),
    }
}

pub async fn close(
    ctx: &AppContext,
    tenant: &TenantId,
    invoice: &Item,
    status: &str,
) -> Result<(), ApiError> {
    let t = ctx.stores.tenant(tenant);
    let applied = invoice.decimal("credit_applied").unwrap_or_default();
    let mut tx = ctx
        .stores
        .transaction()
        .tenant(&t, close_op(invoice, status));
    if status == "void" && applied > Decimal::ZERO {
        tx = tx.tenant(
            &t,
            WriteOp::Update {
                key: billing_key(&t),
                actions: vec![UpdateAction::add("credit_balance", applied)],
                condition: None,
            },
        );
    }
    match tx.commit().await {
        Ok(()) => Ok(()),
        Err(e) if e.is_condition_failure() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub async fn load_by_id(
    ctx: &AppContext,
    tenant: &TenantId,
    id: &str,
) -> Result<Option<Item>, ApiError> {
    if !crate::ids::is_key_safe(id) {
        return Ok(None);
    }
    let t = ctx.stores.tenant(tenant);
    let Some(pointer) = t.get(&id_key(&t, id)).await? else {
        return Ok(None);
    };
    let number = pointer.i64("number").unwrap_or(0) as u64;
    Ok(t.get(&invoice_key(&t, number)).await?)
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    params: ListParams,
) -> Result<ListResponse<InvoiceView>, ApiError> {
    list_of(ctx, &crate::access::own_admin_tenant(caller)?, params).await
}

/// A tenant's invoices, for a platform admin looking at that tenant.
pub async fn admin_list(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    params: ListParams,
) -> Result<ListResponse<InvoiceView>, ApiError> {
    let tenant = crate::access::admin_named_tenant(ctx, caller, tenant_id).await?;
    list_of(ctx, &tenant, params).await
}

async fn list_of(
    ctx: &AppContext,
    tenant: &TenantId,
    params: ListParams,
) -> Result<ListResponse<InvoiceView>, ApiError> {
    let t = ctx.stores.tenant(tenant);
    let page = t
        .query(
            &Query::table(t.pk("INVOICES"))
                .begins_with("INV#")
                .descending()
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    ListResponse::from_page(page, InvoiceView::from_item)
}

pub async fn get(ctx: &AppContext, caller: &Caller, id: &str) -> Result<InvoiceView, ApiError> {
    let tenant = crate::access::own_admin_tenant(caller)?;
    let item = load_by_id(ctx, &tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such invoice"))?;
    InvoiceView::from_item(&item)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    pub id: String,
    pub kind: String,
    pub invoice_id: String,
    pub invoice_number: u64,
    pub amount: String,
    pub currency: String,
    pub outcome: String,
    pub failure_code: Option<String>,
    pub payment_method_id: String,
    pub created_at: String,
}

fn payment_view(item: &Item) -> Result<PaymentView, ApiError> {
    let currency = Currency::parse(item.required_str("currency")?, "currency")
        .map_err(|e| ApiError::internal(e.detail))?;
    Ok(PaymentView {
        id: item.required_str("payment_id")?.to_owned(),
        kind: item.required_str("kind")?.to_owned(),
        invoice_id: item.required_str("invoice_id")?.to_owned(),
        invoice_number: item.i64("invoice_number").unwrap_or(0) as u64,
        amount: currency.format(item.decimal("amount").unwrap_or_default()),
        currency: currency.code().to_owned(),
        outcome: item.required_str("outcome")?.to_owned(),
        failure_code: item.str("failure_code").map(str::to_owned),
        payment_method_id: item.str("payment_method_id").unwrap_or_default().to_owned(),
        created_at: item.required_str("created_at")?.to_owned(),
    })
}

/// Payment attempts, newest first.
pub async fn history(
    ctx: &AppContext,
    caller: &Caller,
    params: ListParams,
) -> Result<ListResponse<PaymentView>, ApiError> {
    let tenant = crate::access::own_admin_tenant(caller)?;
    let t = ctx.stores.tenant(&tenant);
    let page = t
        .query(
            &Query::table(t.pk("PAYMENTS"))
                .begins_with("PAY#")
                .descending()
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    ListResponse::from_page(page, payment_view)
}

/// The currency of the tenant's credit balance (beside `credit_balance` on its billing item).
pub const CREDIT_CURRENCY: &str = "credit_currency";

/// The tenant's credit balance.
pub async fn credit_balance(ctx: &AppContext, tenant: &TenantId) -> Result<Decimal, ApiError> {
    let t = ctx.stores.tenant(tenant);
    Ok(t.get(&billing_key(&t))
        .await?
        .and_then(|b| b.decimal("credit_balance"))
        .unwrap_or_default())
}
