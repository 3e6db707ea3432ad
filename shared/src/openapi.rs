//! OpenAPI pieces every function shares: the problem document schema, the bearer scheme, the
//! list parameters, and the document's frame.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::{Modify, ToSchema};

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation only: ApiError builds the JSON
pub struct Problem {
    /// A URI reference naming the kind of problem, e.g. `/problems/validation`.
    #[schema(rename = "type", example = "/problems/validation")]
    pub kind: String,
    #[schema(example = "Validation failed")]
    pub title: String,
    #[schema(example = 422)]
    pub status: u16,
    #[schema(example = "enter a valid email address, like name@example.com")]
    pub detail: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// The plan metric at fault (402 answers).
    pub metric: Option<String>,
    /// A machine-readable reason where clients act on it (e.g. `token_expired`).
    pub code: Option<String>,
}

/// Adds the bearer-token security scheme.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from /v1/auth/login"))
                    .build(),
            ),
        );
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Eshtarek API",
        description = "Multi-tenant subscription engine. Errors are RFC 9457 problem documents; lists are `{data, next_cursor}`.",
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth)
)]
pub struct BaseDoc;
