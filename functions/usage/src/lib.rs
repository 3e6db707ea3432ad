//! The usage function: metering with real-time enforcement, API keys, usage summaries.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use eshtarek_core::auth::Caller;
use eshtarek_core::error::ApiResult;
use eshtarek_core::http::{health, ApiJson, ApiQuery, ListParams, ListResponse};
use eshtarek_core::idempotency::Replay;
use eshtarek_core::openapi::ProblemResponses;
use eshtarek_core::usage::api_keys::{self, ApiKeyView, CreateApiKeyRequest, CreatedApiKey};
use eshtarek_core::usage::entitlements::{
    self as ents, EntitlementCheckRequest, EntitlementCheckResult, EntitlementsView,
};
use eshtarek_core::usage::{
    self, AdminUsage, AdminUsageQuery, BatchRequest, BatchResponse, CheckRequest, CheckResult,
    GaugeRequest, History, HistoryQuery, Meter, MetricUsage, NotificationView, RecordingMeter,
    UsageEvent, UsageResult, UsageSummary,
};
use eshtarek_core::AppContext;
use utoipa::OpenApi;

pub const NAME: &str = "usage";

/// This function's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    modifiers(&ProblemResponses),
    paths(record_event, record_batch, admin_usage, admin_tenant_usage, get_usage, check, history, set_gauge, list_notifications, read_notification, create_key, list_keys, revoke_key, entitlements, check_entitlements),
    tags((name = "usage", description = "Metering and limits"), (name = "api keys", description = "Machine-to-machine keys"))
)]
pub struct UsageApi;

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ApiKeyList {
    pub data: Vec<ApiKeyView>,
    pub next_cursor: Option<String>,
}

/// Every route of the usage function.
pub fn router(ctx: AppContext) -> Router {
    Router::new()
        .route("/v1/usage/health", get(|state| health(NAME, state)))
        .route("/v1/usage/events", post(record_event))
        .route("/v1/usage", get(get_usage))
        .route("/v1/usage/events:batch", post(record_batch))
        .route("/v1/entitlements", get(entitlements))
        .route("/v1/entitlements/check", post(check_entitlements))
        .route("/v1/usage/check", post(check))
        .route("/v1/admin/usage", get(admin_usage))
        .route("/v1/admin/tenants/{id}/usage", get(admin_tenant_usage))
        .route("/v1/usage/history", get(history))
        .route("/v1/usage/gauges/{metric}", put(set_gauge))
        .route("/v1/notifications", get(list_notifications))
        .route("/v1/notifications/{id}/read", post(read_notification))
        .route("/v1/api-keys", post(create_key).get(list_keys))
        .route("/v1/api-keys/{id}", delete(revoke_key))
        .with_state(ctx)
}

#[utoipa::path(
    post,
    path = "/v1/usage/events",
    tag = "usage",
    summary = "Record usage; under a hard limit an event that would cross it is refused (402) and nothing is counted.",
    request_body = UsageEvent,
    security(("bearer" = [])),
    responses((status = 200, description = "Counted (or the first result for a repeated idempotency_key)", body = UsageResult), (status = 400), (status = 401, description = "Not signed in, or the token or key is invalid"), (status = 402, description = "A plan limit (or no subscription)"), (status = 403, description = "Wrong role or scope"), (status = 409), (status = 415), (status = 422))
)]
async fn record_event(
    State(ctx): State<AppContext>,
    meter: RecordingMeter,
    ApiJson(event): ApiJson<UsageEvent>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(usage::record(&ctx, &meter, event).await?))
}

#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "usage",
    summary = "Every metric of the current plan with used, limit and percent.",
    security(("bearer" = [])),
    responses((status = 200, description = "Usage", body = UsageSummary), (status = 401, description = "Not signed in, or the token or key is invalid"), (status = 402, description = "A plan limit (or no subscription)"), (status = 403, description = "Wrong role or scope"))
)]
async fn get_usage(State(ctx): State<AppContext>, meter: Meter) -> ApiResult<impl IntoResponse> {
    Ok(Json(usage::summary(&ctx, &meter).await?))
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/usage",
    tag = "usage",
    summary = "A tenant's usage of every metric of its plan (platform admin).",
    params(("id" = String, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Usage", body = UsageSummary), (status = 402, description = "The tenant has no subscription"), (status = 403), (status = 404, description = "No such tenant"))
)]
async fn admin_tenant_usage(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(usage::admin_summary(&ctx, &caller, &id).await?))
}

#[utoipa::path(
    post,
    path = "/v1/api-keys",
    tag = "api keys",
    summary = "Create an API key; its secret is shown once.",
    request_body = CreateApiKeyRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = CreatedApiKey), (status = 400), (status = 401, description = "Not signed in, or the token or key is invalid"), (status = 403, description = "Wrong role or scope"), (status = 415), (status = 422))
)]
async fn create_key(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> ApiResult<impl IntoResponse> {
    let created = api_keys::create(&ctx, &caller, req).await?;
    // A replay gets the key without its secret: the secret goes to its first recipient only.
    let replay = serde_json::to_vec(&created.key).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Extension(Replay::Without(replay)),
        Json(created),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/api-keys",
    tag = "api keys",
    summary = "The tenant's API keys, by prefix.",
    security(("bearer" = [])),
    responses((status = 200, description = "Keys", body = ApiKeyList), (status = 401, description = "Not signed in, or the token or key is invalid"), (status = 403, description = "Wrong role or scope"))
)]
async fn list_keys(State(ctx): State<AppContext>, caller: Caller) -> ApiResult<impl IntoResponse> {
    Ok(Json(ApiKeyList {
        data: api_keys::list(&ctx, &caller).await?,
        next_cursor: None,
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/api-keys/{id}",
    tag = "api keys",
    summary = "Revoke an API key; it stops working at once.",
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 204, description = "Revoked"), (status = 401, description = "Not signed in, or the token or key is invalid"), (status = 403, description = "Wrong role or scope"), (status = 404))
)]
async fn revoke_key(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    api_keys::revoke(&ctx, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/usage/check",
    tag = "usage",
    summary = "Would this usage be allowed now? Records nothing.",
    request_body = CheckRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "The answer", body = CheckResult), (status = 400), (status = 401, description = "Not signed in, or the token or key is invalid"), (status = 402, description = "A plan limit (or no subscription)"), (status = 403, description = "Wrong role or scope"), (status = 415), (status = 422))
)]
async fn check(
    State(ctx): State<AppContext>,
    meter: Meter,
    ApiJson(req): ApiJson<CheckRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(usage::check(&ctx, &meter, req).await?))
}

#[utoipa::path(
    get,
    path = "/v1/usage/history",
    tag = "usage",
    summary = "Totals per hour, day or month, from rollups written with each event.",
    params(HistoryQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "History", body = History), (status = 401, description = "Not signed in, or the token or key is invalid"), (status = 403, description = "Wrong role or scope"), (status = 422))
)]
async fn history(
    State(ctx): State<AppContext>,
    meter: Meter,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(usage::history(&ctx, &meter, q).await?))
}

#[utoipa::path(
    put,
    path = "/v1/usage/gauges/{metric}",
    tag = "usage",
    summary = "Set a gauge such as storage_mb; refused above a hard limit.",
    request_body = GaugeRequest,
    params(("metric" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The gauge", body = MetricUsage), (status = 400), (status = 401, description = "Not signed in, or the token or key is invalid"), (status = 402, description = "A plan limit (or no subscription)"), (status = 403, description = "Wrong role or scope"), (status = 415), (status = 422))
)]
async fn set_gauge(
    State(ctx): State<AppContext>,
    meter: Meter,
    Path(metric): Path<String>,
    ApiJson(req): ApiJson<GaugeRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(usage::set_gauge(&ctx, &meter, &metric, req).await?))
}

#[utoipa::path(
    get,
    path = "/v1/notifications",
    tag = "usage",
    summary = "The tenant's notifications (limit warnings), newest first.",
    params(ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page", body = ListResponse<NotificationView>), (status = 401, description = "Not signed in, or the token or key is invalid"), (status = 403, description = "Wrong role or scope"), (status = 422))
)]
async fn list_notifications(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(usage::notifications(&ctx, &caller, params).await?))
}

#[utoipa::path(
    post,
    path = "/v1/notifications/{id}/read",
    tag = "usage",
    summary = "Mark a notification read.",
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "Read", body = NotificationView), (status = 401, description = "Not signed in, or the token or key is invalid"), (status = 403, description = "Wrong role or scope"), (status = 404))
)]
async fn read_notification(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(usage::mark_read(&ctx, &caller, &id).await?))
}

#[utoipa::path(
    post,
    path = "/v1/usage/events:batch",
    tag = "usage",
    summary = "Record up to 100 events, each with its own result.",
    request_body = BatchRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "One result per event", body = BatchResponse), (status = 401, description = "Not signed in"), (status = 403, description = "Wrong role or scope"), (status = 422))
)]
async fn record_batch(
    State(ctx): State<AppContext>,
    meter: RecordingMeter,
    ApiJson(req): ApiJson<BatchRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(usage::record_batch(&ctx, &meter, req).await?))
}

#[utoipa::path(
    get,
    path = "/v1/admin/usage",
    tag = "usage",
    summary = "Usage of a metric across tenants in a month: total and top tenants (platform admin).",
    params(AdminUsageQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Usage across tenants", body = AdminUsage), (status = 401, description = "Not signed in"), (status = 403), (status = 422))
)]
async fn admin_usage(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AdminUsageQuery>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(usage::admin_usage(&ctx, &caller, q).await?))
}

/// `Cache-Control` for an answer that may be kept `seconds` (private: it is one tenant's).
fn cache_for(seconds: u32) -> [(axum::http::HeaderName, String); 1] {
    let value = if seconds == 0 {
        "private, no-store".to_owned()
    } else {
        format!("private, max-age={seconds}")
    };
    [(axum::http::header::CACHE_CONTROL, value)]
}

#[utoipa::path(
    get,
    path = "/v1/entitlements",
    tag = "usage",
    summary = "Everything the tenant's plan grants now: features with their values, and every limited or charged metric with what is used.",
    security(("bearer" = [])),
    responses((status = 200, description = "The entitlements", body = EntitlementsView), (status = 401, description = "Not signed in, or the token or key is invalid"), (status = 402, description = "No subscription"), (status = 403, description = "Wrong role or scope"))
)]
async fn entitlements(State(ctx): State<AppContext>, meter: Meter) -> ApiResult<impl IntoResponse> {
    let view = ents::entitlements(&ctx, &meter).await?;
    Ok((cache_for(view.cache_for_seconds), Json(view)))
}

#[utoipa::path(
    post,
    path = "/v1/entitlements/check",
    tag = "usage",
    summary = "May the tenant use these features and this much of these metrics now? Optionally consume one metric in the same call, atomically.",
    description = "Each check is a `feature` or a `metric` (with a `quantity`, default 1). The answer gives, for each, `allowed` and a `reason`, and for a metric its use, limit, remaining and reset time. With `consume` and an `idempotency_key`, the one metric asked is recorded as a usage event would be (refused under a hard limit, counted once per key). `cache_for_seconds` (and `Cache-Control`) say how long the answer holds.",
    request_body = EntitlementCheckRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "The answers", body = EntitlementCheckResult), (status = 400), (status = 401, description = "Not signed in, or the token or key is invalid"), (status = 403, description = "Wrong role or scope"), (status = 415), (status = 422))
)]
async fn check_entitlements(
    State(ctx): State<AppContext>,
    meter: RecordingMeter,
    ApiJson(req): ApiJson<EntitlementCheckRequest>,
) -> ApiResult<impl IntoResponse> {
    let result = ents::check(&ctx, &meter, req).await?;
    Ok((cache_for(result.cache_for_seconds), Json(result)))
}
