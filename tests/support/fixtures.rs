//! Scenario steps several test files share.

use std::sync::Arc;

use eshtarek_core::store::Store;
use serde_json::json;

use crate::http::{Session, TestApp};

/// A unique address.
pub fn email(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::new_v4().simple())
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
        let key = app
            .post(
                "/v1/api-keys",
                Some(&owner.access),
                json!({"name": "backend"}),
            )
            .await
            .expect(201)
            .body["secret"]
            .as_str()
            .unwrap()
            .to_owned();
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
