//! Users, sessions and tokens: register, login, refresh with rotation and reuse detection,
//! logout, switching tenants, password setup for invited users.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::password;
use super::ratelimit;
use super::sessions::{revoke_session, revoke_user_sessions, session_key};
use super::tokens::{sha256_hex, AccessGrant, RefreshToken};
use super::{Caller, ClientIp, Role};
use crate::error::ApiError;
use crate::identity::{
    find_user_id_by_email, load_user, new_user_ops, user_item, user_key, UserView,
};
use crate::ids::new_id;
use crate::store::{Condition, Item, StoreExt, TenantId, UpdateAction, WriteOp};
use crate::tenants::{self, TenantView};
use crate::text::{check_name, normalize_email};
use crate::time;
use crate::AppContext;

// ---- views -----------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub expires_at: String,
    pub refresh_token: String,
    pub refresh_expires_at: String,
    pub tenant_id: Option<String>,
    pub role: Option<Role>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthResponse {
    pub user: UserView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantView>,
    pub tokens: TokenPair,
}

// ---- users -----------------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    pub name: String,
    #[serde(default)]
    pub tenant_name: Option<String>,
}

/// Self-service signup: a global user, and with `tenant_name` their tenant as its admin.
/// Never makes a platform admin.
pub async fn register(
    ctx: &AppContext,
    req: RegisterRequest,
    ip: ClientIp,
) -> Result<AuthResponse, ApiError> {
    let now = ctx.clock.now();
    // Before any work: per address, then platform-wide (each signup costs an argon2 run).
    if let Some(ip) = ip.0 {
        ratelimit::hit(
            ctx,
            "register-ip",
            &ratelimit::address_subject(ip),
            ctx.auth_limits.register_per_ip,
            now,
        )
        .await?;
    }
    ratelimit::hit(ctx, "register", "all", ctx.auth_limits.register_global, now).await?;
    let email = normalize_email(&req.email, "email")?;
    let name = check_name(&req.name, "name")?;
    password::check_policy(&req.password, &email, "password")?;
    let tenant_name = req
        .tenant_name
        .as_deref()
        .map(|n| check_name(n, "tenant_name"))
        .transpose()?;
    // An address someone registered and never confirmed within the verification window is
    // free again: whoever signs up with it now takes the account over as new (an unconfirmed
    // registration must not keep the address's owner out for ever).
    let stale = match find_user_id_by_email(ctx, &email).await? {
        None => None,
        Some(id) => {
            let existing = load_user(ctx, &id).await?;
            let unconfirmed_since = existing
                .as_ref()
                .filter(|u| !u.bool("email_verified").unwrap_or(false))
                .and_then(|u| u.str("created_at").and_then(crate::time::parse));
            match unconfirmed_since {
                Some(at) if at + super::verification::window() <= now => Some(id),
                _ => return Err(email_taken()),
            }
        }
    };
    let hash = password::hash(req.password).await?;
    let user_id = stale.clone().unwrap_or_else(|| new_id("usr"));
    let user = user_item(&user_id, &email, &name, Some(&hash), false, false, now);
    let (token, verify_op) = super::verification::token_op(&user_id, &email, now);
    // Two steps, each with its own principal: the account (the platform's: the email claim
    // decides who registers an address), then the tenant and its first admin (the tenant's
    // own items). A refused second step takes a new account back.
    match &stale {
        None => new_user_ops(ctx.stores.transaction(), &user, &email),
        // The profile replaced whole, on condition it is still unconfirmed.
        Some(_) => ctx.stores.transaction().platform(WriteOp::Put {
            item: user.clone(),
            condition: Some(Condition::eq("email_verified", false)),
        }),
    }
    .platform(verify_op)
    .commit()
    .await
    .map_err(|e| match e.failed_condition_index() {
        Some(0) => email_taken(),
        _ => ApiError::from(e),
    })?;
    let mut tenant = None;
    if let Some(tenant_name) = tenant_name {
        let tenant_id = TenantId::parse(&new_id("ten")).map_err(ApiError::internal)?;
        let created = tenants::create_ops(
            ctx,
            ctx.stores.transaction(),
            &tenant_id,
            &tenant_name,
            Some(&user),
            now,
        )
        .commit()
        .await;
        if let Err(e) = created {
            if stale.is_none() {
                crate::identity::delete_new_user(ctx, &user_id, &email).await;
            }
            return Err(e.into());
        }
        tenant = Some(tenant_id);
    }
    if let Some(id) = &stale {
        // Nothing of the earlier registrant's stays: sessions, memberships.
        revoke_user_sessions(ctx, id, None).await?;
        tenants::drop_memberships_of(ctx, id, tenant.as_ref()).await?;
    }
    super::verification::send(ctx, &email, &token);
    let (tokens, tenant_view) = match tenant {
        Some(tenant_id) => {
            let view = tenants::load_tenant(ctx, &tenant_id).await?;
            let tokens =
                start_session(ctx, &user_id, Some((&tenant_id, Role::TenantAdmin))).await?;
            (tokens, view)
        }
        None => (start_session(ctx, &user_id, None).await?, None),
    };
    Ok(AuthResponse {
        user: UserView::from_item(&user)?,
        tenant: tenant_view,
        tokens,
    })
}

fn email_taken() -> ApiError {
    ApiError::conflict("an account with this email already exists").field("email")
}

/// Makes a platform admin (the CLI's `admin create-platform-admin`, and tests). An existing user
/// with that email is promoted, and their password is set.
pub async fn create_platform_admin(
    ctx: &AppContext,
    email: &str,
    password_text: &str,
) -> Result<UserView, ApiError> {
    let email = normalize_email(email, "email")?;
    password::check_policy(password_text, &email, "password")?;
    let hash = password::hash(password_text.to_owned()).await?;
    let platform = ctx.stores.platform();
    if let Some(user_id) = find_user_id_by_email(ctx, &email).await? {
        let item = platform
            .update(
                user_key(&user_id),
                // The operator who runs the CLI vouches for the address.
                vec![
                    UpdateAction::set("platform_admin", true),
                    UpdateAction::set("password_hash", hash),
                    UpdateAction::set("email_verified", true),
                ],
                Some(Condition::ItemExists),
            )
            .await?;
        return Ok(UserView::from_item(&item)?);
    }
    let now = ctx.clock.now();
    let user_id = new_id("usr");
    let user = user_item(
        &user_id,
        &email,
        "Platform admin",
        Some(&hash),
        true,
        true,
        now,
    );
    new_user_ops(ctx.stores.transaction(), &user, &email)
        .commit()
        .await?;
    Ok(UserView::from_item(&user)?)
}

// ---- sessions --------------------------------------------------------------------------------

/// Starts a session (a refresh-token family) and returns its first token pair.
pub async fn start_session(
    ctx: &AppContext,
    user_id: &str,
    tenant: Option<(&TenantId, Role)>,
) -> Result<TokenPair, ApiError> {
    // Sign with the current key set (a rotation reaches a warm instance within minutes).
    ctx.tokens.keep_fresh().await;
    let now = ctx.clock.now();
    let session_id = new_id("ses");
    let refresh = RefreshToken::new(&session_id, 0);
    let refresh_expires = now + ctx.tokens.settings.refresh_ttl;
    let mut item = Item::new(session_key(user_id, &session_id))
        .with("user_id", user_id)
        .with("refresh_hash", refresh.hash())
        .with("generation", 0)
        .with("revoked", false)
        .with("created_at", time::fmt(now))
        .with("refresh_expires_epoch", refresh_expires.timestamp())
        // Kept a day past expiry so a late replay is still recognised as such.
        .with_ttl(refresh_expires.timestamp() + 86_400);
    let role = match tenant {
        Some((tenant_id, role)) => {
            item = item
                .with("tenant_id", tenant_id.as_str())
                .with("role", role.as_str());
            Some(role)
        }
        None => platform_role(ctx, user_id).await?,
    };
    ctx.stores
        .platform()
        .put(item, Some(Condition::ItemNotExists))
        .await?;
    if let Some((tenant_id, _)) = tenant {
        // The tenant a login without `tenant_id` lands in next time: the one used last.
        ctx.stores
            .platform()
            .update(
                user_key(user_id),
                vec![UpdateAction::set("last_tenant_id", tenant_id.as_str())],
                Some(Condition::ItemExists),
            )
            .await?;
    }
    token_pair(
        ctx,
        user_id,
        &session_id,
        tenant.map(|t| t.0.as_str()),
        role,
        &refresh,
        refresh_expires,
        now,
    )
}

pub(super) async fn platform_role(
    ctx: &AppContext,
    user_id: &str,
) -> Result<Option<Role>, ApiError> {
    let user = load_user(ctx, user_id).await?;
    Ok(user
        .and_then(|u| u.bool("platform_admin"))
        .filter(|admin| *admin)
        .map(|_| Role::PlatformAdmin))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn token_pair(
    ctx: &AppContext,
    user_id: &str,
    session_id: &str,
    tenant_id: Option<&str>,
    role: Option<Role>,
    refresh: &RefreshToken,
    refresh_expires: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<TokenPair, ApiError> {
    let (access, expires) = ctx.tokens.issue_access(
        AccessGrant {
            user_id,
            tenant_id,
            role,
            session_id,
        },
        now,
    )?;
    Ok(TokenPair {
        access_token: access,
        token_type: "Bearer",
        expires_in: (expires - now).num_seconds(),
        expires_at: time::fmt(expires),
        refresh_token: format!("{}~{}", user_id, refresh.encode()),
        refresh_expires_at: time::fmt(refresh_expires),
        tenant_id: tenant_id.map(str::to_owned),
        role,
    })
}

/// Splits the refresh token we hand out (`<user id>~rt.<session>.<generation>.<secret>`).
pub(super) fn parse_refresh(text: &str) -> Option<(String, RefreshToken)> {
    let (user_id, rest) = text.split_once('~')?;
    if user_id.is_empty() || user_id.len() > 64 {
        return None;
    }
    Some((user_id.to_owned(), RefreshToken::parse(rest)?))
}

// ---- login, refresh, logout ------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
}

fn bad_credentials() -> ApiError {
    ApiError::unauthenticated("wrong email or password").with("code", "invalid_credentials")
}

pub async fn login(
    ctx: &AppContext,
    req: LoginRequest,
    ip: ClientIp,
) -> Result<AuthResponse, ApiError> {
    let now = ctx.clock.now();
    // An unparseable email still costs an argon2 run and an attempt, like a wrong one.
    let email = req.email.trim().to_lowercase();
    if email.is_empty() || email.len() > 254 {
        return Err(ApiError::validation("email", "enter your email address"));
    }
    if req.password.is_empty() || req.password.len() > 4 * password::MAX_LENGTH {
        return Err(ApiError::validation("password", "enter your password"));
    }
    if let Some(ip) = ip.0 {
        ratelimit::hit(
            ctx,
            "login-ip",
            &ratelimit::address_subject(ip),
            ctx.auth_limits.login_per_ip,
            now,
        )
        .await?;
    }
    // The lockout is per (email, address); per email alone there is a much higher ceiling
    // with growing delays, so guesses from elsewhere never lock the owner out.
    let address =
        ip.0.map_or_else(|| "-".to_owned(), ratelimit::address_subject);
    let pair = sha256_hex(&format!("{email}\n{address}"));
    ratelimit::hit(
        ctx,
        "login-pair",
        &pair,
        ctx.auth_limits.login_per_email,
        now,
    )
    .await?;
    let email_subject = sha256_hex(&email);
    let ceiling = ctx.auth_limits.login_ceiling_per_email;
    let failures = ratelimit::read(ctx, "login-fail", &email_subject, ceiling, now).await?;
    if failures.room(ceiling) == 0 {
        return Err(ApiError::rate_limited(failures.wait_secs(ceiling))
            .detail("too many failed sign-ins for this account; wait before trying again"));
    }
    let failures = failures.weighted(ceiling);
    let delay = ratelimit::login_delay(failures);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let user = match find_user_id_by_email(ctx, &email).await? {
        Some(id) => load_user(ctx, &id).await?,
        None => None,
    };
    let stored_hash = user
        .as_ref()
        .and_then(|u| u.str("password_hash").map(str::to_owned));
    if !password::verify(req.password, stored_hash).await? {
        ratelimit::add(ctx, "login-fail", &email_subject, ceiling, now).await;
        return Err(bad_credentials());
    }
    let user = user.ok_or_else(bad_credentials)?;
    let user_view = UserView::from_item(&user)?;
    ratelimit::reset(
        ctx,
        "login-pair",
        &pair,
        ctx.auth_limits.login_per_email,
        now,
    )
    .await;
    let last = user.str("last_tenant_id").map(str::to_owned);
    let tenant = choose_login_tenant(ctx, &user_view, req.tenant_id.as_deref(), last).await?;
    let (tokens, tenant_view) = match tenant {
        Some((tenant_id, role, view)) => (
            start_session(ctx, &user_view.id, Some((&tenant_id, role))).await?,
            Some(view),
        ),
        None => (start_session(ctx, &user_view.id, None).await?, None),
    };
    Ok(AuthResponse {
        user: user_view,
        tenant: tenant_view,
        tokens,
    })
}

/// The membership a login acts in: the one asked for, else the one used last, else the one
/// joined first; none for a platform admin who asks for none or a user without memberships.
/// Memberships exist only once accepted, so a login never lands in a tenant the person did not
/// agree to join.
async fn choose_login_tenant(
    ctx: &AppContext,
    user: &UserView,
    wanted: Option<&str>,
    last: Option<String>,
) -> Result<Option<(TenantId, Role, TenantView)>, ApiError> {
    if wanted.is_none() && !user.platform_admin {
        if let Some(last) = last.and_then(|t| TenantId::parse(&t).ok()) {
            if let Ok((role, view)) = active_membership(ctx, &user.id, &last).await {
                return Ok(Some((last, role, view)));
            }
        }
    }
    let tenant_id = match wanted {
        Some(raw) => {
            let id = TenantId::parse(raw)
                .map_err(|_| ApiError::validation("tenant_id", "no such tenant membership"))?;
            Some(id)
        }
        None if user.platform_admin => None,
        None => first_membership(ctx, &user.id).await?,
    };
    let Some(tenant_id) = tenant_id else {
        return Ok(None);
    };
    let (role, view) = active_membership(ctx, &user.id, &tenant_id)
        .await
        .map_err(|e| {
            if e.status == 404 {
                ApiError::validation("tenant_id", "you are not a member of that tenant")
            } else {
                e
            }
        })?;
    Ok(Some((tenant_id, role, view)))
}

/// The membership joined first (not the lowest tenant id: ids say nothing of consent).
async fn first_membership(ctx: &AppContext, user_id: &str) -> Result<Option<TenantId>, ApiError> {
    Ok(crate::tenants::records::user_memberships(ctx, user_id)
        .await?
        .into_iter()
        .min_by(|a, b| a.1.cmp(&b.1))
        .map(|(tenant, _)| tenant))
}

/// The caller's role in a tenant they belong to, read from the tenant's own membership item;
/// 404 when not a member, 403 when the tenant is suspended.
pub(crate) async fn active_membership(
    ctx: &AppContext,
    user_id: &str,
    tenant_id: &TenantId,
) -> Result<(Role, TenantView), ApiError> {
    let member = tenants::load_member(ctx, tenant_id, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such tenant membership"))?;
    let view = tenants::load_tenant(ctx, tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such tenant membership"))?;
    if view.status != "active" {
        return Err(ApiError::tenant_suspended());
    }
    Ok((member.role, view))
}

pub async fn logout(ctx: &AppContext, caller: &Caller) -> Result<(), ApiError> {
    revoke_session(ctx, &caller.user_id, &caller.session_id).await
}

pub async fn logout_all(ctx: &AppContext, caller: &Caller) -> Result<usize, ApiError> {
    revoke_user_sessions(ctx, &caller.user_id, None).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchTenantRequest {
    pub tenant_id: String,
}

/// A new session acting in another of the caller's memberships.
pub async fn switch_tenant(
    ctx: &AppContext,
    caller: &Caller,
    req: SwitchTenantRequest,
) -> Result<AuthResponse, ApiError> {
    let tenant_id = TenantId::parse(&req.tenant_id)
        .map_err(|_| ApiError::validation("tenant_id", "you are not a member of that tenant"))?;
    let (role, view) = active_membership(ctx, &caller.user_id, &tenant_id)
        .await
        .map_err(|e| {
            if e.status == 404 {
                ApiError::validation("tenant_id", "you are not a member of that tenant")
            } else {
                e
            }
        })?;
    let user = load_user(ctx, &caller.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("no such user"))?;
    let tokens = start_session(ctx, &caller.user_id, Some((&tenant_id, role))).await?;
    Ok(AuthResponse {
        user: UserView::from_item(&user)?,
        tenant: Some(view),
        tokens,
    })
}
