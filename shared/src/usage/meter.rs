//! Who is metering: the extractors that turn an API key (scoped) or a tenant's token into a
//! [`Meter`], and for recording a [`RecordingMeter`] that carries a cached key's guard.

use super::api_keys;
use crate::store::TenantId;
use crate::AppContext;

/// Who is metering: a tenant (from a token or an API key) and whether it may write/read.
#[derive(Debug, Clone)]
pub struct Meter {
    pub tenant: TenantId,
    pub can_write: bool,
    pub can_read: bool,
}

/// A meter for recording. An API key may come from the in-process cache; then its guard
/// rides in the write transaction, so a revoked key is refused without a read of its own.
#[derive(Debug, Clone)]
pub struct RecordingMeter {
    pub meter: Meter,
    pub(super) guard: Option<api_keys::KeyGuard>,
}

impl From<Meter> for RecordingMeter {
    /// A meter that was authenticated against the store (nothing left to check).
    fn from(meter: Meter) -> Self {
        Self { meter, guard: None }
    }
}

impl axum::extract::FromRequestParts<AppContext> for RecordingMeter {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        ctx: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        // The rate admission may have authenticated the key already.
        if let Some(presented) = parts.extensions.remove::<super::api_rate::PresentedKey>() {
            let (key, guard) = presented.0.map_err(crate::auth::caller::reject)?;
            return Ok(Self {
                meter: Meter::for_key(&key),
                guard,
            });
        }
        let token = crate::auth::caller::bearer(parts).map_err(crate::auth::caller::reject)?;
        if let Some(key) = api_keys::authenticate_for_write(ctx, token).await {
            let (key, guard) = key.map_err(crate::auth::caller::reject)?;
            return Ok(Self {
                meter: Meter::for_key(&key),
                guard,
            });
        }
        Meter::from_request_parts(parts, ctx).await.map(Self::from)
    }
}

impl Meter {
    fn for_key(key: &api_keys::KeyPrincipal) -> Self {
        Meter {
            tenant: key.tenant.clone(),
            can_write: key.scopes.iter().any(|s| s == "usage:write"),
            can_read: key.scopes.iter().any(|s| s == "usage:read"),
        }
    }
}

impl axum::extract::FromRequestParts<AppContext> for Meter {
    type Rejection = axum::response::Response;

    /// An API key (`esk_…`, scoped) or a tenant access token (admins write, members read).
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        ctx: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let token = crate::auth::caller::bearer(parts).map_err(crate::auth::caller::reject)?;
        if let Some(key) = api_keys::authenticate(ctx, token).await {
            let key = key.map_err(crate::auth::caller::reject)?;
            return Ok(Meter::for_key(&key));
        }
        let caller = crate::auth::Caller::from_request_parts(parts, ctx).await?;
        let tenant = caller
            .own_tenant()
            .map_err(IntoResponse::into_response)?
            .clone();
        Ok(Meter {
            tenant,
            can_write: caller.role == Some(crate::auth::Role::TenantAdmin),
            can_read: true,
        })
    }
}
