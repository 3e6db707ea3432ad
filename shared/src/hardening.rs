//! HTTP hygiene every function shares: a body size cap, a request timeout, security headers,
//! and CORS for the dashboard's origin only. All answers are problem documents.

use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ApiError;

/// The largest request body taken: every API body is a small JSON document (a batch of 100
/// usage events is about 15 KB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// A request still running after this is answered 503 (and its work dropped).
    pub request_timeout: Duration,
    /// Origins allowed to call the API from a browser (the dashboard's, when served from
    /// another origin). Empty: same-origin only, no CORS headers.
    pub cors_origins: Vec<HeaderValue>,
}

impl HttpSettings {
    /// `ESHTAREK_REQUEST_TIMEOUT_SECS` (default 15) and `ESHTAREK_CORS_ORIGINS` (comma
    /// separated, default none).
    pub fn from_env() -> Self {
        let request_timeout = std::env::var("ESHTAREK_REQUEST_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|s| *s > 0)
            .map_or(Duration::from_secs(15), Duration::from_secs);
        let cors_origins = std::env::var("ESHTAREK_CORS_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        Self {
            request_timeout,
            cors_origins,
        }
    }
}

/// Headers on every answer, unless the route set its own.
pub(crate) fn security_headers() -> [(HeaderName, HeaderValue); 5] {
    [
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ]
}

/// CORS for the configured origins; `None` when there are none (same-origin only).
pub(crate) fn cors(settings: &HttpSettings) -> Option<CorsLayer> {
    if settings.cors_origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(settings.cors_origins.clone()))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// The answer to a request still running after `limit`.
pub(crate) fn timed_out(limit: Duration) -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        "Request timed out",
    )
    .detail(format!(
        "the request took longer than {} s; retry (with the same Idempotency-Key for a POST)",
        limit.as_secs_f64()
    ))
    .into_response()
}
