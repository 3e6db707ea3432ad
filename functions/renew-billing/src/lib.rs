//! The renew-billing job as a Lambda handler for EventBridge schedules: renews due
//! subscriptions, charges them, and runs dunning (see `eshtarek_core::jobs::renew_billing`).

use eshtarek_core::jobs::{JobName, JobReport};
use eshtarek_core::AppContext;
use lambda_runtime::LambdaEvent;

pub async fn handle(
    ctx: &AppContext,
    event: LambdaEvent<serde_json::Value>,
) -> Result<JobReport, lambda_runtime::Error> {
    eshtarek_core::lambda::scheduled(ctx, JobName::RenewBilling, event).await
}
