//! Invitations: the only way into a tenant besides creating one. A tenant admin invites an
//! email; nothing joins until the owner of that address accepts — signed in to a verified
//! account with that email, or through the link mailed to it (which proves the address). The
//! answer to an invitation never says whether the email has an account.
//!
//! Items: the invitation is the tenant's (`TENANT#<id>#INVITES` / `INV#<id>`, the truth),
//! indexed for "my invitations" on GSI1 under `IDX#INVITEE#<email>`, so inviting and closing
//! write the tenant's items only, with its credentials (as memberships are). One invitation per (tenant, email): its
//! id is derived from both, so inviting again replaces it (a new link, the old one dead).

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::audit::{self, Change};
use crate::auth::service::{
    self, check_name, find_user_id_by_email, load_user, new_id, new_user_ops, normalize_email,
    revoke_user_sessions, start_session, user_item, AuthResponse, UserView,
};
use crate::auth::tokens::{random_secret, same_secret, sha256_hex};
use crate::auth::{password, verification, Caller, Role};
use crate::error::ApiError;
use crate::http::{ListParams, ListResponse};
use crate::mail::{self, Message};
use crate::store::{
    Condition, Item, Key, Query, ScopedTransaction, Store, StoreExt, TenantId, TenantStore,
    UpdateAction, WriteOp,
};
use crate::tenants::{
    self, join_error, join_ops, load_tenant, parse_role, seats_full, MembershipView,
};
use crate::time;
use crate::AppContext;

/// Days an invitation (and its link) stays open.
const INVITE_DAYS: i64 = 7;

fn invitation_key(t: &TenantStore, id: &str) -> Key {
    t.key("INVITES", format!("INV#{id}"))
}

/// The GSI1 partition of an address's invitations, across tenants.
fn invitee_index(email: &str) -> String {
    format!("IDX#INVITEE#{email}")
}

fn invitation_id(tenant: &TenantId, email: &str) -> String {
    format!("inv_{}", &sha256_hex(&format!("{tenant}\n{email}"))[..24])
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InvitationView {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub role: Role,
    /// `pending` until accepted (then it becomes a membership), declined or revoked.
    pub status: String,
    pub invited_at: String,
    pub expires_at: String,
}

impl InvitationView {
    fn from_item(item: &Item) -> Result<Self, ApiError> {
        Ok(Self {
            id: item.required_str("invitation_id")?.to_owned(),
            tenant_id: item.required_str("tenant_id")?.to_owned(),
            email: item.required_str("email")?.to_owned(),
            role: item
                .str("role")
                .and_then(Role::parse_member_role)
                .ok_or_else(|| ApiError::internal("invitation without a role"))?,
            status: "pending".into(),
            invited_at: item.required_str("invited_at")?.to_owned(),
            expires_at: item.required_str("expires")?.to_owned(),
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    #[schema(min_length = 3, max_length = 254)]
    pub email: String,
    /// `tenant_admin` or `tenant_user`.
    pub role: String,
    /// The name a new account starts with (its owner may give another when accepting);
    /// defaults to the part of the email before `@`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InviteResponse {
    pub invitation: InvitationView,
}

/// An invitation as its invitee sees it (in `GET /v1/auth/me`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PendingInvitation {
    pub id: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub role: Role,
    pub expires_at: String,
}

/// Invites `email` into the tenant and mails the link. Returns the invitation and the link's
/// token (for the mailer and the demo seed; handlers never answer it).
pub async fn invite(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    req: InviteRequest,
) -> Result<(InvitationView, String), ApiError> {
    let tenant_id = caller.admin_tenant(tenant_id)?;
    let email = normalize_email(&req.email, "email")?;
    let role = parse_role(&req.role)?;
    // Mail goes out in the inviter's name: only from a verified address, and at a measured
    // pace (per tenant, and per recipient: a re-invitation resends the mail).
    if !caller.is_platform_admin() {
        verified_user(ctx, caller).await?;
    }
    let now = ctx.clock.now();
    let per_tenant = crate::auth::ratelimit::Limit {
        attempts: 100,
        window_secs: 3600,
    };
    crate::auth::ratelimit::hit(ctx, "invite", tenant_id.as_str(), per_tenant, now).await?;
    let per_recipient = crate::auth::ratelimit::Limit {
        attempts: 3,
        window_secs: 3600,
    };
    let recipient = sha256_hex(&format!("{tenant_id}\n{email}"));
    crate::auth::ratelimit::hit(ctx, "invite-to", &recipient, per_recipient, now).await?;
    let name = req
        .name
        .as_deref()
        .map(|n| check_name(n, "name"))
        .transpose()?;
    let tenant = load_tenant(ctx, &tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such tenant"))?;
    if let Some(user_id) = find_user_id_by_email(ctx, &email).await? {
        if tenants::load_member(ctx, &tenant_id, &user_id)
            .await?
            .is_some()
        {
            return Err(
                ApiError::conflict("this user is already a member of the tenant").field("email"),
            );
        }
    }
    // Early word when the seats are already full; the join itself enforces it on condition.
    if let Some(limit) = crate::entitlements::seat_limit(ctx, &tenant_id).await? {
        if tenant.member_count >= limit as i64 {
            return Err(seats_full(limit));
        }
    }
    let expires = now + chrono::Duration::days(INVITE_DAYS);
    let id = invitation_id(&tenant_id, &email);
    let secret = random_secret();
    let token = format!("{tenant_id}.{id}.{secret}");
    let t = ctx.stores.tenant(&tenant_id);
    let mut item = Item::new(invitation_key(&t, &id))
        .with("invitation_id", id.as_str())
        .with("tenant_id", tenant_id.as_str())
        .with("email", email.as_str())
        .with("role", role.as_str())
        .with("secret_hash", sha256_hex(&secret))
        .with("invited_by", caller.user_id.as_str())
        .with("invited_at", time::fmt(now))
        .with("expires", time::fmt(expires))
        .with("expires_epoch", expires.timestamp())
        .with_ttl(expires.timestamp())
        .with_gsi1(invitee_index(&email), format!("{tenant_id}#{id}"));
    if let Some(name) = &name {
        item = item.with("name", name.as_str());
    }
    let change = Change {
        action: "member.invited",
        resource_type: "invitation",
        resource_id: &id,
        before: None,
        after: Some(serde_json::json!({"email": email, "role": role})),
        reason: None,
    };
    ctx.stores
        .transaction()
        .tenant(
            &t,
            WriteOp::Put {
                item: item.clone(),
                condition: None,
            },
        )
        .tenant(&t, audit::tenant_op(&t, caller, change, now))
        .commit()
        .await?;
    let link = mail::link(&ctx.public_url, "invitation", &token);
    ctx.mail.send(Message {
        to: email.clone(),
        kind: "invitation",
        subject: format!("You are invited to {}", tenant.name),
        text: format!(
            "You are invited to join {} on Eshtarek as {}. Accept: {link}\nThe link works for {INVITE_DAYS} days.",
            tenant.name,
            role.as_str()
        ),
        link,
        token: token.clone(),
    });
    Ok((InvitationView::from_item(&item)?, token))
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    params: ListParams,
) -> Result<ListResponse<InvitationView>, ApiError> {
    let tenant_id = caller.admin_tenant(tenant_id)?;
    let t = ctx.stores.tenant(&tenant_id);
    let now = ctx.clock.now().timestamp();
    let page = t
        .query(
            &Query::table(t.pk("INVITES"))
                .begins_with("INV#")
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    Ok(ListResponse {
        data: page
            .items
            .iter()
            .filter(|i| i.i64("expires_epoch").unwrap_or(0) > now)
            .map(InvitationView::from_item)
            .collect::<Result<_, _>>()?,
        next_cursor: page.next_cursor,
    })
}

/// Withdraws an invitation: its link stops working at once.
pub async fn revoke(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    invitation_id: &str,
) -> Result<(), ApiError> {
    let tenant_id = caller.admin_tenant(tenant_id)?;
    let t = ctx.stores.tenant(&tenant_id);
    let item = load(&t, invitation_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such invitation"))?;
    end(ctx, caller, &t, &item, "invitation.revoked").await
}

/// Withdraws the open invitations `user_id` sent in the tenant: for a member who left, was
/// removed, or is no longer an admin (their invitations spoke with an authority they lost).
pub async fn withdraw_sent_by(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    user_id: &str,
) -> Result<(), ApiError> {
    let Ok(tenant) = TenantId::parse(tenant_id) else {
        return Ok(());
    };
    let t = ctx.stores.tenant(&tenant);
    let mut cursor = None;
    loop {
        let page = t
            .query(
                &Query::table(t.pk("INVITES"))
                    .begins_with("INV#")
                    .limit(100)
                    .after(cursor),
            )
            .await?;
        for item in &page.items {
            if item.str("invited_by") == Some(user_id) {
                match end(ctx, caller, &t, item, "invitation.revoked").await {
                    // Accepted or withdrawn meanwhile: nothing left to withdraw.
                    Ok(())
                    | Err(ApiError {
                        status: StatusCode::NOT_FOUND,
                        ..
                    }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// Ends an invitation without a membership (withdrawn or declined), audited as `action`.
async fn end(
    ctx: &AppContext,
    caller: &Caller,
    t: &TenantStore,
    item: &Item,
    action: &'static str,
) -> Result<(), ApiError> {
    let id = item.required_str("invitation_id")?;
    let email = item.required_str("email")?;
    let change = Change {
        action,
        resource_type: "invitation",
        resource_id: id,
        before: Some(serde_json::json!({"email": email, "role": item.str("role")})),
        after: None,
        reason: None,
    };
    close_ops(ctx.stores.transaction(), t, item, id)
        .tenant(t, audit::tenant_op(t, caller, change, ctx.clock.now()))
        .commit()
        .await
        .map_err(|e| {
            if e.is_condition_failure() {
                ApiError::not_found("no such invitation")
            } else {
                e.into()
            }
        })?;
    Ok(())
}

async fn load(t: &TenantStore, id: &str) -> Result<Option<Item>, ApiError> {
    if !crate::ids::is_key_safe(id) {
        return Ok(None);
    }
    Ok(t.get(&invitation_key(t, id)).await?)
}

/// Deletes an invitation (its index entry goes with it), on condition that it is still the
/// one read (a re-invitation in between changes its secret).
fn close_ops(tx: ScopedTransaction, t: &TenantStore, item: &Item, id: &str) -> ScopedTransaction {
    let secret_hash = item.str("secret_hash").unwrap_or_default();
    tx.tenant(
        t,
        WriteOp::Delete {
            key: invitation_key(t, id),
            condition: Some(Condition::eq("secret_hash", secret_hash)),
        },
    )
}

/// The open invitations for `email` (the caller has verified it), checked against the tenant's
/// own items.
pub async fn pending_for(
    ctx: &AppContext,
    email: &str,
) -> Result<Vec<PendingInvitation>, ApiError> {
    let now = ctx.clock.now().timestamp();
    let page = ctx
        .stores
        .platform()
        .query(&Query::gsi1(invitee_index(email)).limit(100))
        .await?;
    let mut pending = Vec::new();
    for entry in &page.items {
        // The tenant from the entry's partition key; the tenant's own item, read again, decides.
        let (Some((tenant_id, "INVITES")), Some(id)) =
            (TenantId::of_pk(&entry.key.pk), entry.str("invitation_id"))
        else {
            continue;
        };
        let t = ctx.stores.tenant(&tenant_id);
        let (Some(item), Some(tenant)) = (load(&t, id).await?, load_tenant(ctx, &tenant_id).await?)
        else {
            continue;
        };
        if item.str("email") != Some(email) || item.i64("expires_epoch").unwrap_or(0) <= now {
            continue;
        }
        let view = InvitationView::from_item(&item)?;
        pending.push(PendingInvitation {
            id: view.id,
            tenant_id: view.tenant_id,
            tenant_name: tenant.name,
            role: view.role,
            expires_at: view.expires_at,
        });
    }
    Ok(pending)
}

/// An open invitation for `email` by id, found through the invitee's index.
async fn find_for(ctx: &AppContext, email: &str, id: &str) -> Result<(TenantId, Item), ApiError> {
    let missing = || ApiError::not_found("no such invitation");
    let now = ctx.clock.now().timestamp();
    for pending in pending_for(ctx, email).await? {
        if pending.id == id {
            let tenant = TenantId::parse(&pending.tenant_id).map_err(|_| missing())?;
            let t = ctx.stores.tenant(&tenant);
            let item = load(&t, id).await?.ok_or_else(missing)?;
            if item.i64("expires_epoch").unwrap_or(0) > now {
                return Ok((tenant, item));
            }
        }
    }
    Err(missing())
}

/// The signed-in, verified invitee accepts: they become a member with the invited role.
pub async fn accept(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<MembershipView, ApiError> {
    let user = verified_user(ctx, caller).await?;
    let email = user.required_str("email")?.to_owned();
    let (tenant_id, invitation) = find_for(ctx, &email, id).await?;
    join(ctx, &tenant_id, &invitation, &user).await?;
    let (role, tenant) = service::active_membership(ctx, &caller.user_id, &tenant_id).await?;
    Ok(MembershipView {
        tenant_id: tenant.id,
        tenant_name: tenant.name,
        role,
        tenant_status: tenant.status,
    })
}

/// The signed-in, verified invitee says no: the invitation is gone.
pub async fn decline(ctx: &AppContext, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let user = verified_user(ctx, caller).await?;
    let email = user.required_str("email")?.to_owned();
    let (tenant_id, invitation) = find_for(ctx, &email, id).await?;
    let t = ctx.stores.tenant(&tenant_id);
    end(ctx, caller, &t, &invitation, "invitation.declined").await
}

async fn verified_user(ctx: &AppContext, caller: &Caller) -> Result<Item, ApiError> {
    let user = load_user(ctx, &caller.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("no such user"))?;
    if !user.bool("email_verified").unwrap_or(false) {
        return Err(ApiError::forbidden(
            "verify your email address first: follow the link mailed to you",
        )
        .with("code", "email_unverified"));
    }
    Ok(user)
}

/// The membership, the end of the invitation and the audit entry: one transaction of the
/// tenant's, after any account step (a new account, a reclaimed one) has committed on the
/// platform's side.
async fn join(
    ctx: &AppContext,
    tenant_id: &TenantId,
    invitation: &Item,
    user: &Item,
) -> Result<(), ApiError> {
    let t = ctx.stores.tenant(tenant_id);
    let id = invitation.required_str("invitation_id")?.to_owned();
    let email = invitation.required_str("email")?.to_owned();
    let role = invitation
        .str("role")
        .and_then(Role::parse_member_role)
        .ok_or_else(|| ApiError::internal("invitation without a role"))?;
    let user_id = user.required_str("user_id")?.to_owned();
    let seats = crate::entitlements::seat_limit(ctx, tenant_id).await?;
    let now = ctx.clock.now();
    let tx = close_ops(ctx.stores.transaction(), &t, invitation, &id);
    let (tx, meta_index) = join_ops(&t, tx, user, role, seats, now);
    let actor = Caller::synthetic(&user_id, Some(tenant_id), role, "invitation");
    let change = Change {
        action: "member.joined",
        resource_type: "member",
        resource_id: &user_id,
        before: None,
        after: Some(
            serde_json::json!({"user_id": user_id, "email": email, "role": role, "invitation_id": id}),
        ),
        reason: None,
    };
    tx.tenant(&t, audit::tenant_op(&t, &actor, change, now))
        .commit()
        .await
        .map_err(|e| match e.failed_condition_index() {
            Some(0) => {
                ApiError::validation("token", "this invitation was used, withdrawn or replaced")
            }
            _ => join_error(e, meta_index, seats),
        })?;
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptLinkRequest {
    /// The token from the invitation link.
    #[schema(min_length = 1, max_length = 256)]
    pub token: String,
    /// The new account's password (10 to 256 characters). Needed unless the email already
    /// has a verified account (then sign in and accept from it).
    #[serde(default)]
    #[schema(min_length = 10, max_length = 256)]
    pub password: Option<String>,
    /// The new account's name (default: the invitation's, or the email before `@`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
}

/// Accepts through the mailed link, which proves the address: a new account (verified) with
/// the given password, or an existing *unverified* one claimed by the mailbox's owner (its
/// password replaced, its other sessions ended: whoever registered the address without
/// owning it loses it). A verified account signs in and accepts from there. Signs in to the
/// tenant.
pub async fn accept_link(
    ctx: &AppContext,
    req: AcceptLinkRequest,
) -> Result<AuthResponse, ApiError> {
    let invalid =
        || ApiError::validation("token", "this invitation link is invalid, used or expired");
    let mut parts = req.token.splitn(3, '.');
    let (Some(tenant), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    let tenant_id = TenantId::parse(tenant).map_err(|_| invalid())?;
    let t = ctx.stores.tenant(&tenant_id);
    let invitation = load(&t, id).await?.ok_or_else(invalid)?;
    if !same_secret(
        &sha256_hex(secret),
        invitation.str("secret_hash").unwrap_or_default(),
    ) || invitation.i64("expires_epoch").unwrap_or(0) <= ctx.clock.now().timestamp()
    {
        return Err(invalid());
    }
    let email = invitation.required_str("email")?.to_owned();
    let password_text = req
        .password
        .ok_or_else(|| ApiError::validation("password", "choose a password for your account"))?;
    password::check_policy(&password_text, &email, "password")?;
    let name = match req.name.as_deref().or(invitation.str("name")) {
        Some(n) => check_name(n, "name")?,
        None => email.split('@').next().unwrap_or("member").to_owned(),
    };
    let now = ctx.clock.now();
    let existing = match find_user_id_by_email(ctx, &email).await? {
        Some(id) => load_user(ctx, &id).await?,
        None => None,
    };
    let user = match existing {
        Some(user) if user.bool("email_verified").unwrap_or(false) => {
            return Err(ApiError::conflict(
                "an account with this email exists: sign in and accept the invitation there",
            )
            .with("code", "account_exists"));
        }
        Some(user) => {
            // The owner takes the account over as if new: their password and name, none of
            // the squatter's sessions or memberships, no remembered tenant. The account is the
            // first step (the platform's): the link proves the address, so it is the owner's
            // even if the membership is then refused (seats taken, the invitation used
            // meanwhile), and the squatter's hold on it ends either way.
            let user_id = user.required_str("user_id")?.to_owned();
            let hash = password::hash(password_text).await?;
            ctx.stores
                .platform()
                .update(
                    service::user_key(&user_id),
                    vec![
                        UpdateAction::set("password_hash", hash),
                        UpdateAction::set("email_verified", true),
                        UpdateAction::set("name", name.as_str()),
                        UpdateAction::remove("last_tenant_id"),
                    ],
                    Some(Condition::eq("email_verified", false)),
                )
                .await
                .map_err(account_changed)?;
            let user = user.with("name", name.as_str());
            let joined = join(ctx, &tenant_id, &invitation, &user).await;
            revoke_user_sessions(ctx, &user_id, None).await?;
            tenants::drop_memberships_of(ctx, &user_id, Some(&tenant_id)).await?;
            joined?;
            user
        }
        None => {
            let hash = password::hash(password_text).await?;
            let user_id = new_id("usr");
            let user = user_item(&user_id, &email, &name, Some(&hash), false, true, now);
            // The account first (its email claim makes a link used twice at once create one
            // account), then the membership; a refused membership takes the new account back.
            new_user_ops(ctx.stores.transaction(), &user, &email)
                .commit()
                .await
                .map_err(account_changed)?;
            if let Err(e) = join(ctx, &tenant_id, &invitation, &user).await {
                crate::identity::delete_new_user(ctx, &user_id, &email).await;
                return Err(e);
            }
            user
        }
    };
    let user_id = user.required_str("user_id")?.to_owned();
    let (role, tenant) = service::active_membership(ctx, &user_id, &tenant_id).await?;
    let tokens = start_session(ctx, &user_id, Some((&tenant_id, role))).await?;
    let user = load_user(ctx, &user_id)
        .await?
        .ok_or_else(|| ApiError::internal("user vanished"))?;
    Ok(AuthResponse {
        user: UserView::from_item(&user)?,
        tenant: Some(tenant),
        tokens,
    })
}

fn account_changed(e: crate::store::StoreError) -> ApiError {
    if e.is_condition_failure() {
        ApiError::conflict("the account changed meanwhile; retry").field("email")
    } else {
        e.into()
    }
}

/// Marks an account verified (the demo seed's accounts, whose addresses are the seed's own).
pub async fn mark_verified(ctx: &AppContext, user_id: &str) -> Result<(), ApiError> {
    ctx.stores
        .transaction()
        .platform(verification::mark_verified_op(user_id))
        .commit()
        .await?;
    Ok(())
}
