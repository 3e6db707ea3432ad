//! The deliver-webhooks Lambda for EventBridge schedules: fans the outbox's events out into
//! messages and sends the due ones (`eshtarek_core::jobs`), on DynamoDB.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    eshtarek_core::lambda::job_main(eshtarek_core::jobs::JobName::DeliverWebhooks).await
}
