//! Token vending: tenant-scoped requests on AWS run with credentials that can only touch that
//! tenant's items. The function's own role assumes the tenant data role (`ESHTAREK_TENANT_ROLE_ARN`)
//! with a `tenant_id` session tag and an inline session policy whose
//! `ForAllValues:StringLike` condition on `dynamodb:LeadingKeys` allows `TENANT#<id>#*` only,
//! plus a `Null` check so a request without leading keys (a Scan) fails closed. IAM then
//! enforces in AWS what `TenantStore` enforces in code.
//!
//! Credentials are cached per tenant by the SDK's identity cache and renewed shortly before they
//! expire; clients are cached per tenant here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{error::CredentialsError, future, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_sdk_sts::types::Tag;
use serde_json::json;

use super::dynamodb::DynamoStore;
use super::scoped::TenantStoreProvider;
use super::{Store, TenantId};

/// How long vended credentials live (STS minimum is 15 minutes).
const SESSION_SECONDS: i32 = 900;
/// Clients kept before the cache starts over (each holds only a credentials provider).
const MAX_CACHED_TENANTS: usize = 10_000;

/// The inline session policy for one tenant.
pub fn tenant_session_policy(table: &str, tenant: &TenantId) -> String {
    let table_arn = format!("arn:aws:dynamodb:*:*:table/{table}");
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "TenantItemsOnly",
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem",
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

pub struct TenantCredentialVendor {
    sts: aws_sdk_sts::Client,
    dynamodb: aws_sdk_dynamodb::config::Config,
    role_arn: String,
    table: String,
    clients: Mutex<HashMap<TenantId, Arc<DynamoStore>>>,
}

impl TenantCredentialVendor {
    pub fn new(
        sts: aws_sdk_sts::Client,
        dynamodb: aws_sdk_dynamodb::config::Config,
        role_arn: impl Into<String>,
        table: impl Into<String>,
    ) -> Self {
        Self {
            sts,
            dynamodb,
            role_arn: role_arn.into(),
            table: table.into(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// From the standard AWS settings, when `ESHTAREK_TENANT_ROLE_ARN` names the role.
    pub async fn from_env(table: &str) -> Option<Self> {
        let role_arn = std::env::var("ESHTAREK_TENANT_ROLE_ARN").ok()?;
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Some(Self::new(
            aws_sdk_sts::Client::new(&config),
            aws_sdk_dynamodb::config::Config::from(&config),
            role_arn,
            table,
        ))
    }
}

impl TenantStoreProvider for TenantCredentialVendor {
    fn store_for(&self, tenant: &TenantId) -> Arc<dyn Store> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = clients.get(tenant) {
            return store.clone();
        }
        if clients.len() >= MAX_CACHED_TENANTS {
            clients.clear();
        }
        let credentials = TenantCredentials {
            sts: self.sts.clone(),
            role_arn: self.role_arn.clone(),
            policy: tenant_session_policy(&self.table, tenant),
            tenant: tenant.clone(),
        };
        let config = self
            .dynamodb
            .to_builder()
            .credentials_provider(credentials)
            .build();
        let store = Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::from_conf(config),
            &self.table,
        ));
        clients.insert(tenant.clone(), store.clone());
        store
    }
}

#[derive(Debug)]
struct TenantCredentials {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    policy: String,
    tenant: TenantId,
}

impl TenantCredentials {
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
        future::ProvideCredentials::new(self.assume())
    }
}
