//! The DynamoDB adapter: a thin translation of the port into aws-sdk-dynamodb calls.
//!
//! Endpoints and credentials come from the standard AWS settings (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_REGION`, the credential chain), so the same code talks to
//! AWS, LocalStack or moto. Every expression uses `#name` / `:value` placeholders, so attribute
//! names never collide with DynamoDB's reserved words (`expr`). Values convert in `convert`,
//! transactions are built in `transact`, the table's local lifecycle is in `table`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use aws_sdk_dynamodb::Client;

use super::{
    validate_query, validate_returning, validate_write, Index, Item, Key, Page, Position, Query,
    Store, StoreError, WriteOp, GSI1PK, GSI1SK,
};

mod convert;
mod expr;
mod table;
mod transact;

use convert::{from_dynamo, key_map, sdk_err, start_key, to_dynamo, write_err};
use expr::Expr;

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

    /// One BatchGetItem (consistent reads), again for any keys DynamoDB leaves unprocessed.
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        super::validate_get_many(keys)?;
        let mut found: HashMap<Key, Item> = HashMap::with_capacity(keys.len());
        let mut pending: Vec<HashMap<String, AttributeValue>> = keys.iter().map(key_map).collect();
        for attempt in 0..10u32 {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                // Unprocessed keys mean throttling: back off before asking again.
                tokio::time::sleep(std::time::Duration::from_millis(10 << attempt.min(6))).await;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(sdk_err)?;
            for raw in out
                .responses
                .unwrap_or_default()
                .remove(&self.table)
                .unwrap_or_default()
            {
                let item = from_dynamo(raw)?;
                found.insert(item.key.clone(), item);
            }
            if let Some(left) = out
                .unprocessed_keys
                .and_then(|mut left| left.remove(&self.table))
            {
                pending = left.keys;
            }
        }
        if !pending.is_empty() {
            return Err(StoreError::Throttled);
        }
        Ok(keys.iter().map(|key| found.remove(key)).collect())
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
