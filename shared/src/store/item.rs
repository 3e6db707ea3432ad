//! Items and attribute values of the single table.
//!
//! The vocabulary is DynamoDB's (string, number, bool, binary, list, map, null) so the DynamoDB
//! adapter is a plain translation; numbers are `rust_decimal::Decimal`, never floats.

use std::collections::BTreeMap;

use base64::Engine as _;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Index attribute names. They are ordinary string attributes on an item; an item is in the
/// sparse GSI1 only when it has both.
pub const GSI1PK: &str = "GSI1PK";
pub const GSI1SK: &str = "GSI1SK";
/// The TTL attribute (epoch seconds). Expiry is garbage collection, not a read filter: like
/// DynamoDB, a store may return an item for a while after it expired, so callers that care
/// compare it with their clock.
pub const TTL: &str = "expires_at";

/// Names the adapters own; items may not use them as ordinary attributes.
pub(crate) const KEY_ATTRS: [&str; 2] = ["PK", "SK"];

/// The primary key of an item: partition key and sort key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

/// One attribute value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AttrValue {
    S(String),
    N(#[serde(with = "rust_decimal::serde::str")] Decimal),
    Bool(bool),
    B(#[serde(with = "b64")] Vec<u8>),
    L(Vec<AttrValue>),
    M(BTreeMap<String, AttrValue>),
    Null,
}

impl AttrValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::S(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_decimal(&self) -> Option<Decimal> {
        match self {
            AttrValue::N(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Converts a JSON document into an attribute value. JSON numbers become exact decimals
    /// (parsed from their text, so `0.1` stays `0.1`); a number a decimal cannot hold is an error.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, String> {
        Ok(match value {
            serde_json::Value::Null => AttrValue::Null,
            serde_json::Value::Bool(b) => AttrValue::Bool(*b),
            serde_json::Value::Number(n) => {
                let text = n.to_string();
                let parsed = text
                    .parse::<Decimal>()
                    .or_else(|_| Decimal::from_scientific(&text))
                    .map_err(|_| format!("number {text} is out of range"))?;
                AttrValue::N(parsed)
            }
            serde_json::Value::String(s) => AttrValue::S(s.clone()),
            serde_json::Value::Array(items) => AttrValue::L(
                items
                    .iter()
                    .map(AttrValue::from_json)
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(map) => AttrValue::M(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), AttrValue::from_json(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }

    /// The inverse of [`AttrValue::from_json`]. Numbers come back as JSON numbers; binary as
    /// base64 text.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            AttrValue::S(s) => serde_json::Value::String(s.clone()),
            AttrValue::N(n) => serde_json::from_str(&n.normalize().to_string())
                .unwrap_or_else(|_| serde_json::Value::String(n.to_string())),
            AttrValue::Bool(b) => serde_json::Value::Bool(*b),
            AttrValue::B(bytes) => {
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            AttrValue::L(items) => {
                serde_json::Value::Array(items.iter().map(AttrValue::to_json).collect())
            }
            AttrValue::M(map) => serde_json::Value::Object(
                map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
            ),
            AttrValue::Null => serde_json::Value::Null,
        }
    }
}

impl From<&str> for AttrValue {
    fn from(value: &str) -> Self {
        AttrValue::S(value.to_owned())
    }
}

impl From<String> for AttrValue {
    fn from(value: String) -> Self {
        AttrValue::S(value)
    }
}

impl From<Decimal> for AttrValue {
    fn from(value: Decimal) -> Self {
        AttrValue::N(value)
    }
}

impl From<i64> for AttrValue {
    fn from(value: i64) -> Self {
        AttrValue::N(Decimal::from(value))
    }
}

impl From<bool> for AttrValue {
    fn from(value: bool) -> Self {
        AttrValue::Bool(value)
    }
}

/// A stored item: its key and its attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub key: Key,
    pub attrs: BTreeMap<String, AttrValue>,
}

impl Item {
    pub fn new(key: Key) -> Self {
        Self {
            key,
            attrs: BTreeMap::new(),
        }
    }

    /// Builder-style attribute setter.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<AttrValue>) -> Self {
        self.attrs.insert(name.into(), value.into());
        self
    }

    /// Puts the item in GSI1 under the given keys.
    pub fn with_gsi1(self, pk: impl Into<String>, sk: impl Into<String>) -> Self {
        self.with(GSI1PK, pk.into()).with(GSI1SK, sk.into())
    }

    pub fn with_ttl(self, epoch_seconds: i64) -> Self {
        self.with(TTL, epoch_seconds)
    }

    pub fn get(&self, name: &str) -> Option<&AttrValue> {
        self.attrs.get(name)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(AttrValue::as_str)
    }

    pub fn decimal(&self, name: &str) -> Option<Decimal> {
        self.get(name).and_then(AttrValue::as_decimal)
    }

    pub fn gsi1(&self) -> Option<(&str, &str)> {
        Some((self.str(GSI1PK)?, self.str(GSI1SK)?))
    }

    pub fn ttl(&self) -> Option<i64> {
        use rust_decimal::prelude::ToPrimitive;
        self.decimal(TTL).and_then(|d| d.trunc().to_i64())
    }
}

/// Binary values travel as base64 in the embedded store's JSON encoding.
mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

impl Item {
    /// A string attribute the item must have; its absence means corrupt data.
    pub fn required_str(&self, name: &str) -> Result<&str, super::StoreError> {
        self.str(name).ok_or_else(|| {
            super::StoreError::Backend(format!(
                "item {}/{} lacks string attribute {name}",
                self.key.pk, self.key.sk
            ))
        })
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(AttrValue::as_bool)
    }

    pub fn i64(&self, name: &str) -> Option<i64> {
        use rust_decimal::prelude::ToPrimitive;
        self.decimal(name).and_then(|d| d.to_i64())
    }
}
