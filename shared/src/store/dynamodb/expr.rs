//! Condition, update and key expressions, with a placeholder for every attribute name and
//! value (so no name collides with a DynamoDB reserved word).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::store::expr::{Condition, UpdateAction};
use crate::store::{AttrValue, SortKeyCondition};

use super::convert::{attr_to_dynamo, number};
use super::{AttrMap, PK};

/// Builds expressions with placeholders for every name and value.
#[derive(Default)]
pub(super) struct Expr {
    pub(super) names: HashMap<String, String>,
    pub(super) values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub(super) fn name(&mut self, attr: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, n)| *n == attr) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }

    pub(super) fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    pub(super) fn names_opt(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub(super) fn values_opt(&self) -> Option<AttrMap> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    pub(super) fn condition(&mut self, condition: &Condition) -> String {
        let compare = |expr: &mut Self, name: &str, op: &str, value: &AttrValue| {
            format!(
                "{} {op} {}",
                expr.name(name),
                expr.value(attr_to_dynamo(value))
            )
        };
        match condition {
            Condition::ItemExists => format!("attribute_exists({})", self.name(PK)),
            Condition::ItemNotExists => format!("attribute_not_exists({})", self.name(PK)),
            Condition::AttrExists(n) => format!("attribute_exists({})", self.name(n)),
            Condition::AttrNotExists(n) => format!("attribute_not_exists({})", self.name(n)),
            Condition::Eq(n, v) => compare(self, n, "=", v),
            Condition::Ne(n, v) => compare(self, n, "<>", v),
            Condition::Lt(n, v) => compare(self, n, "<", v),
            Condition::Le(n, v) => compare(self, n, "<=", v),
            Condition::Gt(n, v) => compare(self, n, ">", v),
            Condition::Ge(n, v) => compare(self, n, ">=", v),
            Condition::And(all) => self.join(all, " AND "),
            Condition::Or(any) => self.join(any, " OR "),
        }
    }

    pub(super) fn join(&mut self, conditions: &[Condition], op: &str) -> String {
        // A group of one is its member: DynamoDB refuses `((a AND b))` as "redundant
        // parentheses", which a group of one around a group would otherwise render.
        if let [only] = conditions {
            return self.condition(only);
        }
        let parts: Vec<String> = conditions.iter().map(|c| self.condition(c)).collect();
        format!("({})", parts.join(op))
    }

    pub(super) fn sort_key(&mut self, col: &str, condition: &SortKeyCondition) -> String {
        let name = self.name(col);
        let mut v = |s: &String| self.value(AttributeValue::S(s.clone()));
        match condition {
            SortKeyCondition::Eq(x) => format!("{name} = {}", v(x)),
            SortKeyCondition::Lt(x) => format!("{name} < {}", v(x)),
            SortKeyCondition::Le(x) => format!("{name} <= {}", v(x)),
            SortKeyCondition::Gt(x) => format!("{name} > {}", v(x)),
            SortKeyCondition::Ge(x) => format!("{name} >= {}", v(x)),
            SortKeyCondition::BeginsWith(x) => format!("begins_with({name}, {})", v(x)),
            SortKeyCondition::Between(a, b) => {
                let a = v(a);
                format!("{name} BETWEEN {a} AND {}", v(b))
            }
        }
    }

    pub(super) fn update(&mut self, actions: &[UpdateAction]) -> String {
        let (mut set, mut add, mut remove) = (Vec::new(), Vec::new(), Vec::new());
        for action in actions {
            match action {
                UpdateAction::Set(n, value) => set.push(format!(
                    "{} = {}",
                    self.name(n),
                    self.value(attr_to_dynamo(value))
                )),
                UpdateAction::Add(n, delta) => add.push(format!(
                    "{} {}",
                    self.name(n),
                    self.value(AttributeValue::N(number(delta)))
                )),
                UpdateAction::Remove(n) => remove.push(self.name(n)),
            }
        }
        let mut clauses = Vec::new();
        for (keyword, parts) in [("SET", set), ("ADD", add), ("REMOVE", remove)] {
            if !parts.is_empty() {
                clauses.push(format!("{keyword} {}", parts.join(", ")));
            }
        }
        clauses.join(" ")
    }
}
