//! What can go wrong in the store, typed so services can answer precisely (a 409, a 402)
//! instead of a generic 500.

use super::item::Item;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// A single conditional write found its condition false. `current` is the item as stored
    /// when the adapter could read it back (None when there was no item).
    #[error("condition failed")]
    ConditionFailed { current: Option<Box<Item>> },
    /// A transaction was cancelled; nothing was written. One reason per operation, in order.
    #[error("transaction cancelled: {reasons:?}")]
    TransactionCancelled { reasons: Vec<CancelReason> },
    /// Another writer touched the same item at the same time; retrying may succeed.
    #[error("write conflict, retry")]
    Conflict,
    /// A cursor that is malformed or belongs to another query.
    #[error("invalid cursor")]
    InvalidCursor,
    /// A key outside the caller's tenant, refused before any I/O.
    #[error("key {pk} is outside the tenant's partitions")]
    CrossTenant { pk: String },
    /// A request the store cannot express (bad attribute name or type, too many operations…).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// The store is throttling; back off.
    #[error("store throttled")]
    Throttled,
    /// Anything else from the backend (I/O, network, corruption).
    #[error("store backend error: {0}")]
    Backend(String),
}

impl StoreError {
    /// For a cancelled transaction: the index of the first operation whose condition failed.
    pub fn failed_condition_index(&self) -> Option<usize> {
        match self {
            StoreError::TransactionCancelled { reasons } => reasons
                .iter()
                .position(|r| matches!(r, CancelReason::ConditionFailed { .. })),
            _ => None,
        }
    }

    pub fn is_condition_failure(&self) -> bool {
        matches!(self, StoreError::ConditionFailed { .. })
            || self.failed_condition_index().is_some()
    }
}

/// Why one operation of a cancelled transaction did not go through.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelReason {
    /// This operation was fine; another one cancelled the transaction.
    None,
    ConditionFailed {
        current: Option<Box<Item>>,
    },
    Conflict,
    Other(String),
}
