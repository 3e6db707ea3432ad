//! The billing function: payment methods, invoices, payments, billing events.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use eshtarek_core::auth::Caller;
use eshtarek_core::billing::events::{self, EventView};
use eshtarek_core::billing::invoices::{self, InvoiceView, PaymentView};
use eshtarek_core::billing::payment_methods::{self, AddPaymentMethodRequest, PaymentMethodView};
use eshtarek_core::billing::subscriptions::{
    self as subs, AdjustCreditRequest, CreditsView, PayRequest, UpcomingInvoiceView,
};
use eshtarek_core::error::ApiResult;
use eshtarek_core::http::{health, ApiJson, ApiQuery, ListParams, ListResponse};
use eshtarek_core::openapi::ProblemResponses;
use eshtarek_core::AppContext;
use utoipa::OpenApi;

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PaymentMethodList {
    pub data: Vec<PaymentMethodView>,
    pub next_cursor: Option<String>,
}

pub const NAME: &str = "billing";

/// This function's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    modifiers(&ProblemResponses),
    paths(add_method, list_methods, remove_method, list_invoices, admin_list_invoices, upcoming_invoice, admin_upcoming_invoice, get_invoice, pay_invoice, history, list_events, credits, admin_credits, adjust_credit),
    tags((name = "billing", description = "Payment methods, invoices and payments"))
)]
pub struct BillingApi;

/// Every route of the billing function.
pub fn router(ctx: AppContext) -> Router {
    Router::new()
        .route("/v1/billing/health", get(|state| health(NAME, state)))
        .route("/v1/payment-methods", post(add_method).get(list_methods))
        .route("/v1/payment-methods/{id}", delete(remove_method))
        .route("/v1/invoices", get(list_invoices))
        .route("/v1/invoices/upcoming", get(upcoming_invoice))
        .route("/v1/invoices/{id}", get(get_invoice))
        .route("/v1/admin/tenants/{id}/invoices", get(admin_list_invoices))
        .route(
            "/v1/admin/tenants/{id}/invoices/upcoming",
            get(admin_upcoming_invoice),
        )
        .route("/v1/invoices/{id}/pay", post(pay_invoice))
        .route("/v1/billing/history", get(history))
        .route("/v1/billing/credits", get(credits))
        .route(
            "/v1/admin/tenants/{id}/credits",
            get(admin_credits).post(adjust_credit),
        )
        .route("/v1/events", get(list_events))
        .with_state(ctx)
}

#[utoipa::path(
    post,
    path = "/v1/payment-methods",
    tag = "billing",
    summary = "Add a payment method (test token or test card number).",
    request_body = AddPaymentMethodRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "Added", body = PaymentMethodView), (status = 400), (status = 401), (status = 403), (status = 415), (status = 422))
)]
async fn add_method(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiJson(req): ApiJson<AddPaymentMethodRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(payment_methods::add(&ctx, &caller, req).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/payment-methods",
    tag = "billing",
    summary = "The tenant's payment methods.",
    security(("bearer" = [])),
    responses((status = 200, description = "Payment methods", body = PaymentMethodList), (status = 401), (status = 403))
)]
async fn list_methods(
    State(ctx): State<AppContext>,
    caller: Caller,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(PaymentMethodList {
        data: payment_methods::list(&ctx, &caller).await?,
        next_cursor: None,
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/payment-methods/{id}",
    tag = "billing",
    summary = "Remove a payment method.",
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 204, description = "Removed"), (status = 401), (status = 403), (status = 404))
)]
async fn remove_method(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    payment_methods::remove(&ctx, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/invoices",
    tag = "billing",
    summary = "Invoices, newest first.",
    params(ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page", body = ListResponse<InvoiceView>), (status = 401), (status = 403), (status = 422))
)]
async fn list_invoices(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(invoices::list(&ctx, &caller, params).await?))
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/invoices",
    tag = "billing",
    summary = "A tenant's invoices, newest first (platform admin).",
    params(("id" = String, Path, description = "Tenant id"), ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page", body = ListResponse<InvoiceView>), (status = 403), (status = 404, description = "No such tenant"))
)]
async fn admin_list_invoices(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        invoices::admin_list(&ctx, &caller, &id, params).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/invoices/upcoming",
    tag = "billing",
    summary = "The next invoice as it would be if the period ended now: base and seats for the next period, usage so far with its charges, credit applied.",
    security(("bearer" = [])),
    responses((status = 200, description = "The upcoming invoice", body = UpcomingInvoiceView), (status = 401), (status = 403), (status = 404))
)]
async fn upcoming_invoice(
    State(ctx): State<AppContext>,
    caller: Caller,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::upcoming(&ctx, &caller).await?))
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/invoices/upcoming",
    tag = "billing",
    summary = "A tenant's upcoming invoice (platform admins).",
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The upcoming invoice", body = UpcomingInvoiceView), (status = 401), (status = 403), (status = 404))
)]
async fn admin_upcoming_invoice(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::admin_upcoming(&ctx, &caller, &id).await?))
}

#[utoipa::path(
    get,
    path = "/v1/billing/credits",
    tag = "billing",
    summary = "The tenant's credits: the balance invoices take first, and units held on top of the plan (grants, bought top-ups).",
    security(("bearer" = [])),
    responses((status = 200, description = "The credits", body = CreditsView), (status = 401), (status = 403))
)]
async fn credits(State(ctx): State<AppContext>, caller: Caller) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::credits(&ctx, &caller).await?))
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/credits",
    tag = "billing",
    summary = "A tenant's credits (platform admins).",
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The credits", body = CreditsView), (status = 401), (status = 403), (status = 404))
)]
async fn admin_credits(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::admin_credits(&ctx, &caller, &id).await?))
}

#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/credits",
    tag = "billing",
    summary = "Add to (or take back from) a tenant's credit balance, with a reason; audited (platform admins).",
    request_body = AdjustCreditRequest,
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The credits after it", body = CreditsView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 415), (status = 422))
)]
async fn adjust_credit(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AdjustCreditRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::adjust_credit(&ctx, &caller, &id, req).await?))
}

#[utoipa::path(
    get,
    path = "/v1/invoices/{id}",
    tag = "billing",
    summary = "One invoice with its lines.",
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The invoice", body = InvoiceView), (status = 401), (status = 403), (status = 404))
)]
async fn get_invoice(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(invoices::get(&ctx, &caller, &id).await?))
}

#[utoipa::path(
    post,
    path = "/v1/invoices/{id}/pay",
    tag = "billing",
    summary = "Retry an open invoice with the default or given payment method.",
    request_body = PayRequest,
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The invoice after the attempt (paid, or still open when declined)", body = InvoiceView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 415), (status = 422))
)]
async fn pay_invoice(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PayRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::pay_invoice(&ctx, &caller, &id, req).await?))
}

#[utoipa::path(
    get,
    path = "/v1/billing/history",
    tag = "billing",
    summary = "Payment attempts, newest first.",
    params(ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page", body = ListResponse<PaymentView>), (status = 401), (status = 403), (status = 422))
)]
async fn history(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(invoices::history(&ctx, &caller, params).await?))
}

#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "billing",
    summary = "Billing events (Stripe-like), newest first.",
    params(ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page", body = ListResponse<EventView>), (status = 401), (status = 403), (status = 422))
)]
async fn list_events(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(events::list(&ctx, &caller, params).await?))
}
