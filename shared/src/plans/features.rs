//! Features: what a plan version grants besides metric limits, defined once by the platform
//! admin (a key, a name, a type, a description) and given a value per plan version:
//! `boolean` (on/off: `priority_support`), `number` (`max_projects: 10`) or `string`
//! (`support_tier: "gold"`). The catalog lives on the platform's side (`FEATURE#<key>`);
//! versions copy the values, so a version stays immutable and a feature's name or description
//! can change without touching it. A feature's type never changes (values were checked
//! against it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::{self, Change};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{ListParams, ListResponse};
use crate::store::{Condition, Item, Key, Query, Store, UpdateAction, WriteOp};
use crate::time;
use crate::AppContext;

const FEATURE_INDEX: &str = "IDX#FEATURES";
/// Features set on one plan version at most.
pub const MAX_PER_VERSION: usize = 50;

fn feature_key(key: &str) -> Key {
    Key::new(format!("FEATURE#{key}"), "META")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeatureType {
    /// On or off.
    Boolean,
    /// A number, like a count of projects (within ±10^15).
    Number,
    /// A short text, like a support tier (up to 200 characters).
    String,
}

impl FeatureType {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "boolean" => Some(Self::Boolean),
            "number" => Some(Self::Number),
            "string" => Some(Self::String),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::Number => "number",
            Self::String => "string",
        }
    }

    /// Whether `value` is one of this type's values.
    fn admits(self, value: &Value) -> Result<(), &'static str> {
        match (self, value) {
            (Self::Boolean, Value::Bool(_)) => Ok(()),
            (Self::Number, Value::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() && x.abs() <= 1e15 => Ok(()),
                _ => Err("a number within ±10^15"),
            },
            (Self::String, Value::String(s)) if s.chars().count() <= 200 => {
                if s.chars().any(char::is_control) {
                    Err("text without control characters")
                } else {
                    Ok(())
                }
            }
            (Self::String, Value::String(_)) => Err("up to 200 characters"),
            (Self::Boolean, _) => Err("true or false"),
            (Self::Number, _) => Err("a number"),
            (Self::String, _) => Err("a string"),
        }
    }
}

/// A feature's value, as the OpenAPI document describes it (the stores keep plain JSON):
/// `true`/`false`, a number or a string, as the feature's type says.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FeatureValue {
    Boolean(bool),
    Number(f64),
    String(String),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFeatureRequest {
    /// What plans and checks name it by.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,63}$", example = "priority_support")]
    pub key: String,
    #[schema(min_length = 1, max_length = 80, example = "Priority support")]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FeatureType,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchFeatureRequest {
    #[schema(min_length = 1, max_length = 80)]
    pub name: Option<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeatureView {
    pub key: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FeatureType,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
}

impl FeatureView {
    fn from_item(item: &Item) -> Result<Self, ApiError> {
        Ok(Self {
            key: item.required_str("key")?.to_owned(),
            name: item.required_str("name")?.to_owned(),
            kind: FeatureType::parse(item.required_str("type")?)
                .ok_or_else(|| ApiError::internal("feature of an unknown type"))?,
            description: item.str("description").unwrap_or_default().to_owned(),
            created_at: item.required_str("created_at")?.to_owned(),
            updated_at: item.required_str("updated_at")?.to_owned(),
        })
    }
}

fn check_name(raw: &str) -> Result<String, ApiError> {
    let name = crate::text::check_name(raw, "name")?;
    if name.chars().count() > 80 {
        return Err(ApiError::validation("name", "1 to 80 characters"));
    }
    Ok(name)
}

pub async fn create(
    ctx: &AppContext,
    caller: &Caller,
    req: CreateFeatureRequest,
) -> Result<FeatureView, ApiError> {
    caller.require_platform_admin()?;
    crate::plans::policies::check_metric(&req.key).map_err(|e| e.field("key"))?;
    let name = check_name(&req.name)?;
    let description = crate::text::check_description(
        req.description.as_deref().unwrap_or_default(),
        "description",
    )?;
    let now = ctx.clock.now();
    let at = time::fmt(now);
    let item = Item::new(feature_key(&req.key))
        .with("key", req.key.as_str())
        .with("name", name.as_str())
        .with("type", req.kind.as_str())
        .with("description", description.as_str())
        .with("created_at", at.as_str())
        .with("updated_at", at.as_str())
        .with_gsi1(FEATURE_INDEX, req.key.as_str());
    let view = FeatureView::from_item(&item)?;
    let change = Change {
        action: "feature.created",
        resource_type: "feature",
        resource_id: &req.key,
        before: None,
        after: Some(serde_json::to_value(&view).expect("serializable")),
        reason: None,
    };
    ctx.stores
        .transaction()
        .platform(WriteOp::Put {
            item,
            condition: Some(Condition::ItemNotExists),
        })
        .platform(audit::platform_op(caller, change, now))
        .commit()
        .await
        .map_err(|e| match e.failed_condition_index() {
            Some(0) => ApiError::conflict("a feature with this key exists").field("key"),
            _ => e.into(),
        })?;
    Ok(view)
}

/// The catalog, by key (any signed-in caller: dashboards show features' names).
pub async fn list(
    ctx: &AppContext,
    _caller: &Caller,
    params: ListParams,
) -> Result<ListResponse<FeatureView>, ApiError> {
    let page = ctx
        .stores
        .platform()
        .query(
            &Query::gsi1(FEATURE_INDEX)
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    ListResponse::from_page(page, FeatureView::from_item)
}

async fn load(ctx: &AppContext, key: &str) -> Result<Option<FeatureView>, ApiError> {
    if crate::plans::policies::check_metric(key).is_err() {
        return Ok(None);
    }
    ctx.stores
        .platform()
        .get(&feature_key(key))
        .await?
        .map(|item| FeatureView::from_item(&item))
        .transpose()
}

/// Renames or re-describes a feature (its type stays); audited.
pub async fn patch(
    ctx: &AppContext,
    caller: &Caller,
    key: &str,
    req: PatchFeatureRequest,
) -> Result<FeatureView, ApiError> {
    caller.require_platform_admin()?;
    let before = load(ctx, key)
        .await?
        .ok_or_else(|| ApiError::not_found("no such feature"))?;
    let mut after = before.clone();
    if let Some(name) = &req.name {
        after.name = check_name(name)?;
    }
    if let Some(description) = &req.description {
        after.description = crate::text::check_description(description, "description")?;
    }
    if after.name == before.name && after.description == before.description {
        return Ok(before);
    }
    let now = ctx.clock.now();
    after.updated_at = time::fmt(now);
    let change = Change {
        action: "feature.updated",
        resource_type: "feature",
        resource_id: &before.key,
        before: Some(serde_json::to_value(&before).expect("serializable")),
        after: Some(serde_json::to_value(&after).expect("serializable")),
        reason: None,
    };
    ctx.stores
        .transaction()
        .platform(WriteOp::Update {
            key: feature_key(&before.key),
            actions: vec![
                UpdateAction::set("name", after.name.as_str()),
                UpdateAction::set("description", after.description.as_str()),
                UpdateAction::set("updated_at", after.updated_at.as_str()),
            ],
            condition: Some(Condition::eq("updated_at", before.updated_at.as_str())),
        })
        .platform(audit::platform_op(caller, change, now))
        .commit()
        .await
        .map_err(|e| {
            if e.is_condition_failure() {
                ApiError::conflict("the feature changed meanwhile; retry")
            } else {
                e.into()
            }
        })?;
    Ok(after)
}

/// Checks a plan version's feature values against the catalog: each a known feature, of its
/// type; at most [`MAX_PER_VERSION`]. A 422 names the field (`features.max_projects`).
pub async fn check_values(
    ctx: &AppContext,
    values: &BTreeMap<String, Value>,
) -> Result<(), ApiError> {
    if values.len() > MAX_PER_VERSION {
        return Err(ApiError::validation(
            "features",
            "at most 50 features per plan",
        ));
    }
    for (key, value) in values {
        let field = format!("features.{key}");
        let Some(feature) = load(ctx, key).await? else {
            return Err(ApiError::validation(
                field,
                "no such feature: define it first (POST /v1/features)",
            ));
        };
        feature.kind.admits(value).map_err(|why| {
            ApiError::validation(field, format!("{} feature: {why}", feature.kind.as_str()))
        })?;
    }
    Ok(())
}

/// The catalog entry of `key`, for answers that show a feature's name.
pub async fn describe(ctx: &AppContext, key: &str) -> Result<Option<FeatureView>, ApiError> {
    load(ctx, key).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_value_must_be_of_its_features_type() {
        assert!(FeatureType::Boolean.admits(&json!(true)).is_ok());
        assert!(FeatureType::Boolean.admits(&json!("yes")).is_err());
        assert!(FeatureType::Number.admits(&json!(10)).is_ok());
        assert!(FeatureType::Number.admits(&json!(2.5)).is_ok());
        assert!(FeatureType::Number.admits(&json!(1e16)).is_err());
        assert!(FeatureType::Number.admits(&json!("10")).is_err());
        assert!(FeatureType::String.admits(&json!("gold")).is_ok());
        assert!(FeatureType::String.admits(&json!("x".repeat(201))).is_err());
        assert!(FeatureType::String.admits(&json!("a\u{0}b")).is_err());
        assert!(FeatureType::String.admits(&json!(1)).is_err());
    }
}
