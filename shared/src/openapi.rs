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

/// The problem answers of every operation, derived in one place. An operation lists the statuses
/// it can answer with a problem as `(status = 404)` (or with its own `description` where the
/// standard one would mislead); this fills in the standard description and the problem body, and
/// adds what the shared HTTP layer answers on every function: a JSON body can be malformed (400),
/// too large (413), not JSON (415) or invalid (422); a query can be invalid (422); a secured
/// operation answers 401 without a valid token; any request answers 429 past its tenant's plan
/// rate for this API (with its headers), and can time out (503).
pub struct ProblemResponses;

/// The description of a problem status an operation lists without its own.
fn standard_description(status: &str) -> Option<&'static str> {
    Some(match status {
        "400" => "Malformed JSON",
        "401" => "Not signed in, or the token is invalid, expired or revoked",
        "403" => "Wrong role",
        "404" => "No such resource",
        "409" => "Conflict",
        "415" => "Not JSON",
        "422" => "Invalid field",
        _ => return None,
    })
}

fn problem_content() -> utoipa::openapi::Content {
    utoipa::openapi::ContentBuilder::new()
        .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
        .build()
}

/// The 429 of a tenant past its plan's rate for this API, with its headers.
fn rate_limited() -> utoipa::openapi::Response {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let header = |description: &str, kind: Type| {
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(kind))
            .description(Some(description))
            .build()
    };
    utoipa::openapi::ResponseBuilder::new()
        .description("Too many requests: the tenant's plan rate for this API is used up (with a tenant's token or key)")
        .content("application/problem+json", problem_content())
        .header("Retry-After", header("Seconds until a retry can succeed", Type::Integer))
        .header(
            "RateLimit-Policy",
            header("The plan's windows (IETF httpapi rate-limit headers draft), e.g. \"eshtarek_api_minute\";q=600;w=60", Type::String),
        )
        .header(
            "RateLimit",
            header("What is left of each window and seconds until it is full, e.g. \"eshtarek_api_minute\";r=0;t=60", Type::String),
        )
        .build()
}

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{RefOr, ResponseBuilder};
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, response) in operation.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    if status.as_str() < "400" {
                        continue;
                    }
                    if response.description.is_empty() {
                        response.description = standard_description(status)
                            .unwrap_or_else(|| panic!("status {status} needs its own description"))
                            .to_owned();
                    }
                    response
                        .content
                        .entry("application/problem+json".to_owned())
                        .or_insert_with(problem_content);
                }
                let mut shared = vec![("503", "The request timed out")];
                if operation.request_body.is_some() {
                    shared.extend([
                        ("400", "Malformed JSON"),
                        ("413", "Body too large"),
                        ("415", "Not JSON"),
                        ("422", "Invalid field"),
                    ]);
                }
                let has_query = operation.parameters.as_ref().is_some_and(|parameters| {
                    parameters
                        .iter()
                        .any(|p| p.parameter_in == ParameterIn::Query)
                });
                if has_query {
                    shared.push(("422", "Invalid or unknown query parameter"));
                }
                if operation.security.is_some() {
                    shared.push(("401", "Not signed in, or the token or key is invalid"));
                }
                // Any request carrying a tenant's token or key counts against the tenant's
                // plan rate for this API, secured operation or not.
                operation
                    .responses
                    .responses
                    .entry("429".to_owned())
                    .or_insert_with(|| rate_limited().into());
                for (status, description) in shared {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(description)
                                .content("application/problem+json", problem_content())
                                .build()
                                .into()
                        });
                }
            }
        }
    }
}
