//! The auth function: users, sessions, tenants and memberships. Handlers stay thin: they parse,
//! call the service in `eshtarek-core`, and shape the response.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, patch, post};
use axum::{Extension, Json, Router};
use eshtarek_core::accounts::{self, MeResponse};
use eshtarek_core::auth::refresh::{self, RefreshRequest};
use eshtarek_core::auth::service::{
    self as auth, AuthResponse, LoginRequest, RegisterRequest, SwitchTenantRequest, TokenPair,
};
use eshtarek_core::auth::{Caller, ClientIp};
use eshtarek_core::error::ApiResult;
use eshtarek_core::http::{health, ApiJson, ApiQuery, ListParams, ListResponse};
use eshtarek_core::idempotency::Replay;
use eshtarek_core::invitations as invitations_core;
use eshtarek_core::openapi::ProblemResponses;
use eshtarek_core::tenants::{
    self, CreateTenantRequest, MemberView, PatchMemberRequest, PatchTenantRequest, TenantListQuery,
    TenantView,
};
use eshtarek_core::AppContext;
use utoipa::OpenApi;

mod invitations;

pub const NAME: &str = "auth";

/// The auth function's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    modifiers(&ProblemResponses),
    paths(
        register, login, refresh, logout, logout_all, switch_tenant, me, jwks,
        create_tenant, list_tenants, get_tenant, patch_tenant,
        list_members, patch_member, remove_member,
        invitations::invite, invitations::list_invitations, invitations::revoke_invitation,
        invitations::accept, invitations::decline, invitations::accept_link,
        invitations::verify_email, invitations::resend_verification
    ),

    tags(
        (name = "auth", description = "Users, sessions and tokens"),
        (name = "tenants", description = "Tenants"),
        (name = "members", description = "Tenant memberships"),
        (name = "invitations", description = "Joining a tenant by invitation; email verification")
    )
)]
pub struct AuthApi;

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LogoutAllResponse {
    pub revoked_sessions: usize,
}

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
        .route("/.well-known/jwks.json", get(jwks))
        .route("/v1/tenants", post(create_tenant).get(list_tenants))
        .route("/v1/tenants/{id}", get(get_tenant).patch(patch_tenant))
        .route("/v1/tenants/{id}/members", get(list_members))
        .merge(invitations::routes())
        .route(
            "/v1/tenants/{id}/members/{user_id}",
            patch(patch_member).delete(remove_member),
        )
        .with_state(ctx)
}

#[utoipa::path(
    post,
    path = "/v1/auth/register",
    tag = "auth",
    summary = "Self-service signup: a user, and with `tenant_name` their tenant as its admin.",
    request_body = RegisterRequest,
    responses((status = 201, description = "Registered and signed in; a verification link is mailed to the address", body = AuthResponse), (status = 400), (status = 409), (status = 415), (status = 422), (status = 429, description = "Too many registrations"), (status = 503, description = "Too busy hashing passwords"))
)]
async fn register(
    State(ctx): State<AppContext>,
    ip: ClientIp,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(auth::register(&ctx, req, ip).await?),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "auth",
    summary = "Sign in to one tenant membership (the given one, or the only/oldest one).",
    request_body = LoginRequest,
    responses((status = 200, description = "Signed in", body = AuthResponse), (status = 400), (status = 401), (status = 403), (status = 415), (status = 422), (status = 429, description = "Too many attempts"), (status = 503, description = "Too busy hashing passwords"))
)]
async fn login(
    State(ctx): State<AppContext>,
    ip: ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        Extension(Replay::Never),
        Json(auth::login(&ctx, req, ip).await?),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    tag = "auth",
    summary = "Rotate a refresh token; an already-used one revokes its session.",
    request_body = RefreshRequest,
    responses((status = 200, description = "A new token pair", body = TokenPair), (status = 400), (status = 401), (status = 415), (status = 422))
)]
async fn refresh(
    State(ctx): State<AppContext>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        Extension(Replay::Never),
        Json(refresh::refresh(&ctx, req).await?),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "auth",
    summary = "End this session: its refresh token and access tokens stop working at once.",
    security(("bearer" = [])),
    responses((status = 204, description = "Signed out"), (status = 401))
)]
async fn logout(State(ctx): State<AppContext>, caller: Caller) -> ApiResult<impl IntoResponse> {
    auth::logout(&ctx, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/auth/logout-all",
    tag = "auth",
    summary = "End every session of the user.",
    security(("bearer" = [])),
    responses((status = 200, description = "How many sessions ended", body = LogoutAllResponse), (status = 401))
)]
async fn logout_all(State(ctx): State<AppContext>, caller: Caller) -> ApiResult<impl IntoResponse> {
    let revoked_sessions = auth::logout_all(&ctx, &caller).await?;
    Ok(Json(LogoutAllResponse { revoked_sessions }))
}

#[utoipa::path(
    post,
    path = "/v1/auth/switch-tenant",
    tag = "auth",
    summary = "A new token pair for another of the caller's memberships.",
    request_body = SwitchTenantRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "Signed in to the other tenant", body = AuthResponse), (status = 400), (status = 401), (status = 403), (status = 415), (status = 422))
)]
async fn switch_tenant(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiJson(req): ApiJson<SwitchTenantRequest>,
) -> ApiResult<impl IntoResponse> {
    // Session tokens are never kept for a replay: a repeat starts another session.
    Ok((
        Extension(Replay::Never),
        Json(auth::switch_tenant(&ctx, &caller, req).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/auth/me",
    tag = "auth",
    summary = "The caller: user, memberships with roles, current tenant.",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = MeResponse), (status = 401))
)]
async fn me(State(ctx): State<AppContext>, me: accounts::Me) -> ApiResult<impl IntoResponse> {
    Ok(Json(accounts::me_with(&ctx, &me.caller, me.user).await?))
}

#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "auth",
    summary = "The public keys that verify access tokens (JWK Set).",
    responses((status = 200, description = "JWK Set", body = Object))
)]
async fn jwks(State(ctx): State<AppContext>) -> impl IntoResponse {
    Json(ctx.tokens.keys().jwks())
}

#[utoipa::path(
    post,
    path = "/v1/tenants",
    tag = "tenants",
    summary = "Create a tenant (platform admin).",
    request_body = CreateTenantRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = TenantView), (status = 400), (status = 401), (status = 403), (status = 415), (status = 422))
)]
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

#[utoipa::path(
    get,
    path = "/v1/tenants",
    tag = "tenants",
    summary = "Every tenant, newest first, optionally searched by name or id (platform admin).",
    params(TenantListQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of tenants", body = ListResponse<TenantView>), (status = 401), (status = 403), (status = 422))
)]
async fn list_tenants(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(query): ApiQuery<TenantListQuery>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(tenants::list_tenants(&ctx, &caller, query).await?))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}",
    tag = "tenants",
    summary = "A tenant (its members, or a platform admin).",
    params(("id" = String, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The tenant", body = TenantView), (status = 401), (status = 404, description = "No such resource (or another tenant's)"))
)]
async fn get_tenant(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(tenants::get_tenant(&ctx, &caller, &id).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/tenants/{id}",
    tag = "tenants",
    summary = "Rename (tenant admin) or suspend/reactivate (platform admin) a tenant.",
    request_body = PatchTenantRequest,
    params(("id" = String, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = TenantView), (status = 400), (status = 401), (status = 403), (status = 404, description = "No such resource (or another tenant's)"), (status = 415), (status = 422))
)]
async fn patch_tenant(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchTenantRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(tenants::patch_tenant(&ctx, &caller, &id, req).await?))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/members",
    tag = "members",
    summary = "A tenant's members (its admin, or a platform admin).",
    params(("id" = String, Path, description = "Tenant id"), ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of members", body = ListResponse<MemberView>), (status = 401), (status = 403), (status = 404, description = "No such resource (or another tenant's)"), (status = 422))
)]
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

#[utoipa::path(
    patch,
    path = "/v1/tenants/{id}/members/{user_id}",
    tag = "members",
    summary = "Change a member's role (a tenant keeps one admin).",
    request_body = PatchMemberRequest,
    params(("id" = String, Path, description = "Tenant id"), ("user_id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = MemberView), (status = 400), (status = 401), (status = 403), (status = 404, description = "No such resource (or another tenant's)"), (status = 409), (status = 415), (status = 422))
)]
async fn patch_member(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<PatchMemberRequest>,
) -> ApiResult<impl IntoResponse> {
    let member = tenants::patch_member(&ctx, &caller, &id, &user_id, req).await?;
    if member.role != eshtarek_core::auth::Role::TenantAdmin {
        invitations_core::withdraw_sent_by(&ctx, &caller, &id, &user_id).await?;
    }
    Ok(Json(member))
}

#[utoipa::path(
    delete,
    path = "/v1/tenants/{id}/members/{user_id}",
    tag = "members",
    summary = "Remove a member (tenant admin), or leave (the member themselves, in the tenant their token acts in); their sessions in the tenant end. A tenant keeps one admin.",
    params(("id" = String, Path, description = "Tenant id"), ("user_id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Removed"), (status = 401), (status = 403), (status = 404, description = "No such resource (or another tenant's)"), (status = 409))
)]
async fn remove_member(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    tenants::remove_member(&ctx, &caller, &id, &user_id).await?;
    // What they sent as an admin goes with them.
    invitations_core::withdraw_sent_by(&ctx, &caller, &id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
