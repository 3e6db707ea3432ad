//! The local composition: every function's router behind one HTTP server, on the embedded store
//! unless pointed at DynamoDB.

pub mod listen;
pub mod seed;
pub mod web;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use eshtarek_core::auth::keys::KeySet;
use eshtarek_core::clock::SharedClock;
use eshtarek_core::service::HttpApp;
use eshtarek_core::store::{Key, Store, StoreExt};
use eshtarek_core::{http, ApiError, AppContext};
use serde_json::json;

/// Which adapter the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Dynamodb,
}

/// The composed application: `/healthz` plus every function's routes.
pub fn app(ctx: AppContext) -> HttpApp {
    app_with_dashboard(ctx, None, None)
}

/// The composed application with the web dashboard's built files at `/` (and where a seeded
/// run's demo accounts are listed, for its sign-in page).
pub fn app_with_dashboard(
    ctx: AppContext,
    web_dir: Option<&Path>,
    demo_credentials: Option<&Path>,
) -> HttpApp {
    let root = Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi_json))
        .route("/v1/clock", get(read_clock))
        .route(
            "/v1/admin/clock/advance",
            axum::routing::post(advance_clock),
        )
        .with_state(ctx.clone());
    eshtarek_core::service::finish(
        root.merge(web::routes(web_dir, demo_credentials))
            .merge(eshtarek_auth::router(ctx.clone()))
            .merge(eshtarek_plans::router(ctx.clone()))
            .merge(eshtarek_subscriptions::router(ctx.clone()))
            .merge(eshtarek_billing::router(ctx.clone()))
            .merge(eshtarek_usage::router(ctx.clone()))
            .merge(eshtarek_webhooks::router(ctx.clone())),
        &ctx,
    )
}

/// The OpenAPI document of every mounted function (each adds its problem answers itself:
/// `eshtarek_core::openapi::ProblemResponses`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    let mut doc = eshtarek_core::openapi::BaseDoc::openapi();
    doc.merge(LocalApi::openapi());
    doc.merge(eshtarek_auth::AuthApi::openapi());
    doc.merge(eshtarek_plans::PlansApi::openapi());
    doc.merge(eshtarek_subscriptions::SubscriptionsApi::openapi());
    doc.merge(eshtarek_billing::BillingApi::openapi());
    doc.merge(eshtarek_usage::UsageApi::openapi());
    doc.merge(eshtarek_webhooks::WebhooksApi::openapi());
    doc
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "local",
    summary = "This OpenAPI document.",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AdvanceRequest {
    /// A whole number (1 to 100000) and a unit: `s`, `m`, `h` or `d`, like `90s`, `15m`,
    /// `2h`, `3d`.
    #[schema(pattern = "^([1-9][0-9]{0,4}|100000)[smhd]$", example = "3d")]
    duration: String,
}

/// What advancing the clock did: the new time and each job's report.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct AdvanceResult {
    #[schema(example = "2026-12-10T12:00:00Z")]
    now: String,
    jobs: serde_json::Value,
}

use eshtarek_core::openapi::ProblemResponses;

/// The local binary's own routes (beside every function's).
#[derive(utoipa::OpenApi)]
#[openapi(
    modifiers(&ProblemResponses),
    paths(healthz, openapi_json, read_clock, advance_clock),
    tags((name = "local", description = "The local server's own routes"))
)]
struct LocalApi;

/// The server's time, and whether it is a test clock (the dashboard's banner).
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ClockView {
    #[schema(example = "2026-12-10T12:00:00Z")]
    now: String,
    /// True on a server started with `--test-clock`: `now` is where the clock was advanced to.
    test_clock: bool,
}

#[utoipa::path(
    get,
    path = "/v1/clock",
    tag = "local",
    summary = "The server's time and whether it runs on a test clock (any signed-in caller).",
    security(("bearer" = [])),
    responses((status = 200, description = "The time", body = ClockView))
)]
async fn read_clock(
    State(ctx): State<AppContext>,
    _caller: eshtarek_core::auth::Caller,
) -> Json<ClockView> {
    Json(ClockView {
        now: eshtarek_core::time::fmt(ctx.clock.now()),
        test_clock: ctx.test_clock.is_some(),
    })
}

fn parse_duration(text: &str) -> Option<chrono::Duration> {
    // The unit is the last character, which may be more than one byte (split at its start).
    let (at, _) = text.char_indices().last()?;
    let (number, unit) = text.split_at(at);
    // Digits only, as the documented pattern says (no sign, no spaces, no leading zero).
    if number.is_empty() || number.starts_with('0') || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = number.parse().ok().filter(|n| *n > 0 && *n <= 100_000)?;
    match unit {
        "s" => Some(chrono::Duration::seconds(n)),
        "m" => Some(chrono::Duration::minutes(n)),
        "h" => Some(chrono::Duration::hours(n)),
        "d" => Some(chrono::Duration::days(n)),
        _ => None,
    }
}

/// `POST /v1/admin/clock/advance {duration}`: moves the test clock and runs the due jobs, so a
/// person can watch a trial end or a renewal fail in minutes. Platform admins only, and only on
/// a server started with `--test-clock`.
#[utoipa::path(
    post,
    path = "/v1/admin/clock/advance",
    tag = "local",
    summary = "Move the test clock forward and run the jobs now due (platform admin; a server started with --test-clock).",
    request_body = AdvanceRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new time and what each job did", body = AdvanceResult),
        (status = 403),
        (status = 404, description = "The test clock is off"),
        (status = 422)
    )
)]
async fn advance_clock(
    State(ctx): State<AppContext>,
    caller: eshtarek_core::auth::Caller,
    http::ApiJson(req): http::ApiJson<AdvanceRequest>,
) -> Result<Json<AdvanceResult>, ApiError> {
    caller.require_platform_admin()?;
    let by = parse_duration(&req.duration).ok_or_else(|| {
        ApiError::validation(
            "duration",
            "1 to 100000 and a unit: like 90s, 15m, 2h or 3d",
        )
    })?;
    let clock = ctx.test_clock.clone().ok_or_else(|| {
        ApiError::not_found("the test clock is off; start the server with --test-clock")
    })?;
    let now = clock.advance(by);
    // Kept in the store, so a restarted server (a demo, the soak's kill -9) resumes at the
    // same time instead of jumping back to the wall clock.
    ctx.stores
        .platform()
        .update(
            test_clock_key(),
            vec![eshtarek_core::store::UpdateAction::add(
                "offset_ms",
                by.num_milliseconds().max(0),
            )],
            None,
        )
        .await?;
    let reports = eshtarek_core::jobs::run_all(&ctx, now).await?;
    Ok(Json(AdvanceResult {
        now: eshtarek_core::time::fmt(now),
        jobs: json!(reports),
    }))
}

fn test_clock_key() -> Key {
    Key::new("CLOCK#TEST", "OFFSET")
}

/// Drops the stored test-clock offset: a server on the wall clock owns the store's time now,
/// so a later `jobs run` must not run at a demo's old test time.
pub async fn forget_test_clock(ctx: &AppContext) -> Result<(), ApiError> {
    ctx.stores
        .platform()
        .write(eshtarek_core::store::WriteOp::Delete {
            key: test_clock_key(),
            condition: None,
        })
        .await?;
    Ok(())
}

/// Moves a fresh test clock to where the last server on this store left it.
pub async fn restore_test_clock(
    ctx: &AppContext,
    clock: &eshtarek_core::clock::TestClock,
) -> Result<(), ApiError> {
    if let Some(item) = ctx.stores.platform().get(&test_clock_key()).await? {
        let offset = item.i64("offset_ms").unwrap_or(0);
        clock.advance(chrono::Duration::milliseconds(offset));
    }
    Ok(())
}

/// `GET /healthz`: 200 once the server is up and its store answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "local",
    summary = "Whether the server is up and its store answers (one store read).",
    responses((status = 200, description = "Up", body = Object), (status = 503, description = "The store does not answer"))
)]
async fn healthz(State(ctx): State<AppContext>) -> Response {
    match ctx
        .stores
        .platform()
        .get(&Key::new("HEALTH", "PROBE"))
        .await
    {
        Ok(_) => Json(json!({
            "status": "ok",
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

/// Opens the store the flags ask for.
pub async fn open_store(
    kind: StoreKind,
    data_dir: &Path,
    table: &str,
) -> anyhow::Result<(Arc<dyn Store>, String)> {
    Ok(match kind {
        StoreKind::Sqlite => {
            let path = data_dir.join("eshtarek.db");
            let store = eshtarek_core::store::sqlite::SqliteStore::open(&path)?;
            (Arc::new(store), format!("sqlite at {}", path.display()))
        }
        StoreKind::Dynamodb => {
            let store = eshtarek_core::store::dynamodb::DynamoStore::from_env(table).await;
            // Locally (moto, LocalStack) the table may not exist yet; on AWS the template made it.
            store.ensure_table().await?;
            (Arc::new(store), format!("dynamodb table {table}"))
        }
    })
}

/// The signing keys: `ESHTAREK_JWT_KEYS` when set, else the key set kept in the data
/// directory (generated on first start).
pub fn signing_keys(data_dir: &Path) -> anyhow::Result<KeySet> {
    if let Some(keys) = KeySet::from_env().map_err(anyhow::Error::msg)? {
        return Ok(keys);
    }
    KeySet::load_or_create(&data_dir.join("jwt-keys.json")).map_err(anyhow::Error::msg)
}

pub fn context(store: Arc<dyn Store>, clock: SharedClock, keys: KeySet) -> AppContext {
    AppContext::new(store, clock, keys)
}

/// The default data directory: the platform's user data dir, or `./.eshtarek` without one.
pub fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("dev", "eshtarek", "eshtarek")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".eshtarek"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_parse_and_odd_text_is_refused_not_a_panic() {
        assert_eq!(parse_duration("15d"), Some(chrono::Duration::days(15)));
        assert_eq!(parse_duration("90m"), Some(chrono::Duration::minutes(90)));
        for bad in [
            "", "d", "5é", "é", "٥d", "0d", "-1d", "+1d", " 90m", "01d", "100001s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
