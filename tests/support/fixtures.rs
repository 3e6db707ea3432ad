//! Scenario steps several test files share.

use std::sync::Arc;

use eshtarek_core::store::Store;
use serde_json::json;

use serde_json::Value;

use crate::http::{Reply, Session, TestApp};

/// A unique address.
/// The notifications of `kind` in a `GET /v1/notifications` answer's body.
pub fn notifications_of(page: &Value, kind: &str) -> Vec<Value> {
    page["data"]
        .as_array()
        .expect("a page of notifications")
        .iter()
        .filter(|n| n["kind"] == kind)
        .cloned()
        .collect()
}

pub fn email(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// A usage event as a client sends it.
pub fn usage_event(metric: &str, quantity: i64, idempotency_key: &str) -> Value {
    json!({"metric": metric, "quantity": quantity, "idempotency_key": idempotency_key})
}

/// One metric's line of a usage summary (`GET /v1/usage`).
#[track_caller]
pub fn metric_in(summary: &Value, metric: &str) -> Value {
    summary["data"]
        .as_array()
        .expect("a usage summary")
        .iter()
        .find(|d| d["metric"] == metric)
        .unwrap_or_else(|| panic!("{metric} is not in {summary}"))
        .clone()
}

pub struct Metered {
    pub app: TestApp,
    pub owner: Session,
    pub owner_email: String,
    pub small: String,
    pub large: String,
    pub key: String,
}

impl Metered {
    /// Records `quantity` of `metric` with the tenant's API key, under `idempotency_key`.
    pub async fn record(&self, metric: &str, quantity: i64, idempotency_key: &str) -> Reply {
        self.app
            .post(
                "/v1/usage/events",
                Some(&self.key),
                usage_event(metric, quantity, idempotency_key),
            )
            .await
    }

    /// Sets gauge `metric` to `value` with the tenant's API key.
    pub async fn gauge(&self, metric: &str, value: i64) -> Reply {
        self.app
            .put_json(
                &format!("/v1/usage/gauges/{metric}"),
                Some(&self.key),
                json!({ "value": value }),
            )
            .await
    }

    /// The tenant's usage summary as its owner sees it.
    pub async fn usage(&self) -> Value {
        self.app
            .get("/v1/usage", Some(&self.owner.access))
            .await
            .expect(200)
            .body
    }

    /// The tenant's live subscription as its owner sees it.
    pub async fn subscription(&self) -> Value {
        self.app
            .get("/v1/subscriptions/current", Some(&self.owner.access))
            .await
            .expect(200)
            .body
    }

    /// Two free plans: `Small` allows 100 api_calls a month (hard) and 3 users, `Large` 1000 and
    /// 10; plus a soft `exports` metric. The tenant subscribes to Small and gets an API key. On
    /// `store`, with the clock frozen at `start`.
    /// Plan names carry a unique suffix, for a store other tests share (one DynamoDB table).
    pub async fn on(store: Arc<dyn Store>, start: &str) -> Metered {
        let suffix = format!(" {}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        Self::named(store, start, &suffix).await
    }

    /// On a store of its own: the plans are plainly `Small` and `Large`.
    pub async fn on_fresh(store: Arc<dyn Store>, start: &str) -> Metered {
        Self::named(store, start, "").await
    }

    async fn named(store: Arc<dyn Store>, start: &str, suffix: &str) -> Metered {
        let app = TestApp::frozen_on(store, start).await;
        let admin = app.platform_admin().await;
        let policy = |metric: &str, limit: u64, reset: &str, enforcement: &str| json!({"metric": metric, "limit": limit, "reset_period": reset, "enforcement": enforcement});
        let mut ids = Vec::new();
        for body in [
            policy("api_calls", 100, "month", "hard"),
            policy("api_calls", 1000, "month", "hard"),
            policy("max_users", 3, "none", "hard"),
            policy("max_users", 10, "none", "hard"),
            policy("exports", 5, "day", "soft"),
            policy("storage_mb", 50, "none", "hard"),
        ] {
            ids.push(
                app.post("/v1/limit-policies", Some(&admin.access), body)
                    .await
                    .expect(201)
                    .body["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        let plan = |name: &str, policies: [&str; 4]| json!({"name": name, "price": "0", "currency": "USD", "billing_cycle": "monthly", "limit_policy_ids": policies});
        let small = app
            .post(
                "/v1/plans",
                Some(&admin.access),
                plan(
                    &format!("Small{suffix}"),
                    [&ids[0], &ids[2], &ids[4], &ids[5]],
                ),
            )
            .await
            .expect(201)
            .body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let large = app
            .post(
                "/v1/plans",
                Some(&admin.access),
                plan(
                    &format!("Large{suffix}"),
                    [&ids[1], &ids[3], &ids[4], &ids[5]],
                ),
            )
            .await
            .expect(201)
            .body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let owner_email = email("owner");
        let owner = app.signup(&owner_email, "Acme").await;
        app.post(
            "/v1/subscriptions",
            Some(&owner.access),
            json!({"plan_id": small}),
        )
        .await
        .expect(201);
        let key = app.api_key(&owner.access, json!({"name": "backend"})).await;
        Metered {
            app,
            owner,
            owner_email,
            small,
            large,
            key,
        }
    }
}
