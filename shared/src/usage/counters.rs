//! Where usage is counted: a counter per metric and counting period (the period is part of its
//! key, so counters reset at each boundary without any job), the hour/day/month rollups, and
//! the sharded platform index of counters by metric and month.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};

pub(super) use super::keys::{counter_key, counter_of};
use crate::billing::subscriptions::Sub;
use crate::plans::policies::ResetPeriod;
use crate::store::{TenantId, UpdateAction};
use crate::time;

/// `[start, end)` of the counting period that contains `at` (end `None`: never resets).
pub fn counting_period(
    reset: ResetPeriod,
    sub: &Sub,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
    match reset {
        ResetPeriod::None => (Utc.timestamp_opt(0, 0).single().expect("epoch"), None),
        ResetPeriod::Day => {
            let start = Utc
                .with_ymd_and_hms(at.year(), at.month(), at.day(), 0, 0, 0)
                .single()
                .expect("valid day");
            (start, Some(start + Duration::days(1)))
        }
        ResetPeriod::Month => {
            let start = Utc
                .with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
                .single()
                .expect("valid month");
            (start, start.checked_add_months(chrono::Months::new(1)))
        }
        ResetPeriod::BillingPeriod => (sub.period_start, Some(sub.period_end)),
    }
}

/// Hour, day and month buckets of the history rollups, cut from the event's time as
/// [`time::fmt`] writes it (`2026-11-26T03:…`: `H#2026-11-26T03`, `D#2026-11-26`,
/// `M#2026-11`). Event times are within four-digit years: parsed RFC 3339, or the clock.
pub(super) fn rollup_buckets(at_text: &str) -> [String; 3] {
    [("H#", 13), ("D#", 10), ("M#", 7)].map(|(tag, len)| {
        let mut bucket = String::with_capacity(2 + len);
        bucket.push_str(tag);
        bucket.push_str(&at_text[..len]);
        bucket
    })
}

/// The platform usage index's partitions for `metric` in the month of `at`.
pub fn usage_index_partitions(metric: &str, at: DateTime<Utc>) -> Vec<String> {
    let month = &time::fmt(at)[..7];
    (0..USAGE_INDEX_SHARDS)
        .map(|shard| usage_index_partition(metric, month, shard))
        .collect()
}

/// `IDX#USAGE#<metric>#<yyyy-mm>#<shard, two digits>`: one shard of the platform usage index
/// for a month.
pub(super) fn usage_index_partition(metric: &str, month: &str, shard: u32) -> String {
    debug_assert!(shard < 100, "two digits");
    let mut pk = String::with_capacity(24 + metric.len());
    pk.push_str("IDX#USAGE#");
    pk.push_str(metric);
    pk.push('#');
    pk.push_str(month);
    pk.push('#');
    pk.push(char::from(b'0' + (shard / 10) as u8));
    pk.push(char::from(b'0' + (shard % 10) as u8));
    pk
}

/// Shards of the platform usage index, so one popular metric does not make one hot partition.
pub(super) const USAGE_INDEX_SHARDS: u32 = 16;

/// Counters sit in the platform index `IDX#USAGE#<metric>#<yyyy-mm>#<shard>` (by the month the
/// event falls in, cut from its time as [`time::fmt`] writes it), sort key the tenant, so
/// platform admins see usage across tenants without a scan.
pub(super) fn admin_index(tenant: &TenantId, metric: &str, at_text: &str) -> [UpdateAction; 2] {
    let shard = crate::store::shard::of(tenant, USAGE_INDEX_SHARDS);
    [
        UpdateAction::set(
            crate::store::GSI1PK,
            usage_index_partition(metric, &at_text[..7], shard),
        ),
        UpdateAction::set(crate::store::GSI1SK, tenant.as_str()),
    ]
}
