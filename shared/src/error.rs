//! One error type for every handler, rendered as an RFC 9457 problem document
//! (`application/problem+json` with `type`, `title`, `status`, `detail`, and `field` or
//! `metric` where one is at fault).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::store::StoreError;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// A short slug; the problem `type` is `/problems/<slug>`.
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Boxed so `Result<T, ApiError>` stays small on the happy path.
    pub more: Box<ProblemExtras>,
}

#[derive(Debug, Clone, Default)]
pub struct ProblemExtras {
    pub field: Option<String>,
    pub metric: Option<String>,
    /// Further members of the problem document (e.g. `used`, `limit`).
    pub extra: Map<String, Value>,
    /// Seconds, for 429 and 503 answers.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str) -> Self {
        Self {
            status,
            kind,
            title,
            detail: title.to_owned(),
            more: Box::default(),
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.more.field = Some(field.into());
        self
    }

    pub fn metric(mut self, metric: impl Into<String>) -> Self {
        self.more.metric = Some(metric.into());
        self
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.more.extra.insert(name.to_owned(), value.into());
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request").detail(detail)
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
        )
        .detail(detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").detail(detail)
    }

    /// The tenant is suspended by the platform: nothing acts in it (tokens, API keys).
    pub fn tenant_suspended() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "tenant-suspended",
            "Tenant suspended",
        )
        .detail("this tenant is suspended")
        .with("code", "tenant_suspended")
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found").detail(detail)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
        )
        .detail("this resource does not support that method")
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict").detail(detail)
    }

    /// 422: the request was well-formed but a field's value is not acceptable.
    pub fn validation(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Validation failed",
        )
        .field(field)
        .detail(detail)
    }

    /// 402: a plan limit stops this request.
    pub fn limit_exceeded(metric: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYMENT_REQUIRED,
            "limit-exceeded",
            "Plan limit reached",
        )
        .metric(metric)
        .detail(detail)
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
        )
        .detail(format!("retry after {retry_after_secs} seconds"));
        error.more.retry_after = Some(retry_after_secs);
        error
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
        )
        .detail(detail);
        error.more.retry_after = Some(1);
        error
    }

    /// 500. The cause is logged, never sent to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
        .detail("an unexpected error occurred; it has been logged")
    }

    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), format!("/problems/{}", self.kind).into());
        body.insert("title".into(), self.title.into());
        body.insert("status".into(), self.status.as_u16().into());
        body.insert("detail".into(), self.detail.clone().into());
        if let Some(field) = &self.more.field {
            body.insert("field".into(), field.clone().into());
        }
        if let Some(metric) = &self.more.metric {
            body.insert("metric".into(), metric.clone().into());
        }
        for (k, v) in &self.more.extra {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.title,
            self.detail
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if let Some(secs) = self.more.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::ConditionFailed { .. } | StoreError::TransactionCancelled { .. } => {
                ApiError::conflict("the resource was changed by another request; retry")
            }
            StoreError::Conflict => {
                ApiError::conflict("a concurrent request changed the same resource; retry")
            }
            StoreError::InvalidCursor => ApiError::validation(
                "cursor",
                "the cursor is malformed or belongs to another list",
            ),
            // A key outside the caller's tenant is treated as absent: never confirm it exists.
            StoreError::CrossTenant { .. } => ApiError::not_found("no such resource"),
            StoreError::Throttled => ApiError::unavailable("the store is busy; retry shortly"),
            StoreError::Invalid(m) | StoreError::Backend(m) => ApiError::internal(m),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
