//! Scheduled jobs as plain functions of (context, now), so the local server's timer, the CLI's
//! `eshtarek jobs run`, the test clock and (later) the EventBridge Lambdas all run the same code.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::billing::subscriptions::{renew_due, Renewal};
use crate::error::ApiError;
use crate::AppContext;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobReport {
    pub job: String,
    pub now: String,
    /// Outcomes by kind, e.g. `{"renewed": 3, "payment_failed": 1}`.
    pub outcomes: BTreeMap<String, u64>,
}

fn outcome_name(r: &Renewal) -> &'static str {
    match r {
        Renewal::NotDue => "not_due",
        Renewal::Renewed => "renewed",
        Renewal::PaymentFailed => "payment_failed",
        Renewal::Cancelled => "cancelled",
        Renewal::Expired => "expired",
        Renewal::DunningRetryFailed => "dunning_retry_failed",
    }
}

/// `renew-billing`: every subscription whose period, trial or dunning retry is due at `now`.
pub async fn renew_billing(ctx: &AppContext, now: DateTime<Utc>) -> Result<JobReport, ApiError> {
    let mut outcomes = BTreeMap::new();
    for outcome in renew_due(ctx, now).await? {
        *outcomes
            .entry(outcome_name(&outcome).to_owned())
            .or_default() += 1;
    }
    Ok(JobReport {
        job: "renew-billing".into(),
        now: crate::time::fmt(now),
        outcomes,
    })
}
