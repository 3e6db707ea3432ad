//! `Idempotency-Key` on state-changing POSTs and PATCHes: the first request with a key runs
//! and, when it succeeds, its response is kept for 24 hours (an error is not kept: a retry
//! with the same key runs again); a repeat with the same key and the same request gets that
//! response again (`Idempotent-Replayed: true`) and changes nothing; the same key with a
//! different request is a 422; a repeat while the first is still running is a 409.
//!
//! "Still running" is a lease, not a promise: the claim holds the key for the request timeout
//! plus a second ([`lease_secs`]), the longest a live request can run (the timeout ends it).
//! A claim left behind by an invocation that was killed (a Lambda timeout, a crash) lapses
//! then, and a retry runs. Each claim carries its own id and is released (after an error) only
//! by its owner, so an attempt that outlived its lease never deletes the retry's claim or the
//! answer kept for it; the first success is the answer kept (a later one, from an attempt that
//! outlived its lease or from the retry after it, never replaces it). The price, as with any
//! lease: a handler that committed its writes and was killed before its answer was kept runs
//! again on the retry; the handlers' own conditions (unique names, revisions, one trial per
//! tenant) refuse what must not happen twice.
//!
//! A record belongs to one principal: the signed-in user *and* session that made the first
//! request, on one route, in one tenant (the record's partition). Another user or session
//! sending the same key and body gets a record of its own, so its request runs through every
//! check of the handler; a replay is answered only after the same authentication and
//! session-liveness check a fresh request passes (a removed member's, a logged-out session's or
//! a suspended tenant's replay is a 401, never the stored answer). Role changes, removal and
//! suspension end the sessions they affect, so a live session still holds the authority it had.
//!
//! Secrets are never kept: a handler whose answer carries one marks the response with
//! [`Replay`], and the record keeps the answer without the secret (or nothing at all).
//! Anonymous requests (signup, login) and API-key requests are not keyed here (usage events
//! carry their own `idempotency_key`).

use std::future::Future;

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, Request};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::tokens::sha256_hex;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::{AttrValue, Condition, Item, Key, Store, StoreError, StoreExt, TenantId};
use crate::AppContext;

pub const HEADER: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";
const TTL_SECS: i64 = 24 * 3600;

/// How long an `in_progress` claim holds its key: the request timeout (which ends every live
/// request), rounded up, plus a second for clock granularity.
pub fn lease_secs(ctx: &AppContext) -> i64 {
    lease_for(ctx.http.request_timeout)
}

fn lease_for(timeout: std::time::Duration) -> i64 {
    let whole = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    i64::try_from(whole).unwrap_or(i64::MAX / 2) + 1
}
const MAX_BODY: usize = crate::hardening::MAX_BODY_BYTES;
const MAX_STORED_RESPONSE: usize = 256 * 1024;

/// What the record of a successful answer keeps, set by a handler on its response.
#[derive(Debug, Clone)]
pub enum Replay {
    /// Keep this body instead of the answer's (the answer without its secret).
    Without(Vec<u8>),
    /// Keep nothing: a repeat runs again (answers that carry session tokens).
    Never,
}

enum Scope {
    Tenant(TenantId),
    User(String),
}

/// The record of `key` for this principal and route: the hash covers all three, so nobody
/// else's request can ever find it.
fn record_key(ctx: &AppContext, scope: &Scope, caller: &Caller, route: &str, key: &str) -> Key {
    let sk = format!(
        "K#{}",
        sha256_hex(&format!(
            "{}\n{}\n{route}\n{key}",
            caller.user_id, caller.session_id
        ))
    );
    match scope {
        Scope::Tenant(t) => ctx.stores.tenant(t).key("IDEMP", sk),
        Scope::User(user) => Key::new(format!("IDEMP#USER#{user}"), sk),
    }
}

async fn write(
    ctx: &AppContext,
    scope: &Scope,
    item: Item,
    condition: Condition,
) -> Result<(), StoreError> {
    match scope {
        Scope::Tenant(t) => ctx.stores.tenant(t).put(item, Some(condition)).await,
        Scope::User(_) => ctx.stores.platform().put(item, Some(condition)).await,
    }
}

async fn read(ctx: &AppContext, scope: &Scope, key: &Key) -> Result<Option<Item>, StoreError> {
    match scope {
        Scope::Tenant(t) => ctx.stores.tenant(t).get(key).await,
        Scope::User(_) => ctx.stores.platform().get(key).await,
    }
}

/// Releases this claim's key, unless another claim holds it now.
async fn forget(ctx: &AppContext, scope: &Scope, key: Key, claim: &str) {
    let ours = Some(Condition::eq("claim_id", claim));
    let result = match scope {
        Scope::Tenant(t) => ctx.stores.tenant(t).delete(key, ours).await,
        Scope::User(_) => ctx.stores.platform().delete(key, ours).await,
    };
    match result {
        Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
        Err(e) => tracing::warn!(error = %e, "could not release an idempotency key"),
    }
}

/// Runs the request through `run`, keyed when it is a POST carrying the header from a signed-in
/// caller; everything else passes straight through.
pub(crate) async fn around<F, Fut>(ctx: &AppContext, request: Request, run: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let keyed_method = request.method() == Method::POST || request.method() == Method::PATCH;
    if !keyed_method || !request.headers().contains_key(HEADER) {
        return run(request).await;
    }
    match handle(ctx, request, run).await {
        Ok(response) | Err(response) => response,
    }
}

async fn handle<F, Fut>(ctx: &AppContext, request: Request, run: F) -> Result<Response, Response>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let key = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..0x7f).contains(&b)))
        .ok_or_else(|| {
            ApiError::validation("Idempotency-Key", "1 to 255 visible ASCII characters")
                .into_response()
        })?;
    // The principal is authenticated exactly as the handler would (token, live session); the
    // handler's extractor reuses it. Without one, the request runs unkeyed and fails there.
    let (mut parts, body) = request.into_parts();
    let caller = match Caller::from_request_parts(&mut parts, ctx).await {
        Ok(caller) => caller,
        Err(_) => return Ok(run(Request::from_parts(parts, body)).await),
    };
    parts.extensions.insert(caller.clone());
    let scope = match &caller.tenant {
        Some(tenant) => Scope::Tenant(tenant.clone()),
        None => Scope::User(caller.user_id.clone()),
    };
    let bytes = to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
        )
        .into_response()
    })?;
    let route = format!("{} {}", parts.method, parts.uri);
    let fingerprint = sha256_hex(&format!("{route}\n{}", String::from_utf8_lossy(&bytes)));
    let record = record_key(ctx, &scope, &caller, &route, &key);
    let now = ctx.clock.now().timestamp();

    let claim_id = uuid::Uuid::new_v4().simple().to_string();
    let lease_end = now + lease_secs(ctx);
    let claim = Item::new(record.clone())
        .with("fingerprint", fingerprint.as_str())
        .with("state", "in_progress")
        .with("claim_id", claim_id.as_str())
        .with("expires_epoch", lease_end)
        .with_ttl(lease_end);
    // Absent, or expired (a lapsed lease, a kept answer past its 24 h; TTL deletion is lazy):
    // this request owns the key.
    let free = Condition::Or(vec![
        Condition::ItemNotExists,
        Condition::lt("expires_epoch", now),
    ]);
    match write(ctx, &scope, claim, free).await {
        Ok(()) => {}
        Err(StoreError::ConditionFailed { .. }) => {
            return Err(replay(ctx, &scope, &record, &fingerprint).await)
        }
        Err(e) => return Err(ApiError::from(e).into_response()),
    }

    let response = run(Request::from_parts(parts, Body::from(bytes))).await;
    if !response.status().is_success() {
        // Only a success is kept: an error (a 409 "retry", a 402 before an upgrade, a 5xx)
        // may not hold the next time, and a retry with the same key must be able to run.
        forget(ctx, &scope, record, &claim_id).await;
        return Ok(response);
    }
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let kept = match parts.extensions.remove::<Replay>() {
        None => Some(bytes.to_vec()),
        Some(Replay::Without(redacted)) => Some(redacted),
        Some(Replay::Never) => None,
    };
    if let Some(kept) = kept.filter(|k| k.len() <= MAX_STORED_RESPONSE) {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        // Kept for 24 h from now, not from the claim.
        let now = ctx.clock.now().timestamp();
        let done = Item::new(record.clone())
            .with("fingerprint", fingerprint.as_str())
            .with("state", "done")
            .with("claim_id", claim_id.as_str())
            .with("status", i64::from(parts.status.as_u16()))
            .with("content_type", content_type)
            .with("body", AttrValue::B(kept))
            .with("expires_epoch", now + TTL_SECS)
            .with_ttl(now + TTL_SECS);
        // Whoever's claim is on the key (ours, or a retry's after our lease lapsed), the first
        // success is the one kept: its writes landed, and replays must tell the client so.
        match write(ctx, &scope, done, Condition::eq("state", "in_progress")).await {
            Ok(()) => {}
            // Another attempt with this key succeeded first: its answer stands.
            Err(StoreError::ConditionFailed { .. }) => {
                tracing::warn!("an idempotent request finished after another with its key")
            }
            Err(e) => tracing::warn!(error = %e, "could not keep an idempotent response"),
        }
    } else {
        forget(ctx, &scope, record, &claim_id).await;
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

async fn replay(ctx: &AppContext, scope: &Scope, record: &Key, fingerprint: &str) -> Response {
    let stored = match read(ctx, scope, record).await {
        Ok(Some(item)) => item,
        Ok(None) => {
            return ApiError::conflict("a request with this Idempotency-Key just finished; retry")
                .into_response()
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    if stored.str("fingerprint") != Some(fingerprint) {
        return ApiError::validation(
            "Idempotency-Key",
            "this key was used for a different request",
        )
        .into_response();
    }
    if stored.str("state") != Some("done") {
        return ApiError::conflict("a request with this Idempotency-Key is still in progress")
            .into_response();
    }
    let status = stored
        .i64("status")
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    let body = match stored.get("body") {
        Some(AttrValue::B(bytes)) => bytes.clone(),
        _ => Vec::new(),
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    if let Some(ct) = stored
        .str("content_type")
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    headers.insert(
        HeaderName::from_static(REPLAYED),
        HeaderValue::from_static("true"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::lease_for;
    use std::time::Duration;

    #[test]
    fn the_lease_outlasts_the_request_timeout() {
        assert_eq!(lease_for(Duration::from_millis(50)), 2);
        assert_eq!(lease_for(Duration::from_secs(8)), 9);
        assert_eq!(lease_for(Duration::from_millis(8_001)), 10);
        // Claims are stamped in whole seconds and reclaimed when `expires_epoch < now`: a
        // retry can take over only after more than the lease has passed.
        for ms in [1, 999, 1_000, 14_500, 15_000] {
            let timeout = Duration::from_millis(ms);
            assert!(Duration::from_secs(lease_for(timeout) as u64) > timeout);
        }
    }
}
