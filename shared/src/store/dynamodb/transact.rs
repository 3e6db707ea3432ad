//! Transactions: `TransactWriteItems` built from the port's operations, the claim stamps
//! written once one lands, and the cancellation reasons read back by position.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use crate::store::expr::{Condition, UpdateAction};
use crate::store::{
    validate_transaction, AttrValue, CancelReason, Item, Key, Store, StoreError, WriteOp,
};

use super::convert::{build_err, from_dynamo, key_map, sdk_err, to_dynamo};
use super::expr::Expr;
use super::DynamoStore;

impl DynamoStore {
    /// A transaction, then the stamps (TransactWriteItems returns no values, so they are
    /// written once it has landed), and operation `returning`'s item as it is afterwards.
    pub(super) async fn transact_reading(
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
    pub(super) async fn stamp(
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

    pub(super) async fn transact_portable(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
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
    pub(super) fn transact_item(&self, op: &WriteOp) -> Result<TransactWriteItem, StoreError> {
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
