//! Usage metering with real-time enforcement, one file per concern: `model` (the event and
//! its answer), `meter` (who is metering: key or token), `keys` (where a counter lives),
//! `counters` (counting periods, rollups and the platform index), `record` (the metering
//! transaction, replays, batches), `alerts` (threshold warnings, the sweep, notifications), `reports` (summaries, checks,
//! history), `gauges`, `api_keys` and `hot` (the hot path's caches), `gcra`, `rate_limits` (plan-based
//! request rates shared through the store) and `api_rate` (the rate of Eshtarek's own API). The limits in force come
//! from `entitlements`.

mod alerts;
pub mod api_keys;
pub mod api_rate;
mod counters;
pub mod entitlements;
mod gauges;
pub mod gcra;
pub mod hot;
pub mod keys;
mod meter;
mod model;
pub mod rate_limits;
mod record;
mod reports;

pub use alerts::{mark_read, notifications, sweep_counter, NotificationView, Sweep};
pub use counters::{counting_period, usage_index_partitions};
pub use gauges::{set_gauge, GaugeRequest};
pub use meter::{Meter, RecordingMeter};
pub use model::{UsageEvent, UsageResult};
pub use record::{record, record_batch, BatchItemResult, BatchRequest, BatchResponse, LATENESS};
pub use reports::{
    admin_summary, admin_usage, check, history, summary, AdminUsage, AdminUsageQuery, CheckRequest,
    CheckResult, History, HistoryBucket, HistoryQuery, MetricUsage, TenantUsage, UsageSummary,
};
