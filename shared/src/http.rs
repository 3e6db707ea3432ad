//! HTTP conventions shared by every function: JSON bodies whose errors are problem documents
//! naming the offending field, problem answers for unknown routes and methods, health.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::ApiError;
use crate::store::{Key, Store};
use crate::AppContext;

/// A JSON body. Unlike `axum::Json`, every rejection is a problem document: 415 without a JSON
/// content type, 400 for malformed JSON, 422 naming the field for a well-formed body of the
/// wrong shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            )
            .detail("send the body as application/json"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                return ApiError::new(rejection.status(), "payload-too-large", "Payload too large")
                    .detail(format!(
                        "request bodies are at most {} bytes",
                        crate::hardening::MAX_BODY_BYTES
                    ));
            }
            ApiError::new(rejection.status(), "bad-request", "Bad request")
                .detail(rejection.body_text())
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserializes a JSON body, turning errors into problems that name the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let inner = error.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request(format!("malformed JSON: {inner}"));
        }
        let path = error.path().to_string();
        let message = inner.to_string();
        let root = path == "." || path.is_empty();
        // serde reports a missing field at its parent's path, an unknown one at its own.
        let field = match backticked(&message) {
            Some(name) if message.starts_with("missing field") => {
                if root {
                    name
                } else {
                    format!("{path}.{name}")
                }
            }
            _ if !root => path,
            Some(name) => name,
            None => "body".into(),
        };
        ApiError::validation(field, strip_position(&message))
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// The first `name` in a serde message such as "missing field `email`".
fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_owned())
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Router fallback: an unknown path is a 404 problem.
pub async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

/// Router fallback for a known path with an unsupported method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// `GET /v1/<function>/health`: reports the function, its version and whether the store
/// answers.
pub async fn health(function: &'static str, State(ctx): State<AppContext>) -> Response {
    let probe = Key::new("HEALTH", "PROBE");
    match ctx.stores.platform().get(&probe).await {
        Ok(_) => Json(json!({
            "status": "ok",
            "function": function,
            "version": env!("CARGO_PKG_VERSION"),
            "store": ctx.stores.kind(),
        }))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health probe failed");
            ApiError::unavailable("the store does not answer").into_response()
        }
    }
}

/// Adds the problem-document fallbacks to a complete router (a Lambda's, or the composed local
/// server's). Function routers themselves carry none, so they can be merged.
pub fn with_fallbacks(router: axum::Router) -> axum::Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// Query-string parameters. Unlike `axum::extract::Query`, a bad value is a 422 problem
/// naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|error| {
                let message = error.inner().to_string();
                let field = match error.path().to_string().as_str() {
                    "." | "" => backticked(&message).unwrap_or_else(|| "query".into()),
                    path => path.to_owned(),
                };
                ApiError::validation(field, strip_position(&message))
            })
    }
}

/// `?limit=&cursor=` of every list endpoint.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 100 (default 20).
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

impl ListParams {
    pub const DEFAULT_LIMIT: u32 = 20;
    pub const MAX_LIMIT: u32 = 100;

    /// The page size: 1 to 100, default 20.
    pub fn limit(&self) -> Result<u32, ApiError> {
        match &self.limit {
            None => Ok(Self::DEFAULT_LIMIT),
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=Self::MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::validation(
                        "limit",
                        format!("limit is a whole number from 1 to {}", Self::MAX_LIMIT),
                    )
                }),
        }
    }
}

/// `{"data": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> ListResponse<T> {
    pub fn from_page(
        page: crate::store::Page,
        convert: impl Fn(&crate::store::Item) -> Result<T, ApiError>,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            data: page.items.iter().map(convert).collect::<Result<_, _>>()?,
            next_cursor: page.next_cursor,
        })
    }
}
