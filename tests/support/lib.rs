//! Test support shared by the test binaries of this crate.

pub mod broken;
pub mod conformance;
pub mod fixtures;
pub mod http;
pub mod runtime_api;
pub mod stall;
pub mod stores;
pub mod template;
pub mod wire;

/// Generates one `#[tokio::test]` per conformance case, each on a store from `$make`
/// (an async expression yielding `Arc<dyn Store>`).
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@cases $make;
            put_get_roundtrip,
            get_many_reads_items_in_order,
            conditional_put_refuses_existing_item,
            condition_vocabulary,
            update_sets_adds_and_removes,
            conditional_delete,
            conditional_increment_race,
            transaction_cancellation_writes_nothing,
            transaction_refuses_bad_shapes,
            transaction_returns_a_post_image,
            table_pagination,
            sort_key_conditions,
            gsi1_queries,
            index_entries_follow_updates,
            cursors_are_bound_to_their_partition,
            invalid_requests_are_refused,
            claims_are_taken_once_while_they_live,
            claims_commit_with_their_transaction,
            claim_race_has_one_winner
        );
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let store = $make.await;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}
