//! Who is calling: the `Caller` extractor verifies the bearer token and checks its session on
//! every request, so logout takes effect at once. Role rules live here too: wrong role → 403,
//! another tenant's resource → 404 (never confirm it exists).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::sessions::load_live_session;
use super::tokens::AccessClaims;
use super::Role;
use crate::error::ApiError;
use crate::store::TenantId;
use crate::AppContext;

#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    /// The tenant the token acts in.
    pub tenant: Option<TenantId>,
    pub role: Option<Role>,
    pub session_id: String,
    pub claims: AccessClaims,
}

/// A 401 with the `WWW-Authenticate` challenge.
pub struct Unauthenticated(pub ApiError);

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"eshtarek\""),
        );
        response
    }
}

/// An extractor's refusal: a 401 with its challenge, anything else as it is.
pub fn reject(e: ApiError) -> Response {
    if e.status == 401 {
        Unauthenticated(e).into_response()
    } else {
        e.into_response()
    }
}

impl From<ApiError> for Unauthenticated {
    fn from(e: ApiError) -> Self {
        Unauthenticated(e)
    }
}

/// The bearer token of a request, if any.
pub fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthenticated("send Authorization: Bearer <access token>"))?;
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthenticated("malformed Authorization header"))?;
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(ApiError::unauthenticated(
            "the Authorization header must be `Bearer <access token>`",
        )),
    }
}

impl FromRequestParts<AppContext> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        // Already authenticated for this request (the idempotency layer does it first).
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let claims = verified_claims(ctx, parts).await?;
        let session = load_live_session(ctx, &claims.sub, &claims.sid)
            .await
            .map_err(reject)?;
        Caller::of(claims, &session).map_err(reject)
    }
}

/// The claims of the request's bearer token: signature (EdDSA, by `kid`), issuer, type and
/// time checked; the session is the caller's to check.
async fn verified_claims(ctx: &AppContext, parts: &Parts) -> Result<AccessClaims, Response> {
    let token = bearer(parts).map_err(reject)?;
    ctx.tokens
        .verify_access_reloading(token, ctx.clock.now())
        .await
        .map_err(reject)
}

/// A caller and platform items read in the same batch as its session (one round trip where a
/// handler needs, say, the account: `/v1/auth/me`).
pub async fn caller_with(
    ctx: &AppContext,
    parts: &Parts,
    keys: impl FnOnce(&AccessClaims) -> Vec<crate::store::Key>,
) -> Result<(Caller, Vec<Option<crate::store::Item>>), Response> {
    use crate::store::Store;
    let claims = verified_claims(ctx, parts).await?;
    let mut wanted = vec![super::sessions::session_key(&claims.sub, &claims.sid)];
    wanted.extend(keys(&claims));
    let mut items = ctx
        .stores
        .platform()
        .get_many(&wanted)
        .await
        .map_err(|e| reject(e.into()))?;
    let session = super::sessions::live_session_of(ctx, items.remove(0)).map_err(reject)?;
    Ok((Caller::of(claims, &session).map_err(reject)?, items))
}

impl Caller {
    /// The caller of verified `claims` with their live `session`, which must be the one the
    /// token was issued for (same tenant); a token whose claims were altered fails the
    /// signature check before this.
    fn of(claims: AccessClaims, session: &super::sessions::Session) -> Result<Self, ApiError> {
        if session.tenant_id.as_deref() != claims.tid.as_deref() {
            return Err(ApiError::unauthenticated(
                "the session does not match the token",
            ));
        }
        let tenant = match &claims.tid {
            Some(t) => Some(
                TenantId::parse(t)
                    .map_err(|_| ApiError::unauthenticated("invalid tenant in token"))?,
            ),
            None => None,
        };
        Ok(Caller {
            user_id: claims.sub.clone(),
            tenant,
            role: claims.role,
            session_id: claims.sid.clone(),
            claims,
        })
    }

    /// A caller that no token stands behind: someone acting through a path that proves who
    /// they are another way (an invitation link, the demo seed), as the audit log's actor.
    pub fn synthetic(user_id: &str, tenant: Option<&TenantId>, role: Role, session: &str) -> Self {
        Caller {
            user_id: user_id.to_owned(),
            tenant: tenant.cloned(),
            role: Some(role),
            session_id: session.to_owned(),
            claims: AccessClaims {
                iss: "eshtarek".into(),
                sub: user_id.to_owned(),
                tid: tenant.map(|t| t.as_str().to_owned()),
                role: Some(role),
                sid: session.to_owned(),
                jti: session.to_owned(),
                iat: 0,
                nbf: 0,
                exp: 0,
                typ: session.to_owned(),
            },
        }
    }

    pub fn is_platform_admin(&self) -> bool {
        self.role == Some(Role::PlatformAdmin)
    }

    pub fn require_platform_admin(&self) -> Result<(), ApiError> {
        if self.is_platform_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs a platform admin"))
        }
    }

    /// Read access to `tenant_id`: a member of it (any role) or a platform admin.
    pub fn read_tenant(&self, tenant_id: &str) -> Result<TenantId, ApiError> {
        self.tenant_access(tenant_id, false)
    }

    /// Admin access to `tenant_id`: its tenant_admin or a platform admin.
    pub fn admin_tenant(&self, tenant_id: &str) -> Result<TenantId, ApiError> {
        self.tenant_access(tenant_id, true)
    }

    fn tenant_access(&self, tenant_id: &str, admin: bool) -> Result<TenantId, ApiError> {
        let not_found = || ApiError::not_found("no such tenant");
        let id = TenantId::parse(tenant_id).map_err(|_| not_found())?;
        if self.is_platform_admin() {
            return Ok(id);
        }
        if self.tenant.as_ref() != Some(&id) {
            return Err(not_found());
        }
        if admin && self.role != Some(Role::TenantAdmin) {
            return Err(ApiError::forbidden("this needs the tenant's admin"));
        }
        Ok(id)
    }

    /// The tenant the token acts in, for endpoints about "my tenant".
    pub fn own_tenant(&self) -> Result<&TenantId, ApiError> {
        self.tenant
            .as_ref()
            .ok_or_else(|| ApiError::forbidden("this token acts in no tenant; log in to one"))
    }
}

/// The client's address, for rate limits: set by the Lambda entry point from the API
/// Gateway request context, or taken from the connection locally. Never from a header a client
/// controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(ip) = parts.extensions.get::<ClientIp>() {
            return Ok(*ip);
        }
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

/// An optional caller, for public endpoints that show more to signed-in users. No
/// `Authorization` header means anonymous; a bad token is still a 401, never silently ignored.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppContext> for MaybeCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(MaybeCaller(None));
        }
        Caller::from_request_parts(parts, ctx)
            .await
            .map(|c| MaybeCaller(Some(c)))
    }
}
