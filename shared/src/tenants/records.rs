//! A tenant's own records: its keys, views, the loaders, and the writes that create a tenant
//! and make a member (built as values for the caller's transaction). "Which tenants can I log
//! in to" is the platform index `IDX#MEMBERSHIPS#<user>` on GSI1, derived from the tenant's own
//! membership items: joining and leaving write the tenant's items only, with its credentials.
//! Below the tenant use cases and API keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::error::ApiError;
use crate::store::{
    Condition, Item, Key, Query, ScopedTransaction, Store, TenantId, TenantStore, UpdateAction,
    WriteOp,
};
use crate::time;
use crate::AppContext;

/// The GSI1 partition that lists a user's memberships across tenants.
fn memberships_index(user_id: &str) -> String {
    format!("IDX#MEMBERSHIPS#{user_id}")
}

pub(crate) const TENANT_INDEX: &str = "IDX#TENANTS";

/// The tenant record's flag that its one trial was used (`billing::trials` sets it).
pub(crate) const TRIAL_USED: &str = "trial_used";

pub(crate) fn meta_key(t: &TenantStore) -> Key {
    t.key("META", "TENANT")
}

pub(crate) fn member_key(t: &TenantStore, user_id: &str) -> Key {
    t.key("MEMBERS", format!("USER#{user_id}"))
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub status: String,
    pub member_count: i64,
    pub created_at: String,
    /// The tenant's next subscription to a plan with trial days starts with a trial (one per
    /// tenant, unless a platform admin grants another).
    pub trial_available: bool,
}

impl TenantView {
    pub(crate) fn from_item(item: &Item) -> Result<Self, ApiError> {
        Ok(Self {
            id: item.required_str("tenant_id")?.to_owned(),
            name: item.required_str("name")?.to_owned(),
            status: item.required_str("status")?.to_owned(),
            member_count: item.i64("member_count").unwrap_or(0),
            created_at: item.required_str("created_at")?.to_owned(),
            trial_available: !item.bool(TRIAL_USED).unwrap_or(false),
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MembershipView {
    pub tenant_id: String,
    pub tenant_name: String,
    pub role: Role,
    pub tenant_status: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemberView {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub joined_at: String,
}

impl MemberView {
    pub(crate) fn from_item(item: &Item) -> Result<Self, ApiError> {
        Ok(Self {
            user_id: item.required_str("user_id")?.to_owned(),
            email: item.required_str("email")?.to_owned(),
            name: item.required_str("name")?.to_owned(),
            role: item
                .str("role")
                .and_then(Role::parse_member_role)
                .ok_or_else(|| ApiError::internal("membership without a role"))?,
            joined_at: item.required_str("joined_at")?.to_owned(),
        })
    }
}

pub async fn load_tenant(
    ctx: &AppContext,
    tenant_id: &TenantId,
) -> Result<Option<TenantView>, ApiError> {
    let t = ctx.stores.tenant(tenant_id);
    t.get(&meta_key(&t))
        .await?
        .map(|i| TenantView::from_item(&i))
        .transpose()
}

/// A member's record and its tenant, in one batch read.
pub async fn load_member_and_tenant(
    ctx: &AppContext,
    tenant_id: &TenantId,
    user_id: &str,
) -> Result<(Option<MemberView>, Option<TenantView>), ApiError> {
    let t = ctx.stores.tenant(tenant_id);
    let mut items = t
        .get_many(&[member_key(&t, user_id), meta_key(&t)])
        .await?
        .into_iter();
    let member = items
        .next()
        .flatten()
        .map(|i| MemberView::from_item(&i))
        .transpose()?;
    let tenant = items
        .next()
        .flatten()
        .map(|i| TenantView::from_item(&i))
        .transpose()?;
    Ok((member, tenant))
}

pub async fn load_member(
    ctx: &AppContext,
    tenant_id: &TenantId,
    user_id: &str,
) -> Result<Option<MemberView>, ApiError> {
    let t = ctx.stores.tenant(tenant_id);
    t.get(&member_key(&t, user_id))
        .await?
        .map(|i| MemberView::from_item(&i))
        .transpose()
}

/// The writes that create a tenant, with its first admin when given (self-serve signup).
pub fn create_ops(
    ctx: &AppContext,
    tx: ScopedTransaction,
    tenant_id: &TenantId,
    name: &str,
    first_admin: Option<&Item>,
    now: DateTime<Utc>,
) -> ScopedTransaction {
    let t = ctx.stores.tenant(tenant_id);
    let created = time::fmt(now);
    let count = i64::from(first_admin.is_some());
    let meta = Item::new(meta_key(&t))
        .with("tenant_id", tenant_id.as_str())
        .with("name", name)
        .with("status", "active")
        .with("member_count", count)
        .with("admin_count", count)
        .with("created_at", created.as_str())
        .with_gsi1(TENANT_INDEX, format!("{created}#{tenant_id}"));
    let mut tx = tx.tenant(
        &t,
        WriteOp::Put {
            item: meta,
            condition: Some(Condition::ItemNotExists),
        },
    );
    if let Some(user) = first_admin {
        tx = member_ops(&t, tx, user, Role::TenantAdmin, now);
    }
    tx
}

/// The membership item, indexed for its user (`IDX#MEMBERSHIPS#<user>`).
pub(crate) fn member_ops(
    t: &TenantStore,
    tx: ScopedTransaction,
    user: &Item,
    role: Role,
    now: DateTime<Utc>,
) -> ScopedTransaction {
    let user_id = user.str("user_id").unwrap_or_default();
    let joined = time::fmt(now);
    let member = Item::new(member_key(t, user_id))
        .with("user_id", user_id)
        .with("email", user.str("email").unwrap_or_default())
        .with("name", user.str("name").unwrap_or_default())
        .with("role", role.as_str())
        .with("joined_at", joined.as_str())
        .with_gsi1(memberships_index(user_id), t.tenant().as_str());
    tx.tenant(
        t,
        WriteOp::Put {
            item: member,
            condition: Some(Condition::ItemNotExists),
        },
    )
}

pub(crate) fn parse_role(raw: &str) -> Result<Role, ApiError> {
    Role::parse_member_role(raw)
        .ok_or_else(|| ApiError::validation("role", "role is `tenant_admin` or `tenant_user`"))
}

/// What a failed join transaction means: the seat count's condition (at `meta_index`) is the
/// plan's `max_users`; any other failed condition is an existing membership.
pub(crate) fn join_error(
    e: crate::store::StoreError,
    meta_index: usize,
    seats: Option<u64>,
) -> ApiError {
    match (e.failed_condition_index(), seats) {
        (Some(i), Some(limit)) if i == meta_index => seats_full(limit),
        (Some(_), _) => {
            ApiError::conflict("this user is already a member of the tenant").field("email")
        }
        _ => e.into(),
    }
}

pub(crate) fn seats_full(limit: u64) -> ApiError {
    ApiError::limit_exceeded(
        "max_users",
        format!(
            "the tenant has room for {limit} members (its plan's limit or the seats bought); remove one, buy seats or upgrade"
        ),
    )
    .with("limit", limit)
    .with("used", limit)
}

/// The writes that make `user` a member: the membership item and the seat count, which moves
/// on condition (under the plan's `max_users`) so concurrent joins can never exceed it. Returns
/// the seat count's index in the transaction, for [`join_error`].
pub(crate) fn join_ops(
    t: &TenantStore,
    tx: ScopedTransaction,
    user: &Item,
    role: Role,
    seats: Option<u64>,
    now: DateTime<Utc>,
) -> (ScopedTransaction, usize) {
    let meta_condition = match seats {
        Some(limit) => Condition::And(vec![
            Condition::ItemExists,
            Condition::lt("member_count", limit as i64),
        ]),
        None => Condition::ItemExists,
    };
    let meta_index = tx.len() + 1;
    let admins = i64::from(role == Role::TenantAdmin);
    let tx = member_ops(t, tx, user, role, now).tenant(
        t,
        WriteOp::Update {
            key: meta_key(t),
            actions: vec![
                UpdateAction::add("member_count", 1),
                UpdateAction::add("admin_count", admins),
            ],
            condition: Some(meta_condition),
        },
    );
    (tx, meta_index)
}

/// The writes that end `member`'s membership: the membership item and the counts. With
/// `last_admin_rule`, on condition that the role is still the one read and that an admin is
/// not the last (operation 1); without it (an account
/// reclaimed from whoever registered it), only that the items exist.
pub(crate) fn leave_ops(
    t: &TenantStore,
    tx: ScopedTransaction,
    member: &MemberView,
    last_admin_rule: bool,
) -> ScopedTransaction {
    let admin = member.role == Role::TenantAdmin;
    let (member_condition, meta_condition) = if last_admin_rule {
        (
            Condition::eq("role", member.role.as_str()),
            if admin {
                Condition::gt("admin_count", 1)
            } else {
                Condition::ItemExists
            },
        )
    } else {
        (Condition::ItemExists, Condition::ItemExists)
    };
    tx.tenant(
        t,
        WriteOp::Delete {
            key: member_key(t, &member.user_id),
            condition: Some(member_condition),
        },
    )
    .tenant(
        t,
        WriteOp::Update {
            key: meta_key(t),
            actions: vec![
                UpdateAction::add("member_count", -1),
                UpdateAction::add("admin_count", -i64::from(admin)),
            ],
            condition: Some(meta_condition),
        },
    )
}

/// The tenants a user's membership index names (`IDX#MEMBERSHIPS#<id>` on GSI1, every page),
/// with when each was joined. An index, eventually consistent on DynamoDB: the tenant's own
/// membership item is the truth, and every caller re-reads it.
pub async fn user_memberships(
    ctx: &AppContext,
    user_id: &str,
) -> Result<Vec<(TenantId, String)>, ApiError> {
    let mut found = Vec::new();
    let mut cursor = None;
    loop {
        let page = ctx
            .stores
            .platform()
            .query(
                &Query::gsi1(memberships_index(user_id))
                    .limit(100)
                    .after(cursor),
            )
            .await?;
        for item in &page.items {
            if let Some((tenant, "MEMBERS")) = TenantId::of_pk(&item.key.pk) {
                let joined = item.str("joined_at").unwrap_or_default().to_owned();
                found.push((tenant, joined));
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(found),
        }
    }
}
