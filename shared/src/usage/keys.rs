//! Where a metric's counter for a counting period lives, and what it holds: the one layout
//! fact billing reads too (usage in arrears), kept apart from the counting rules so billing
//! depends on it without depending back on the metering that depends on billing.

use chrono::{DateTime, Utc};

use crate::store::{Item, Key, Store, StoreError, TenantId, TenantStore};
use crate::time;

/// A metric's counter for the period starting at `start`. The counter item holds only `used`
/// and its place in the platform index: the tenant, metric and period are read back from the
/// key ([`counter_of`]), so an event writes three attributes, not seven.
pub fn counter_key(t: &TenantStore, metric: &str, start: DateTime<Utc>) -> Key {
    let mut sk = String::with_capacity(26);
    sk.push_str("P#");
    time::push(&mut sk, start);
    Key::new(t.pk_of(&["USAGE#", metric]), sk)
}

/// The tenant, metric and period start a counter's key names.
pub(super) fn counter_of(counter: &Item) -> Option<(TenantId, &str, &str)> {
    let (tenant, partition) = TenantId::of_pk(&counter.key.pk)?;
    let metric = partition.strip_prefix("USAGE#")?;
    let start = counter.key.sk.strip_prefix("P#")?;
    Some((tenant, metric, start))
}

/// Units counted in `metric`'s period starting at `start` (0 before the first event).
pub async fn used(t: &TenantStore, metric: &str, start: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(t.get(&counter_key(t, metric, start))
        .await?
        .and_then(|c| c.i64("used"))
        .unwrap_or(0)
        .max(0) as u64)
}
