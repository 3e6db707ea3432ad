//! The function binaries as Lambda runs them: each started with `AWS_LAMBDA_RUNTIME_API`
//! pointing at a Runtime API (`support/runtime_api.rs`), fed API Gateway HTTP API (v2) events
//! built from HTTP requests that `template.yaml`'s routes send to it, on DynamoDB (moto) with
//! token vending and the signing keys in Secrets Manager, as deployed. And the route table
//! itself: every operation of every function's OpenAPI document, and every API path the
//! dashboard calls, is routed to the function that serves it.

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use base64::Engine as _;
use eshtarek_core::auth::keys::KeySet;
use eshtarek_tests::http::{Reply, PASSWORD};
use eshtarek_tests::runtime_api::Function;
use eshtarek_tests::stores;
use eshtarek_tests::template::{self, concrete, route_for, Route};
use serde_json::{json, Value};
use utoipa::OpenApi;

/// Each function's OpenAPI document, by the binary the template builds for it.
fn documents() -> Vec<(&'static str, utoipa::openapi::OpenApi)> {
    vec![
        ("auth", eshtarek_auth::AuthApi::openapi()),
        ("plans", eshtarek_plans::PlansApi::openapi()),
        (
            "subscriptions",
            eshtarek_subscriptions::SubscriptionsApi::openapi(),
        ),
        ("billing", eshtarek_billing::BillingApi::openapi()),
        ("usage", eshtarek_usage::UsageApi::openapi()),
        ("webhooks", eshtarek_webhooks::WebhooksApi::openapi()),
    ]
}

#[test]
fn every_documented_operation_is_routed_to_the_function_that_serves_it() {
    let routes = template::routes();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (binary, doc) in documents() {
        for (path, item) in &doc.paths.paths {
            let methods = serde_json::to_value(item).unwrap();
            for method in ["get", "put", "post", "delete", "patch"] {
                if methods.get(method).is_none() {
                    continue;
                }
                checked += 1;
                let method = method.to_uppercase();
                match route_for(&routes, &method, &concrete(path)) {
                    Some(route) if route.binary == binary => {}
                    Some(route) => wrong.push(format!(
                        "{method} {path}: routed to {} ({}), served by {binary}",
                        route.binary,
                        route.key()
                    )),
                    None => wrong.push(format!("{method} {path}: no route (served by {binary})")),
                }
            }
        }
    }
    assert!(checked > 60, "only {checked} operations found");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The API paths the dashboard's source names (`/v1/…` literals; `${…}` as one segment).
fn dashboard_paths() -> Vec<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../web/src");
    let mut paths = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(root)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = path.to_string_lossy();
            if !(name.ends_with(".ts") || name.ends_with(".tsx")) || name.contains(".test.") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, _) in text
                .match_indices("\"/v1/")
                .chain(text.match_indices("`/v1/"))
            {
                paths.push(literal_path(&text[at..]));
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

/// The path of the string literal `text` starts with (its quote first): up to the closing
/// quote or a query, each `${…}` of a template literal as one segment `x1`.
fn literal_path(text: &str) -> String {
    let quote = text.chars().next().unwrap();
    let mut path = String::new();
    let mut chars = text[1..].chars().peekable();
    while let Some(c) = chars.next() {
        if c == quote || c == '?' {
            break;
        }
        if quote == '`' && c == '$' && chars.peek() == Some(&'{') {
            let mut depth = 0;
            for inner in chars.by_ref() {
                match inner {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            path.push_str("x1");
            continue;
        }
        path.push(c);
    }
    path.trim_end_matches('/').to_owned()
}

#[test]
fn every_api_path_the_dashboard_calls_is_routed_to_a_function_that_serves_it() {
    let routes = template::routes();
    let docs = documents();
    let same_path = |template: &str, path: &str| {
        let (a, b): (Vec<&str>, Vec<&str>) =
            (template.split('/').collect(), path.split('/').collect());
        a.len() == b.len()
            && a.iter()
                .zip(&b)
                // `x1`: an expression in the dashboard's path (an id, or a choice of words
                // such as `activate`/`deactivate`).
                .all(|(t, p)| t.starts_with('{') || t == p || *p == "x1")
    };
    let paths = dashboard_paths();
    assert!(
        paths.len() > 20,
        "only {} dashboard paths found",
        paths.len()
    );
    // The local binary's own routes (tag `local`: the clock of a demo) have no function; the
    // dashboard shows nothing for them on AWS.
    let local_only: Vec<String> = {
        let doc = serde_json::to_value(eshtarek::openapi()).unwrap();
        doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, item)| {
                item.as_object()
                    .unwrap()
                    .values()
                    .all(|op| op["tags"] == serde_json::json!(["local"]))
            })
            .map(|(path, _)| path.clone())
            .collect()
    };
    assert!(
        local_only.contains(&"/v1/clock".to_owned()),
        "{local_only:?}"
    );
    let mut wrong = Vec::new();
    for path in paths.iter().filter(|p| !local_only.contains(p)) {
        // The documented operations on this path, each by the function documenting it: the
        // route API Gateway picks for the operation's method must lead to that function.
        let mut operations = 0;
        for (binary, doc) in &docs {
            for (template, item) in &doc.paths.paths {
                if !same_path(template, path) {
                    continue;
                }
                let methods = serde_json::to_value(item).unwrap();
                for method in ["get", "put", "post", "delete", "patch"] {
                    if methods.get(method).is_none() {
                        continue;
                    }
                    operations += 1;
                    let method = method.to_uppercase();
                    match route_for(&routes, &method, &concrete(template)) {
                        Some(route) if route.binary == *binary => {}
                        other => wrong.push(format!(
                            "{method} {path} ({template} on {binary}) is routed to {:?}",
                            other.map(Route::key)
                        )),
                    }
                }
            }
        }
        if operations == 0 {
            wrong.push(format!("{path}: no function documents it"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The deployment: the template's routes in front of the function binaries, each under its own
/// Runtime API, on a fresh table, with vending and the key secret.
struct Deployed {
    routes: Vec<Route>,
    functions: HashMap<String, Function>,
    sent: usize,
}

impl Deployed {
    async fn start() -> Self {
        let store = stores::fresh_dynamodb().await;
        let table = stores::table_of(&store).unwrap();
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let secret = format!("eshtarek-jwt-{}", uuid::Uuid::new_v4().simple());
        aws_sdk_secretsmanager::Client::new(&aws)
            .create_secret()
            .name(&secret)
            .secret_string(serde_json::to_string(&KeySet::generate_file()).unwrap())
            .send()
            .await
            .expect("moto's Secrets Manager");
        let common = vec![
            ("ESHTAREK_TABLE", table),
            (
                "ESHTAREK_TENANT_ROLE_ARN",
                "arn:aws:iam::123456789012:role/eshtarek-tenant-data".to_owned(),
            ),
        ];
        let mut functions = HashMap::new();
        // Auth first: it publishes the public keys the others verify with.
        for binary in [
            "auth",
            "plans",
            "subscriptions",
            "billing",
            "usage",
            "webhooks",
            "renew-billing",
            "deliver-webhooks",
        ] {
            let mut env = common.clone();
            if binary == "auth" {
                env.push(("ESHTAREK_JWT_SECRET_ID", secret.clone()));
            }
            functions.insert(binary.to_owned(), Function::start(binary, &env).await);
        }
        Self {
            routes: template::routes(),
            functions,
            sent: 0,
        }
    }

    /// A request as API Gateway takes it: routed by the template, turned into a v2 event for
    /// the function behind the route, its answer turned back into an HTTP response.
    async fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let Some(route) = route_for(&self.routes, method, path).cloned() else {
            // API Gateway's own answer when no route matches.
            return Reply {
                status: StatusCode::NOT_FOUND,
                headers: HeaderMap::new(),
                body: json!({"message": "Not Found"}),
            };
        };
        self.sent += 1;
        let mut header_map = serde_json::Map::new();
        header_map.insert("host".into(), "api.example.com".into());
        if body.is_some() {
            header_map.insert("content-type".into(), "application/json".into());
        }
        for (name, value) in headers {
            header_map.insert(name.to_lowercase(), (*value).into());
        }
        let route_key = route.key();
        let event = json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": path,
            "rawQueryString": query,
            "headers": header_map,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "domainName": "api.example.com",
                "domainPrefix": "api",
                "http": {
                    "method": method,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": format!("198.51.100.{}", self.sent % 250 + 1),
                    "userAgent": "lambda-binaries-test"
                },
                "requestId": format!("req-{}", self.sent),
                "routeKey": route_key,
                "stage": "$default",
                "time": "03/Dec/2026:16:00:00 +0000",
                "timeEpoch": 1_796_313_600_000_i64
            },
            "pathParameters": path_parameters(&route.path, path),
            "isBase64Encoded": false,
            "body": body.map(|b| b.to_string()),
        });
        let function = self
            .functions
            .get_mut(&route.binary)
            .unwrap_or_else(|| panic!("{} is not started", route.binary));
        let answer = function
            .invoke(event)
            .await
            .unwrap_or_else(|e| panic!("{method} {target} on {}: {e}", route.binary));
        reply_of(&answer)
    }
}

/// `{name}` and `{proxy+}` values of `path` under the route `pattern`.
fn path_parameters(pattern: &str, path: &str) -> Value {
    let mut params = serde_json::Map::new();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, part) in pattern.trim_start_matches('/').split('/').enumerate() {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            let value = match name.strip_suffix('+') {
                Some(_) => segments[i..].join("/"),
                None => segments[i].to_owned(),
            };
            params.insert(name.trim_end_matches('+').to_owned(), value.into());
        }
    }
    Value::Object(params)
}

/// A Lambda proxy response (payload format 2.0) as the HTTP response API Gateway sends.
fn reply_of(answer: &Value) -> Reply {
    let status =
        StatusCode::from_u16(answer["statusCode"].as_u64().expect("statusCode") as u16).unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in answer["headers"].as_object().into_iter().flatten() {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value.as_str().unwrap_or_default()).unwrap(),
        );
    }
    let text = answer["body"].as_str().unwrap_or_default();
    let bytes = if answer["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
    } else {
        text.as_bytes().to_vec()
    };
    Reply::of(status, headers, &bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_works_through_the_function_binaries_as_deployed() {
    let mut api = Deployed::start().await;
    // Signup on auth (the key secret read at its start); the token works on every function,
    // which verify with the public keys auth published.
    let signup = api
        .send(
            "POST",
            "/v1/auth/register",
            &[],
            Some(json!({"email": "lambda@example.com", "password": PASSWORD,
                        "name": "L", "tenant_name": "Lambda Co"})),
        )
        .await
        .expect(201);
    let token = format!(
        "Bearer {}",
        signup.body["tokens"]["access_token"].as_str().unwrap()
    );
    let auth = [("authorization", token.as_str())];
    let me = api
        .send("GET", "/v1/auth/me", &auth, None)
        .await
        .expect(200);
    assert_eq!(me.body["user"]["email"], "lambda@example.com");
    api.send("GET", "/v1/plans", &auth, None).await.expect(200);
    api.send("GET", "/v1/invoices", &auth, None)
        .await
        .expect(200);
    api.send("GET", "/v1/subscriptions/current", &auth, None)
        .await
        .problem(404);
    // A tenant write on usage (vended credentials), kept for an idempotent replay.
    let keyed = [
        ("authorization", token.as_str()),
        ("idempotency-key", "lambda-key-1"),
    ];
    let body = json!({"name": "backend"});
    let created = api
        .send("POST", "/v1/api-keys", &keyed, Some(body.clone()))
        .await
        .expect(201);
    let replay = api
        .send("POST", "/v1/api-keys", &keyed, Some(body))
        .await
        .expect(201);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body["id"], created.body["id"]);
    // The API key reaches usage: no subscription yet, so the event is refused (402).
    let key = format!("Bearer {}", created.body["secret"].as_str().unwrap());
    api.send(
        "POST",
        "/v1/usage/events",
        &[("authorization", key.as_str())],
        Some(json!({"metric": "api_calls", "quantity": 1, "idempotency_key": "e1"})),
    )
    .await
    .problem(402);
    // Bad input and the unauthenticated get problem documents from the function itself.
    api.send("GET", "/v1/invoices", &[], None)
        .await
        .problem(401);
    api.send(
        "POST",
        "/v1/auth/login",
        &[],
        Some(json!({"email": "lambda@example.com"})),
    )
    .await
    .problem(422);
    // A path no route matches never reaches a function (a catch-all route would fail this).
    let before = api.sent;
    api.send("GET", "/v1/nowhere", &auth, None)
        .await
        .expect(404);
    assert_eq!(api.sent, before);

    // A webhook endpoint through the webhooks function (a public address literal: deployed,
    // private targets are refused), registered switched off so nothing leaves this machine.
    let refused = api
        .send(
            "POST",
            "/v1/webhooks/endpoints",
            &auth,
            Some(json!({"url": "http://169.254.169.254/latest/meta-data/"})),
        )
        .await
        .problem(422);
    assert_eq!(refused.body["field"], "url");
    let endpoint = api
        .send(
            "POST",
            "/v1/webhooks/endpoints",
            &auth,
            Some(json!({"url": "https://93.184.215.14/hooks", "enabled": false})),
        )
        .await
        .expect(201);
    assert!(endpoint.body["secret"]
        .as_str()
        .unwrap()
        .starts_with("whsec_"));
    let endpoint_id = endpoint.body["endpoint"]["id"].as_str().unwrap().to_owned();
    api.send(
        "POST",
        &format!("/v1/webhooks/endpoints/{endpoint_id}/test"),
        &auth,
        None,
    )
    .await
    .expect(202);

    // The scheduled jobs' binaries, fed EventBridge Scheduler's events.
    for job in ["renew-billing", "deliver-webhooks"] {
        let schedule: Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/../events/{job}-schedule.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let report = api
            .functions
            .get_mut(job)
            .unwrap()
            .invoke(schedule)
            .await
            .expect("the job's report");
        assert_eq!(report["job"], job, "{report}");
        assert_eq!(report["complete"], true, "{report}");
        if job == "deliver-webhooks" {
            // The test message came due, for an endpoint that is off: not sent.
            assert_eq!(report["outcomes"]["endpoint_off"], 1, "{report}");
        }
    }
}

/// A template value without its CloudFormation tag (`!Sub x` → `x`).
fn untagged(value: &serde_yaml::Value) -> &serde_yaml::Value {
    match value {
        serde_yaml::Value::Tagged(tagged) => &tagged.value,
        other => other,
    }
}

#[test]
fn the_template_deploys_the_shape_the_functions_rely_on() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let globals = &doc["Globals"]["Function"];
    // No key material in any environment: auth gets a secret's name, nobody a resolved value.
    assert!(!text.contains("ESHTAREK_JWT_KEYS"));
    assert!(!text.contains("{{resolve:secretsmanager"));
    // The app's timeout fires before Lambda's.
    let lambda_timeout = globals["Timeout"].as_u64().unwrap();
    let app_timeout: u64 = globals["Environment"]["Variables"]["ESHTAREK_REQUEST_TIMEOUT_SECS"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(app_timeout < lambda_timeout);
    // The tenant data role trusts the functions' role path, which every function role has.
    let path = untagged(&globals["RolePath"]).as_str().unwrap();
    let trust = serde_yaml::to_string(
        &doc["Resources"]["TenantDataRole"]["Properties"]["AssumeRolePolicyDocument"],
    )
    .unwrap();
    assert!(
        trust.contains(&format!(":role{path}*")),
        "trust by path {path}: {trust}"
    );
    // The HTTP API throttles and logs every request.
    let api = &doc["Resources"]["HttpApi"]["Properties"];
    assert!(!api["DefaultRouteSettings"]["ThrottlingRateLimit"].is_null());
    assert!(!api["AccessLogSettings"]["DestinationArn"].is_null());
    for (name, resource) in doc["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let name = name.as_str().unwrap();
        let properties = &resource["Properties"];
        let policies = serde_yaml::to_string(&properties["Policies"]).unwrap();
        // Only auth reads the signing keys; every other function is denied writing the
        // public keys it trusts.
        assert_eq!(
            policies.contains("secretsmanager:GetSecretValue"),
            name == "AuthFunction",
            "{name}"
        );
        assert_eq!(
            policies.contains("OnlyAuthPublishesKeys"),
            name != "AuthFunction",
            "{name}"
        );
        if name != "AuthFunction" {
            // The denied leading key is the published keys' partition (key_sources.rs).
            assert!(policies.contains("- JWKS"), "{name}: {policies}");
        }
        assert!(policies.contains("NoTenantItemsWithoutVending"), "{name}");
        // Scheduled jobs never overlap.
        let scheduled = serde_yaml::to_string(&properties["Events"])
            .unwrap()
            .contains("ScheduleV2");
        if scheduled {
            let reserved =
                serde_yaml::to_string(&properties["ReservedConcurrentExecutions"]).unwrap();
            assert!(
                reserved.contains("ReserveJobConcurrency") && reserved.contains("- 1"),
                "{name}: {reserved}"
            );
        }
    }
}
