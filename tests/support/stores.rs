//! Stores for tests: a fresh SQLite file, or a table on the DynamoDB endpoint the test script
//! started (moto).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

/// The store the HTTP suite runs on: `ESHTAREK_TEST_STORE` = `sqlite` (the default) or
/// `dynamodb` (a fresh table on moto, with token vending and the wire check, as deployed).
/// `scripts/test` runs the HTTP suite once per store, so every assertion holds on both.
pub async fn selected() -> Arc<dyn Store> {
    match std::env::var("ESHTAREK_TEST_STORE").as_deref() {
        Err(_) | Ok("sqlite") => sqlite().await,
        Ok("dynamodb") => fresh_dynamodb().await,
        Ok(other) => panic!("ESHTAREK_TEST_STORE is `sqlite` or `dynamodb`, not `{other}`"),
    }
}

/// Which DynamoDB table each DynamoDB store of this process uses, by the store's address: the
/// test app hands it to the credential vendor, whose session policy names the table. Each entry
/// keeps a weak reference, so an address reused after a store is dropped (tests sharing a
/// process under `cargo test`) never finds the old store's table.
type Tables = HashMap<usize, (std::sync::Weak<dyn Store>, String)>;
static TABLES: Mutex<Option<Tables>> = Mutex::new(None);

fn address(store: &Arc<dyn Store>) -> usize {
    Arc::as_ptr(store) as *const () as usize
}

fn remember(store: &Arc<dyn Store>, table: &str) {
    let mut tables = TABLES.lock().unwrap();
    let tables = tables.get_or_insert_with(HashMap::new);
    tables.retain(|_, (weak, _)| weak.strong_count() > 0);
    tables.insert(address(store), (Arc::downgrade(store), table.to_owned()));
}

/// `wrapper` (a test's store around `inner`) uses `inner`'s table.
pub fn same_table(wrapper: &Arc<dyn Store>, inner: &Arc<dyn Store>) {
    if let Some(table) = table_of(inner) {
        remember(wrapper, &table);
    }
}

/// The table of a DynamoDB store made here.
pub fn table_of(store: &Arc<dyn Store>) -> Option<String> {
    let tables = TABLES.lock().unwrap();
    let (weak, table) = tables.as_ref()?.get(&address(store))?;
    let same = weak
        .upgrade()
        .is_some_and(|known| Arc::ptr_eq(&known, store));
    same.then(|| table.clone())
}

/// The test's own eyes on `store`: the store itself on SQLite; on DynamoDB the same table
/// through a client without the wire check, so a test may read any tenant's items to assert on
/// them (and the check keeps judging only what the app sends).
pub async fn inspector(store: &Arc<dyn Store>) -> Arc<dyn Store> {
    match table_of(store) {
        Some(table) if store.kind() == "dynamodb" => Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&crate::wire::environment().await),
            table,
        )),
        _ => store.clone(),
    }
}

fn local_endpoint() -> String {
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
    endpoint
}

/// A DynamoDB store on a new table of its own: a test that counts what the store holds sees
/// only its own items, whichever test runner shares the process.
pub async fn fresh_dynamodb() -> Arc<dyn Store> {
    local_endpoint();
    let table = format!("eshtarek-test-{}", uuid::Uuid::new_v4().simple());
    let client = aws_sdk_dynamodb::Client::from_conf(crate::wire::checked_dynamodb_config(
        &crate::wire::environment().await,
    ));
    let store = DynamoStore::new(client, table.clone());
    store.ensure_table().await.expect("create test table");
    let store: Arc<dyn Store> = Arc::new(store);
    remember(&store, &table);
    store
}

static DYNAMO: OnceCell<Arc<DynamoStore>> = OnceCell::const_new();

/// The DynamoDB store of this test process: one table on the endpoint in
/// `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL`), created on first use. Without an
/// endpoint this fails rather than skip: `scripts/test` starts moto and sets it.
pub async fn dynamodb() -> Arc<dyn Store> {
    let typed = dynamodb_store().await;
    let store: Arc<dyn Store> = typed.clone();
    remember(&store, typed.table());
    store
}

/// The same store, typed (for tests that need its table name).
pub async fn dynamodb_store() -> Arc<DynamoStore> {
    let store = DYNAMO
        .get_or_init(|| async {
            local_endpoint();
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
