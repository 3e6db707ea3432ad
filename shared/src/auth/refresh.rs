//! Refresh-token rotation with reuse detection and a short reuse window.
//!
//! Every refresh rotates the token. A token presented again after its rotation means a copy
//! exists — the legitimate client's or a thief's, we cannot tell — so the whole session is
//! revoked. Except within [`REUSE_WINDOW_SECS`] of the rotation: a client that sent the same
//! refresh from several tabs or retried after a lost answer gets the same new token again
//! (as the major identity providers allow), not a revoked session.
//!
//! Only a token the session really issued counts as reused: the session remembers the hashes
//! of its last few rotated tokens, so a forged token that merely names a session (its id is in
//! every access token) is refused as invalid and ends nothing.
//!
//! The store keeps refresh tokens as hashes only. To answer the same new token twice without
//! keeping it, the rotation stores it *sealed* with the token it replaced: XOR with SHA-256 of
//! the old secret (32 random bytes, used once), so only a holder of the old token can open it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::service::{active_membership, parse_refresh, platform_role, token_pair, TokenPair};
use super::sessions::{load_live_session, revoke_session, session_key, Session};
use super::tokens::{same_secret, RefreshToken};
use super::Role;
use crate::error::ApiError;
use crate::store::{Condition, StoreError, StoreExt, TenantId, UpdateAction, TTL};
use crate::AppContext;

/// How long after a rotation the replaced token still answers with its successor.
pub const REUSE_WINDOW_SECS: i64 = 10;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

fn pad(old: &RefreshToken) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"eshtarek refresh seal\0");
    hasher.update(old.secret.as_bytes());
    hasher.finalize().into()
}

fn seal(next: &RefreshToken, old: &RefreshToken) -> String {
    let secret = URL_SAFE_NO_PAD.decode(&next.secret).unwrap_or_default();
    let sealed: Vec<u8> = secret.iter().zip(pad(old)).map(|(a, b)| a ^ b).collect();
    URL_SAFE_NO_PAD.encode(sealed)
}

fn unseal(sealed: &str, old: &RefreshToken, generation: u64) -> Option<RefreshToken> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if bytes.len() != 32 {
        return None;
    }
    let secret: Vec<u8> = bytes.iter().zip(pad(old)).map(|(a, b)| a ^ b).collect();
    Some(RefreshToken {
        session_id: old.session_id.clone(),
        generation,
        secret: URL_SAFE_NO_PAD.encode(secret),
    })
}

/// How many rotated-away tokens a session remembers (a copy older than that is refused as
/// invalid, without ending the session).
const REMEMBERED: usize = 8;

fn remember_used(session: &Session, presented: &RefreshToken) -> String {
    let mut used = vec![presented.hash()];
    used.extend(session.used_hashes.iter().take(REMEMBERED - 1).cloned());
    used.join(" ")
}

fn reused() -> ApiError {
    ApiError::unauthenticated("this refresh token was already used; the session is revoked")
        .with("code", "refresh_token_reused")
}

/// The token that replaced `presented`, when `presented` is the one rotated last and the
/// rotation is recent.
fn within_window(session: &Session, presented: &RefreshToken, now: i64) -> Option<RefreshToken> {
    let (previous_hash, rotated, sealed) = session.previous.as_ref()?;
    if presented.generation + 1 != session.generation
        || now - rotated > REUSE_WINDOW_SECS
        || !same_secret(&presented.hash(), previous_hash)
    {
        return None;
    }
    let next = unseal(sealed, presented, session.generation)?;
    same_secret(&next.hash(), &session.refresh_hash).then_some(next)
}

/// Rotates a refresh token (see the module's comment for reuse).
pub async fn refresh(ctx: &AppContext, req: RefreshRequest) -> Result<TokenPair, ApiError> {
    ctx.tokens.keep_fresh().await;
    let invalid =
        || ApiError::unauthenticated("invalid refresh token").with("code", "invalid_refresh_token");
    let (user_id, presented) = parse_refresh(&req.refresh_token).ok_or_else(invalid)?;
    let session = load_live_session(ctx, &user_id, &presented.session_id).await?;
    let now = ctx.clock.now();
    if let Some(next) = within_window(&session, &presented, now.timestamp()) {
        return answer(ctx, &user_id, &session, &next, now).await;
    }
    let genuine_old = session
        .used_hashes
        .iter()
        .any(|h| same_secret(h, &presented.hash()));
    if presented.generation < session.generation && genuine_old {
        revoke_session(ctx, &user_id, &presented.session_id).await?;
        tracing::warn!(
            user_id,
            session_id = presented.session_id,
            "refresh token reuse; session revoked"
        );
        return Err(reused());
    }
    if presented.generation != session.generation
        || !same_secret(&presented.hash(), &session.refresh_hash)
    {
        return Err(invalid());
    }
    let (tenant, role) = standing(ctx, &user_id, &presented.session_id, &session).await?;
    let next = RefreshToken::new(&presented.session_id, session.generation + 1);
    let refresh_expires = now + ctx.tokens.settings.refresh_ttl;
    let mut actions = vec![
        UpdateAction::set("generation", (session.generation + 1) as i64),
        UpdateAction::set("refresh_hash", next.hash()),
        UpdateAction::set("refresh_expires_epoch", refresh_expires.timestamp()),
        UpdateAction::set(TTL, refresh_expires.timestamp() + 86_400),
        UpdateAction::set("previous_hash", presented.hash()),
        UpdateAction::set("rotated_epoch", now.timestamp()),
        UpdateAction::set("sealed_next", seal(&next, &presented)),
        UpdateAction::set("used_hashes", remember_used(&session, &presented)),
    ];
    if let Some(role) = role {
        actions.push(UpdateAction::set("role", role.as_str()));
    }
    let rotated = ctx
        .stores
        .platform()
        .update(
            session_key(&user_id, &presented.session_id),
            actions,
            Some(Condition::And(vec![
                Condition::eq("generation", session.generation as i64),
                Condition::eq("revoked", false),
            ])),
        )
        .await;
    match rotated {
        Ok(_) => {}
        // A concurrent refresh with the same token won: within the window this one gets the
        // same new token; otherwise it is a reuse.
        Err(StoreError::ConditionFailed { .. }) => {
            let now_session = load_live_session(ctx, &user_id, &presented.session_id).await?;
            if let Some(next) = within_window(&now_session, &presented, now.timestamp()) {
                return answer(ctx, &user_id, &now_session, &next, now).await;
            }
            revoke_session(ctx, &user_id, &presented.session_id).await?;
            return Err(reused());
        }
        Err(e) => return Err(e.into()),
    }
    token_pair(
        ctx,
        &user_id,
        &presented.session_id,
        tenant.as_ref().map(TenantId::as_str),
        role,
        &next,
        refresh_expires,
        now,
    )
}

/// The pair for a token handed out again within the window (a fresh access token, the same
/// refresh token).
async fn answer(
    ctx: &AppContext,
    user_id: &str,
    session: &Session,
    next: &RefreshToken,
    now: DateTime<Utc>,
) -> Result<TokenPair, ApiError> {
    let (tenant, role) = standing(ctx, user_id, &next.session_id, session).await?;
    let expires = Utc
        .timestamp_opt(session.refresh_expires_epoch, 0)
        .single()
        .ok_or_else(|| ApiError::internal("bad session expiry"))?;
    token_pair(
        ctx,
        user_id,
        &next.session_id,
        tenant.as_ref().map(TenantId::as_str),
        role,
        next,
        expires,
        now,
    )
}

/// The tenant and role a refresh acts with. Membership and tenant status are checked again: a
/// removed member cannot refresh back in (their session ends).
async fn standing(
    ctx: &AppContext,
    user_id: &str,
    session_id: &str,
    session: &Session,
) -> Result<(Option<TenantId>, Option<Role>), ApiError> {
    match &session.tenant_id {
        Some(t) => {
            let tenant_id = TenantId::parse(t).map_err(ApiError::internal)?;
            match active_membership(ctx, user_id, &tenant_id).await {
                Ok((role, _)) => Ok((Some(tenant_id), Some(role))),
                Err(e) => {
                    revoke_session(ctx, user_id, session_id).await?;
                    Err(ApiError::unauthenticated(e.detail))
                }
            }
        }
        None => Ok((None, platform_role(ctx, user_id).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_replaced_token_opens_the_seal() {
        let old = RefreshToken::new("ses_1", 3);
        let next = RefreshToken::new("ses_1", 4);
        let sealed = seal(&next, &old);
        assert_eq!(unseal(&sealed, &old, 4).unwrap().secret, next.secret);
        let other = RefreshToken::new("ses_1", 3);
        assert_ne!(unseal(&sealed, &other, 4).unwrap().secret, next.secret);
        assert_ne!(sealed, next.secret, "the stored value is not the token");
    }
}
