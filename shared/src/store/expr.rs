//! The small, typed vocabulary of conditions, updates and queries the port speaks.
//!
//! It is deliberately a subset of DynamoDB's expression language, as Rust enums: every variant
//! maps to one DynamoDB expression and has one in-process evaluation (used by the embedded
//! store), and the conformance suite holds the two to the same answers.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use super::item::{AttrValue, Item, Key};

/// A condition on the item currently stored under a key (`None` when there is none).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// An item exists under the key.
    ItemExists,
    /// No item exists under the key.
    ItemNotExists,
    AttrExists(String),
    AttrNotExists(String),
    /// Equal value and type.
    Eq(String, AttrValue),
    /// Not equal; true when the attribute is missing (DynamoDB's `<>`).
    Ne(String, AttrValue),
    /// Ordered comparisons between numbers, or between strings (byte order). False when the
    /// attribute is missing or of another type.
    Lt(String, AttrValue),
    Le(String, AttrValue),
    Gt(String, AttrValue),
    Ge(String, AttrValue),
    And(Vec<Condition>),
    Or(Vec<Condition>),
}

impl Condition {
    pub fn eq(name: &str, value: impl Into<AttrValue>) -> Self {
        Condition::Eq(name.to_owned(), value.into())
    }
    pub fn ne(name: &str, value: impl Into<AttrValue>) -> Self {
        Condition::Ne(name.to_owned(), value.into())
    }
    pub fn lt(name: &str, value: impl Into<AttrValue>) -> Self {
        Condition::Lt(name.to_owned(), value.into())
    }
    pub fn le(name: &str, value: impl Into<AttrValue>) -> Self {
        Condition::Le(name.to_owned(), value.into())
    }
    pub fn gt(name: &str, value: impl Into<AttrValue>) -> Self {
        Condition::Gt(name.to_owned(), value.into())
    }
    pub fn ge(name: &str, value: impl Into<AttrValue>) -> Self {
        Condition::Ge(name.to_owned(), value.into())
    }
    pub fn exists(name: &str) -> Self {
        Condition::AttrExists(name.to_owned())
    }
    pub fn not_exists(name: &str) -> Self {
        Condition::AttrNotExists(name.to_owned())
    }

    /// Evaluates the condition against the stored item.
    pub fn evaluate(&self, current: Option<&Item>) -> bool {
        let attr = |name: &str| current.and_then(|item| item.attrs.get(name));
        match self {
            Condition::ItemExists => current.is_some(),
            Condition::ItemNotExists => current.is_none(),
            Condition::AttrExists(name) => attr(name).is_some(),
            Condition::AttrNotExists(name) => attr(name).is_none(),
            Condition::Eq(name, value) => attr(name) == Some(value),
            Condition::Ne(name, value) => attr(name) != Some(value),
            Condition::Lt(name, value) => compare(attr(name), value) == Some(Ordering::Less),
            Condition::Le(name, value) => matches!(
                compare(attr(name), value),
                Some(Ordering::Less | Ordering::Equal)
            ),
            Condition::Gt(name, value) => compare(attr(name), value) == Some(Ordering::Greater),
            Condition::Ge(name, value) => matches!(
                compare(attr(name), value),
                Some(Ordering::Greater | Ordering::Equal)
            ),
            Condition::And(all) => all.iter().all(|c| c.evaluate(current)),
            Condition::Or(any) => any.iter().any(|c| c.evaluate(current)),
        }
    }

    pub(crate) fn has_empty_group(&self) -> bool {
        match self {
            Condition::And(cs) | Condition::Or(cs) => {
                cs.is_empty() || cs.iter().any(Condition::has_empty_group)
            }
            _ => false,
        }
    }

    /// Attribute names the condition mentions (for validation).
    pub(crate) fn attr_names(&self) -> Vec<&str> {
        match self {
            Condition::ItemExists | Condition::ItemNotExists => vec![],
            Condition::AttrExists(n) | Condition::AttrNotExists(n) => vec![n],
            Condition::Eq(n, _)
            | Condition::Ne(n, _)
            | Condition::Lt(n, _)
            | Condition::Le(n, _)
            | Condition::Gt(n, _)
            | Condition::Ge(n, _) => vec![n],
            Condition::And(cs) | Condition::Or(cs) => {
                cs.iter().flat_map(|c| c.attr_names()).collect()
            }
        }
    }
}

fn compare(stored: Option<&AttrValue>, operand: &AttrValue) -> Option<Ordering> {
    match (stored?, operand) {
        (AttrValue::N(a), AttrValue::N(b)) => Some(a.cmp(b)),
        (AttrValue::S(a), AttrValue::S(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (AttrValue::B(a), AttrValue::B(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// One change an update makes.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateAction {
    Set(String, AttrValue),
    /// Adds to a number attribute atomically; a missing attribute counts as zero.
    Add(String, Decimal),
    Remove(String),
}

impl UpdateAction {
    pub fn set(name: &str, value: impl Into<AttrValue>) -> Self {
        UpdateAction::Set(name.to_owned(), value.into())
    }
    pub fn add(name: &str, delta: impl Into<Decimal>) -> Self {
        UpdateAction::Add(name.to_owned(), delta.into())
    }
    pub fn remove(name: &str) -> Self {
        UpdateAction::Remove(name.to_owned())
    }

    pub(crate) fn attr_name(&self) -> &str {
        match self {
            UpdateAction::Set(n, _) | UpdateAction::Add(n, _) | UpdateAction::Remove(n) => n,
        }
    }
}

/// Applies update actions to the stored item (or a new one), as DynamoDB's UpdateItem does.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn apply_updates(
    key: &Key,
    current: Option<&Item>,
    actions: &[UpdateAction],
) -> Result<Item, String> {
    let mut item = current.cloned().unwrap_or_else(|| Item::new(key.clone()));
    for action in actions {
        match action {
            UpdateAction::Set(name, value) => {
                item.attrs.insert(name.clone(), value.clone());
            }
            UpdateAction::Add(name, delta) => {
                let base = match item.attrs.get(name) {
                    None => Decimal::ZERO,
                    Some(AttrValue::N(n)) => *n,
                    Some(_) => return Err(format!("ADD on non-number attribute {name}")),
                };
                let sum = base
                    .checked_add(*delta)
                    .ok_or_else(|| format!("ADD overflows attribute {name}"))?;
                item.attrs.insert(name.clone(), AttrValue::N(sum));
            }
            UpdateAction::Remove(name) => {
                item.attrs.remove(name);
            }
        }
    }
    Ok(item)
}

/// One write, alone or inside a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    Put {
        item: Item,
        condition: Option<Condition>,
    },
    Update {
        key: Key,
        actions: Vec<UpdateAction>,
        condition: Option<Condition>,
    },
    Delete {
        key: Key,
        condition: Option<Condition>,
    },
    /// Only checks a condition on another item (transactions only).
    Check { key: Key, condition: Condition },
    /// Claims an idempotency key: stores `item` unless an unexpired claim is at its key (one
    /// whose TTL is at or after `now`); a refusal reports that claim as the current item.
    /// Claims are a keyspace of their own, read only with [`super::Store::get_claim`], so an
    /// adapter may keep them apart from other items (the embedded one appends them to a log
    /// rather than inserting at a random place in a B-tree). A claim needs a TTL and no index
    /// attributes.
    Claim {
        item: Item,
        now: i64,
        /// Copy an attribute of another operation's post-image onto the claim (transactions
        /// only), so a replay can answer as the first request did.
        stamp: Option<Stamp>,
    },
}

/// `attr` of operation `from`'s item as the transaction leaves it, copied onto a claim. An
/// adapter that can read it inside the transaction stores it with the claim; one that cannot
/// (DynamoDB) writes it right after the transaction, so a process stopped in between leaves the
/// claim without it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp {
    pub from: usize,
    pub attr: String,
}

impl WriteOp {
    pub fn key(&self) -> &Key {
        match self {
            WriteOp::Put { item, .. } | WriteOp::Claim { item, .. } => &item.key,
            WriteOp::Update { key, .. }
            | WriteOp::Delete { key, .. }
            | WriteOp::Check { key, .. } => key,
        }
    }

    pub fn condition(&self) -> Option<&Condition> {
        match self {
            WriteOp::Put { condition, .. }
            | WriteOp::Update { condition, .. }
            | WriteOp::Delete { condition, .. } => condition.as_ref(),
            WriteOp::Check { condition, .. } => Some(condition),
            WriteOp::Claim { .. } => None,
        }
    }

    /// The claim as a conditional put on the item's own key, for adapters that keep claims
    /// with other items (the stamp is theirs to write afterwards). Other operations unchanged.
    pub fn claim_as_put(self) -> WriteOp {
        match self {
            WriteOp::Claim { item, now, .. } => WriteOp::Put {
                item,
                condition: Some(Condition::Or(vec![
                    Condition::ItemNotExists,
                    Condition::lt(super::TTL, now),
                ])),
            },
            other => other,
        }
    }
}

/// A condition on the sort key of a query (on the table or on GSI1).
#[derive(Debug, Clone, PartialEq)]
pub enum SortKeyCondition {
    Eq(String),
    BeginsWith(String),
    /// Inclusive on both ends.
    Between(String, String),
    Lt(String),
    Le(String),
    Gt(String),
    Ge(String),
}

impl SortKeyCondition {
    pub fn matches(&self, sk: &str) -> bool {
        let sk = sk.as_bytes();
        match self {
            SortKeyCondition::Eq(v) => sk == v.as_bytes(),
            SortKeyCondition::BeginsWith(p) => sk.starts_with(p.as_bytes()),
            SortKeyCondition::Between(a, b) => sk >= a.as_bytes() && sk <= b.as_bytes(),
            SortKeyCondition::Lt(v) => sk < v.as_bytes(),
            SortKeyCondition::Le(v) => sk <= v.as_bytes(),
            SortKeyCondition::Gt(v) => sk > v.as_bytes(),
            SortKeyCondition::Ge(v) => sk >= v.as_bytes(),
        }
    }
}

/// Which index a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    /// The table itself: PK / SK.
    Table,
    /// The global secondary index GSI1PK / GSI1SK (sparse, eventually consistent on DynamoDB).
    Gsi1,
}

/// A query of one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub index: Index,
    pub pk: String,
    pub sk: Option<SortKeyCondition>,
    /// Newest (highest sort key) first.
    pub descending: bool,
    /// Page size, 1..=1000.
    pub limit: u32,
    /// An opaque cursor from a previous page of the same query.
    pub cursor: Option<String>,
}

impl Query {
    pub const MAX_LIMIT: u32 = 1000;

    pub fn table(pk: impl Into<String>) -> Self {
        Self {
            index: Index::Table,
            pk: pk.into(),
            sk: None,
            descending: false,
            limit: 100,
            cursor: None,
        }
    }

    pub fn gsi1(pk: impl Into<String>) -> Self {
        Self {
            index: Index::Gsi1,
            ..Self::table(pk)
        }
    }

    pub fn sk(mut self, condition: SortKeyCondition) -> Self {
        self.sk = Some(condition);
        self
    }

    pub fn begins_with(self, prefix: impl Into<String>) -> Self {
        self.sk(SortKeyCondition::BeginsWith(prefix.into()))
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    pub fn descending(mut self) -> Self {
        self.descending = true;
        self
    }

    pub fn after(mut self, cursor: Option<String>) -> Self {
        self.cursor = cursor;
        self
    }
}

/// One page of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    /// `None` on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_across_types_are_false() {
        let item = Item::new(Key::new("P", "S"))
            .with("s", "banana")
            .with("n", 3);
        for condition in [
            Condition::lt("s", 5),
            Condition::ge("s", 5),
            Condition::gt("n", "a"),
            Condition::le("missing", 1),
        ] {
            assert!(!condition.evaluate(Some(&item)), "{condition:?}");
        }
        assert!(Condition::ne("s", 5).evaluate(Some(&item)));
    }
}
