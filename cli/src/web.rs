//! The web dashboard's built files (`web/dist`), served at `/` by the local binary. On AWS the
//! same build deploys as static files; the API never depends on it.

use std::path::{Path, PathBuf};

use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

/// The dashboard only talks to its own origin and loads nothing from elsewhere. Recharts sets
/// inline `style` attributes, hence `'unsafe-inline'` for styles (never for scripts).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Routes for the dashboard: `/` and its hashed assets. The app routes with the URL's
/// fragment (`/#/tenants`), so no other path needs to fall back to `index.html`. With
/// `demo_credentials`, `/demo.json` tells the sign-in page where a seeded run's demo
/// accounts are listed (while that file exists; the passwords themselves stay in it).
pub fn routes(dir: Option<&Path>, demo_credentials: Option<&Path>) -> Router {
    let router = match dir.filter(|d| d.join("index.html").is_file()) {
        Some(dir) => Router::new()
            .route_service("/", ServeFile::new(dir.join("index.html")))
            .nest_service("/assets", ServeDir::new(dir.join("assets")))
            .route_service("/favicon.svg", ServeFile::new(dir.join("favicon.svg")))
            // The API reference (Swagger UI on /openapi.json), built beside the dashboard.
            .nest_service("/docs", ServeDir::new(dir.join("docs"))),
        None => Router::new().route("/", get(not_built)),
    };
    let router = match demo_credentials {
        Some(file) => {
            let file = file.to_path_buf();
            router.route(
                "/demo.json",
                get(move || {
                    let file = file.clone();
                    async move {
                        if file.is_file() {
                            axum::Json(
                                serde_json::json!({"credentials_file": file.display().to_string()}),
                            )
                            .into_response()
                        } else {
                            axum::http::StatusCode::NOT_FOUND.into_response()
                        }
                    }
                }),
            )
        }
        None => router,
    };
    router.layer(SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    ))
}

/// Where the built dashboard is: the given folder, else `web/dist` under the working directory.
pub fn find(given: Option<PathBuf>) -> Option<PathBuf> {
    given
        .or_else(|| Some(PathBuf::from("web/dist")))
        .filter(|d| d.join("index.html").is_file())
}

async fn not_built() -> Html<&'static str> {
    Html(
        "<!doctype html><title>Eshtarek</title><h1>Eshtarek</h1>\
         <p>The dashboard is not built. <code>scripts/run</code> builds it; or run \
         <code>npm --prefix web ci &amp;&amp; npm --prefix web run build</code> and restart.</p>\
         <p>The API is served: <a href=\"/openapi.json\">/openapi.json</a>.</p>",
    )
}
