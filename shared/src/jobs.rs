//! Scheduled jobs as plain functions of (context, now, limits), so the local server's timer,
//! `eshtarek jobs run`, the test clock and the EventBridge Lambdas all run the same code.
//!
//! Each job finds its work through an index (never a scan), pages through it, processes a page
//! with bounded concurrency, and stops cleanly before its deadline (a Lambda's time limit): the
//! report then says `complete: false`, and the next run continues, because whatever is still
//! due is still in the index. Running a job twice, or two copies at once, is safe: every step
//! is a conditional write (see each job).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::billing::subscriptions::{self, Renewal};
use crate::error::ApiError;
use crate::store::{Item, Query, SortKeyCondition, Store, TenantId};
use crate::usage::{self, Sweep};
use crate::AppContext;

/// The scheduled jobs, in the order a combined run takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobName {
    /// Ends what must end first, so the renewal does not bill it.
    ExpireSubscriptions,
    RenewBilling,
    LimitWarnings,
    /// Last, so what the others changed is sent in the same run.
    DeliverWebhooks,
}

impl JobName {
    pub const ALL: [JobName; 4] = [
        JobName::ExpireSubscriptions,
        JobName::RenewBilling,
        JobName::LimitWarnings,
        JobName::DeliverWebhooks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobName::ExpireSubscriptions => "expire-subscriptions",
            JobName::RenewBilling => "renew-billing",
            JobName::LimitWarnings => "limit-warnings",
            JobName::DeliverWebhooks => "deliver-webhooks",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|j| j.as_str() == name)
    }
}

/// How much a run may do: items in flight at once, and when to stop taking new pages.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    pub concurrency: usize,
    pub deadline: Option<Instant>,
}

impl Default for RunLimits {
    /// Local runs: 32 at once, no deadline.
    fn default() -> Self {
        Self {
            concurrency: 32,
            deadline: None,
        }
    }
}

impl RunLimits {
    /// A Lambda invocation with `remaining` time: stop taking pages with a margin left for the
    /// page in flight (a page of 100 takes well under a second; the margin is 10 s or a fifth).
    pub fn within(remaining: Duration) -> Self {
        let margin = Duration::from_secs(10).min(remaining / 5);
        Self {
            concurrency: 32,
            deadline: Some(Instant::now() + remaining.saturating_sub(margin)),
        }
    }

    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobReport {
    pub job: String,
    pub now: String,
    /// Outcomes by kind, e.g. `{"renewed": 3, "payment_failed": 1}`.
    pub outcomes: BTreeMap<String, u64>,
    /// `false`: the run stopped at its deadline; the next run continues.
    pub complete: bool,
}

impl JobReport {
    fn new(job: JobName, now: DateTime<Utc>) -> Self {
        Self {
            job: job.as_str().into(),
            now: crate::time::fmt(now),
            outcomes: BTreeMap::new(),
            complete: true,
        }
    }

    fn count(&mut self, outcome: &str) {
        *self.outcomes.entry(outcome.to_owned()).or_default() += 1;
    }
}

/// Items per index page.
const PAGE: u32 = 100;

/// Where a sweep is: partitions left, and the cursor to resume the current one from.
struct PageState {
    partitions: std::vec::IntoIter<String>,
    resume: Option<(String, Option<String>)>,
    platform: crate::store::PlatformStore,
    upper: Option<String>,
}

/// Pages through the index partitions (sort keys up to `upper`, if given) and runs `work` on
/// each item, `limits.concurrency` at a time, counting outcomes. Pages are fetched as the work
/// needs them, so items of the next page start while the slowest of this one finish. An item
/// whose work fails is counted as `failed` and logged; it stays in the index for the next run.
async fn sweep<F, Fut>(
    ctx: &AppContext,
    partitions: Vec<String>,
    upper: Option<String>,
    limits: RunLimits,
    report: &mut JobReport,
    work: F,
) -> Result<(), ApiError>
where
    F: Fn(Item) -> Fut,
    Fut: Future<Output = Result<&'static str, ApiError>>,
{
    let out_of_time = std::sync::atomic::AtomicBool::new(false);
    // Each step fetches one page: from the partition and cursor where the last one ended. The
    // state owns what the fetch needs (a borrowing closure would make the future not `Send`).
    let start = PageState {
        partitions: partitions.into_iter(),
        resume: None,
        platform: ctx.stores.platform(),
        upper,
    };
    let pages = stream::unfold(start, |mut state| async move {
        let (pk, cursor) = match state.resume.take() {
            Some(resume) => resume,
            None => (state.partitions.next()?, None),
        };
        let mut query = Query::gsi1(pk.clone()).limit(PAGE).after(cursor);
        if let Some(upper) = &state.upper {
            query = query.sk(SortKeyCondition::Le(upper.clone()));
        }
        let page = state.platform.query(&query).await;
        if let Ok(page) = &page {
            state.resume = page.next_cursor.clone().map(|c| (pk, Some(c)));
        }
        Some((page, state))
    });
    let mut outcomes = Box::pin(
        pages
            .take_while(|_| {
                let stop = limits.out_of_time();
                out_of_time.store(stop, std::sync::atomic::Ordering::Relaxed);
                std::future::ready(!stop)
            })
            .flat_map(|page| {
                stream::iter(match page {
                    Ok(page) => page.items.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                })
            })
            .map(|item| async {
                match item {
                    Ok(item) => Ok(work(item).await),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(limits.concurrency.max(1)),
    );
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Ok(Ok(name)) => report.count(name),
            Ok(Err(e)) => {
                tracing::error!(job = report.job, error = %e.detail, "item failed");
                report.count("failed");
            }
            // The index itself could not be read: stop; the next run starts over.
            Err(e) => return Err(e.into()),
        }
    }
    drop(outcomes);
    report.complete = !out_of_time.load(std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// A subscription in the renewal index: (tenant, subscription id). The tenant comes from the
/// item's partition key, the one thing IAM and the scoped handles vouch for; an attribute
/// saying otherwise is not believed.
fn indexed_subscription(item: &Item) -> Option<(TenantId, String)> {
    let (tenant, "SUBS") = TenantId::of_pk(&item.key.pk)? else {
        return None;
    };
    if item.str("tenant_id") != Some(tenant.as_str()) {
        return None;
    }
    Some((tenant, item.str("subscription_id")?.to_owned()))
}

/// Sort keys of the renewal index up to `now` (`<due>#<tenant>#<id>`).
fn due_by(now: DateTime<Utc>) -> String {
    format!("{}~", crate::time::fmt(now))
}

fn renewal_outcome(r: &Renewal) -> &'static str {
    match r {
        Renewal::NotDue => "not_due",
        Renewal::Renewed => "renewed",
        Renewal::PaymentFailed => "payment_failed",
        Renewal::Cancelled => "cancelled",
        Renewal::Expired => "expired",
        Renewal::DunningRetryFailed => "dunning_retry_failed",
    }
}

/// Runs `work` on every subscription in the renewal index that is due by `now`.
async fn sweep_due_subscriptions<F, Fut>(
    ctx: &AppContext,
    job: JobName,
    now: DateTime<Utc>,
    limits: RunLimits,
    work: F,
) -> Result<JobReport, ApiError>
where
    F: Fn(TenantId, String) -> Fut,
    Fut: Future<Output = Result<&'static str, ApiError>>,
{
    let mut report = JobReport::new(job, now);
    let work = &work;
    sweep(
        ctx,
        subscriptions::renewal_partitions(),
        Some(due_by(now)),
        limits,
        &mut report,
        |item| async move {
            match indexed_subscription(&item) {
                Some((tenant, id)) => work(tenant, id).await,
                None => Ok("skipped"),
            }
        },
    )
    .await?;
    Ok(report)
}

/// `renew-billing`: every subscription whose period, trial or dunning retry is due at `now`.
/// One invoice per subscription period (deduplicated by its key) and `rev`-conditioned
/// subscription writes make repeated and concurrent runs bill once.
pub async fn renew_billing(
    ctx: &AppContext,
    now: DateTime<Utc>,
    limits: RunLimits,
) -> Result<JobReport, ApiError> {
    sweep_due_subscriptions(
        ctx,
        JobName::RenewBilling,
        now,
        limits,
        |tenant, id| async move {
            subscriptions::renew(ctx, &tenant, &id, now)
                .await
                .map(|r| renewal_outcome(&r))
        },
    )
    .await
}

/// `expire-subscriptions`: fixed-duration plans at their end, trials that end without a
/// payment method, and subscriptions past due beyond the grace period become `expired` (their
/// limits drop to none). The end is a `rev`-conditioned write: one run wins, others skip.
pub async fn expire_subscriptions(
    ctx: &AppContext,
    now: DateTime<Utc>,
    limits: RunLimits,
) -> Result<JobReport, ApiError> {
    sweep_due_subscriptions(
        ctx,
        JobName::ExpireSubscriptions,
        now,
        limits,
        |tenant, id| async move {
            Ok(subscriptions::expire(ctx, &tenant, &id, now)
                .await?
                .map_or("not_due", |e| e.as_str()))
        },
    )
    .await
}

/// `limit-warnings`: walks this month's usage counters of every metric some policy meters
/// (the platform usage index) and sends the threshold warnings the real-time path missed.
/// Markers claimed with `attribute_not_exists` keep each (metric, period, threshold) to one.
pub async fn limit_warnings(
    ctx: &AppContext,
    now: DateTime<Utc>,
    limits: RunLimits,
) -> Result<JobReport, ApiError> {
    let mut report = JobReport::new(JobName::LimitWarnings, now);
    let partitions = crate::plans::policies::all_metrics(ctx)
        .await?
        .iter()
        .flat_map(|metric| usage::usage_index_partitions(metric, now))
        .collect();
    sweep(
        ctx,
        partitions,
        None,
        limits,
        &mut report,
        |item| async move {
            Ok(match usage::sweep_counter(ctx, &item, now).await? {
                Sweep::Sent => "sent",
                Sweep::NothingDue => "nothing_due",
                Sweep::NotCurrent => "not_current",
            })
        },
    )
    .await?;
    Ok(report)
}

/// `deliver-webhooks`: fans every event in the outbox out into messages for its tenant's
/// endpoints, then sends every message due by `now` (`webhooks::deliver`). A message is
/// claimed before it is sent and settled after, so concurrent runs send each attempt once;
/// a run that stops in between leaves it due again a minute later (at least once).
pub async fn deliver_webhooks(
    ctx: &AppContext,
    now: DateTime<Utc>,
    limits: RunLimits,
) -> Result<JobReport, ApiError> {
    let mut report = JobReport::new(JobName::DeliverWebhooks, now);
    sweep(
        ctx,
        crate::webhooks::outbox::outbox_partitions(),
        Some(due_by(now)),
        limits,
        &mut report,
        |item| async move { crate::webhooks::outbox::fan_out(ctx, &item, now).await },
    )
    .await?;
    sweep(
        ctx,
        crate::webhooks::outbox::message_partitions(),
        Some(due_by(now)),
        limits,
        &mut report,
        |item| async move { crate::webhooks::deliver::deliver(ctx, &item, now).await },
    )
    .await?;
    Ok(report)
}

pub async fn run(
    ctx: &AppContext,
    job: JobName,
    now: DateTime<Utc>,
    limits: RunLimits,
) -> Result<JobReport, ApiError> {
    match job {
        JobName::ExpireSubscriptions => expire_subscriptions(ctx, now, limits).await,
        JobName::RenewBilling => renew_billing(ctx, now, limits).await,
        JobName::LimitWarnings => limit_warnings(ctx, now, limits).await,
        JobName::DeliverWebhooks => deliver_webhooks(ctx, now, limits).await,
    }
}

/// Every job once, in order (the local timer and the test clock).
pub async fn run_all(ctx: &AppContext, now: DateTime<Utc>) -> Result<Vec<JobReport>, ApiError> {
    let mut reports = Vec::new();
    for job in JobName::ALL {
        reports.push(run(ctx, job, now, RunLimits::default()).await?);
    }
    Ok(reports)
}
