//! Sessions (refresh-token families): their keys, the live-session check every request makes,
//! and revocation. Below the sign-in use cases and tenants, which end sessions.

use crate::error::ApiError;
use crate::store::{Condition, Key, Query, Store, StoreError, StoreExt, TenantId, UpdateAction};
use crate::AppContext;

pub fn session_key(user_id: &str, session_id: &str) -> Key {
    Key::new(format!("USER#{user_id}"), format!("SESSION#{session_id}"))
}

/// A live session as the request path needs it.
#[derive(Debug, Clone)]
pub struct Session {
    pub tenant_id: Option<String>,
    pub generation: u64,
    pub refresh_hash: String,
    pub refresh_expires_epoch: i64,
    /// The previous refresh token's hash, when it was rotated and the next one sealed with
    /// it (the reuse window, see `refresh`).
    pub previous: Option<(String, i64, String)>,
    /// Hashes of the last few refresh tokens this session rotated away from: presenting one
    /// is a reuse. Anything else with an old generation is just invalid (a forged token that
    /// names the session must not be able to end it).
    pub used_hashes: Vec<String>,
}

/// Loads a session that is neither revoked nor expired; otherwise 401.
pub async fn load_live_session(
    ctx: &AppContext,
    user_id: &str,
    session_id: &str,
) -> Result<Session, ApiError> {
    let item = ctx
        .stores
        .platform()
        .get(&session_key(user_id, session_id))
        .await?;
    live_session_of(ctx, item)
}

/// The same check on a session item read already (with others, in one batch).
pub fn live_session_of(
    ctx: &AppContext,
    item: Option<crate::store::Item>,
) -> Result<Session, ApiError> {
    let ended = || {
        ApiError::unauthenticated("the session has ended; log in again")
            .with("code", "session_ended")
    };
    let item = item.ok_or_else(ended)?;
    let expires = item.i64("refresh_expires_epoch").unwrap_or(0);
    if item.bool("revoked").unwrap_or(true) || ctx.clock.now().timestamp() >= expires {
        return Err(ended());
    }
    Ok(Session {
        tenant_id: item.str("tenant_id").map(str::to_owned),
        generation: item.i64("generation").unwrap_or(0) as u64,
        refresh_hash: item.str("refresh_hash").unwrap_or_default().to_owned(),
        refresh_expires_epoch: expires,
        previous: match (
            item.str("previous_hash"),
            item.i64("rotated_epoch"),
            item.str("sealed_next"),
        ) {
            (Some(hash), Some(at), Some(sealed)) => Some((hash.to_owned(), at, sealed.to_owned())),
            _ => None,
        },
        used_hashes: item
            .str("used_hashes")
            .unwrap_or_default()
            .split(' ')
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

pub async fn revoke_session(
    ctx: &AppContext,
    user_id: &str,
    session_id: &str,
) -> Result<(), ApiError> {
    let result = ctx
        .stores
        .platform()
        .update(
            session_key(user_id, session_id),
            vec![UpdateAction::set("revoked", true)],
            Some(Condition::ItemExists),
        )
        .await;
    match result {
        Ok(_) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Revokes every session of a user, or only those acting in `tenant`.
pub async fn revoke_user_sessions(
    ctx: &AppContext,
    user_id: &str,
    tenant: Option<&TenantId>,
) -> Result<usize, ApiError> {
    let platform = ctx.stores.platform();
    let mut cursor = None;
    let mut revoked = 0;
    loop {
        let page = platform
            .query(
                &Query::table(format!("USER#{user_id}"))
                    .begins_with("SESSION#")
                    .limit(100)
                    .after(cursor),
            )
            .await?;
        for item in &page.items {
            let in_scope = tenant.is_none_or(|t| item.str("tenant_id") == Some(t.as_str()));
            if in_scope && item.bool("revoked") == Some(false) {
                let session_id = item.key.sk.trim_start_matches("SESSION#");
                revoke_session(ctx, user_id, session_id).await?;
                revoked += 1;
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(revoked),
        }
    }
}
