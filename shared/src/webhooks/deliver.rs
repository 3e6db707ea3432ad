//! Sending a due message: claimed by moving its place in the due index (so two workers never
//! send the same attempt), signed with the endpoint's live secrets, POSTed with a 15 s timeout
//! and no redirects; only a 2xx delivers. A failure is retried on [`SCHEDULE`] (about three
//! days), sooner never than a 429/503's `Retry-After`; a `410 Gone` disables the endpoint, and
//! so do five days of failures (its admins are notified). Every attempt is logged.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::endpoints::{endpoint_key, signing_secrets};
use super::outbox::message_sk;
use crate::error::ApiError;
use crate::store::{
    Condition, Item, Store, StoreExt, TenantId, TenantStore, UpdateAction, WriteOp, GSI1PK, GSI1SK,
};
use crate::time;
use crate::AppContext;

/// The wait before each retry: after the first attempt fails, 5 s; then 5 min, 30 min, 2 h,
/// 5 h, 10 h, 14 h, 20 h and 24 h. Ten attempts over about three days and four hours.
pub const SCHEDULE: [i64; 9] = [5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400];
/// An endpoint failing this long is disabled.
pub const DISABLE_AFTER_DAYS: i64 = 5;
/// How long a claimed attempt may take before another run may try it (the request's 15 s
/// timeout, with room).
const LEASE_SECS: i64 = 60;
/// How much of a response is kept in the attempt log.
const SNIPPET: usize = 500;
/// How long attempts stay in the log.
const LOG_DAYS: i64 = 30;

/// The wait after `failed` attempts, at least `retry_after` seconds; a tenth of it as jitter
/// (from the message id, so retries of many messages spread instead of arriving together).
pub fn next_wait(failed: usize, retry_after: Option<i64>, seed: &str) -> Option<Duration> {
    let base = *SCHEDULE.get(failed.checked_sub(1)?)?;
    let base = base.max(retry_after.unwrap_or(0).min(86_400));
    let spread = seed
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let jitter = (spread % 1_000) as i64 * base / 10_000;
    Some(Duration::seconds(base + jitter))
}

/// What one attempt got.
struct Outcome {
    status: Option<u16>,
    retry_after: Option<i64>,
    snippet: String,
    millis: i64,
}

impl Outcome {
    fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends one due message (an item of the message index). Returns the outcome's name.
pub async fn deliver(
    ctx: &AppContext,
    message: &Item,
    now: DateTime<Utc>,
) -> Result<&'static str, ApiError> {
    let Some((tenant, "WEBHOOKS")) = TenantId::of_pk(&message.key.pk) else {
        return Ok("skipped");
    };
    let Some((_, seen_sk)) = message.gsi1() else {
        return Ok("skipped");
    };
    let seen_sk = seen_sk.to_owned();
    let t = ctx.stores.tenant(&tenant);
    let endpoint_id = message.required_str("endpoint_id")?.to_owned();
    let message_id = message.required_str("message_id")?.to_owned();
    let endpoint = t.get(&endpoint_key(&t, &endpoint_id)).await?;
    let Some(endpoint) = endpoint.filter(|e| e.bool("enabled") == Some(true)) else {
        // Deleted or disabled: the message is not sent (a resend after enabling it is).
        settle(&t, message, &seen_sk, "skipped", None).await?;
        return Ok("endpoint_off");
    };
    // Claim: move the message past the lease; another run that read the same place loses.
    // From the claim, not the run's start: late in a long run the lease still covers the send.
    let claimed_at = ctx.clock.now().max(now);
    let lease = message_sk(
        claimed_at + Duration::seconds(LEASE_SECS),
        &tenant,
        &endpoint_id,
        &message_id,
    );
    match t
        .update(
            message.key.clone(),
            vec![UpdateAction::set(GSI1SK, lease.as_str())],
            Some(Condition::eq(GSI1SK, seen_sk.as_str())),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_condition_failure() => return Ok("taken"),
        Err(e) => return Err(e.into()),
    }
    let outcome = send(ctx, &endpoint, message, &message_id, now).await;
    let attempts = message.i64("attempts").unwrap_or(0) + 1;
    log_attempt(&t, &endpoint_id, &message_id, attempts, &outcome, now).await?;
    if outcome.delivered() {
        settle(&t, message, &lease, "delivered", Some(attempts)).await?;
        if endpoint.str("failing_since").is_some() {
            mark_endpoint(&t, &endpoint, vec![UpdateAction::remove("failing_since")]).await?;
        }
        return Ok("delivered");
    }
    if outcome.status == Some(410) {
        settle(&t, message, &lease, "failed", Some(attempts)).await?;
        disable(ctx, &t, &endpoint, "gone", now).await?;
        return Ok("endpoint_gone");
    }
    // Failing since the first failure after a success; a failure long after the last one (an
    // endpoint that failed, then had nothing to send for a while) starts the count again.
    let last_failure = endpoint.str("last_failure_at").and_then(time::parse);
    let failing_since = endpoint
        .str("failing_since")
        .and_then(time::parse)
        .filter(|_| last_failure.is_some_and(|at| now - at < Duration::days(1)))
        .unwrap_or(now);
    if now - failing_since >= Duration::days(DISABLE_AFTER_DAYS) {
        settle(&t, message, &lease, "failed", Some(attempts)).await?;
        disable(ctx, &t, &endpoint, "failing", now).await?;
        return Ok("endpoint_failing");
    }
    mark_endpoint(
        &t,
        &endpoint,
        vec![
            UpdateAction::set("failing_since", time::fmt(failing_since)),
            UpdateAction::set("last_failure_at", time::fmt(now)),
        ],
    )
    .await?;
    match next_wait(attempts as usize, outcome.retry_after, &message_id) {
        Some(wait) => {
            let next = message_sk(now + wait, &tenant, &endpoint_id, &message_id);
            t.update(
                message.key.clone(),
                vec![
                    UpdateAction::set(GSI1SK, next),
                    UpdateAction::set("attempts", attempts),
                    UpdateAction::set("next_attempt_at", time::fmt(now + wait)),
                ],
                Some(Condition::eq(GSI1SK, lease.as_str())),
            )
            .await?;
            Ok("retrying")
        }
        None => {
            settle(&t, message, &lease, "failed", Some(attempts)).await?;
            Ok("failed")
        }
    }
}

/// Records on the endpoint what its deliveries found, only while it exists: an update would
/// otherwise create a record holding just these attributes after the admin deleted it.
async fn mark_endpoint(
    t: &TenantStore,
    endpoint: &Item,
    actions: Vec<UpdateAction>,
) -> Result<(), ApiError> {
    let exists = Condition::exists("endpoint_id");
    match t.update(endpoint.key.clone(), actions, Some(exists)).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_condition_failure() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Takes a message out of the due index with its final status.
async fn settle(
    t: &TenantStore,
    message: &Item,
    sk: &str,
    status: &str,
    attempts: Option<i64>,
) -> Result<(), ApiError> {
    let mut actions = vec![
        UpdateAction::set("status", status),
        UpdateAction::remove(GSI1PK),
        UpdateAction::remove(GSI1SK),
        UpdateAction::remove("next_attempt_at"),
    ];
    actions.extend(attempts.map(|n| UpdateAction::set("attempts", n)));
    match t
        .update(
            message.key.clone(),
            actions,
            Some(Condition::eq(GSI1SK, sk)),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_condition_failure() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Disables an endpoint and tells the tenant's members, once (the condition: still enabled).
async fn disable(
    ctx: &AppContext,
    t: &TenantStore,
    endpoint: &Item,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    // Not the URL: members who are not admins read notifications too, and a webhook URL
    // often carries a token of the receiver's.
    let id = endpoint.str("endpoint_id").unwrap_or("");
    let description = endpoint.str("description").unwrap_or("");
    let why = if reason == "gone" {
        "it answered 410 Gone"
    } else {
        "every delivery failed for five days"
    };
    let name = if description.is_empty() {
        id
    } else {
        description
    };
    let message = format!(
        "The webhook endpoint \"{name}\" was disabled: {why}. An admin can enable it again once it works."
    );
    let data = json!({"endpoint_id": id, "reason": reason});
    let (_, [index, record]) =
        crate::notifications::ops(t, "webhook.endpoint_disabled", &message, &data, now);
    let committed = ctx
        .stores
        .transaction()
        .tenant(
            t,
            WriteOp::Update {
                key: endpoint.key.clone(),
                actions: vec![
                    UpdateAction::set("enabled", false),
                    UpdateAction::set("disabled_reason", reason),
                    UpdateAction::set("updated_at", time::fmt(now)),
                ],
                condition: Some(Condition::eq("enabled", true)),
            },
        )
        .tenant(t, index)
        .tenant(t, record)
        .commit()
        .await;
    match committed {
        Ok(()) => Ok(()),
        Err(e) if e.is_condition_failure() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn log_attempt(
    t: &TenantStore,
    endpoint: &str,
    message_id: &str,
    attempt: i64,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let at = time::fmt(now);
    let mut item = Item::new(t.key(
        "WEBHOOKS",
        format!("ATT#{endpoint}#{at}#{message_id}#{attempt}"),
    ))
    .with("endpoint_id", endpoint)
    .with("message_id", message_id)
    .with("attempt", attempt)
    .with("delivered", outcome.delivered())
    .with("response", outcome.snippet.as_str())
    .with("duration_ms", outcome.millis)
    .with("created_at", at.as_str())
    .with_ttl((now + Duration::days(LOG_DAYS)).timestamp());
    if let Some(status) = outcome.status {
        item = item.with("status_code", i64::from(status));
    }
    t.put(item, None).await?;
    Ok(())
}

/// POSTs the message, signed. The signature's timestamp is the wall clock's, never the
/// injectable clock's: receivers check it against their own clocks to refuse replays, and a
/// demo's test clock days ahead would make every message look forged.
async fn send(
    ctx: &AppContext,
    endpoint: &Item,
    message: &Item,
    message_id: &str,
    now: DateTime<Utc>,
) -> Outcome {
    let started = std::time::Instant::now();
    let failed = |why: String| Outcome {
        status: None,
        retry_after: None,
        snippet: why,
        millis: started.elapsed().as_millis() as i64,
    };
    let body = message.str("body").unwrap_or("{}").to_owned();
    let url = endpoint.str("url").unwrap_or("");
    // The URL again, for a literal address (the resolver guards names only).
    let url = match super::address::check_url(url, ctx.webhooks.allow_private, "url") {
        Ok(url) => url,
        Err(e) => return failed(e.detail),
    };
    let timestamp = Utc::now().timestamp();
    let mut signatures = Vec::new();
    for secret in signing_secrets(endpoint, now) {
        match standardwebhooks::Webhook::new(&secret)
            .and_then(|w| w.sign(message_id, timestamp, body.as_bytes()))
        {
            Ok(signature) => signatures.push(signature),
            Err(e) => return failed(format!("could not sign: {e}")),
        }
    }
    let response = ctx
        .webhooks
        .client()
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signatures.join(" "))
        .body(body)
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(e) => return failed(format!("could not deliver: {e}")),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|_| status == 429 || status == 503);
    // A few KB of the answer at most, never all of it: a receiver streaming an endless body
    // must not exhaust the worker's memory (the connection is dropped after).
    let mut response = response;
    let mut kept: Vec<u8> = Vec::new();
    while kept.len() < SNIPPET * 4 {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = SNIPPET * 4 - kept.len();
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    Outcome {
        status: Some(status),
        retry_after,
        snippet: String::from_utf8_lossy(&kept)
            .chars()
            .take(SNIPPET)
            .collect(),
        millis: started.elapsed().as_millis() as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_and_end_after_ten_attempts() {
        let mut last = Duration::zero();
        for failed in 1..=9 {
            let wait = next_wait(failed, None, "msg").unwrap();
            assert!(wait > last, "{failed}: {wait} after {last}");
            let base = Duration::seconds(SCHEDULE[failed - 1]);
            assert!(wait >= base && wait <= base + base / 10, "{failed}: {wait}");
            last = wait;
        }
        assert_eq!(next_wait(10, None, "msg"), None);
        assert_eq!(next_wait(0, None, "msg"), None);
        let total: i64 = SCHEDULE.iter().sum();
        assert!(
            (72 * 3600..80 * 3600).contains(&total),
            "about three days: {total}"
        );
        // Retry-After is honoured, within a day.
        assert!(next_wait(1, Some(120), "msg").unwrap() >= Duration::seconds(120));
        assert!(
            next_wait(1, Some(10_000_000), "msg").unwrap() <= Duration::seconds(86_400 + 8_640)
        );
    }
}
