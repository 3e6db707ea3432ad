//! The webhooks function: a tenant admin's webhook endpoints (register, change, delete, rotate
//! the secret), their messages and delivery attempts, test sends and resends. Delivery itself
//! is the `deliver-webhooks` job.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use eshtarek_core::auth::Caller;
use eshtarek_core::error::ApiResult;
use eshtarek_core::http::{health, ApiJson, ApiQuery, ListParams, ListResponse};
use eshtarek_core::idempotency::Replay;
use eshtarek_core::openapi::ProblemResponses;
use eshtarek_core::webhooks::endpoints::{
    self, CreateEndpointRequest, EndpointView, EndpointWithSecret, PatchEndpointRequest,
    RotateSecretRequest,
};
use eshtarek_core::webhooks::messages::{self, AttemptView, MessageView};
use eshtarek_core::webhooks::types::EVENT_TYPES;
use eshtarek_core::AppContext;
use utoipa::OpenApi;

pub const NAME: &str = "webhooks";

/// This function's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    modifiers(&ProblemResponses),
    paths(event_types, create_endpoint, list_endpoints, get_endpoint, patch_endpoint, delete_endpoint, rotate_secret, list_messages, list_attempts, send_test, resend),
    tags((name = "webhooks", description = "Signed messages to tenants' systems (Standard Webhooks)"))
)]
pub struct WebhooksApi;

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EventTypes {
    pub data: Vec<&'static str>,
}

/// Every route of the webhooks function.
pub fn router(ctx: AppContext) -> Router {
    Router::new()
        .route("/v1/webhooks/health", get(|state| health(NAME, state)))
        .route("/v1/webhooks/event-types", get(event_types))
        .route(
            "/v1/webhooks/endpoints",
            post(create_endpoint).get(list_endpoints),
        )
        .route(
            "/v1/webhooks/endpoints/{id}",
            get(get_endpoint)
                .patch(patch_endpoint)
                .delete(delete_endpoint),
        )
        .route(
            "/v1/webhooks/endpoints/{id}/rotate-secret",
            post(rotate_secret),
        )
        .route("/v1/webhooks/endpoints/{id}/messages", get(list_messages))
        .route("/v1/webhooks/endpoints/{id}/attempts", get(list_attempts))
        .route("/v1/webhooks/endpoints/{id}/test", post(send_test))
        .route(
            "/v1/webhooks/endpoints/{id}/messages/{message_id}/resend",
            post(resend),
        )
        .with_state(ctx)
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/event-types",
    tag = "webhooks",
    summary = "The event types an endpoint can subscribe to.",
    security(("bearer" = [])),
    responses((status = 200, description = "The types", body = EventTypes), (status = 401))
)]
async fn event_types(_caller: Caller) -> Json<EventTypes> {
    Json(EventTypes {
        data: EVENT_TYPES.to_vec(),
    })
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints",
    tag = "webhooks",
    summary = "Register a webhook endpoint (tenant admin); its signing secret is shown once.",
    request_body = CreateEndpointRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "Registered", body = EndpointWithSecret), (status = 401), (status = 403, description = "Wrong role"), (status = 409, description = "Too many endpoints"), (status = 422, description = "A field is invalid: a URL that is not https or that points at a private, loopback or reserved address is refused naming `url`"))
)]
async fn create_endpoint(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateEndpointRequest>,
) -> ApiResult<impl IntoResponse> {
    let created = endpoints::create(&ctx, &caller, req).await?;
    // A replay gets the endpoint without its secret: the secret goes to its first recipient only.
    let replay = serde_json::to_vec(&EndpointWithSecret {
        endpoint: created.endpoint.clone(),
        secret: None,
    })
    .unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Extension(Replay::Without(replay)),
        Json(created),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints",
    tag = "webhooks",
    summary = "The tenant's webhook endpoints.",
    params(ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page", body = ListResponse<EndpointView>), (status = 401), (status = 403), (status = 422))
)]
async fn list_endpoints(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(endpoints::list(&ctx, &caller, params).await?))
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints/{id}",
    tag = "webhooks",
    summary = "One webhook endpoint.",
    params(("id" = String, Path, max_length = 64)),
    security(("bearer" = [])),
    responses((status = 200, description = "The endpoint", body = EndpointView), (status = 401), (status = 403), (status = 404))
)]
async fn get_endpoint(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(endpoints::get(&ctx, &caller, &id).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/webhooks/endpoints/{id}",
    tag = "webhooks",
    summary = "Change a webhook endpoint (enable it again after the worker disabled it).",
    params(("id" = String, Path, max_length = 64)),
    request_body = PatchEndpointRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "Changed", body = EndpointView), (status = 401), (status = 403), (status = 404), (status = 422))
)]
async fn patch_endpoint(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchEndpointRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(endpoints::patch(&ctx, &caller, &id, req).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/webhooks/endpoints/{id}",
    tag = "webhooks",
    summary = "Delete a webhook endpoint.",
    params(("id" = String, Path, max_length = 64)),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401), (status = 403), (status = 404))
)]
async fn delete_endpoint(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    endpoints::delete(&ctx, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{id}/rotate-secret",
    tag = "webhooks",
    summary = "A new signing secret, shown once; the old one signs beside it for the overlap.",
    params(("id" = String, Path, max_length = 64)),
    request_body = RotateSecretRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "Rotated", body = EndpointWithSecret), (status = 401), (status = 403), (status = 404), (status = 409, description = "Rotated meanwhile"), (status = 422))
)]
async fn rotate_secret(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RotateSecretRequest>,
) -> ApiResult<impl IntoResponse> {
    let rotated = endpoints::rotate_secret(&ctx, &caller, &id, req).await?;
    let replay = serde_json::to_vec(&EndpointWithSecret {
        endpoint: rotated.endpoint.clone(),
        secret: None,
    })
    .unwrap_or_default();
    Ok((Extension(Replay::Without(replay)), Json(rotated)))
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints/{id}/messages",
    tag = "webhooks",
    summary = "The endpoint's messages, newest first, with their status.",
    params(("id" = String, Path, max_length = 64), ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page", body = ListResponse<MessageView>), (status = 401), (status = 403), (status = 404), (status = 422))
)]
async fn list_messages(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(messages::messages(&ctx, &caller, &id, params).await?))
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints/{id}/attempts",
    tag = "webhooks",
    summary = "The endpoint's delivery attempts, newest first (kept 30 days).",
    params(("id" = String, Path, max_length = 64), ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page", body = ListResponse<AttemptView>), (status = 401), (status = 403), (status = 404), (status = 422))
)]
async fn list_attempts(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(messages::attempts(&ctx, &caller, &id, params).await?))
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{id}/test",
    tag = "webhooks",
    summary = "Queue a `webhook.test` message to the endpoint (sent by the next worker run).",
    params(("id" = String, Path, max_length = 64)),
    security(("bearer" = [])),
    responses((status = 202, description = "Queued", body = MessageView), (status = 401), (status = 403), (status = 404))
)]
async fn send_test(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::ACCEPTED,
        Json(messages::send_test(&ctx, &caller, &id).await?),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{id}/messages/{message_id}/resend",
    tag = "webhooks",
    summary = "Queue a message to the endpoint again, whatever became of it (same webhook-id).",
    params(("id" = String, Path, max_length = 64), ("message_id" = String, Path, max_length = 64)),
    security(("bearer" = [])),
    responses((status = 202, description = "Queued", body = MessageView), (status = 401), (status = 403), (status = 404))
)]
async fn resend(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path((id, message_id)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::ACCEPTED,
        Json(messages::resend(&ctx, &caller, &id, &message_id).await?),
    ))
}
