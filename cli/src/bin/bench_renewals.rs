//! Benchmark: renewals per second of the `renew-billing` job on the embedded store.
//!
//! Sets up one tenant through the HTTP API (plan, card, monthly subscription), copies its items
//! to `--count` tenants straight in SQLite (the API would spend minutes on password hashing),
//! moves the clock past their period end, and times one `renew-billing` run that renews them
//! all: each renewal issues an invoice, charges the card and moves the subscription on, as in
//! production. Prints renewals/s and checks every subscription renewed exactly once.
//!
//! With `--priced` the plan has a seat price and two usage charges and the tenant has usage, so
//! each renewal also closes its period for usage and bills seat and usage lines.
//!
//! `cargo run --profile local --bin bench-renewals -- --count 100000 [--priced]` (or
//! `scripts/bench-renewals`, `PRICED=1 scripts/bench-renewals`).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};
use axum::body::Body;
use axum::http::{header, Request};
use clap::Parser;
use eshtarek::{app, context, open_store, StoreKind};
use eshtarek_core::auth::keys::KeySet;
use eshtarek_core::billing::subscriptions::renewal_shard;
use eshtarek_core::clock::{Clock, TestClock};
use eshtarek_core::jobs::{renew_billing, RunLimits};
use eshtarek_core::store::TenantId;
use serde_json::{json, Value};
use tower::ServiceExt;

#[derive(Parser)]
struct Args {
    /// Subscriptions due at once.
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    /// Renewals in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Price components on the plan: a seat price and two usage charges (graduated tiers and
    /// per unit), with usage in each period, so each renewal also closes the period, reads the
    /// counters and the member count, and bills seats and usage lines.
    #[arg(long)]
    priced: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("eshtarek-bench-{}", uuid_like()));
    std::fs::create_dir_all(&dir)?;
    let (store, _) = open_store(StoreKind::Sqlite, &dir, "unused").await?;
    let start = eshtarek_core::time::parse("2027-01-01T00:00:00Z").context("start time")?;
    let clock = Arc::new(TestClock::frozen_at(start));
    let ctx = context(store, clock.clone(), KeySet::ephemeral());
    let router = app(ctx.clone());

    eshtarek_core::auth::service::create_platform_admin(
        &ctx,
        "bench-admin@example.com",
        "bench admin password",
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.detail))?;
    let admin = call(
        &router,
        "POST",
        "/v1/auth/login",
        None,
        json!({"email": "bench-admin@example.com", "password": "bench admin password"}),
    )
    .await;
    let admin = admin["tokens"]["access_token"].as_str().unwrap().to_owned();
    let mut plan_body =
        json!({"name": "Monthly", "price": "29.00", "currency": "USD", "billing_cycle": "monthly"});
    if args.priced {
        plan_body["seats"] = json!({"unit_price": "12.00"});
        plan_body["usage_charges"] = json!([
            {"metric": "api_calls", "included": 1000, "price": {"model": "graduated", "tiers": [
                {"up_to": 10000, "unit_price": "0.01"},
                {"up_to": 100000, "unit_price": "0.008"},
                {"up_to": null, "unit_price": "0.005"}]}},
            {"metric": "tokens", "price": {"model": "per_unit", "unit_price": "0.000002"}}
        ]);
    }
    let plan = call(&router, "POST", "/v1/plans", Some(&admin), plan_body).await;
    let owner = call(&router, "POST", "/v1/auth/register", None, json!({"email": "owner@example.com", "password": "bench owner password", "name": "Owner", "tenant_name": "Template"})).await;
    let token = owner["tokens"]["access_token"].as_str().unwrap().to_owned();
    let template = owner["tokens"]["tenant_id"]
        .as_str()
        .or(owner["tenant"]["id"].as_str())
        .context("the new tenant's id")?
        .to_owned();
    call(
        &router,
        "POST",
        "/v1/payment-methods",
        Some(&token),
        json!({"token": "pm_card_visa"}),
    )
    .await;
    call(
        &router,
        "POST",
        "/v1/subscriptions",
        Some(&token),
        json!({"plan_id": plan["id"]}),
    )
    .await;

    if args.priced {
        let key = call(
            &router,
            "POST",
            "/v1/api-keys",
            Some(&token),
            json!({"name": "bench"}),
        )
        .await;
        let secret = key["secret"].as_str().context("an API key")?.to_owned();
        for (metric, quantity) in [("api_calls", 123_456), ("tokens", 2_500_000)] {
            call(
                &router,
                "POST",
                "/v1/usage/events",
                Some(&secret),
                json!({"metric": metric, "quantity": quantity, "idempotency_key": metric}),
            )
            .await;
        }
    }

    let seeding = Instant::now();
    copy_tenant(&dir.join("eshtarek.db"), &template, args.count - 1)?;
    eprintln!(
        "seeded {} due subscriptions in {:.1} s",
        args.count,
        seeding.elapsed().as_secs_f64()
    );

    clock.advance(chrono::Duration::days(32));
    let limits = RunLimits {
        concurrency: args.concurrency,
        deadline: None,
    };
    let timer = Instant::now();
    let report = renew_billing(&ctx, clock.now(), limits)
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?;
    let elapsed = timer.elapsed().as_secs_f64();
    let renewed = report.outcomes.get("renewed").copied().unwrap_or(0);
    println!(
        "renew-billing{}: {renewed} renewals in {elapsed:.1} s = {:.0} renewals/s (concurrency {}); outcomes {:?}",
        if args.priced { " (seats and usage charges)" } else { "" },
        renewed as f64 / elapsed,
        args.concurrency,
        report.outcomes
    );
    let again = renew_billing(&ctx, clock.now(), limits)
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?;
    std::fs::remove_dir_all(&dir).ok();
    if renewed != args.count as u64 {
        bail!("expected {} renewals, got {renewed}", args.count);
    }
    if again.outcomes.contains_key("renewed") {
        bail!("a second run renewed again: {:?}", again.outcomes);
    }
    println!("ok: every subscription renewed once; a second run renewed none");
    Ok(())
}

/// An `items` row: pk, sk, gsi1pk, gsi1sk, expires_at, attrs.
type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    String,
);

/// Copies every item of the template tenant to `copies` new tenants (`<template>-<n>`), with
/// each copy's renewal index shard recomputed, in one SQLite transaction.
fn copy_tenant(db: &std::path::Path, template: &str, copies: usize) -> anyhow::Result<()> {
    let mut conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let prefix = format!("TENANT#{template}#");
    let rows: Vec<Row> = conn
        .prepare("SELECT pk, sk, gsi1pk, gsi1sk, expires_at, attrs FROM items WHERE pk >= ?1 AND pk < ?2")?
        .query_map(
            rusqlite::params![prefix, format!("TENANT#{template}$")],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )?
        .collect::<Result<_, _>>()?;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO items (pk, sk, gsi1pk, gsi1sk, expires_at, attrs) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for n in 0..copies {
            let id = format!("{template}-{n:06}");
            let shard = renewal_shard(&TenantId::parse(&id)?);
            for (pk, sk, gsi1pk, gsi1sk, expires_at, attrs) in &rows {
                let gsi1pk = gsi1pk.as_ref().map(|g| {
                    if g.starts_with("IDX#RENEWAL#") {
                        shard.clone()
                    } else {
                        g.replace(template, &id)
                    }
                });
                let mut attrs: Value = serde_json::from_str(&attrs.replace(template, &id))?;
                if let (Some(g), Some(map)) = (&gsi1pk, attrs.as_object_mut()) {
                    if map.contains_key("GSI1PK") {
                        map.insert("GSI1PK".into(), json!({"S": g}));
                    }
                }
                insert.execute(rusqlite::params![
                    pk.replace(template, &id),
                    sk.replace(template, &id),
                    gsi1pk,
                    gsi1sk.as_ref().map(|g| g.replace(template, &id)),
                    expires_at,
                    attrs.to_string(),
                ])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

/// One request through the composed router, in process; panics unless it succeeds.
async fn call(
    router: &eshtarek_core::service::HttpApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Value {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Body::from(body.to_string())).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {body}");
    body
}
