//! The suite must catch broken adapters: these run its cases on deliberately broken wrappers
//! of the SQLite store and expect them to fail.

use std::future::Future;
use std::sync::Arc;

use eshtarek_core::store::Store;
use eshtarek_tests::broken::{IgnoresConditions, PiecemealTransactions};
use eshtarek_tests::{conformance, stores};

async fn fails<F, Fut>(case: F, store: Arc<dyn Store>) -> bool
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(case(store)).await;
    matches!(outcome, Err(e) if e.is_panic())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_case_catches_an_adapter_that_ignores_conditions() {
    let broken: Arc<dyn Store> = Arc::new(IgnoresConditions(stores::sqlite().await));
    assert!(fails(conformance::conditional_increment_race, broken).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transaction_case_catches_piecemeal_transactions() {
    let broken: Arc<dyn Store> = Arc::new(PiecemealTransactions(stores::sqlite().await));
    assert!(fails(conformance::transaction_cancellation_writes_nothing, broken).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_real_adapter_passes_the_same_cases() {
    assert!(
        !fails(
            conformance::conditional_increment_race,
            stores::sqlite().await
        )
        .await
    );
    assert!(
        !fails(
            conformance::transaction_cancellation_writes_nothing,
            stores::sqlite().await
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claim_race_case_catches_an_adapter_that_ignores_claims() {
    let broken: Arc<dyn Store> = Arc::new(IgnoresConditions(stores::sqlite().await));
    assert!(fails(conformance::claim_race_has_one_winner, broken).await);
}
