//! The auth function: users, sessions, tenants and memberships. Handlers stay thin: they parse,
//! call the service in `eshtarek-core`, and shape the response.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use eshtarek_core::auth::service::{
    self as auth, LoginRequest, PasswordSetupRequest, RefreshRequest, RegisterRequest,
    SwitchTenantRequest,
};
use eshtarek_core::auth::{Caller, ClientIp};
use eshtarek_core::error::ApiResult;
use eshtarek_core::http::{health, ApiJson, ApiQuery, ListParams};
use eshtarek_core::tenants::{
    self, AddMemberRequest, CreateTenantRequest, PatchMemberRequest, PatchTenantRequest,
};
use eshtarek_core::AppContext;
use serde_json::json;

pub const NAME: &str = "auth";

/// Every route of the auth function, ready to merge into the local server or run under Lambda.
pub fn router(ctx: AppContext) -> Router {
    Router::new()
        .route("/v1/auth/health", get(|state| health(NAME, state)))
        .route("/v1/auth/register", post(register))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/logout-all", post(logout_all))
        .route("/v1/auth/switch-tenant", post(switch_tenant))
        .route("/v1/auth/me", get(me))
        .route("/v1/auth/password-setup", post(password_setup))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/v1/tenants", post(create_tenant).get(list_tenants))
        .route("/v1/tenants/{id}", get(get_tenant).patch(patch_tenant))
        .route(
            "/v1/tenants/{id}/members",
            get(list_members).post(add_member),
        )
        .route(
            "/v1/tenants/{id}/members/{user_id}",
            patch(patch_member).delete(remove_member),
        )
        .with_state(ctx)
}

async fn register(
    State(ctx): State<AppContext>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(auth::register(&ctx, req).await?)))
}

async fn login(
    State(ctx): State<AppContext>,
    ip: ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(auth::login(&ctx, req, ip).await?))
}

async fn refresh(
    State(ctx): State<AppContext>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(auth::refresh(&ctx, req).await?))
}

async fn logout(State(ctx): State<AppContext>, caller: Caller) -> ApiResult<impl IntoResponse> {
    auth::logout(&ctx, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logout_all(State(ctx): State<AppContext>, caller: Caller) -> ApiResult<impl IntoResponse> {
    let revoked = auth::logout_all(&ctx, &caller).await?;
    Ok(Json(json!({ "revoked_sessions": revoked })))
}

async fn switch_tenant(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiJson(req): ApiJson<SwitchTenantRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(auth::switch_tenant(&ctx, &caller, req).await?))
}

async fn me(State(ctx): State<AppContext>, caller: Caller) -> ApiResult<impl IntoResponse> {
    Ok(Json(auth::me(&ctx, &caller).await?))
}

async fn password_setup(
    State(ctx): State<AppContext>,
    ApiJson(req): ApiJson<PasswordSetupRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        json!({ "user": auth::setup_password(&ctx, req).await? }),
    ))
}

async fn jwks(State(ctx): State<AppContext>) -> impl IntoResponse {
    Json(ctx.tokens.keys.jwks())
}

async fn create_tenant(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateTenantRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(tenants::create_tenant(&ctx, &caller, req).await?),
    ))
}

async fn list_tenants(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(tenants::list_tenants(&ctx, &caller, params).await?))
}

async fn get_tenant(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(tenants::get_tenant(&ctx, &caller, &id).await?))
}

async fn patch_tenant(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchTenantRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(tenants::patch_tenant(&ctx, &caller, &id, req).await?))
}

async fn list_members(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        tenants::list_members(&ctx, &caller, &id, params).await?,
    ))
}

async fn add_member(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AddMemberRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(tenants::add_member(&ctx, &caller, &id, req).await?),
    ))
}

async fn patch_member(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<PatchMemberRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        tenants::patch_member(&ctx, &caller, &id, &user_id, req).await?,
    ))
}

async fn remove_member(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    tenants::remove_member(&ctx, &caller, &id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
