//! The limit-warnings Lambda for EventBridge schedules: sends the usage warnings the real-time path missed
//! (`eshtarek_core::jobs`), on DynamoDB.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    eshtarek_core::lambda::job_main(eshtarek_core::jobs::JobName::LimitWarnings).await
}
