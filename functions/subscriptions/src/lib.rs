//! The subscriptions function: subscribe, change plans with proration, cancel and resume.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use eshtarek_core::auth::Caller;
use eshtarek_core::billing::overview::{self, Overview};
use eshtarek_core::billing::subscriptions::{
    self as subs, ApplyCouponRequest, CancelRequest, ChangePreview, ChangeRequest,
    CreateSubscriptionRequest, GrantRequest, OverrideRequest, SetSeatsRequest, SubscriptionResult,
    SubscriptionView, TopUpRequest, TopUpResult,
};
use eshtarek_core::billing::trials::{self, GrantTrialRequest, TrialGrant};
use eshtarek_core::error::ApiResult;
use eshtarek_core::http::{health, ApiJson, ApiQuery, ListParams, ListResponse};
use eshtarek_core::openapi::ProblemResponses;
use eshtarek_core::AppContext;
use utoipa::OpenApi;

/// `?plan_id=` of a change preview.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    pub plan_id: String,
}

pub const NAME: &str = "subscriptions";

/// This function's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    modifiers(&ProblemResponses),
    paths(overview, admin_get, admin_override, grant_trial, grant_units, create, list, current, get_one, preview, change, cancel_scheduled, cancel, resume, apply_coupon, buy_top_up, set_seats),
    tags((name = "subscriptions", description = "A tenant's subscription"))
)]
pub struct SubscriptionsApi;

/// Every route of the subscriptions function.
pub fn router(ctx: AppContext) -> Router {
    Router::new()
        .route("/v1/subscriptions/health", get(|state| health(NAME, state)))
        .route("/v1/subscriptions", post(create).get(list))
        .route("/v1/subscriptions/current", get(current))
        .route("/v1/subscriptions/{id}", get(get_one))
        .route("/v1/subscriptions/{id}/change-preview", get(preview))
        .route("/v1/subscriptions/{id}/change", post(change))
        .route(
            "/v1/subscriptions/{id}/scheduled-change",
            axum::routing::delete(cancel_scheduled),
        )
        .route("/v1/subscriptions/{id}/cancel", post(cancel))
        .route("/v1/subscriptions/{id}/resume", post(resume))
        .route("/v1/subscriptions/{id}/coupon", post(apply_coupon))
        .route("/v1/subscriptions/{id}/top-ups", post(buy_top_up))
        .route("/v1/subscriptions/{id}/seats", post(set_seats))
        .route("/v1/admin/overview", get(overview))
        .route(
            "/v1/admin/tenants/{id}/subscription",
            get(admin_get).patch(admin_override),
        )
        .route("/v1/admin/tenants/{id}/trial", post(grant_trial))
        .route("/v1/admin/tenants/{id}/grants", post(grant_units))
        .with_state(ctx)
}

#[utoipa::path(
    get,
    path = "/v1/admin/overview",
    tag = "subscriptions",
    summary = "The platform at a glance: tenants by subscription status, subscriptions per plan, MRR (platform admin).",
    security(("bearer" = [])),
    responses((status = 200, description = "The overview", body = Overview), (status = 403))
)]
async fn overview(State(ctx): State<AppContext>, caller: Caller) -> ApiResult<impl IntoResponse> {
    Ok(Json(overview::overview(&ctx, &caller).await?))
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions",
    tag = "subscriptions",
    summary = "Subscribe the tenant: a trial, or the first invoice charged now.",
    request_body = CreateSubscriptionRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "Subscribed (or incomplete when the first charge failed)", body = SubscriptionResult), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 415), (status = 422))
)]
async fn create(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateSubscriptionRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(subs::create(&ctx, &caller, req).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/subscriptions",
    tag = "subscriptions",
    summary = "The tenant's subscriptions, newest first.",
    params(ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page", body = ListResponse<SubscriptionView>), (status = 401), (status = 403), (status = 422))
)]
async fn list(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::list(&ctx, &caller, params).await?))
}

#[utoipa::path(
    get,
    path = "/v1/subscriptions/current",
    tag = "subscriptions",
    summary = "The tenant's live subscription.",
    security(("bearer" = [])),
    responses((status = 200, description = "The live subscription", body = SubscriptionView), (status = 401), (status = 403), (status = 404))
)]
async fn current(State(ctx): State<AppContext>, caller: Caller) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::current(&ctx, &caller).await?))
}

#[utoipa::path(
    get,
    path = "/v1/subscriptions/{id}",
    tag = "subscriptions",
    summary = "One subscription.",
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The subscription", body = SubscriptionView), (status = 401), (status = 403), (status = 404))
)]
async fn get_one(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::get(&ctx, &caller, &id).await?))
}

#[utoipa::path(
    get,
    path = "/v1/subscriptions/{id}/change-preview",
    tag = "subscriptions",
    summary = "The exact proration lines a plan change would bill; changes nothing.",
    params(("id" = String, Path), PreviewQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "The preview", body = ChangePreview), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422))
)]
async fn preview(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PreviewQuery>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::preview(&ctx, &caller, &id, &q.plan_id).await?))
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/change",
    tag = "subscriptions",
    summary = "Change plan: upgrades now with proration, downgrades at period end (by default).",
    request_body = ChangeRequest,
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "Changed or scheduled", body = SubscriptionResult), (status = 400), (status = 401), (status = 402, description = "Payment declined"), (status = 403), (status = 404), (status = 409), (status = 415), (status = 422))
)]
async fn change(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ChangeRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::change(&ctx, &caller, &id, req).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/subscriptions/{id}/scheduled-change",
    tag = "subscriptions",
    summary = "Cancel a scheduled plan change.",
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "No change scheduled any more", body = SubscriptionView), (status = 401), (status = 403), (status = 404), (status = 409))
)]
async fn cancel_scheduled(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        subs::cancel_scheduled_change(&ctx, &caller, &id).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/cancel",
    tag = "subscriptions",
    summary = "Cancel at period end (default) or now; `prorate` credits the unused time of an immediate cancel.",
    request_body = CancelRequest,
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "Cancelled or set to cancel", body = SubscriptionView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 415), (status = 422))
)]
async fn cancel(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CancelRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::cancel(&ctx, &caller, &id, req).await?))
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/resume",
    tag = "subscriptions",
    summary = "Undo a pending cancellation.",
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "Resumed", body = SubscriptionView), (status = 401), (status = 403), (status = 404), (status = 409))
)]
async fn resume(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::resume(&ctx, &caller, &id).await?))
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/coupon",
    tag = "subscriptions",
    summary = "Apply a coupon to the live subscription's coming invoices (tenant admin; one coupon at a time).",
    request_body = ApplyCouponRequest,
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "Applied", body = SubscriptionView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 415), (status = 422))
)]
async fn apply_coupon(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ApplyCouponRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::apply_coupon(&ctx, &caller, &id, req).await?))
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/seats",
    tag = "subscriptions",
    summary = "Set the seats bought, on a plan whose seats are licensed (tenant admin).",
    description = "More seats are charged at once for the rest of the period (prorated by the second); fewer take effect at the next renewal, with no refund. Never fewer than the members using them, nor more than the plan's hard `max_users`.",
    request_body = SetSeatsRequest,
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The subscription with its seats", body = SubscriptionView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 415), (status = 422))
)]
async fn set_seats(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SetSeatsRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::set_seats(&ctx, &caller, &id, req).await?))
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/top-ups",
    tag = "subscriptions",
    summary = "Buy packs of a metric's units on top of the plan for the rest of the period, charged at once (tenant admin).",
    description = "The plan version's `top_ups` say which metrics and at what price. The invoice is paid from the credit balance, then the card; a decline (402) or no card (422) voids it and adds nothing. With an `Idempotency-Key`, a retry is the same purchase: it never charges twice.",
    request_body = TopUpRequest,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry the same purchase")),
    security(("bearer" = [])),
    responses((status = 201, description = "Bought: the units and the paid invoice", body = TopUpResult), (status = 400), (status = 401), (status = 402, description = "Payment declined: the invoice is void and nothing was added"), (status = 403), (status = 404), (status = 409), (status = 415), (status = 422))
)]
async fn buy_top_up(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    ApiJson(req): ApiJson<TopUpRequest>,
) -> ApiResult<impl IntoResponse> {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    let bought = subs::buy_top_up(&ctx, &caller, &id, req, key).await?;
    Ok((StatusCode::CREATED, Json(bought)))
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/subscription",
    tag = "subscriptions",
    summary = "A tenant's live subscription (platform admin).",
    params(("id" = String, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The live subscription", body = SubscriptionView), (status = 401, description = "Not signed in"), (status = 403), (status = 404, description = "No live subscription"))
)]
async fn admin_get(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::admin_get(&ctx, &caller, &id).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/admin/tenants/{id}/subscription",
    tag = "subscriptions",
    summary = "Override a tenant's subscription: change plan without charge, extend the period, or set a status (platform admin; audited with a reason).",
    request_body = OverrideRequest,
    params(("id" = String, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The subscription after the override", body = SubscriptionView), (status = 401, description = "Not signed in"), (status = 403), (status = 404, description = "No live subscription"), (status = 409, description = "Illegal transition"), (status = 422))
)]
async fn admin_override(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<OverrideRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subs::admin_override(&ctx, &caller, &id, req).await?))
}

#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/trial",
    tag = "subscriptions",
    summary = "Give a tenant another free trial (one per tenant otherwise; platform admin; audited with a reason).",
    request_body = GrantTrialRequest,
    params(("id" = String, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Granted", body = TrialGrant), (status = 400), (status = 401, description = "Not signed in"), (status = 403), (status = 404, description = "No such tenant"), (status = 415), (status = 422))
)]
async fn grant_trial(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<GrantTrialRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(trials::grant(&ctx, &caller, &id, req).await?))
}

#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/grants",
    tag = "subscriptions",
    summary = "Grant a tenant units of a metric on top of its plan until an expiry (platform admin; audited with a reason). Hard limits in force rise by the grant; granted units are free before usage is billed.",
    request_body = GrantRequest,
    params(("id" = String, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses((status = 201, description = "Granted", body = eshtarek_core::billing::grants::Grant), (status = 400), (status = 401), (status = 403), (status = 404, description = "No such tenant, or no live subscription"), (status = 409), (status = 415), (status = 422))
)]
async fn grant_units(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<GrantRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(subs::grant(&ctx, &caller, &id, req).await?),
    ))
}
