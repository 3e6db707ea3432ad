//! The auth Lambda: the auth router under `lambda_http`, on DynamoDB.

use eshtarek_core::{http::with_fallbacks, telemetry, AppContext};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let ctx = AppContext::from_lambda_env().await;
    lambda_http::run(with_fallbacks(eshtarek_auth::router(ctx))).await
}
