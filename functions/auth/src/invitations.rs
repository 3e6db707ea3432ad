//! Invitations and email verification: inviting by email, the invitee's answer (signed in, or
//! through the mailed link), and confirming an address.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use eshtarek_core::auth::service::AuthResponse;
use eshtarek_core::auth::verification::{self, VerifyEmailRequest};
use eshtarek_core::auth::Caller;
use eshtarek_core::error::ApiResult;
use eshtarek_core::http::{ApiJson, ApiQuery, ListParams, ListResponse};
use eshtarek_core::idempotency::Replay;
use eshtarek_core::identity::UserView;
use eshtarek_core::invitations::{
    self, AcceptLinkRequest, InvitationView, InviteRequest, InviteResponse,
};
use eshtarek_core::tenants::MembershipView;
use eshtarek_core::AppContext;

pub fn routes() -> Router<AppContext> {
    Router::new()
        .route("/v1/tenants/{id}/members", post(invite))
        .route("/v1/tenants/{id}/invitations", get(list_invitations))
        .route(
            "/v1/tenants/{id}/invitations/{invitation_id}",
            delete(revoke_invitation),
        )
        .route("/v1/auth/invitations/accept", post(accept_link))
        .route("/v1/auth/invitations/{invitation_id}/accept", post(accept))
        .route(
            "/v1/auth/invitations/{invitation_id}/decline",
            post(decline),
        )
        .route("/v1/auth/verify-email", post(verify_email))
        .route("/v1/auth/verify-email/resend", post(resend_verification))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct VerifiedResponse {
    pub user: UserView,
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{id}/members",
    tag = "members",
    summary = "Invite a person by email (tenant admin). Nobody joins until the invitee accepts; the link goes to their mailbox, never into this answer, which does not say whether the email has an account.",
    request_body = InviteRequest,
    params(("id" = String, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses((status = 201, description = "Invited", body = InviteResponse), (status = 400), (status = 401), (status = 402, description = "The plan's seats are full"), (status = 403), (status = 404, description = "No such resource (or another tenant's)"), (status = 409, description = "Already a member"), (status = 415), (status = 422))
)]
pub async fn invite(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<InviteRequest>,
) -> ApiResult<impl IntoResponse> {
    let (invitation, _token) = invitations::invite(&ctx, &caller, &id, req).await?;
    Ok((StatusCode::CREATED, Json(InviteResponse { invitation })))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/invitations",
    tag = "invitations",
    summary = "A tenant's open invitations (tenant admin).",
    params(("id" = String, Path, description = "Tenant id"), ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of invitations", body = ListResponse<InvitationView>), (status = 401), (status = 403), (status = 404, description = "No such resource (or another tenant's)"), (status = 422))
)]
pub async fn list_invitations(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(invitations::list(&ctx, &caller, &id, params).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/tenants/{id}/invitations/{invitation_id}",
    tag = "invitations",
    summary = "Withdraw an invitation (tenant admin): its link stops working.",
    params(("id" = String, Path, description = "Tenant id"), ("invitation_id" = String, Path, description = "Invitation id", max_length = 64)),
    security(("bearer" = [])),
    responses((status = 204, description = "Withdrawn"), (status = 401), (status = 403), (status = 404, description = "No such resource (or another tenant's)"))
)]
pub async fn revoke_invitation(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path((id, invitation_id)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    invitations::revoke(&ctx, &caller, &id, &invitation_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/auth/invitations/{invitation_id}/accept",
    tag = "invitations",
    summary = "Accept an invitation to the caller's verified email; then switch to the tenant to act in it.",
    params(("invitation_id" = String, Path, description = "Invitation id", max_length = 64)),
    security(("bearer" = [])),
    responses((status = 200, description = "Joined", body = MembershipView), (status = 401), (status = 402, description = "The plan's seats are full"), (status = 403, description = "The email is not verified"), (status = 404, description = "No such invitation"), (status = 409, description = "Already a member"), (status = 422))
)]
pub async fn accept(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(invitation_id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        invitations::accept(&ctx, &caller, &invitation_id).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/auth/invitations/{invitation_id}/decline",
    tag = "invitations",
    summary = "Decline an invitation to the caller's verified email.",
    params(("invitation_id" = String, Path, description = "Invitation id", max_length = 64)),
    security(("bearer" = [])),
    responses((status = 204, description = "Declined"), (status = 401), (status = 403, description = "The email is not verified"), (status = 404, description = "No such invitation"))
)]
pub async fn decline(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(invitation_id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    invitations::decline(&ctx, &caller, &invitation_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/auth/invitations/accept",
    tag = "invitations",
    summary = "Accept through the mailed link: creates the account (or claims an unverified one) and signs in to the tenant.",
    request_body = AcceptLinkRequest,
    responses((status = 201, description = "Joined and signed in", body = AuthResponse), (status = 400), (status = 402, description = "The plan's seats are full"), (status = 409, description = "A verified account has this email: sign in and accept there"), (status = 415), (status = 422), (status = 503, description = "Too busy hashing passwords"))
)]
pub async fn accept_link(
    State(ctx): State<AppContext>,
    ApiJson(req): ApiJson<AcceptLinkRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Extension(Replay::Never),
        Json(invitations::accept_link(&ctx, req).await?),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/auth/verify-email",
    tag = "invitations",
    summary = "Confirm an email address with the token from the mailed link, signed in to the account it was sent for.",
    request_body = VerifyEmailRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "Verified", body = VerifiedResponse), (status = 401), (status = 400), (status = 415), (status = 422))
)]
pub async fn verify_email(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiJson(req): ApiJson<VerifyEmailRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(VerifiedResponse {
        user: verification::verify(&ctx, &caller, req).await?,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/auth/verify-email/resend",
    tag = "invitations",
    summary = "Mail a new verification link to the caller's address.",
    security(("bearer" = [])),
    responses((status = 202, description = "Sent"), (status = 401), (status = 409, description = "Already verified"), (status = 429, description = "Too many attempts"))
)]
pub async fn resend_verification(
    State(ctx): State<AppContext>,
    caller: Caller,
) -> ApiResult<impl IntoResponse> {
    verification::resend(&ctx, &caller).await?;
    Ok(StatusCode::ACCEPTED)
}
