//! What every function's router is built from.

use std::sync::Arc;

use crate::clock::{SharedClock, SystemClock};
use crate::store::{Store, Stores};

#[derive(Clone)]
pub struct AppContext {
    pub stores: Stores,
    pub clock: SharedClock,
}

impl AppContext {
    pub fn new(store: Arc<dyn Store>, clock: SharedClock) -> Self {
        Self {
            stores: Stores::new(store),
            clock,
        }
    }

    pub fn with_system_clock(store: Arc<dyn Store>) -> Self {
        Self::new(store, Arc::new(SystemClock))
    }

    /// The Lambda composition: DynamoDB from the standard AWS settings, the table named by
    /// `ESHTAREK_TABLE` (default `eshtarek`), the wall clock.
    #[cfg(feature = "dynamodb")]
    pub async fn from_lambda_env() -> Self {
        let table = std::env::var("ESHTAREK_TABLE").unwrap_or_else(|_| "eshtarek".into());
        let store = crate::store::dynamodb::DynamoStore::from_env(table).await;
        Self::with_system_clock(Arc::new(store))
    }
}
