//! Token vending against moto: tenant handles run on credentials from STS AssumeRole with the
//! tenant's session tag and LeadingKeys session policy, cached per tenant.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use eshtarek_core::store::vending::TenantCredentialVendor;
use eshtarek_core::store::{Item, Store, StoreExt, Stores, TenantId};
use eshtarek_tests::stores;

/// Records every outgoing request: its body and Authorization header.
#[derive(Debug, Default, Clone)]
struct Recorder(Arc<Mutex<Vec<(String, String)>>>);

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let body = request
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let auth = request
            .headers()
            .get("authorization")
            .unwrap_or_default()
            .to_owned();
        self.0.lock().unwrap().push((body, auth));
        Ok(())
    }
}

impl Recorder {
    fn assume_role_calls(&self) -> Vec<Vec<(String, String)>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(body, _)| body.contains("Action=AssumeRole"))
            .map(|(body, _)| {
                form_urlencoded::parse(body.as_bytes())
                    .into_owned()
                    .collect()
            })
            .collect()
    }
}

fn cache(tenants: usize) -> NonZeroUsize {
    NonZeroUsize::new(tenants).unwrap()
}

/// An HTTP client that counts the requests sent through it.
#[derive(Debug, Clone)]
struct Counting {
    inner: SharedHttpClient,
    sent: Arc<AtomicUsize>,
}

#[derive(Debug)]
struct CountingConnector {
    inner: SharedHttpConnector,
    sent: Arc<AtomicUsize>,
}

impl HttpClient for Counting {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(CountingConnector {
            inner: self.inner.http_connector(settings, components),
            sent: self.sent.clone(),
        })
    }
}

impl HttpConnector for CountingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        self.sent.fetch_add(1, Ordering::SeqCst);
        self.inner.call(request)
    }
}

/// Vending on moto for the shared test table, with every AssumeRole and every tenant
/// DynamoDB request recorded, and the tenant clients' HTTP client counting what it sends.
struct Vending {
    vendor: Arc<TenantCredentialVendor>,
    stores: Stores,
    sts: Recorder,
    dynamodb: Recorder,
    sent: Arc<AtomicUsize>,
}

async fn vending(cached_tenants: usize) -> Vending {
    let base = stores::dynamodb_store().await;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sts_recorder = Recorder::default();
    let dynamo_recorder = Recorder::default();
    let sent = Arc::new(AtomicUsize::new(0));
    // No retries: the recorders count attempts, and a retry would count twice.
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&config)
            .interceptor(sts_recorder.clone())
            .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
            .build(),
    );
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&config)
        .interceptor(dynamo_recorder.clone())
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .http_client(Counting {
            inner: eshtarek_core::store::dynamodb::https_client(),
            sent: sent.clone(),
        })
        .build();
    let vendor = Arc::new(TenantCredentialVendor::new(
        sts,
        dynamodb,
        "arn:aws:iam::123456789012:role/eshtarek-tenant-data",
        base.table(),
        cache(cached_tenants),
    ));
    Vending {
        stores: Stores::new(base.clone()).with_tenant_stores(vendor.clone()),
        vendor,
        sts: sts_recorder,
        dynamodb: dynamo_recorder,
        sent,
    }
}

impl Vending {
    /// Reads one item of `tenant`'s, twice at once (two requests racing for its credentials).
    async fn touch(&self, tenant: &TenantId) {
        let store = self.stores.tenant(tenant);
        let key = store.key("META", "TENANT");
        let (a, b) = tokio::join!(store.get(&key), store.get(&key));
        a.unwrap();
        b.unwrap();
    }

    /// The tenants AssumeRole was called for, in order.
    fn assumed(&self) -> Vec<String> {
        self.sts
            .assume_role_calls()
            .iter()
            .map(|call| field(call, "Tags.member.1.Value").to_owned())
            .collect()
    }
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {form:?}"))
}

#[tokio::test]
async fn tenant_handles_assume_the_tenant_role_with_its_tag_and_policy() {
    let base = stores::dynamodb_store().await;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sts_recorder = Recorder::default();
    let dynamo_recorder = Recorder::default();
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&config)
            .interceptor(sts_recorder.clone())
            .build(),
    );
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&config)
        .interceptor(dynamo_recorder.clone())
        .build();
    let role = "arn:aws:iam::123456789012:role/eshtarek-tenant-data";
    let vendor = TenantCredentialVendor::new(sts, dynamodb, role, base.table(), cache(100));
    let stores = Stores::new(base.clone()).with_tenant_stores(Arc::new(vendor));

    let acme = TenantId::parse("acme").unwrap();
    let globex = TenantId::parse("globex").unwrap();
    let a = stores.tenant(&acme);
    a.put(
        Item::new(a.key("META", "TENANT")).with("name", "Acme"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        a.get(&a.key("META", "TENANT"))
            .await
            .unwrap()
            .unwrap()
            .str("name"),
        Some("Acme")
    );

    let calls = sts_recorder.assume_role_calls();
    assert_eq!(calls.len(), 1, "one AssumeRole for the first tenant");
    let call = &calls[0];
    assert_eq!(field(call, "RoleArn"), role);
    assert_eq!(field(call, "Tags.member.1.Key"), "tenant_id");
    assert_eq!(field(call, "Tags.member.1.Value"), "acme");
    let policy: serde_json::Value = serde_json::from_str(field(call, "Policy")).unwrap();
    let statement = &policy["Statement"][0];
    assert_eq!(
        statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
        serde_json::json!(["TENANT#acme#*"])
    );
    assert_eq!(
        statement["Condition"]["Null"]["dynamodb:LeadingKeys"],
        "false"
    );
    let actions = statement["Action"].as_array().unwrap();
    assert!(
        !actions.iter().any(|a| a.as_str().unwrap().contains("Scan")),
        "no Scan"
    );

    // The DynamoDB calls were signed with the vended (temporary) credentials, not the
    // function's own.
    let own_key = std::env::var("AWS_ACCESS_KEY_ID").unwrap();
    let signed: Vec<String> = dynamo_recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(_, auth)| auth.clone())
        .collect();
    assert!(!signed.is_empty());
    assert!(
        signed.iter().all(|auth| auth.contains("Credential=ASIA")
            && !auth.contains(&format!("Credential={own_key}/"))),
        "temporary (ASIA…) credentials sign every call: {signed:?}"
    );

    // Cached per tenant: a new handle for the same tenant makes no new AssumeRole call.
    let again = stores.tenant(&acme);
    again.get(&again.key("META", "TENANT")).await.unwrap();
    assert_eq!(sts_recorder.assume_role_calls().len(), 1);

    // Another tenant gets its own credentials.
    let g = stores.tenant(&globex);
    assert_eq!(g.get(&g.key("META", "TENANT")).await.unwrap(), None);
    let calls = sts_recorder.assume_role_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(field(&calls[1], "Tags.member.1.Value"), "globex");
    assert!(field(&calls[1], "Policy").contains("TENANT#globex#*"));

    // The handle's own check still refuses another tenant's key before any request.
    let before = dynamo_recorder.0.lock().unwrap().len();
    assert!(g.get(&a.key("META", "TENANT")).await.is_err());
    assert_eq!(dynamo_recorder.0.lock().unwrap().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_tenants_assume_the_role_once_each_over_one_http_client() {
    let v = vending(2_000).await;
    let tenants: Vec<TenantId> = (0..200)
        .map(|i| TenantId::parse(&format!("many{i:03}")).unwrap())
        .collect();
    // Every tenant twice over, each time with two requests racing: 800 requests.
    for _ in 0..2 {
        futures::future::join_all(tenants.iter().map(|t| v.touch(t))).await;
    }
    let mut assumed = v.assumed();
    assert_eq!(
        assumed.len(),
        200,
        "one AssumeRole per tenant, not per request"
    );
    assumed.sort();
    assumed.dedup();
    assert_eq!(assumed.len(), 200, "each tenant's own");
    assert_eq!(v.vendor.cached(), 200);
    // Every tenant client sent its requests through the one HTTP client the vendor was given
    // (one connection pool), none through a client of its own.
    let requests = v.dynamodb.0.lock().unwrap().len();
    assert_eq!(requests, 800);
    assert_eq!(v.sent.load(Ordering::SeqCst), requests);
}

#[tokio::test]
async fn the_least_recently_used_tenant_makes_room() {
    let v = vending(2).await;
    let [a, b, c] = ["lru-a", "lru-b", "lru-c"].map(|t| TenantId::parse(t).unwrap());
    for tenant in [&a, &b, &a, &c] {
        v.touch(tenant).await;
    }
    // `c` took `b`'s place (a was used more recently); `a` is still cached.
    assert_eq!(v.assumed(), ["lru-a", "lru-b", "lru-c"]);
    v.touch(&a).await;
    assert_eq!(v.assumed().len(), 3);
    v.touch(&b).await;
    assert_eq!(v.assumed(), ["lru-a", "lru-b", "lru-c", "lru-b"]);
    assert_eq!(v.vendor.cached(), 2);
}
