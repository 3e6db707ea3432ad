//! The webhooks Lambda: its router under `lambda_http`, on DynamoDB.

use eshtarek_core::{lambda, telemetry, AppContext};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let ctx = AppContext::from_lambda_env().await?;
    lambda::run(ctx.clone(), eshtarek_webhooks::router(ctx)).await
}
