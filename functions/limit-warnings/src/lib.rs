//! The limit-warnings job as a Lambda handler for EventBridge schedules: sends the usage warnings the real-time path missed
//! (see `eshtarek_core::jobs`).

use eshtarek_core::jobs::{JobName, JobReport};
use eshtarek_core::AppContext;
use lambda_runtime::LambdaEvent;

pub async fn handle(
    ctx: &AppContext,
    event: LambdaEvent<serde_json::Value>,
) -> Result<JobReport, lambda_runtime::Error> {
    eshtarek_core::lambda::scheduled(ctx, JobName::LimitWarnings, event).await
}
