//! People: the user profile, the email that names it (unique), and the writes that create a
//! user. No sessions, no tenants: those build on this.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::store::{Condition, Item, Key, ScopedTransaction, Store, StoreError, WriteOp};
use crate::time;
use crate::AppContext;

pub fn user_key(user_id: &str) -> Key {
    Key::new(format!("USER#{user_id}"), "PROFILE")
}

pub fn email_key(email: &str) -> Key {
    Key::new(format!("EMAIL#{email}"), "EMAIL")
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub platform_admin: bool,
    /// Whether the owner of the email proved it (a verification link, or an invitation link):
    /// only a verified account sees and accepts invitations.
    pub email_verified: bool,
    pub created_at: String,
}

impl UserView {
    pub fn from_item(item: &Item) -> Result<Self, StoreError> {
        Ok(Self {
            id: item.required_str("user_id")?.to_owned(),
            email: item.required_str("email")?.to_owned(),
            name: item.required_str("name")?.to_owned(),
            platform_admin: item.bool("platform_admin").unwrap_or(false),
            email_verified: item.bool("email_verified").unwrap_or(false),
            created_at: item.required_str("created_at")?.to_owned(),
        })
    }
}

pub fn user_item(
    user_id: &str,
    email: &str,
    name: &str,
    hash: Option<&str>,
    admin: bool,
    verified: bool,
    now: DateTime<Utc>,
) -> Item {
    let mut item = Item::new(user_key(user_id))
        .with("user_id", user_id)
        .with("email", email)
        .with("name", name)
        .with("platform_admin", admin)
        .with("email_verified", verified)
        .with("created_at", time::fmt(now));
    if let Some(hash) = hash {
        item = item.with("password_hash", hash);
    }
    item
}

/// The two writes that create a user: the email claim (unique: its failure is index 0 of the
/// transaction) and the profile.
pub fn new_user_ops(tx: ScopedTransaction, user: &Item, email: &str) -> ScopedTransaction {
    let user_id = user.str("user_id").unwrap_or_default();
    tx.platform(WriteOp::Put {
        item: Item::new(email_key(email)).with("user_id", user_id),
        condition: Some(Condition::ItemNotExists),
    })
    .platform(WriteOp::Put {
        item: user.clone(),
        condition: Some(Condition::ItemNotExists),
    })
}

/// Takes back an account created a moment ago whose next step (its first tenant, the
/// membership of an invitation) was refused: the email claim and the profile, on condition
/// that the claim is still this user's. Best effort: an account left behind is a verified or
/// unverified account without a tenant, which its owner can still sign in to.
pub async fn delete_new_user(ctx: &AppContext, user_id: &str, email: &str) {
    let undone = ctx
        .stores
        .transaction()
        .platform(WriteOp::Delete {
            key: email_key(email),
            condition: Some(Condition::eq("user_id", user_id)),
        })
        .platform(WriteOp::Delete {
            key: user_key(user_id),
            condition: None,
        })
        .commit()
        .await;
    if let Err(e) = undone {
        tracing::warn!(error = %e, user_id, "could not take back a new account");
    }
}

pub async fn load_user(ctx: &AppContext, user_id: &str) -> Result<Option<Item>, ApiError> {
    Ok(ctx.stores.platform().get(&user_key(user_id)).await?)
}

pub async fn find_user_id_by_email(
    ctx: &AppContext,
    email: &str,
) -> Result<Option<String>, ApiError> {
    Ok(ctx
        .stores
        .platform()
        .get(&email_key(email))
        .await?
        .and_then(|i| i.str("user_id").map(str::to_owned)))
}
