//! A tenant's payment methods: test tokens or card numbers, kept as brand, last four digits and
//! expiry (never the number). One is the default; the first one added becomes it.

use serde::{Deserialize, Serialize};

use super::gateway::{card_for_number, card_for_token, MethodRef, MockGateway};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::ids::new_id;
use crate::store::{
    Condition, Item, Key, Query, Store, StoreExt, TenantId, TenantStore, UpdateAction, WriteOp,
};
use crate::time;
use crate::AppContext;

pub fn billing_key(t: &TenantStore) -> Key {
    t.key("META", "BILLING")
}

fn method_key(t: &TenantStore, id: &str) -> Key {
    t.key("PAYMENT_METHODS", format!("PM#{id}"))
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PaymentMethodView {
    pub id: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
    pub is_default: bool,
    pub created_at: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardDetails {
    pub number: String,
    pub exp_month: u32,
    pub exp_year: u32,
    #[serde(default)]
    pub cvc: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPaymentMethodRequest {
    /// A Stripe test token such as `pm_card_visa`.
    #[serde(default)]
    pub token: Option<String>,
    /// Or card details (test numbers); the number is never stored.
    #[serde(default)]
    pub card: Option<CardDetails>,
    /// Make it the default (the first method always is).
    #[serde(default)]
    pub set_default: bool,
}

async fn default_id(t: &TenantStore) -> Result<Option<String>, ApiError> {
    Ok(t.get(&billing_key(t))
        .await?
        .and_then(|i| i.str("default_payment_method").map(str::to_owned)))
}

fn view(item: &Item, default: Option<&str>) -> Result<PaymentMethodView, ApiError> {
    let id = item.required_str("pm_id")?.to_owned();
    Ok(PaymentMethodView {
        is_default: default == Some(id.as_str()),
        id,
        brand: item.required_str("brand")?.to_owned(),
        last4: item.required_str("last4")?.to_owned(),
        exp_month: item.i64("exp_month").unwrap_or(0) as u32,
        exp_year: item.i64("exp_year").unwrap_or(0) as u32,
        created_at: item.required_str("created_at")?.to_owned(),
    })
}

pub async fn add(
    ctx: &AppContext,
    caller: &Caller,
    req: AddPaymentMethodRequest,
) -> Result<PaymentMethodView, ApiError> {
    let tenant = crate::access::own_admin_tenant(caller)?;
    let now = ctx.clock.now();
    let (brand, last4, decline, exp_month, exp_year) = match (&req.token, &req.card) {
        (Some(token), None) => {
            let card = card_for_token(token).ok_or_else(|| {
                ApiError::validation("token", "unknown test token; try pm_card_visa")
            })?;
            (
                card.brand.to_owned(),
                card.last4.to_owned(),
                card.decline,
                12,
                2034,
            )
        }
        (None, Some(card)) => {
            let (brand, last4, decline) = card_for_number(&card.number).ok_or_else(|| {
                ApiError::validation("card.number", "this is not a valid card number")
            })?;
            if !(1..=12).contains(&card.exp_month) {
                return Err(ApiError::validation(
                    "card.exp_month",
                    "a month from 1 to 12",
                ));
            }
            let year = now.format("%Y").to_string().parse::<u32>().unwrap_or(2026);
            let month = now.format("%m").to_string().parse::<u32>().unwrap_or(1);
            if card.exp_year < year
                || (card.exp_year == year && card.exp_month < month)
                || card.exp_year > year + 20
            {
                return Err(ApiError::validation(
                    "card.exp_year",
                    "the card has expired or the year is not valid",
                ));
            }
            if card.cvc.as_deref().is_some_and(|c| {
                !(3..=4).contains(&c.len()) || !c.chars().all(|d| d.is_ascii_digit())
            }) {
                return Err(ApiError::validation("card.cvc", "3 or 4 digits"));
            }
            (brand, last4, decline, card.exp_month, card.exp_year)
        }
        _ => {
            return Err(ApiError::validation(
                "token",
                "give either `token` or `card`",
            ))
        }
    };
    let t = ctx.stores.tenant(&tenant);
    let id = new_id("pm");
    let item = Item::new(method_key(&t, &id))
        .with("pm_id", id.as_str())
        .with("brand", brand)
        .with("last4", last4)
        .with("exp_month", i64::from(exp_month))
        .with("exp_year", i64::from(exp_year))
        .with("gateway_token", MockGateway::token_for(decline))
        .with("created_at", time::fmt(now));
    let current_default = default_id(&t).await?;
    let make_default = req.set_default || current_default.is_none();
    let mut tx = ctx.stores.transaction().tenant(
        &t,
        WriteOp::Put {
            item: item.clone(),
            condition: Some(Condition::ItemNotExists),
        },
    );
    if make_default {
        tx = tx.tenant(
            &t,
            WriteOp::Update {
                key: billing_key(&t),
                actions: vec![UpdateAction::set("default_payment_method", id.as_str())],
                condition: None,
            },
        );
    }
    tx.commit().await?;
    view(
        &item,
        Some(if make_default {
            id.as_str()
        } else {
            current_default.as_deref().unwrap_or_default()
        }),
    )
}

pub async fn list(ctx: &AppContext, caller: &Caller) -> Result<Vec<PaymentMethodView>, ApiError> {
    let tenant = crate::access::own_admin_tenant(caller)?;
    let t = ctx.stores.tenant(&tenant);
    let default = default_id(&t).await?;
    let page = t
        .query(
            &Query::table(t.pk("PAYMENT_METHODS"))
                .begins_with("PM#")
                .limit(100),
        )
        .await?;
    page.items
        .iter()
        .map(|i| view(i, default.as_deref()))
        .collect()
}

pub async fn remove(ctx: &AppContext, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let tenant = crate::access::own_admin_tenant(caller)?;
    let t = ctx.stores.tenant(&tenant);
    if !crate::ids::is_key_safe(id) {
        return Err(ApiError::not_found("no such payment method"));
    }
    t.delete(method_key(&t, id), Some(Condition::ItemExists))
        .await
        .map_err(|e| {
            if e.is_condition_failure() {
                ApiError::not_found("no such payment method")
            } else {
                e.into()
            }
        })?;
    if default_id(&t).await?.as_deref() == Some(id) {
        t.update(
            billing_key(&t),
            vec![UpdateAction::remove("default_payment_method")],
            None,
        )
        .await?;
    }
    Ok(())
}

/// The method to charge: the one named, else the default.
pub async fn resolve(
    ctx: &AppContext,
    tenant: &TenantId,
    id: Option<&str>,
) -> Result<Option<MethodRef>, ApiError> {
    let t = ctx.stores.tenant(tenant);
    let id = match id {
        Some(id) => Some(id.to_owned()),
        None => default_id(&t).await?,
    };
    let Some(id) = id else { return Ok(None) };
    if !crate::ids::is_key_safe(&id) {
        return Err(ApiError::validation(
            "payment_method_id",
            "no such payment method",
        ));
    }
    let item = t
        .get(&method_key(&t, &id))
        .await?
        .ok_or_else(|| ApiError::validation("payment_method_id", "no such payment method"))?;
    Ok(Some(MethodRef {
        id,
        gateway_token: item.required_str("gateway_token")?.to_owned(),
    }))
}
