//! Stores for tests: a fresh SQLite file, or a table on the DynamoDB endpoint the test script
//! started (moto).

use std::sync::Arc;

use eshtarek_core::store::dynamodb::DynamoStore;
use eshtarek_core::store::sqlite::SqliteStore;
use eshtarek_core::store::Store;
use tokio::sync::OnceCell;

/// A new SQLite store in its own temporary directory (kept alive for the process).
pub async fn sqlite() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("test.db")).expect("open sqlite");
    // The directory must outlive the store; tests are short-lived processes.
    std::mem::forget(dir);
    Arc::new(store)
}

static DYNAMO: OnceCell<Arc<DynamoStore>> = OnceCell::const_new();

/// The DynamoDB store of this test process: one table on the endpoint in
/// `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL`), created on first use. Without an
/// endpoint this fails rather than skip: `scripts/test` starts moto and sets it.
pub async fn dynamodb() -> Arc<dyn Store> {
    dynamodb_store().await
}

/// The same store, typed (for tests that need its table name).
pub async fn dynamodb_store() -> Arc<DynamoStore> {
    let store = DYNAMO
        .get_or_init(|| async {
            let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
                .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
                .expect(
                    "no DynamoDB endpoint: run the tests through scripts/test, which starts \
                     moto and sets AWS_ENDPOINT_URL_DYNAMODB",
                );
            assert!(
                endpoint.starts_with("http://127.") || endpoint.starts_with("http://localhost"),
                "tests only talk to a local DynamoDB endpoint, not {endpoint}"
            );
            let table = format!("eshtarek-test-{}", uuid::Uuid::new_v4().simple());
            // Every request this process sends is checked on the wire (`wire`).
            let client = aws_sdk_dynamodb::Client::from_conf(crate::wire::checked_dynamodb_config(
                &crate::wire::environment().await,
            ));
            let store = DynamoStore::new(client, table);
            store.ensure_table().await.expect("create test table");
            Arc::new(store)
        })
        .await;
    store.clone()
}
