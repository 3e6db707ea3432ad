//! The expire-subscriptions Lambda for EventBridge schedules: ends fixed-duration subscriptions,
//! trials without a payment method and lapsed past-due ones
//! (`eshtarek_core::jobs`), on DynamoDB.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    eshtarek_core::lambda::job_main(eshtarek_core::jobs::JobName::ExpireSubscriptions).await
}
