//! The rate of a tenant's calls to Eshtarek's own API, as its plan sets it (the bucket
//! `eshtarek_api`). Asked once per request by the HTTP service before routing: the caller's
//! tenant comes from its API key (the in-process key cache, or one read) or its access token
//! (the verified-token cache); a request with neither, or with a platform admin's token, is
//! not limited here (the handler authenticates it properly). Past the rate: 429 with
//! `Retry-After`, `RateLimit-Policy` and `RateLimit`; within it, the same two headers.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue};

use super::api_keys::{KeyGuard, KeyPrincipal};
use super::rate_limits::{self, header_values};
use crate::error::ApiError;
use crate::plans::rates::{self, RateLimit, API_BUCKET};
use crate::store::TenantId;
use crate::AppContext;

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// What the request was told: headers for its answer, and a refusal when past the rate.
pub struct Admission {
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub refused: Option<ApiError>,
}

/// An API key as the admission authenticated it, for the handler's extractor to reuse (one
/// hash and cache lookup per request, not two).
#[derive(Clone)]
pub struct PresentedKey(pub Result<(KeyPrincipal, Option<KeyGuard>), ApiError>);

/// The tenant a bearer credential acts in, without the session checks the handler makes.
async fn tenant_of(ctx: &AppContext, request: &mut Request) -> Option<TenantId> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    if let Some(key) = super::api_keys::authenticate_for_write(ctx, token).await {
        let tenant = key
            .as_ref()
            .ok()
            .map(|(principal, _)| principal.tenant.clone());
        request.extensions_mut().insert(PresentedKey(key));
        return tenant;
    }
    let claims = ctx.tokens.verify_access(token, ctx.clock.now()).ok()?;
    TenantId::parse(claims.tid.as_deref()?).ok()
}

/// The tenant's own-API windows from its live plan (cached for `hot::API_RATE_TTL`).
async fn windows(
    ctx: &AppContext,
    tenant: &TenantId,
) -> Result<Option<Arc<Vec<RateLimit>>>, ApiError> {
    if let Some(known) = ctx.hot.api_rate(tenant.as_str()) {
        return Ok(known);
    }
    let found = crate::entitlements::live_limits(ctx, tenant)
        .await?
        .map(|limits| {
            rates::of_bucket(&limits.rate_limits, API_BUCKET)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|w| !w.is_empty())
        .map(Arc::new);
    ctx.hot.remember_api_rate(tenant.as_str(), found.clone());
    Ok(found)
}

/// Takes one request from the caller's tenant's API rate, if its plan sets one.
pub async fn admit(ctx: &AppContext, request: &mut Request) -> Option<Admission> {
    let tenant = tenant_of(ctx, request).await?;
    // A store error here is not the request's fault: it goes on unlimited and its handler
    // meets the store itself.
    let windows = windows(ctx, &tenant).await.ok()??;
    let limits: Vec<&RateLimit> = windows.iter().collect();
    let outcome = match rate_limits::take(ctx, &tenant, API_BUCKET, &limits, 1).await {
        Ok(outcome) => outcome,
        Err(refused) => {
            return Some(Admission {
                headers: Vec::new(),
                refused: Some(refused),
            })
        }
    };
    let (policy, state) = header_values(&outcome);
    let mut out = Vec::with_capacity(2);
    for (name, value) in [(RATELIMIT_POLICY, policy), (RATELIMIT, state)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.push((name, value));
        }
    }
    let refused = (!outcome.allowed).then(|| {
        ApiError::rate_limited(outcome.retry_after_seconds.unwrap_or(1))
            .detail(format!(
                "the plan's rate for Eshtarek's API is used up; retry after {} seconds",
                outcome.retry_after_seconds.unwrap_or(1)
            ))
            .with("code", "plan_rate_limit")
    });
    Some(Admission {
        headers: out,
        refused,
    })
}
