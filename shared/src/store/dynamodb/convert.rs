//! Values between the port and the SDK (items, keys, numbers, paging positions), and SDK
//! errors as the port's.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use rust_decimal::Decimal;

use crate::store::{AttrValue, Item, Key, Position, StoreError, GSI1PK, GSI1SK};

use super::{AttrMap, PK, SK};

pub(super) fn number(d: &Decimal) -> String {
    d.normalize().to_string()
}

pub(super) fn key_map(key: &Key) -> AttrMap {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

pub(super) fn start_key(position: Position) -> AttrMap {
    let mut map = key_map(&Key::new(position.pk, position.sk));
    if let Some((gpk, gsk)) = position.gsi1 {
        map.insert(GSI1PK.to_owned(), AttributeValue::S(gpk));
        map.insert(GSI1SK.to_owned(), AttributeValue::S(gsk));
    }
    map
}

pub(super) fn to_dynamo(item: &Item) -> AttrMap {
    let mut map = key_map(&item.key);
    for (name, value) in &item.attrs {
        map.insert(name.clone(), attr_to_dynamo(value));
    }
    map
}

pub(super) fn attr_to_dynamo(value: &AttrValue) -> AttributeValue {
    match value {
        AttrValue::S(s) => AttributeValue::S(s.clone()),
        AttrValue::N(n) => AttributeValue::N(number(n)),
        AttrValue::Bool(b) => AttributeValue::Bool(*b),
        AttrValue::B(bytes) => AttributeValue::B(Blob::new(bytes.clone())),
        AttrValue::L(items) => AttributeValue::L(items.iter().map(attr_to_dynamo).collect()),
        AttrValue::M(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| (k.clone(), attr_to_dynamo(v)))
                .collect(),
        ),
        AttrValue::Null => AttributeValue::Null(true),
    }
}

pub(super) fn from_dynamo(mut map: AttrMap) -> Result<Item, StoreError> {
    let mut key_part = |name: &str| match map.remove(name) {
        Some(AttributeValue::S(s)) => Ok(s),
        _ => Err(StoreError::Backend(format!("item without string {name}"))),
    };
    let key = Key::new(key_part(PK)?, key_part(SK)?);
    let attrs = map
        .into_iter()
        .map(|(k, v)| Ok((k, attr_from_dynamo(v)?)))
        .collect::<Result<_, StoreError>>()?;
    Ok(Item { key, attrs })
}

pub(super) fn attr_from_dynamo(value: AttributeValue) -> Result<AttrValue, StoreError> {
    let parse = |n: &str| {
        n.parse::<Decimal>()
            .or_else(|_| Decimal::from_scientific(n))
            .map_err(|_| StoreError::Backend(format!("number {n} does not fit a decimal")))
    };
    Ok(match value {
        AttributeValue::S(s) => AttrValue::S(s),
        AttributeValue::N(n) => AttrValue::N(parse(&n)?),
        AttributeValue::Bool(b) => AttrValue::Bool(b),
        AttributeValue::B(b) => AttrValue::B(b.into_inner()),
        AttributeValue::L(items) => AttrValue::L(
            items
                .into_iter()
                .map(attr_from_dynamo)
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::M(map) => AttrValue::M(
            map.into_iter()
                .map(|(k, v)| Ok((k, attr_from_dynamo(v)?)))
                .collect::<Result<_, StoreError>>()?,
        ),
        AttributeValue::Null(_) => AttrValue::Null,
        // Sets are never written by the port; read them as lists.
        AttributeValue::Ss(v) => AttrValue::L(v.into_iter().map(AttrValue::S).collect()),
        AttributeValue::Ns(v) => AttrValue::L(
            v.iter()
                .map(|n| parse(n).map(AttrValue::N))
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::Bs(v) => AttrValue::L(
            v.into_iter()
                .map(|b| AttrValue::B(b.into_inner()))
                .collect(),
        ),
        other => {
            return Err(StoreError::Backend(format!(
                "unsupported attribute value {other:?}"
            )))
        }
    })
}

/// Maps a single write's error, reading back the stored item on a failed condition.
pub(super) fn write_err<E, R>(
    error: SdkError<E, R>,
    conditional: impl Fn(&E) -> Option<Option<AttrMap>>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if let Some(current) = error.as_service_error().and_then(&conditional) {
        return match current.map(from_dynamo).transpose() {
            Ok(current) => StoreError::ConditionFailed {
                current: current.map(Box::new),
            },
            Err(e) => e,
        };
    }
    sdk_err(error)
}

pub(super) fn sdk_err<E, R>(error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match error.code() {
        Some("TransactionConflictException") => StoreError::Conflict,
        Some(
            "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "ThrottlingException",
        ) => StoreError::Throttled,
        Some("ValidationException") => StoreError::Invalid(
            error
                .message()
                .unwrap_or("DynamoDB validation error")
                .to_owned(),
        ),
        _ => StoreError::Backend(format!(
            "{}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&error)
        )),
    }
}

pub(super) fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Backend(format!("request build error: {e}"))
}
