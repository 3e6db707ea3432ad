//! Tenants and their members. A tenant's own items (its profile, its memberships) live in its
//! partitions; the user-side copy of a membership (`USER#<id>` / `MEMBER#<tenant>`) is an index
//! for "which tenants can I log in to", written in the same transaction.

pub mod records;

use serde::Deserialize;

use crate::audit::{self, Change};
use crate::auth::sessions::revoke_user_sessions;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::http::{ListParams, ListResponse};
use crate::ids::new_id;
use crate::store::{Condition, Query, Store, TenantId, UpdateAction, WriteOp};
use crate::text::check_name;
use crate::AppContext;

pub use records::{
    create_ops, load_member, load_member_and_tenant, load_tenant, MemberView, MembershipView,
    TenantView,
};
pub(crate) use records::{join_error, join_ops, meta_key, parse_role, seats_full, TRIAL_USED};
use records::{member_key, TENANT_INDEX};

// ---- tenants ---------------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    pub name: String,
}

pub async fn create_tenant(
    ctx: &AppContext,
    caller: &Caller,
    req: CreateTenantRequest,
) -> Result<TenantView, ApiError> {
    caller.require_platform_admin()?;
    let name = check_name(&req.name, "name")?;
    let tenant_id = TenantId::parse(&new_id("ten")).map_err(ApiError::internal)?;
    let now = ctx.clock.now();
    create_ops(ctx, ctx.stores.transaction(), &tenant_id, &name, None, now)
        .commit()
        .await?;
    load_tenant(ctx, &tenant_id)
        .await?
        .ok_or_else(|| ApiError::internal("tenant vanished after create"))
}

/// `?limit=&cursor=&q=` of the tenant list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantListQuery {
    /// Page size, 1 to 100 (default 20).
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Only tenants whose name or id contains this text (case-insensitive, up to 100
    /// characters). A page may then hold fewer than `limit` tenants while `next_cursor` is set.
    #[serde(default)]
    pub q: Option<String>,
}

/// How many tenants one searching request reads at most before it answers with what it found
/// and a cursor to go on from (so a search that matches little stays a bounded request).
const SEARCH_SCAN_CAP: usize = 1_000;

/// One page of the tenant index, newest first.
pub async fn tenant_page(
    ctx: &AppContext,
    limit: u32,
    cursor: Option<String>,
) -> Result<ListResponse<TenantView>, ApiError> {
    let page = ctx
        .stores
        .platform()
        .query(
            &Query::gsi1(TENANT_INDEX)
                .descending()
                .limit(limit)
                .after(cursor),
        )
        .await?;
    ListResponse::from_page(page, TenantView::from_item)
}

pub async fn list_tenants(
    ctx: &AppContext,
    caller: &Caller,
    query: TenantListQuery,
) -> Result<ListResponse<TenantView>, ApiError> {
    caller.require_platform_admin()?;
    let limit = ListParams {
        limit: query.limit,
        cursor: None,
    }
    .limit()?;
    let needle = match query.q.as_deref().map(str::trim) {
        None | Some("") => return tenant_page(ctx, limit, query.cursor).await,
        Some(q) if q.chars().count() > 100 => {
            return Err(ApiError::validation("q", "q is at most 100 characters"))
        }
        Some(q) => q.to_lowercase(),
    };
    // Each page asks for no more than the matches still missing, so the answer never exceeds
    // `limit` and the store's own cursor stays exact.
    let (mut data, mut cursor, mut scanned) = (Vec::new(), query.cursor, 0usize);
    loop {
        let page = tenant_page(ctx, limit - data.len() as u32, cursor).await?;
        scanned += page.data.len();
        data.extend(page.data.into_iter().filter(|t| {
            t.name.to_lowercase().contains(&needle) || t.id.to_lowercase().contains(&needle)
        }));
        cursor = page.next_cursor;
        if cursor.is_none() || data.len() as u32 >= limit || scanned >= SEARCH_SCAN_CAP {
            return Ok(ListResponse {
                data,
                next_cursor: cursor,
            });
        }
    }
}

pub async fn get_tenant(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
) -> Result<TenantView, ApiError> {
    let tenant_id = caller.read_tenant(tenant_id)?;
    load_tenant(ctx, &tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such tenant"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTenantRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

pub async fn patch_tenant(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    req: PatchTenantRequest,
) -> Result<TenantView, ApiError> {
    let tenant_id = caller.admin_tenant(tenant_id)?;
    let mut actions = Vec::new();
    if let Some(name) = &req.name {
        actions.push(UpdateAction::set("name", check_name(name, "name")?));
    }
    let suspend = match req.status.as_deref() {
        None => false,
        Some(status @ ("active" | "suspended")) => {
            if !caller.is_platform_admin() {
                return Err(ApiError::forbidden(
                    "only a platform admin changes a tenant's status",
                ));
            }
            actions.push(UpdateAction::set("status", status));
            status == "suspended"
        }
        Some(_) => {
            return Err(ApiError::validation(
                "status",
                "status is `active` or `suspended`",
            ))
        }
    };
    if actions.is_empty() {
        return Err(ApiError::validation(
            "body",
            "nothing to change: give `name` or `status`",
        ));
    }
    let t = ctx.stores.tenant(&tenant_id);
    let before = load_tenant(ctx, &tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such tenant"))?;
    let change = Change {
        action: "tenant.updated",
        resource_type: "tenant",
        resource_id: tenant_id.as_str(),
        before: Some(serde_json::to_value(&before).unwrap_or_default()),
        after: Some(serde_json::json!({"name": req.name, "status": req.status})),
        reason: None,
    };
    // The tenant's API keys are marked in the same transaction as its status, so no instance
    // takes one once the suspension is in (see `api_keys::suspension_ops`). A key can only be
    // created while the tenant is active (checked in its own transaction), so after this
    // commit no new key appears; one created just before it, after the listing, is marked by
    // the second pass, before this request answers.
    let suspend_to = req.status.as_deref().map(|status| status == "suspended");
    let key_marks = match suspend_to {
        Some(suspended) => {
            crate::usage::api_keys::suspension_ops(ctx, &tenant_id, suspended).await?
        }
        None => Vec::new(),
    };
    let mut tx = ctx
        .stores
        .transaction()
        .tenant(
            &t,
            WriteOp::Update {
                key: meta_key(&t),
                actions,
                condition: Some(Condition::ItemExists),
            },
        )
        .tenant(&t, audit::tenant_op(&t, caller, change, ctx.clock.now()));
    for op in key_marks {
        tx = tx.tenant(&t, op);
    }
    tx.commit()
        .await
        .map_err(|e| match e.failed_condition_index() {
            Some(0) => ApiError::not_found("no such tenant"),
            Some(_) => ApiError::conflict("the tenant's API keys changed meanwhile; retry"),
            None => e.into(),
        })?;
    if suspend_to == Some(true) {
        crate::usage::api_keys::mark_unmarked(ctx, &tenant_id).await?;
    }
    let item = t
        .get(&meta_key(&t))
        .await?
        .ok_or_else(|| ApiError::not_found("no such tenant"))?;
    if suspend {
        // A suspended tenant's members lose their sessions in it at once.
        for member in all_members(ctx, &tenant_id).await? {
            revoke_user_sessions(ctx, &member.user_id, Some(&tenant_id)).await?;
        }
    }
    TenantView::from_item(&item)
}

// ---- members ---------------------------------------------------------------------------------

async fn all_members(ctx: &AppContext, tenant_id: &TenantId) -> Result<Vec<MemberView>, ApiError> {
    let t = ctx.stores.tenant(tenant_id);
    let mut members = Vec::new();
    let mut cursor = None;
    loop {
        let page = t
            .query(
                &Query::table(t.pk("MEMBERS"))
                    .begins_with("USER#")
                    .limit(500)
                    .after(cursor),
            )
            .await?;
        for item in &page.items {
            members.push(MemberView::from_item(item)?);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(members),
        }
    }
}

pub async fn list_members(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    params: ListParams,
) -> Result<ListResponse<MemberView>, ApiError> {
    let tenant_id = if caller.is_platform_admin() {
        crate::access::admin_named_tenant(ctx, caller, tenant_id).await?
    } else {
        caller.admin_tenant(tenant_id)?
    };
    let t = ctx.stores.tenant(&tenant_id);
    let page = t
        .query(
            &Query::table(t.pk("MEMBERS"))
                .begins_with("USER#")
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    ListResponse::from_page(page, MemberView::from_item)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchMemberRequest {
    pub role: String,
}

/// A failed membership transaction: the tenant's admin count (operation 1) says the last
/// admin would go; anything else changed meanwhile.
fn membership_changed(e: crate::store::StoreError) -> ApiError {
    match e.failed_condition_index() {
        Some(1) => last_admin(),
        Some(_) => ApiError::conflict("the membership changed meanwhile; retry"),
        None => e.into(),
    }
}

fn last_admin() -> ApiError {
    ApiError::conflict("a tenant keeps at least one tenant_admin").field("role")
}

pub async fn patch_member(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    user_id: &str,
    req: PatchMemberRequest,
) -> Result<MemberView, ApiError> {
    let tenant_id = caller.admin_tenant(tenant_id)?;
    let role = parse_role(&req.role)?;
    let current = load_member(ctx, &tenant_id, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such member"))?;
    if current.role == role {
        return Ok(current);
    }
    let t = ctx.stores.tenant(&tenant_id);
    let demoting = current.role == Role::TenantAdmin;
    let change = Change {
        action: "member.role_changed",
        resource_type: "member",
        resource_id: user_id,
        before: Some(serde_json::json!({"role": current.role})),
        after: Some(serde_json::json!({"role": role})),
        reason: None,
    };
    let meta_condition = if demoting {
        Condition::gt("admin_count", 1)
    } else {
        Condition::ItemExists
    };
    ctx.stores
        .transaction()
        .tenant(
            &t,
            WriteOp::Update {
                key: member_key(&t, user_id),
                actions: vec![UpdateAction::set("role", role.as_str())],
                condition: Some(Condition::eq("role", current.role.as_str())),
            },
        )
        .tenant(
            &t,
            WriteOp::Update {
                key: meta_key(&t),
                actions: vec![UpdateAction::add(
                    "admin_count",
                    if demoting { -1 } else { 1 },
                )],
                condition: Some(meta_condition),
            },
        )
        .tenant(&t, audit::tenant_op(&t, caller, change, ctx.clock.now()))
        .commit()
        .await
        .map_err(membership_changed)?;
    // Tokens carry the role: the member's sessions in this tenant end, so the new role applies
    // from their next login.
    revoke_user_sessions(ctx, user_id, Some(&tenant_id)).await?;
    load_member(ctx, &tenant_id, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such member"))
}

pub async fn remove_member(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    user_id: &str,
) -> Result<(), ApiError> {
    // A member may always leave the tenant their token acts in; removing others is the
    // admin's. The last-admin rule holds either way.
    let leaving = caller.user_id == user_id
        && caller.tenant.as_ref().map(TenantId::as_str) == Some(tenant_id);
    let tenant_id = if leaving {
        caller.read_tenant(tenant_id)?
    } else {
        caller.admin_tenant(tenant_id)?
    };
    let current = load_member(ctx, &tenant_id, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such member"))?;
    let t = ctx.stores.tenant(&tenant_id);
    let change = Change {
        action: if leaving {
            "member.left"
        } else {
            "member.removed"
        },
        resource_type: "member",
        resource_id: user_id,
        before: Some(serde_json::to_value(&current).unwrap_or_default()),
        after: None,
        reason: None,
    };
    records::leave_ops(&t, ctx.stores.transaction(), &current, true)
        .tenant(&t, audit::tenant_op(&t, caller, change, ctx.clock.now()))
        .commit()
        .await
        .map_err(membership_changed)?;
    revoke_user_sessions(ctx, user_id, Some(&tenant_id)).await?;
    Ok(())
}

/// Ends every membership of `user_id` except in `keep`: for an account its email's owner has
/// just reclaimed (or an unconfirmed one taken over) from whoever registered the address — those memberships
/// were never the owner's to consent to. The last-admin rule does not hold here: a tenant left
/// without an admin stays for a platform admin to settle. Audited in each tenant.
pub async fn drop_memberships_of(
    ctx: &AppContext,
    user_id: &str,
    keep: Option<&TenantId>,
) -> Result<(), ApiError> {
    for (tenant, _) in records::user_memberships(ctx, user_id).await? {
        if Some(&tenant) == keep {
            continue;
        }
        let Some(current) = load_member(ctx, &tenant, user_id).await? else {
            continue;
        };
        let t = ctx.stores.tenant(&tenant);
        let actor = Caller::synthetic(user_id, Some(&tenant), current.role, "reclaim");
        let change = Change {
            action: "member.removed",
            resource_type: "member",
            resource_id: user_id,
            before: Some(serde_json::to_value(&current).unwrap_or_default()),
            after: None,
            reason: Some("the account was reclaimed by the owner of its email address"),
        };
        records::leave_ops(&t, ctx.stores.transaction(), &current, false)
            .tenant(&t, audit::tenant_op(&t, &actor, change, ctx.clock.now()))
            .commit()
            .await?;
    }
    Ok(())
}
