//! The plans function: plans and their immutable versions, limit policies, the audit log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use eshtarek_core::audit::{self, AuditEvent, AuditFilter};
use eshtarek_core::auth::{Caller, MaybeCaller};
use eshtarek_core::billing::coupons::{self, CouponView, CreateCouponRequest, PatchCouponRequest};
use eshtarek_core::billing::subscriptions::{self, MigrateRequest, MigrateResult};
use eshtarek_core::error::{ApiError, ApiResult};
use eshtarek_core::http::{health, ApiJson, ApiQuery, ListParams, ListResponse};
use eshtarek_core::openapi::ProblemResponses;
use eshtarek_core::plans::features::{
    self, CreateFeatureRequest, FeatureView, PatchFeatureRequest,
};
use eshtarek_core::plans::policies::{self, CreatePolicyRequest, PatchPolicyRequest, PolicyView};
use eshtarek_core::plans::{self, CreatePlanRequest, PatchPlanRequest, PlanVersionView, PlanView};
use eshtarek_core::AppContext;
use utoipa::OpenApi;

pub const NAME: &str = "plans";

/// The plans function's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    modifiers(&ProblemResponses),
    paths(create_feature, list_features, patch_feature, create_coupon, list_coupons, get_coupon, patch_coupon, migrate_plan, create_plan, list_plans, get_plan, patch_plan, delete_plan, list_versions, get_version, activate_plan, deactivate_plan, create_policy, list_policies, get_policy, patch_policy, audit_log),
    tags(
        (name = "plans", description = "Plans and immutable plan versions"),
        (name = "limit policies", description = "Limits attached to plans"),
        (name = "audit", description = "Append-only audit log"),
        (name = "coupons", description = "Coupons tenants redeem (platform admin)"),
        (name = "features", description = "Features plan versions grant (platform admin)")
    )
)]
pub struct PlansApi;

/// Every route of the plans function.
pub fn router(ctx: AppContext) -> Router {
    Router::new()
        .route("/v1/plans/health", get(|state| health(NAME, state)))
        .route("/v1/plans", post(create_plan).get(list_plans))
        .route(
            "/v1/plans/{id}",
            get(get_plan).patch(patch_plan).delete(delete_plan),
        )
        .route("/v1/plans/{id}/versions", get(list_versions))
        .route("/v1/plans/{id}/versions/{version}", get(get_version))
        .route("/v1/plans/{id}/activate", post(activate_plan))
        .route("/v1/plans/{id}/deactivate", post(deactivate_plan))
        .route("/v1/plans/{id}/migrate", post(migrate_plan))
        .route("/v1/limit-policies", post(create_policy).get(list_policies))
        .route(
            "/v1/limit-policies/{id}",
            get(get_policy).patch(patch_policy),
        )
        .route("/v1/audit-log", get(audit_log))
        .route("/v1/coupons", post(create_coupon).get(list_coupons))
        .route("/v1/features", post(create_feature).get(list_features))
        .route("/v1/features/{key}", axum::routing::patch(patch_feature))
        .route("/v1/coupons/{code}", get(get_coupon).patch(patch_coupon))
        .with_state(ctx)
}

#[utoipa::path(
    post,
    path = "/v1/plans",
    tag = "plans",
    summary = "Create a plan with its first version (platform admin).",
    request_body = CreatePlanRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = PlanView), (status = 400), (status = 401), (status = 403), (status = 409), (status = 415), (status = 422))
)]
async fn create_plan(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiJson(req): ApiJson<CreatePlanRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(plans::create(&ctx, &caller, req).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/plans",
    tag = "plans",
    summary = "Active plans for anyone (a pricing page needs no sign-in); inactive ones too for platform admins.",
    params(ListParams),
    security((), ("bearer" = [])),
    responses((status = 200, description = "A page of plans", body = ListResponse<PlanView>), (status = 401), (status = 422))
)]
async fn list_plans(
    State(ctx): State<AppContext>,
    MaybeCaller(caller): MaybeCaller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(plans::list(&ctx, caller.as_ref(), params).await?))
}

#[utoipa::path(
    get,
    path = "/v1/plans/{id}",
    tag = "plans",
    summary = "A plan with its current version.",
    params(("id" = String, Path)),
    security((), ("bearer" = [])),
    responses((status = 200, description = "The plan", body = PlanView), (status = 401), (status = 404))
)]
async fn get_plan(
    State(ctx): State<AppContext>,
    MaybeCaller(caller): MaybeCaller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(plans::get(&ctx, caller.as_ref(), &id).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/plans/{id}",
    tag = "plans",
    summary = "Edit a plan; price, currency, cycle, trial, duration or limits make a new version.",
    request_body = PatchPlanRequest,
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = PlanView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 415), (status = 422))
)]
async fn patch_plan(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchPlanRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(plans::patch(&ctx, &caller, &id, req).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/plans/{id}",
    tag = "plans",
    summary = "Delete a plan no subscription uses.",
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401), (status = 403), (status = 404), (status = 409))
)]
async fn delete_plan(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    plans::delete(&ctx, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/plans/{id}/versions",
    tag = "plans",
    summary = "Every version of a plan, oldest first (platform admin).",
    params(("id" = String, Path), ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of versions", body = ListResponse<PlanVersionView>), (status = 401), (status = 403), (status = 404), (status = 422))
)]
async fn list_versions(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(plans::versions(&ctx, &caller, &id, params).await?))
}

#[utoipa::path(
    get,
    path = "/v1/plans/{id}/versions/{version}",
    tag = "plans",
    summary = "One immutable plan version.",
    params(("id" = String, Path), ("version" = u32, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The version", body = PlanVersionView), (status = 401), (status = 404))
)]
async fn get_version(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let version = version
        .parse()
        .map_err(|_| ApiError::not_found("no such plan version"))?;
    Ok(Json(plans::version(&ctx, &caller, &id, version).await?))
}

#[utoipa::path(
    post,
    path = "/v1/plans/{id}/activate",
    tag = "plans",
    summary = "Let a plan take new subscriptions again.",
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "Active", body = PlanView), (status = 401), (status = 403), (status = 404), (status = 409))
)]
async fn activate_plan(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(plans::set_active(&ctx, &caller, &id, true).await?))
}

#[utoipa::path(
    post,
    path = "/v1/plans/{id}/deactivate",
    tag = "plans",
    summary = "Stop new subscriptions to a plan; existing ones continue.",
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "Inactive", body = PlanView), (status = 401), (status = 403), (status = 404), (status = 409))
)]
async fn deactivate_plan(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(plans::set_active(&ctx, &caller, &id, false).await?))
}

#[utoipa::path(
    post,
    path = "/v1/limit-policies",
    tag = "limit policies",
    summary = "Create a limit policy (platform admin).",
    request_body = CreatePolicyRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = PolicyView), (status = 400), (status = 401), (status = 403), (status = 415), (status = 422))
)]
async fn create_policy(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiJson(req): ApiJson<CreatePolicyRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(policies::create(&ctx, &caller, req).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/limit-policies",
    tag = "limit policies",
    summary = "Limit policies by metric (platform admin).",
    params(ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of policies", body = ListResponse<PolicyView>), (status = 401), (status = 403), (status = 422))
)]
async fn list_policies(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(policies::list(&ctx, &caller, params).await?))
}

#[utoipa::path(
    get,
    path = "/v1/limit-policies/{id}",
    tag = "limit policies",
    summary = "A limit policy (platform admin).",
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The policy", body = PolicyView), (status = 401), (status = 403), (status = 404))
)]
async fn get_policy(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(policies::get(&ctx, &caller, &id).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/limit-policies/{id}",
    tag = "limit policies",
    summary = "Edit a limit policy; existing plan versions keep their snapshot.",
    request_body = PatchPolicyRequest,
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = PolicyView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 415), (status = 422))
)]
async fn patch_policy(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchPolicyRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(policies::patch(&ctx, &caller, &id, req).await?))
}

#[utoipa::path(
    get,
    path = "/v1/audit-log",
    tag = "audit",
    summary = "Audit events, newest first: every event for platform admins, their tenant's for tenant admins.",
    params(AuditFilter),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of events", body = ListResponse<AuditEvent>), (status = 401), (status = 403), (status = 404), (status = 422))
)]
async fn audit_log(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<AuditFilter>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(audit::list(&ctx, &caller, filter).await?))
}

#[utoipa::path(
    post,
    path = "/v1/plans/{id}/migrate",
    tag = "plans",
    summary = "Move live subscriptions from one version of the plan to another (audited).",
    request_body = MigrateRequest,
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "How many moved", body = MigrateResult), (status = 401, description = "Not signed in"), (status = 403), (status = 422))
)]
async fn migrate_plan(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MigrateRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(subscriptions::migrate(&ctx, &caller, &id, req).await?))
}

#[utoipa::path(
    post,
    path = "/v1/coupons",
    tag = "coupons",
    summary = "Create a coupon (platform admin): percent or an amount off, once, for N invoices or forever.",
    request_body = CreateCouponRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = CouponView), (status = 400), (status = 401), (status = 403), (status = 409), (status = 415), (status = 422))
)]
async fn create_coupon(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateCouponRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(coupons::create(&ctx, &caller, req).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/coupons",
    tag = "coupons",
    summary = "Coupons by code, with their redemptions (platform admin).",
    params(ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page", body = ListResponse<CouponView>), (status = 401), (status = 403), (status = 422))
)]
async fn list_coupons(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(coupons::list(&ctx, &caller, params).await?))
}

#[utoipa::path(
    get,
    path = "/v1/coupons/{code}",
    tag = "coupons",
    summary = "One coupon (platform admin).",
    params(("code" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The coupon", body = CouponView), (status = 401), (status = 403), (status = 404))
)]
async fn get_coupon(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(coupons::get(&ctx, &caller, &code).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/coupons/{code}",
    tag = "coupons",
    summary = "Switch a coupon off (or on) for new redemptions (platform admin).",
    request_body = PatchCouponRequest,
    params(("code" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The coupon", body = CouponView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 415), (status = 422))
)]
async fn patch_coupon(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<PatchCouponRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(coupons::patch(&ctx, &caller, &code, req).await?))
}

#[utoipa::path(
    post,
    path = "/v1/features",
    tag = "features",
    summary = "Define a feature (platform admin): a key, a name, a type (boolean, number or string); plan versions then give it a value.",
    request_body = CreateFeatureRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = FeatureView), (status = 400), (status = 401), (status = 403), (status = 409), (status = 415), (status = 422))
)]
async fn create_feature(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateFeatureRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(features::create(&ctx, &caller, req).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/features",
    tag = "features",
    summary = "The features plans may grant, by key (any signed-in caller).",
    params(ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page", body = ListResponse<FeatureView>), (status = 401), (status = 422))
)]
async fn list_features(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(features::list(&ctx, &caller, params).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/features/{key}",
    tag = "features",
    summary = "Rename or re-describe a feature (platform admin); its type never changes.",
    request_body = PatchFeatureRequest,
    params(("key" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The feature", body = FeatureView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 415), (status = 422))
)]
async fn patch_feature(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(key): Path<String>,
    ApiJson(req): ApiJson<PatchFeatureRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(features::patch(&ctx, &caller, &key, req).await?))
}
