//! Token vending: tenant-scoped requests on AWS run with credentials that can only touch that
//! tenant's items. The function's own role assumes the tenant data role (`ESHTAREK_TENANT_ROLE_ARN`)
//! with a `tenant_id` session tag and an inline session policy whose
//! `ForAllValues:StringLike` condition on `dynamodb:LeadingKeys` allows `TENANT#<id>#*` only,
//! plus a `Null` check so a request without leading keys (a Scan) fails closed. IAM then
//! enforces in AWS what `TenantStore` enforces in code.
//!
//! Built to serve thousands of tenants from one container: every tenant client shares one HTTP
//! client (one connection pool, not one per tenant), and the vendor keeps its own per-tenant
//! credential cache — an LRU of `ESHTAREK_VENDED_TENANTS` tenants (default 2,000), each
//! tenant's credentials assumed once (concurrent first requests wait for the same AssumeRole)
//! and renewed two minutes before they expire. The SDK's shared identity cache is not used for
//! them: it holds 64 providers and evicts arbitrarily, so past 64 active tenants requests paid
//! for STS calls again.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{error::CredentialsError, future, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::config::IdentityCache;
use aws_sdk_sts::types::Tag;
use lru::LruCache;
use serde_json::json;

use super::dynamodb::DynamoStore;
use super::scoped::TenantStoreProvider;
use super::{Store, TenantId};

/// How long vended credentials live (STS minimum is 15 minutes).
const SESSION_SECONDS: i32 = 900;
/// Credentials are renewed this long before they expire: longer than any request runs.
const RENEW_BEFORE: Duration = Duration::from_secs(120);
/// Tenants whose clients and credentials are kept, unless `ESHTAREK_VENDED_TENANTS` says.
pub const DEFAULT_CACHED_TENANTS: usize = 2_000;

/// The inline session policy for one tenant. `partition` is the AWS partition (`aws`,
/// `aws-cn`, `aws-us-gov`), taken from the tenant role's ARN.
pub fn tenant_session_policy(partition: &str, table: &str, tenant: &TenantId) -> String {
    let table_arn = format!("arn:{partition}:dynamodb:*:*:table/{table}");
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "TenantItemsOnly",
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem",
                "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"
            ],
            "Resource": [table_arn.clone(), format!("{table_arn}/index/GSI1")],
            "Condition": {
                "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [format!("{}*", tenant.key_prefix())] },
                "Null": { "dynamodb:LeadingKeys": "false" }
            }
        }]
    })
    .to_string()
}

/// The partition of an ARN (`arn:<partition>:…`); `aws` when it is not an ARN.
fn partition_of(arn: &str) -> &str {
    arn.strip_prefix("arn:")
        .and_then(|rest| rest.split(':').next())
        .filter(|p| !p.is_empty())
        .unwrap_or("aws")
}

/// The number of tenants to keep from `ESHTAREK_VENDED_TENANTS`.
pub fn cached_tenants_from_env() -> Result<NonZeroUsize, String> {
    match std::env::var("ESHTAREK_VENDED_TENANTS") {
        Err(_) => Ok(NonZeroUsize::new(DEFAULT_CACHED_TENANTS).expect("non-zero")),
        Ok(text) => text
            .parse::<NonZeroUsize>()
            .map_err(|_| format!("ESHTAREK_VENDED_TENANTS is a positive number, not `{text}`")),
    }
}

pub struct TenantCredentialVendor {
    sts: aws_sdk_sts::Client,
    dynamodb: aws_sdk_dynamodb::config::Config,
    role_arn: String,
    table: String,
    clients: Mutex<LruCache<TenantId, Arc<DynamoStore>>>,
}

impl TenantCredentialVendor {
    /// Tenant clients are built from `dynamodb` with their own credentials; they share its HTTP
    /// client (one is made here when it has none).
    pub fn new(
        sts: aws_sdk_sts::Client,
        dynamodb: aws_sdk_dynamodb::config::Config,
        role_arn: impl Into<String>,
        table: impl Into<String>,
        cached_tenants: NonZeroUsize,
    ) -> Self {
        let dynamodb = match dynamodb.http_client() {
            Some(_) => dynamodb,
            None => dynamodb
                .to_builder()
                .http_client(super::dynamodb::https_client())
                .build(),
        };
        Self {
            sts,
            dynamodb,
            role_arn: role_arn.into(),
            table: table.into(),
            clients: Mutex::new(LruCache::new(cached_tenants)),
        }
    }

    /// From the AWS settings `aws`, when `ESHTAREK_TENANT_ROLE_ARN` names the role.
    pub fn from_env(aws: &aws_config::SdkConfig, table: &str) -> Result<Option<Self>, String> {
        let Ok(role_arn) = std::env::var("ESHTAREK_TENANT_ROLE_ARN") else {
            return Ok(None);
        };
        // A hung AssumeRole must not hold a tenant's requests (they wait for one call): give
        // up after 3 s, well inside the request timeout.
        let sts = aws_sdk_sts::config::Builder::from(aws)
            .timeout_config(
                aws_sdk_sts::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(2))
                    .operation_timeout(Duration::from_secs(3))
                    .build(),
            )
            .build();
        Ok(Some(Self::new(
            aws_sdk_sts::Client::from_conf(sts),
            aws_sdk_dynamodb::config::Config::from(aws),
            role_arn,
            table,
            cached_tenants_from_env()?,
        )))
    }

    /// How many tenants' clients are kept now.
    pub fn cached(&self) -> usize {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl TenantStoreProvider for TenantCredentialVendor {
    fn store_for(&self, tenant: &TenantId) -> Arc<dyn Store> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = clients.get(tenant) {
            return store.clone();
        }
        let credentials = TenantCredentials {
            sts: self.sts.clone(),
            role_arn: self.role_arn.clone(),
            policy: tenant_session_policy(partition_of(&self.role_arn), &self.table, tenant),
            tenant: tenant.clone(),
            current: tokio::sync::Mutex::new(None),
        };
        let config = self
            .dynamodb
            .to_builder()
            .credentials_provider(credentials)
            // The credentials cache themselves (above); the SDK's shared cache would evict them.
            .identity_cache(IdentityCache::no_cache())
            .build();
        let store = Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::from_conf(config),
            &self.table,
        ));
        // The least recently used tenant makes room; its next request assumes the role again.
        clients.put(tenant.clone(), store.clone());
        store
    }
}

#[derive(Debug)]
struct TenantCredentials {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    policy: String,
    tenant: TenantId,
    /// The credentials in use; a lock held across the AssumeRole, so concurrent requests of
    /// one tenant wait for one call.
    current: tokio::sync::Mutex<Option<Credentials>>,
}

impl TenantCredentials {
    async fn cached(&self) -> Result<Credentials, CredentialsError> {
        let mut current = self.current.lock().await;
        let fresh = current.as_ref().is_some_and(|c| {
            c.expiry()
                .is_some_and(|at| at > SystemTime::now() + RENEW_BEFORE)
        });
        if !fresh {
            match self.assume().await {
                Ok(renewed) => *current = Some(renewed),
                // Renewal starts two minutes early: until the credentials in use expire, a
                // failed AssumeRole costs nothing but a retry on the next request.
                Err(e) => match current
                    .as_ref()
                    .filter(|c| c.expiry().is_some_and(|at| at > SystemTime::now()))
                {
                    Some(_) => tracing::warn!(error = %e, "could not renew tenant credentials"),
                    None => return Err(e),
                },
            }
        }
        Ok(current.clone().expect("set above"))
    }

    async fn assume(&self) -> Result<Credentials, CredentialsError> {
        let tag = Tag::builder()
            .key("tenant_id")
            .value(self.tenant.as_str())
            .build()
            .map_err(CredentialsError::invalid_configuration)?;
        let session_name: String = format!("tenant-{}", self.tenant).chars().take(64).collect();
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(session_name)
            .tags(tag)
            .policy(&self.policy)
            .duration_seconds(SESSION_SECONDS)
            .send()
            .await
            .map_err(CredentialsError::provider_error)?;
        let c = out
            .credentials
            .ok_or_else(|| CredentialsError::unhandled("AssumeRole returned no credentials"))?;
        let expiry = SystemTime::try_from(c.expiration)
            .unwrap_or_else(|_| SystemTime::now() + Duration::from_secs(SESSION_SECONDS as u64));
        Ok(Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            Some(expiry),
            "eshtarek-tenant-vending",
        ))
    }
}

impl ProvideCredentials for TenantCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.cached())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_partition_of_the_tenant_role() {
        assert_eq!(partition_of("arn:aws:iam::1:role/x"), "aws");
        assert_eq!(partition_of("arn:aws-cn:iam::1:role/x"), "aws-cn");
        assert_eq!(partition_of("arn:aws-us-gov:iam::1:role/x"), "aws-us-gov");
        assert_eq!(partition_of("not-an-arn"), "aws");
        let tenant = TenantId::parse("acme").unwrap();
        let policy: serde_json::Value =
            serde_json::from_str(&tenant_session_policy("aws-cn", "t", &tenant)).unwrap();
        assert_eq!(
            policy["Statement"][0]["Resource"],
            json!([
                "arn:aws-cn:dynamodb:*:*:table/t",
                "arn:aws-cn:dynamodb:*:*:table/t/index/GSI1"
            ])
        );
    }
}
