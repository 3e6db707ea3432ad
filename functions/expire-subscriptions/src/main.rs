//! The expire-subscriptions Lambda: `lambda_runtime` around the job, on DynamoDB.

use eshtarek_core::{telemetry, AppContext};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let ctx = AppContext::from_lambda_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let ctx = ctx.clone();
        async move { eshtarek_expire_subscriptions::handle(&ctx, event).await }
    }))
    .await
}
