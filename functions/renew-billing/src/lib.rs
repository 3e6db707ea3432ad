//! The renew-billing job as a Lambda handler for EventBridge schedules.
//!
//! EventBridge delivers at least once: a repeated or concurrent invocation must not bill twice.
//! The renewal service makes that so (one invoice per subscription period, revision-conditioned
//! writes). The event's own time is not trusted for billing: the job bills what is due by the
//! clock when it runs.

use eshtarek_core::jobs::{self, JobReport};
use eshtarek_core::AppContext;
use lambda_runtime::LambdaEvent;

pub async fn handle(
    ctx: &AppContext,
    event: LambdaEvent<serde_json::Value>,
) -> Result<JobReport, lambda_runtime::Error> {
    let now = ctx.clock.now();
    let report = jobs::renew_billing(ctx, now)
        .await
        .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
    tracing::info!(
        request_id = event.context.request_id,
        scheduled_at = event.payload.get("time").and_then(|t| t.as_str()).unwrap_or_default(),
        outcomes = ?report.outcomes,
        "renew-billing ran"
    );
    Ok(report)
}
