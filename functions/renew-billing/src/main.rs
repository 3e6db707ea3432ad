//! The renew-billing Lambda for EventBridge schedules: renews due subscriptions, charges them and runs dunning
//! (`eshtarek_core::jobs`), on DynamoDB.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    eshtarek_core::lambda::job_main(eshtarek_core::jobs::JobName::RenewBilling).await
}
