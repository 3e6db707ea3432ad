//! The wire-level isolation check: every DynamoDB request the app sends on moto is inspected
//! as it leaves the SDK (after signing). A request naming a `TENANT#<a>#` leading key must be
//! signed with credentials STS vended for tenant `a`; none may name two tenants; a request
//! naming no tenant key must be signed by the function's own credentials. A request breaking
//! the rule is refused (so the test that sent it fails) and kept in [`violations`].
//!
//! Which access key belongs to which tenant comes from the AssumeRole answers themselves: the
//! `AccessKeyId`, and the assumed role's session name (`tenant-<id>`).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use aws_sdk_sts::operation::assume_role::AssumeRoleOutput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use eshtarek_core::store::vending::TenantCredentialVendor;
use serde_json::Value;

/// One DynamoDB request as the check saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub operation: String,
    /// Tenants whose leading keys the request names.
    pub tenants: BTreeSet<String>,
    /// The tenant the signing key was vended for; `None` for the function's own key.
    pub signer: Option<String>,
}

#[derive(Default)]
struct Log {
    vended: HashMap<String, String>,
    seen: Vec<Seen>,
    violations: Vec<String>,
}

fn log() -> &'static Mutex<Log> {
    static LOG: OnceLock<Mutex<Log>> = OnceLock::new();
    LOG.get_or_init(Mutex::default)
}

/// Every request seen so far in this test process.
pub fn seen() -> Vec<Seen> {
    log().lock().unwrap().seen.clone()
}

/// Requests refused by the rule so far in this test process.
pub fn violations() -> Vec<String> {
    log().lock().unwrap().violations.clone()
}

/// The DynamoDB check, for the platform client and every tenant client.
#[derive(Debug, Clone, Default)]
pub struct WireCheck;

/// The STS side: learns which access key STS vended for which tenant.
#[derive(Debug, Clone, Default)]
struct VendingLog;

fn access_key(authorization: &str) -> Option<&str> {
    let rest = &authorization[authorization.find("Credential=")? + "Credential=".len()..];
    rest.split('/').next()
}

/// The tenants whose keys a request leads with: the partition keys of the items it reads or
/// writes, and the key values of a query (the index's partition key among them).
fn leading_tenants(operation: &str, body: &Value) -> BTreeSet<String> {
    let mut pks = Vec::new();
    let mut item_pk = |v: &Value| {
        for field in ["Key", "Item"] {
            if let Some(pk) = v[field]["PK"]["S"].as_str() {
                pks.push(pk.to_owned());
            }
        }
    };
    match operation {
        "TransactWriteItems" => {
            for entry in body["TransactItems"].as_array().into_iter().flatten() {
                for kind in ["Put", "Update", "Delete", "ConditionCheck"] {
                    item_pk(&entry[kind]);
                }
            }
        }
        "BatchGetItem" => {
            for table in body["RequestItems"]
                .as_object()
                .into_iter()
                .flat_map(|t| t.values())
            {
                for key in table["Keys"].as_array().into_iter().flatten() {
                    if let Some(pk) = key["PK"]["S"].as_str() {
                        pks.push(pk.to_owned());
                    }
                }
            }
        }
        "Query" => {
            if let Some(values) = body["ExpressionAttributeValues"].as_object() {
                pks.extend(
                    values
                        .values()
                        .filter_map(|v| v["S"].as_str().map(str::to_owned)),
                );
            }
        }
        _ => item_pk(body),
    }
    pks.iter()
        .filter_map(|pk| pk.strip_prefix("TENANT#")?.split('#').next())
        .map(str::to_owned)
        .collect()
}

impl Intercept for WireCheck {
    fn name(&self) -> &'static str {
        "wire-isolation-check"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or_default()
            .to_owned();
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let key = access_key(request.headers().get("authorization").unwrap_or_default())
            .unwrap_or_default()
            .to_owned();
        let tenants = leading_tenants(&operation, &body);
        let mut log = log().lock().unwrap();
        let signer = log.vended.get(&key).cloned();
        let own = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default();
        let fault = match (tenants.len(), &signer) {
            (0, None) if key == own => None,
            (0, _) => Some("names no tenant key but is not signed by the function's own key"),
            (1, Some(t)) if tenants.contains(t) => None,
            (1, _) => Some("names a tenant's key under another principal's signature"),
            _ => Some("names the keys of two tenants"),
        };
        log.seen.push(Seen {
            operation: operation.clone(),
            tenants: tenants.clone(),
            signer: signer.clone(),
        });
        match fault {
            None => Ok(()),
            Some(why) => {
                let message =
                    format!("{operation} {why}: tenants {tenants:?}, signer {signer:?} ({key})");
                eprintln!("wire isolation check refused a request: {message}");
                log.violations.push(message.clone());
                Err(message.into())
            }
        }
    }
}

impl Intercept for VendingLog {
    fn name(&self) -> &'static str {
        "vending-log"
    }

    /// From the answer: the access key, and the tenant from the assumed role's session name
    /// (`tenant-<id>`).
    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        let Some(out) = output.downcast_ref::<AssumeRoleOutput>() else {
            return Ok(());
        };
        let key = out.credentials().map(|c| c.access_key_id().to_owned());
        let tenant = out
            .assumed_role_user()
            .and_then(|u| u.arn().rsplit('/').next())
            .and_then(|session| session.strip_prefix("tenant-"))
            .map(str::to_owned);
        if let (Some(tenant), Some(key)) = (tenant, key) {
            log().lock().unwrap().vended.insert(key, tenant);
        }
        Ok(())
    }
}

/// The AWS settings of the environment (moto's endpoint, its test credentials).
pub async fn environment() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// A DynamoDB client configuration from `config`, checked on the wire.
pub fn checked_dynamodb_config(config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::config::Config {
    aws_sdk_dynamodb::config::Builder::from(config)
        .interceptor(WireCheck)
        .build()
}

/// Token vending on moto for `table`, as the Lambda composition sets it up, with the wire check
/// on every tenant client.
pub async fn vendor(table: &str) -> Arc<TenantCredentialVendor> {
    let config = environment().await;
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&config)
            .interceptor(VendingLog)
            .build(),
    );
    Arc::new(TenantCredentialVendor::new(
        sts,
        checked_dynamodb_config(&config),
        "arn:aws:iam::123456789012:role/eshtarek-tenant-data",
        table,
        std::num::NonZeroUsize::new(eshtarek_core::store::vending::DEFAULT_CACHED_TENANTS).unwrap(),
    ))
}
