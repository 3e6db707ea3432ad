//! The expire-subscriptions job as a Lambda handler for EventBridge schedules: ends fixed-duration subscriptions, trials without a payment method and lapsed past-due ones
//! (see `eshtarek_core::jobs`).

use eshtarek_core::jobs::{JobName, JobReport};
use eshtarek_core::AppContext;
use lambda_runtime::LambdaEvent;

pub async fn handle(
    ctx: &AppContext,
    event: LambdaEvent<serde_json::Value>,
) -> Result<JobReport, lambda_runtime::Error> {
    eshtarek_core::lambda::scheduled(ctx, JobName::ExpireSubscriptions, event).await
}
