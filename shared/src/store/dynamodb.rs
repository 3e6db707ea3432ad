//! The DynamoDB adapter: a thin translation of the port into aws-sdk-dynamodb calls.
//!
//! Endpoints and credentials come from the standard AWS settings (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_REGION`, the credential chain), so the same code talks to
//! AWS, LocalStack or moto. Every expression uses `#name` / `:value` placeholders, so attribute
//! names never collide with DynamoDB's reserved words.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use rust_decimal::Decimal;

use super::expr::{Condition, UpdateAction};
use super::{
    validate_query, validate_returning, validate_transaction, validate_write, AttrValue,
    CancelReason, Index, Item, Key, Page, Position, Query, SortKeyCondition, Store, StoreError,
    WriteOp, GSI1PK, GSI1SK, TTL,
};

const PK: &str = "PK";
const SK: &str = "SK";
const GSI1: &str = "GSI1";

type AttrMap = HashMap<String, AttributeValue>;

pub struct DynamoStore {
    client: Client,
    table: String,
}

/// The standard AWS settings (environment, profile, role), with one HTTP client that every
/// client built from them shares: the SDK otherwise gives each client its own connection pool.
pub async fn aws_settings() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// The SDK's default HTTPS client (hyper 1, rustls with aws-lc), as one value to share.
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_https()
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A client from the standard AWS configuration chain (environment, profile, role).
    pub async fn from_env(table: impl Into<String>) -> Self {
        Self::new(Client::new(&aws_settings().await), table)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table (PK/SK, the sparse GSI1, TTL on `expires_at`, on-demand) unless it
    /// exists, and waits until it is active. For local and test use; AWS gets it from the
    /// template.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        let exists = match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e) if e.code() == Some("ResourceNotFoundException") => false,
            Err(e) => return Err(sdk_err(e)),
        };
        if !exists {
            let key = |name: &str, kind: KeyType| {
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kind)
                    .build()
                    .map_err(build_err)
            };
            let attr = |name: &str| {
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build_err)
            };
            let gsi = GlobalSecondaryIndex::builder()
                .index_name(GSI1)
                .key_schema(key(GSI1PK, KeyType::Hash)?)
                .key_schema(key(GSI1SK, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(build_err)?;
            let created = self
                .client
                .create_table()
                .table_name(&self.table)
                .billing_mode(BillingMode::PayPerRequest)
                .key_schema(key(PK, KeyType::Hash)?)
                .key_schema(key(SK, KeyType::Range)?)
                .attribute_definitions(attr(PK)?)
                .attribute_definitions(attr(SK)?)
                .attribute_definitions(attr(GSI1PK)?)
                .attribute_definitions(attr(GSI1SK)?)
                .global_secondary_indexes(gsi)
                .send()
                .await;
            match created {
                Ok(_) => {}
                // Someone else created it meanwhile.
                Err(e) if e.code() == Some("ResourceInUseException") => {}
                Err(e) => return Err(sdk_err(e)),
            }
        }
        for _ in 0..120 {
            let table = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(sdk_err)?;
            if table.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        if !exists {
            self.client
                .update_time_to_live()
                .table_name(&self.table)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .enabled(true)
                        .attribute_name(TTL)
                        .build()
                        .map_err(build_err)?,
                )
                .send()
                .await
                .map_err(sdk_err)?;
        }
        Ok(())
    }

    pub async fn delete_table(&self) -> Result<(), StoreError> {
        self.client
            .delete_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(())
    }
}

#[async_trait]
impl Store for DynamoStore {
    fn kind(&self) -> &'static str {
        "dynamodb"
    }

    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err)?;
        out.item.map(from_dynamo).transpose()
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        validate_query(query)?;
        let mut expr = Expr::default();
        let (pcol, scol) = match query.index {
            Index::Table => (PK, SK),
            Index::Gsi1 => (GSI1PK, GSI1SK),
        };
        let mut key_condition = format!(
            "{} = {}",
            expr.name(pcol),
            expr.value(AttributeValue::S(query.pk.clone()))
        );
        if let Some(condition) = &query.sk {
            key_condition.push_str(" AND ");
            key_condition.push_str(&expr.sort_key(scol, condition));
        }
        let mut start = match &query.cursor {
            Some(cursor) => Some(start_key(Position::decode(cursor, query.index, &query.pk)?)),
            None => None,
        };
        // Ask for one more than the page so the last page says so (DynamoDB itself returns a
        // LastEvaluatedKey whenever it stops at Limit), and follow 1 MB truncation.
        let want = query.limit as usize + 1;
        let mut items = Vec::new();
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&key_condition)
                .set_expression_attribute_names(Some(expr.names.clone()))
                .set_expression_attribute_values(Some(expr.values.clone()))
                .scan_index_forward(!query.descending)
                .limit((want - items.len()) as i32)
                .set_exclusive_start_key(start.take());
            request = match query.index {
                Index::Table => request.consistent_read(true),
                Index::Gsi1 => request.index_name(GSI1),
            };
            let out = request.send().await.map_err(sdk_err)?;
            for raw in out.items.unwrap_or_default() {
                items.push(from_dynamo(raw)?);
            }
            match out.last_evaluated_key {
                Some(last) if items.len() < want => start = Some(last),
                _ => break,
            }
        }
        let limit = query.limit as usize;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|i| Position::of(i, query.index).encode())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn write(&self, op: WriteOp) -> Result<Option<Item>, StoreError> {
        validate_write(&op, false)?;
        // Claims live beside the other items here: a conditional put.
        let op = op.claim_as_put();
        let mut expr = Expr::default();
        let condition = op.condition().map(|c| expr.condition(c));
        let on_fail = ReturnValuesOnConditionCheckFailure::AllOld;
        match op {
            WriteOp::Put { item, .. } => {
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(to_dynamo(&item)))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(expr.names_opt())
                    .set_expression_attribute_values(expr.values_opt())
                    .return_values_on_condition_check_failure(on_fail)
                    .send()
                    .await
                    .map_err(|e| {
                        write_err(e, |e| match e {
                            PutItemError::ConditionalCheckFailedException(c) => {
                                Some(c.item().cloned())
                            }
                            _ => None,
                        })
                    })?;
                Ok(Some(item))
            }
            WriteOp::Update { key, actions, .. } => {
                let update = expr.update(&actions);
                let out = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key_map(&key)))
                    .update_expression(update)
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(expr.names_opt())
                    .set_expression_attribute_values(expr.values_opt())
                    .return_values(ReturnValue::AllNew)
                    .return_values_on_condition_check_failure(on_fail)
                    .send()
                    .await
                    .map_err(|e| {
                        write_err(e, |e| match e {
                            UpdateItemError::ConditionalCheckFailedException(c) => {
                                Some(c.item().cloned())
                            }
                            _ => None,
                        })
                    })?;
                out.attributes.map(from_dynamo).transpose()
            }
            WriteOp::Delete { key, .. } => {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key_map(&key)))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(expr.names_opt())
                    .set_expression_attribute_values(expr.values_opt())
                    .return_values_on_condition_check_failure(on_fail)
                    .send()
                    .await
                    .map_err(|e| {
                        write_err(e, |e| match e {
                            DeleteItemError::ConditionalCheckFailedException(c) => {
                                Some(c.item().cloned())
                            }
                            _ => None,
                        })
                    })?;
                Ok(None)
            }
            WriteOp::Check { .. } => Err(StoreError::Invalid(
                "a condition check only exists inside a transaction".into(),
            )),
            WriteOp::Claim { .. } => unreachable!("claims were turned into puts above"),
        }
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.transact_reading(ops, None).await.map(|_| ())
    }

    /// Reads the post-image once, for the answer and for a stamp taken from the same item.
    async fn transact_returning(
        &self,
        ops: Vec<WriteOp>,
        index: usize,
    ) -> Result<Option<Item>, StoreError> {
        validate_returning(&ops, index)?;
        self.transact_reading(ops, Some(index)).await
    }
}

impl DynamoStore {
    /// A transaction, then the stamps (TransactWriteItems returns no values, so they are
    /// written once it has landed), and operation `returning`'s item as it is afterwards.
    async fn transact_reading(
        &self,
        ops: Vec<WriteOp>,
        returning: Option<usize>,
    ) -> Result<Option<Item>, StoreError> {
        validate_transaction(&ops)?;
        let returning = returning.map(|i| ops[i].key().clone());
        let stamps: Vec<(Key, Key, String)> = ops
            .iter()
            .filter_map(|op| match op {
                WriteOp::Claim {
                    item,
                    stamp: Some(stamp),
                    ..
                } => Some((
                    item.key.clone(),
                    ops[stamp.from].key().clone(),
                    stamp.attr.clone(),
                )),
                _ => None,
            })
            .collect();
        let ops: Vec<WriteOp> = ops.into_iter().map(WriteOp::claim_as_put).collect();
        self.transact_portable(&ops).await?;
        let after = match &returning {
            Some(key) => self.get(key).await?,
            None => None,
        };
        for (claim, source, attr) in stamps {
            let read;
            let source_item = if returning.as_ref() == Some(&source) {
                after.as_ref()
            } else {
                // The transaction has landed: a failed read only costs the stamp.
                read = self.get(&source).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "could not read a stamp's source");
                    None
                });
                read.as_ref()
            };
            let value = source_item.and_then(|i| i.get(&attr).cloned());
            if let Err(e) = self.stamp(claim, value, &attr).await {
                tracing::warn!(error = %e, "could not stamp a claim; a replay rebuilds its answer");
            }
        }
        Ok(after)
    }

    /// Sets `attr` on the claim, once.
    async fn stamp(
        &self,
        claim: Key,
        value: Option<AttrValue>,
        attr: &str,
    ) -> Result<(), StoreError> {
        let Some(value) = value else {
            return Ok(());
        };
        let written = self
            .write(WriteOp::Update {
                key: claim,
                actions: vec![UpdateAction::Set(attr.to_owned(), value)],
                condition: Some(Condition::And(vec![
                    Condition::ItemExists,
                    Condition::not_exists(attr),
                ])),
            })
            .await;
        match written {
            Err(e) if e.is_condition_failure() => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn transact_portable(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        let items = ops
            .iter()
            .map(|op| self.transact_item(op))
            .collect::<Result<Vec<_>, _>>()?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                    e.as_service_error()
                {
                    let reasons = cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|r| match r.code() {
                            None | Some("None") => Ok(CancelReason::None),
                            Some("ConditionalCheckFailed") => Ok(CancelReason::ConditionFailed {
                                current: r
                                    .item()
                                    .cloned()
                                    .map(from_dynamo)
                                    .transpose()?
                                    .map(Box::new),
                            }),
                            Some("TransactionConflict") => Ok(CancelReason::Conflict),
                            Some(other) => Ok(CancelReason::Other(format!(
                                "{other}: {}",
                                r.message().unwrap_or_default()
                            ))),
                        })
                        .collect::<Result<Vec<_>, StoreError>>()?;
                    if reasons.len() == ops.len() {
                        return Err(StoreError::TransactionCancelled { reasons });
                    }
                }
                Err(sdk_err(e))
            }
        }
    }
}

impl DynamoStore {
    fn transact_item(&self, op: &WriteOp) -> Result<TransactWriteItem, StoreError> {
        let mut expr = Expr::default();
        let condition = op.condition().map(|c| expr.condition(c));
        let on_fail = ReturnValuesOnConditionCheckFailure::AllOld;
        let item = match op {
            WriteOp::Put { item, .. } => TransactWriteItem::builder().put(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(to_dynamo(item)))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(expr.names_opt())
                    .set_expression_attribute_values(expr.values_opt())
                    .return_values_on_condition_check_failure(on_fail)
                    .build()
                    .map_err(build_err)?,
            ),
            WriteOp::Update { key, actions, .. } => {
                let update = expr.update(actions);
                TransactWriteItem::builder().update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_map(key)))
                        .update_expression(update)
                        .set_condition_expression(condition)
                        .set_expression_attribute_names(expr.names_opt())
                        .set_expression_attribute_values(expr.values_opt())
                        .return_values_on_condition_check_failure(on_fail)
                        .build()
                        .map_err(build_err)?,
                )
            }
            WriteOp::Delete { key, .. } => TransactWriteItem::builder().delete(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_map(key)))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(expr.names_opt())
                    .set_expression_attribute_values(expr.values_opt())
                    .return_values_on_condition_check_failure(on_fail)
                    .build()
                    .map_err(build_err)?,
            ),
            WriteOp::Claim { .. } => {
                return Err(StoreError::Invalid(
                    "claims are turned into puts before this".into(),
                ))
            }
            WriteOp::Check { key, .. } => TransactWriteItem::builder().condition_check(
                ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_map(key)))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(expr.names_opt())
                    .set_expression_attribute_values(expr.values_opt())
                    .return_values_on_condition_check_failure(on_fail)
                    .build()
                    .map_err(build_err)?,
            ),
        };
        Ok(item.build())
    }
}

/// Builds expressions with placeholders for every name and value.
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn name(&mut self, attr: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, n)| *n == attr) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn names_opt(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values_opt(&self) -> Option<AttrMap> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    fn condition(&mut self, condition: &Condition) -> String {
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

    fn join(&mut self, conditions: &[Condition], op: &str) -> String {
        let parts: Vec<String> = conditions.iter().map(|c| self.condition(c)).collect();
        format!("({})", parts.join(op))
    }

    fn sort_key(&mut self, col: &str, condition: &SortKeyCondition) -> String {
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

    fn update(&mut self, actions: &[UpdateAction]) -> String {
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

fn number(d: &Decimal) -> String {
    d.normalize().to_string()
}

fn key_map(key: &Key) -> AttrMap {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

fn start_key(position: Position) -> AttrMap {
    let mut map = key_map(&Key::new(position.pk, position.sk));
    if let Some((gpk, gsk)) = position.gsi1 {
        map.insert(GSI1PK.to_owned(), AttributeValue::S(gpk));
        map.insert(GSI1SK.to_owned(), AttributeValue::S(gsk));
    }
    map
}

fn to_dynamo(item: &Item) -> AttrMap {
    let mut map = key_map(&item.key);
    for (name, value) in &item.attrs {
        map.insert(name.clone(), attr_to_dynamo(value));
    }
    map
}

fn attr_to_dynamo(value: &AttrValue) -> AttributeValue {
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

fn from_dynamo(mut map: AttrMap) -> Result<Item, StoreError> {
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

fn attr_from_dynamo(value: AttributeValue) -> Result<AttrValue, StoreError> {
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
fn write_err<E, R>(
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

fn sdk_err<E, R>(error: SdkError<E, R>) -> StoreError
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

fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Backend(format!("request build error: {e}"))
}
