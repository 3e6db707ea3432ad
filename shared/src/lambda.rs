//! Running a function's router under `lambda_http` (the problem fallbacks, and the client
//! address from the API Gateway request context, for rate limits, never from a header), and a
//! scheduled job under `lambda_runtime`.

use axum::extract::Request;
use axum::Router;
use lambda_http::request::RequestContext;

use crate::auth::ClientIp;
use crate::service::HttpApp;
use crate::AppContext;

pub async fn run(ctx: AppContext, router: Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(http_app(&ctx, router)).await
}

/// What `run` serves: the function's router with the problem fallbacks and the client address
/// from the request context (tests feed API Gateway events through exactly this).
pub fn http_app(ctx: &AppContext, router: Router) -> HttpApp {
    HttpApp::preparing(router, ctx, client_ip)
}

fn client_ip(request: &mut Request) {
    let ip = match request.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .http
            .source_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok()),
        _ => None,
    };
    request.extensions_mut().insert(ClientIp(ip));
}

/// A scheduled job's Lambda handler, for EventBridge's scheduled events. Delivery is at least
/// once: the jobs make repeated and concurrent runs safe. The event's own time is not trusted:
/// the job does what is due by the clock when it runs. It stops taking new work before the
/// invocation's deadline (the report then says `complete: false`; the next run continues).
pub async fn scheduled(
    ctx: &AppContext,
    job: crate::jobs::JobName,
    event: lambda_runtime::LambdaEvent<serde_json::Value>,
) -> Result<crate::jobs::JobReport, lambda_runtime::Error> {
    let limits = match remaining(event.context.deadline) {
        Some(left) => crate::jobs::RunLimits::within(left),
        None => crate::jobs::RunLimits::default(),
    };
    let report = crate::jobs::run(ctx, job, ctx.clock.now(), limits)
        .await
        .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
    tracing::info!(
        job = report.job,
        request_id = event.context.request_id,
        scheduled_at = event.payload.get("time").and_then(|t| t.as_str()).unwrap_or_default(),
        outcomes = ?report.outcomes,
        complete = report.complete,
        "scheduled job ran"
    );
    Ok(report)
}

/// Time left before a deadline in epoch milliseconds (`0`: none given, as outside Lambda).
fn remaining(deadline_ms: u64) -> Option<std::time::Duration> {
    if deadline_ms == 0 {
        return None;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(std::time::Duration::from_millis(deadline_ms).saturating_sub(now))
}

/// The whole `main` of a scheduled job's Lambda: the context from the function's environment,
/// then `scheduled` for every event (one function per job, each its own crate and binary).
pub async fn job_main(job: crate::jobs::JobName) -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init();
    let ctx = AppContext::from_lambda_env().await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let ctx = ctx.clone();
            async move { scheduled(&ctx, job, event).await }
        },
    ))
    .await
}
