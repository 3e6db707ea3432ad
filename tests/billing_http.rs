//! Subscriptions and billing over HTTP, with a frozen clock for exact amounts: trials,
//! first charges, upgrades with proration, scheduled downgrades, payment failure and recovery,
//! cancellation, concurrent changes, invoice numbering.

use chrono::Duration;
use eshtarek_core::billing::subscriptions::Renewal;
use eshtarek_core::clock::Clock;
use eshtarek_core::jobs::{renew_billing, RunLimits};
use eshtarek_tests::http::{Reply, Session, TestApp};
use serde_json::{json, Value};

/// April 2027 has 30 days: half a period is exactly 15 days.
const START: &str = "2027-04-01T00:00:00Z";

struct Shop {
    app: TestApp,
    admin: Session,
    owner: Session,
    owner_email: String,
    /// The owner's current access token: tokens expire as the clock moves, so moving it signs
    /// in again.
    access: std::sync::Mutex<String>,
    basic: String,
    premium: String,
    trial: String,
}

async fn shop() -> Shop {
    let app = TestApp::frozen_at(START).await;
    let admin = app.platform_admin().await;
    let plan = |name: &str, price: &str, trial: u32| json!({"name": name, "price": price, "currency": "USD", "billing_cycle": "monthly", "trial_days": trial});
    let mut ids = Vec::new();
    for body in [
        plan("Basic", "30.00", 0),
        plan("Premium", "90.00", 0),
        plan("Trial Pro", "29.00", 14),
    ] {
        let reply = app
            .post("/v1/plans", Some(&admin.access), body)
            .await
            .expect(201);
        ids.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    let owner_email = format!("owner-{}@example.com", uuid::Uuid::new_v4().simple());
    let owner = app.signup(&owner_email, "Acme").await;
    let access = std::sync::Mutex::new(owner.access.clone());
    Shop {
        app,
        admin,
        owner,
        owner_email,
        access,
        basic: ids[0].clone(),
        premium: ids[1].clone(),
        trial: ids[2].clone(),
    }
}

impl Shop {
    fn tok(&self) -> Option<String> {
        Some(self.access.lock().unwrap().clone())
    }

    /// A GET as the owner.
    async fn get(&self, path: &str) -> Reply {
        self.app.get(path, self.tok().as_deref()).await
    }

    /// A POST as the owner.
    async fn post(&self, path: &str, body: Value) -> Reply {
        self.app.post(path, self.tok().as_deref(), body).await
    }

    /// Moves the clock (no job runs) and signs in again.
    async fn wait(&self, by: Duration) {
        self.app.clock.advance(by);
        let session = self.app.login(&self.owner_email, None).await;
        *self.access.lock().unwrap() = session.access;
    }

    async fn card(&self, token: &str, default: bool) -> Value {
        self.app
            .post(
                "/v1/payment-methods",
                self.tok().as_deref(),
                json!({"token": token, "set_default": default}),
            )
            .await
            .expect(201)
            .body
    }

    async fn subscribe(&self, plan: &str) -> Value {
        self.app
            .post(
                "/v1/subscriptions",
                self.tok().as_deref(),
                json!({"plan_id": plan}),
            )
            .await
            .expect(201)
            .body
    }

    /// Subscribes to `plan` and returns the subscription's id.
    async fn subscribed(&self, plan: &str) -> String {
        self.subscribe(plan).await["subscription"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn advance(&self, by: Duration) -> Vec<Renewal> {
        self.wait(by).await;
        let report = renew_billing(&self.app.ctx, self.app.clock.now(), RunLimits::default())
            .await
            .unwrap();
        assert!(report.complete);
        // The report counts outcomes by name; these tests renew one subscription at a time.
        let mut renewals = Vec::new();
        for (name, count) in report.outcomes {
            let renewal = match name.as_str() {
                "not_due" => Renewal::NotDue,
                "renewed" => Renewal::Renewed,
                "payment_failed" => Renewal::PaymentFailed,
                "cancelled" => Renewal::Cancelled,
                "expired" => Renewal::Expired,
                "dunning_retry_failed" => Renewal::DunningRetryFailed,
                other => panic!("unexpected outcome {other}"),
            };
            renewals.extend(std::iter::repeat_n(renewal, count as usize));
        }
        renewals
    }

    fn owner_session(&self) -> Session {
        Session {
            access: self.tok().unwrap(),
            ..self.owner.clone()
        }
    }

    async fn current(&self) -> Value {
        self.get("/v1/subscriptions/current").await.expect(200).body
    }

    async fn invoices(&self) -> Vec<Value> {
        self.app
            .get("/v1/invoices?limit=100", self.tok().as_deref())
            .await
            .expect(200)
            .body["data"]
            .as_array()
            .unwrap()
            .clone()
    }
}

fn line_amounts(invoice: &Value) -> Vec<(String, String)> {
    invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_owned(),
                l["amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_trial_ends_into_a_paid_period_when_the_clock_moves() {
    let s = shop().await;
    s.card("pm_card_visa", true).await;
    let created = s.subscribe(&s.trial).await;
    assert_eq!(created["subscription"]["status"], "trialing");
    assert_eq!(created["invoice"], Value::Null, "a trial bills nothing");
    assert_eq!(
        created["subscription"]["trial_end"],
        "2027-04-15T00:00:00.000Z"
    );
    assert!(s.invoices().await.is_empty());

    // Not due yet.
    assert_eq!(s.advance(Duration::days(13)).await, []);
    assert_eq!(s.current().await["status"], "trialing");
    // The trial ends: the first paid period starts at the trial's end and is charged.
    assert_eq!(s.advance(Duration::days(2)).await, [Renewal::Renewed]);
    let sub = s.current().await;
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["current_period_start"], "2027-04-15T00:00:00.000Z");
    assert_eq!(sub["current_period_end"], "2027-05-15T00:00:00.000Z");
    let invoices = s.invoices().await;
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["status"], "paid");
    assert_eq!(invoices[0]["number"], 1);
    assert_eq!(invoices[0]["total"], "29.00");
    assert_eq!(
        line_amounts(&invoices[0]),
        [("plan_charge".to_owned(), "29.00".to_owned())]
    );
    // Running the job again changes nothing.
    assert_eq!(s.advance(Duration::seconds(1)).await, []);
    assert_eq!(s.invoices().await.len(), 1);
}

#[tokio::test]
async fn a_declined_first_charge_leaves_the_subscription_incomplete_until_paid() {
    let s = shop().await;
    s.card("pm_card_chargeDeclined", true).await;
    let created = s.subscribe(&s.basic).await;
    assert_eq!(created["subscription"]["status"], "incomplete");
    assert_eq!(created["invoice"]["status"], "open");
    assert_eq!(created["invoice"]["attempt_count"], 1);
    s.get("/v1/subscriptions/current").await.problem(404);
    let history = s.get("/v1/billing/history").await.expect(200);
    assert_eq!(history.body["data"][0]["outcome"], "failed");
    assert_eq!(history.body["data"][0]["failure_code"], "card_declined");

    // Paying with a working card activates it.
    let visa = s.card("pm_card_visa", false).await;
    let invoice_id = created["invoice"]["id"].as_str().unwrap();
    let paid = s
        .post(
            &format!("/v1/invoices/{invoice_id}/pay"),
            json!({"payment_method_id": visa["id"]}),
        )
        .await
        .expect(200);
    assert_eq!(paid.body["status"], "paid");
    assert_eq!(paid.body["amount_paid"], "30.00");
    assert_eq!(s.current().await["status"], "active");
    // A paid invoice is not paid twice.
    s.post(&format!("/v1/invoices/{invoice_id}/pay"), json!({}))
        .await
        .problem(409);
}

#[tokio::test]
async fn an_upgrade_mid_period_bills_exact_proration_lines() {
    let s = shop().await;
    s.card("pm_card_visa", true).await;
    let created = s.subscribe(&s.basic).await;
    assert_eq!(created["subscription"]["status"], "active");
    assert_eq!(created["invoice"]["total"], "30.00");
    let id = created["subscription"]["id"].as_str().unwrap().to_owned();
    s.wait(Duration::days(15)).await;

    let preview = s
        .get(&format!(
            "/v1/subscriptions/{id}/change-preview?plan_id={}",
            s.premium
        ))
        .await
        .expect(200);
    assert_eq!(preview.body["upgrade"], true);
    assert_eq!(preview.body["default_effective"], "now");
    assert_eq!(
        line_amounts(&preview.body),
        [
            ("proration_credit".to_owned(), "-15.00".to_owned()),
            ("proration_charge".to_owned(), "45.00".to_owned())
        ]
    );
    assert_eq!(preview.body["net"], "30.00");
    assert_eq!(s.invoices().await.len(), 1, "a preview changes nothing");

    let changed = s
        .post(
            &format!("/v1/subscriptions/{id}/change"),
            json!({"plan_id": s.premium}),
        )
        .await
        .expect(200);
    assert_eq!(changed.body["subscription"]["plan_id"], s.premium.as_str());
    assert_eq!(changed.body["subscription"]["price"], "90.00");
    assert_eq!(
        changed.body["subscription"]["current_period_end"], "2027-05-01T00:00:00.000Z",
        "same period"
    );
    let invoice = &changed.body["invoice"];
    assert_eq!(invoice["number"], 2);
    assert_eq!(invoice["status"], "paid");
    assert_eq!(invoice["subtotal"], "30.00");
    assert_eq!(invoice["total"], "30.00");
    assert_eq!(line_amounts(invoice), line_amounts(&preview.body));

    // The next renewal bills the new plan in full.
    assert_eq!(s.advance(Duration::days(15)).await, [Renewal::Renewed]);
    let invoices = s.invoices().await;
    assert_eq!(invoices[0]["total"], "90.00");
    assert_eq!(invoices[0]["number"], 3);
}

#[tokio::test]
async fn a_downgrade_waits_for_the_period_end() {
    let s = shop().await;
    s.card("pm_card_visa", true).await;
    let id = s.subscribed(&s.premium).await;
    s.wait(Duration::days(10)).await;
    let scheduled = s
        .post(
            &format!("/v1/subscriptions/{id}/change"),
            json!({"plan_id": s.basic}),
        )
        .await
        .expect(200);
    let sub = &scheduled.body["subscription"];
    assert_eq!(sub["plan_id"], s.premium.as_str(), "still on the old plan");
    assert_eq!(sub["scheduled_change"]["plan_id"], s.basic.as_str());
    assert_eq!(
        sub["scheduled_change"]["effective_at"],
        "2027-05-01T00:00:00.000Z"
    );
    assert_eq!(scheduled.body["invoice"], Value::Null);

    assert_eq!(s.advance(Duration::days(20)).await, [Renewal::Renewed]);
    let sub = s.current().await;
    assert_eq!(sub["plan_id"], s.basic.as_str());
    assert_eq!(sub["price"], "30.00");
    assert_eq!(sub["scheduled_change"], Value::Null);
    assert_eq!(sub["current_period_start"], "2027-05-01T00:00:00.000Z");
    assert_eq!(sub["current_period_end"], "2027-06-01T00:00:00.000Z");
    assert_eq!(s.invoices().await[0]["total"], "30.00");
}

#[tokio::test]
async fn an_immediate_downgrade_credits_the_balance_for_the_next_invoice() {
    let s = shop().await;
    s.card("pm_card_visa", true).await;
    let id = s.subscribed(&s.premium).await;
    s.wait(Duration::days(15)).await;
    let changed = s
        .post(
            &format!("/v1/subscriptions/{id}/change"),
            json!({"plan_id": s.basic, "effective": "now"}),
        )
        .await
        .expect(200);
    let invoice = &changed.body["invoice"];
    // Credit -45.00 (half of 90), charge 15.00 (half of 30): a net credit of 30.00.
    assert_eq!(
        line_amounts(invoice),
        [
            ("proration_credit".to_owned(), "-45.00".to_owned()),
            ("proration_charge".to_owned(), "15.00".to_owned())
        ]
    );
    assert_eq!(invoice["total"], "-30.00");
    assert_eq!(invoice["amount_due"], "0.00");
    // The next invoice (30.00) is paid from the 30.00 balance.
    s.advance(Duration::days(15)).await;
    let next = &s.invoices().await[0];
    assert_eq!(
        line_amounts(next),
        [
            ("plan_charge".to_owned(), "30.00".to_owned()),
            ("credit_balance_applied".to_owned(), "-30.00".to_owned())
        ]
    );
    assert_eq!(next["total"], "0.00");
    assert_eq!(next["status"], "paid");
}

#[tokio::test]
async fn a_failed_renewal_goes_past_due_and_a_new_card_recovers_it() {
    let s = shop().await;
    s.card("pm_card_visa", true).await;
    s.subscribe(&s.basic).await;
    s.card("pm_card_chargeDeclinedInsufficientFunds", true)
        .await;
    assert_eq!(
        s.advance(Duration::days(30)).await,
        [Renewal::PaymentFailed]
    );
    let sub = s.current().await;
    assert_eq!(sub["status"], "past_due");
    let open = &s.invoices().await[0];
    assert_eq!(open["status"], "open");
    let events = s.get("/v1/events?limit=100").await.expect(200);
    let kinds: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"invoice.payment_failed"), "{kinds:?}");

    // Dunning retries after 1 day, still failing.
    assert_eq!(
        s.advance(Duration::days(1)).await,
        [Renewal::DunningRetryFailed]
    );
    // A new default card, then the customer pays: active again.
    s.card("pm_card_visa", true).await;
    let invoice_id = open["id"].as_str().unwrap();
    s.post(&format!("/v1/invoices/{invoice_id}/pay"), json!({}))
        .await
        .expect(200);
    assert_eq!(s.current().await["status"], "active");
}

#[tokio::test]
async fn dunning_gives_up_after_the_last_retry() {
    let s = shop().await;
    s.card("pm_card_visa", true).await;
    let id = s.subscribed(&s.basic).await;
    s.card("pm_card_chargeDeclined", true).await;
    assert_eq!(
        s.advance(Duration::days(30)).await,
        [Renewal::PaymentFailed]
    );
    assert_eq!(
        s.advance(Duration::days(1)).await,
        [Renewal::DunningRetryFailed]
    );
    assert_eq!(
        s.advance(Duration::days(2)).await,
        [Renewal::DunningRetryFailed]
    );
    assert_eq!(s.advance(Duration::days(2)).await, [Renewal::Cancelled]);
    let sub = s.get(&format!("/v1/subscriptions/{id}")).await.expect(200);
    assert_eq!(sub.body["status"], "cancelled");
    let unpaid = &s.invoices().await[0];
    assert_eq!(unpaid["status"], "uncollectible");
    s.get("/v1/subscriptions/current").await.problem(404);
    // The members are told, once, naming the unpaid invoice.
    let notes = s.get("/v1/notifications").await.expect(200);
    let ended =
        eshtarek_tests::fixtures::notifications_of(&notes.body, "subscription.ended_unpaid");
    assert_eq!(ended.len(), 1, "{:#}", notes.body);
    assert_eq!(ended[0]["data"]["invoice_id"], unpaid["id"]);
    assert_eq!(ended[0]["data"]["invoice_number"], unpaid["number"]);
    assert_eq!(ended[0]["data"]["status"], "cancelled");
    assert_eq!(ended[0]["data"]["notification_id"], ended[0]["id"]);
    assert_eq!(ended[0]["read"], false);
    let message = ended[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "invoice #{} ({} {}) is unpaid",
            unpaid["number"],
            unpaid["amount_due"].as_str().unwrap(),
            unpaid["currency"].as_str().unwrap()
        )),
        "{message}"
    );
    // Another run of the job sends nothing more.
    assert_eq!(s.advance(Duration::days(1)).await, []);
    let again = s.get("/v1/notifications").await.expect(200);
    assert_eq!(
        again.body["data"].as_array().unwrap().len(),
        notes.body["data"].as_array().unwrap().len()
    );
}

#[tokio::test]
async fn cancel_at_period_end_and_resume() {
    let s = shop().await;
    s.card("pm_card_visa", true).await;
    let id = s.subscribed(&s.basic).await;
    let cancel = format!("/v1/subscriptions/{id}/cancel");
    let pending = s
        .post(&cancel, json!({"at_period_end": true}))
        .await
        .expect(200);
    assert_eq!(pending.body["cancel_at_period_end"], true);
    assert_eq!(pending.body["status"], "active");
    let resumed = s
        .post(&format!("/v1/subscriptions/{id}/resume"), json!({}))
        .await
        .expect(200);
    assert_eq!(resumed.body["cancel_at_period_end"], false);
    s.post(&format!("/v1/subscriptions/{id}/resume"), json!({}))
        .await
        .problem(409);

    s.post(&cancel, json!({})).await.expect(200);
    assert_eq!(s.advance(Duration::days(30)).await, [Renewal::Cancelled]);
    let ended = s.get(&format!("/v1/subscriptions/{id}")).await.expect(200);
    assert_eq!(ended.body["status"], "cancelled");
    assert_eq!(
        s.invoices().await.len(),
        1,
        "no renewal invoice after a cancel"
    );
    // An ended subscription takes no more changes: 409, never a silent change.
    let illegal = s
        .post(&cancel, json!({"at_period_end": false}))
        .await
        .problem(409);
    assert_eq!(illegal.body["code"], "illegal_transition");
    // The tenant may subscribe again.
    s.subscribe(&s.premium).await;
}

#[tokio::test]
async fn one_live_subscription_per_tenant_and_only_its_admin_subscribes() {
    let s = shop().await;
    s.card("pm_card_visa", true).await;
    s.subscribe(&s.basic).await;
    s.post("/v1/subscriptions", json!({"plan_id": s.premium}))
        .await
        .problem(409);
    let user = s
        .app
        .add_member(
            &s.owner_session(),
            s.owner.tenant_id.as_deref().unwrap(),
            &format!("u-{}@example.com", uuid::Uuid::new_v4().simple()),
            "tenant_user",
        )
        .await;
    s.app
        .post(
            "/v1/subscriptions",
            Some(&user.access),
            json!({"plan_id": s.premium}),
        )
        .await
        .problem(403);
    s.app
        .get("/v1/invoices", Some(&user.access))
        .await
        .problem(403);
    // A tenant user may read the plan they are on.
    assert_eq!(
        s.app
            .get("/v1/subscriptions/current", Some(&user.access))
            .await
            .expect(200)
            .body["plan_id"],
        s.basic.as_str()
    );
    // Another tenant sees none of it.
    let other = s
        .app
        .signup(
            &format!("o-{}@example.com", uuid::Uuid::new_v4().simple()),
            "Other",
        )
        .await;
    s.app
        .get("/v1/subscriptions/current", Some(&other.access))
        .await
        .problem(404);
    assert_eq!(
        s.app
            .get("/v1/invoices", Some(&other.access))
            .await
            .expect(200)
            .body["data"],
        json!([])
    );
    let id = s.current().await["id"].as_str().unwrap().to_owned();
    s.app
        .get(&format!("/v1/subscriptions/{id}"), Some(&other.access))
        .await
        .problem(404);
    s.app
        .post(
            &format!("/v1/subscriptions/{id}/cancel"),
            Some(&other.access),
            json!({}),
        )
        .await
        .problem(404);
}

// Worker threads, so the attempts really overlap (store reads do not yield to other tasks).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_plan_changes_let_exactly_one_win() {
    // The invariants hold on every run; that the requests truly overlapped (some loser got
    // 409, not 422) depends on scheduling, and a busy machine can serialize them. So the
    // scenario runs again, on a fresh shop, until a run shows a real race.
    for _ in 0..5 {
        if race_plan_changes().await.contains(&409) {
            return;
        }
    }
    panic!("in 5 runs the 8 plan changes never overlapped: the race was not real");
}

/// Eight simultaneous changes to the same plan: checks that exactly one wins and nothing is
/// charged twice; returns the sorted statuses.
async fn race_plan_changes() -> Vec<u16> {
    let s = std::sync::Arc::new(shop().await);
    s.card("pm_card_visa", true).await;
    let id = s.subscribed(&s.basic).await;
    s.wait(Duration::days(5)).await;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let attempts = (0..8).map(|_| {
        let s = s.clone();
        let id = id.clone();
        let start = start.clone();
        tokio::spawn(async move {
            start.wait().await;
            s.post(
                &format!("/v1/subscriptions/{id}/change"),
                json!({"plan_id": s.premium}),
            )
            .await
            .status
            .as_u16()
        })
    });
    let mut statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    statuses.sort();
    // Exactly one wins. A loser that raced it gets 409; one that started after the winner had
    // finished sees the subscription already on that plan and gets 422. Either way: no second
    // change and no second charge (checked below).
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 409, 422].contains(s)),
        "{statuses:?}"
    );
    // One change, one proration invoice, one charge: a loser never pays.
    assert_eq!(s.invoices().await.len(), 2);
    let history = s.get("/v1/billing/history").await.expect(200);
    assert_eq!(history.body["data"].as_array().unwrap().len(), 2);
    statuses
}

#[tokio::test]
async fn payment_methods_keep_no_card_number() {
    let s = shop().await;
    let added = s.post("/v1/payment-methods", json!({"card": {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}})).await
        .expect(201);
    assert_eq!(added.body["brand"], "visa");
    assert_eq!(added.body["last4"], "4242");
    assert_eq!(added.body["is_default"], true);
    for (body, field) in [
        (
            json!({"card": {"number": "4242 4242 4242 4241", "exp_month": 12, "exp_year": 2030}}),
            "card.number",
        ),
        (
            json!({"card": {"number": "4242424242424242", "exp_month": 13, "exp_year": 2030}}),
            "card.exp_month",
        ),
        (
            json!({"card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2020}}),
            "card.exp_year",
        ),
        (json!({"token": "pm_card_unknown"}), "token"),
        (json!({}), "token"),
    ] {
        let reply = s.post("/v1/payment-methods", body).await.problem(422);
        assert_eq!(reply.body["field"], field);
    }
    // Nothing stored anywhere holds the number.
    let page = eshtarek_core::store::Store::query(
        &*s.app.store,
        &eshtarek_core::store::Query::table(format!(
            "TENANT#{}#PAYMENT_METHODS",
            s.owner.tenant_id.as_deref().unwrap()
        )),
    )
    .await
    .unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(!format!("{:?}", page.items).contains("4242424242424242"));
    let id = added.body["id"].as_str().unwrap();
    s.app
        .delete(&format!("/v1/payment-methods/{id}"), s.tok().as_deref())
        .await
        .expect(204);
    assert_eq!(
        s.get("/v1/payment-methods").await.expect(200).body["data"],
        json!([])
    );
}

#[tokio::test]
async fn idempotent_retries_of_each_post_change_nothing() {
    let s = shop().await;
    let t = s.tok();
    let t = t.as_deref();
    // Payment method.
    let first = s
        .app
        .post_keyed(
            "/v1/payment-methods",
            t,
            "pm-1",
            json!({"token": "pm_card_visa"}),
        )
        .await
        .expect(201);
    let again = s
        .app
        .post_keyed(
            "/v1/payment-methods",
            t,
            "pm-1",
            json!({"token": "pm_card_visa"}),
        )
        .await
        .expect(201);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(
        s.app.get("/v1/payment-methods", t).await.expect(200).body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The same key with another request is refused.
    let other = s
        .app
        .post_keyed(
            "/v1/payment-methods",
            t,
            "pm-1",
            json!({"token": "pm_card_mastercard"}),
        )
        .await
        .problem(422);
    assert_eq!(other.body["field"], "Idempotency-Key");

    // Subscribe.
    let body = json!({"plan_id": s.basic});
    let sub = s
        .app
        .post_keyed("/v1/subscriptions", t, "sub-1", body.clone())
        .await
        .expect(201);
    let replay = s
        .app
        .post_keyed("/v1/subscriptions", t, "sub-1", body)
        .await
        .expect(201);
    assert_eq!(replay.body, sub.body);
    assert_eq!(s.invoices().await.len(), 1);
    let id = sub.body["subscription"]["id"].as_str().unwrap().to_owned();

    // Change.
    let change = json!({"plan_id": s.premium});
    let path = format!("/v1/subscriptions/{id}/change");
    let changed = s
        .app
        .post_keyed(&path, t, "chg-1", change.clone())
        .await
        .expect(200);
    assert_eq!(
        s.app
            .post_keyed(&path, t, "chg-1", change)
            .await
            .expect(200)
            .body,
        changed.body
    );
    assert_eq!(s.invoices().await.len(), 2);

    // Cancel and resume.
    let cancel = format!("/v1/subscriptions/{id}/cancel");
    let resume = format!("/v1/subscriptions/{id}/resume");
    s.app
        .post_keyed(&cancel, t, "c-1", json!({}))
        .await
        .expect(200);
    s.app
        .post_keyed(&resume, t, "r-1", json!({}))
        .await
        .expect(200);
    // Replays answer as the first time did, without cancelling again.
    assert_eq!(
        s.app
            .post_keyed(&cancel, t, "c-1", json!({}))
            .await
            .expect(200)
            .body["cancel_at_period_end"],
        true
    );
    assert_eq!(s.current().await["cancel_at_period_end"], false);
    // A request that failed validation is remembered as the failure it was.
    s.app
        .post_keyed(&resume, t, "r-2", json!({}))
        .await
        .problem(409);
    s.app
        .post_keyed(&resume, t, "r-2", json!({}))
        .await
        .problem(409);

    // Keys belong to their tenant: another tenant's identical key runs on its own.
    let other = s
        .app
        .signup(
            &format!("x-{}@example.com", uuid::Uuid::new_v4().simple()),
            "Other",
        )
        .await;
    let theirs = s
        .app
        .post_keyed(
            "/v1/payment-methods",
            Some(&other.access),
            "pm-1",
            json!({"token": "pm_card_visa"}),
        )
        .await
        .expect(201);
    assert_ne!(theirs.body["id"], first.body["id"]);
    assert!(theirs.headers.get("idempotent-replayed").is_none());
    // A bad key is a problem, not a 500.
    s.app
        .post_keyed(
            "/v1/payment-methods",
            t,
            &"k".repeat(300),
            json!({"token": "pm_card_visa"}),
        )
        .await
        .problem(422);
}

#[tokio::test]
async fn racing_requests_with_one_key_subscribe_once() {
    let s = std::sync::Arc::new(shop().await);
    s.card("pm_card_visa", true).await;
    let attempts = (0..6).map(|_| {
        let s = s.clone();
        tokio::spawn(async move {
            let t = s.tok();
            s.app
                .post_keyed(
                    "/v1/subscriptions",
                    t.as_deref(),
                    "race",
                    json!({"plan_id": s.basic}),
                )
                .await
                .status
                .as_u16()
        })
    });
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert!(statuses.contains(&201));
    assert_eq!(s.invoices().await.len(), 1, "{statuses:?}");
    let subs = s.get("/v1/subscriptions").await.expect(200);
    assert_eq!(subs.body["data"].as_array().unwrap().len(), 1);
}

/// Editing a plan never moves a subscription: it keeps its version's price until a platform
/// admin migrates it explicitly.
#[tokio::test]
async fn plan_edits_leave_subscriptions_alone_until_migrated() {
    let s = shop().await;
    s.card("pm_card_visa", true).await;
    let id = s.subscribed(&s.basic).await;
    let admin = Some(s.admin.access.as_str());
    let edited = s
        .app
        .patch(
            &format!("/v1/plans/{}", s.basic),
            admin,
            json!({"price": "35.00"}),
        )
        .await
        .expect(200);
    assert_eq!(edited.body["current_version"], 2);
    let sub = s.current().await;
    assert_eq!(
        (sub["plan_version"].as_i64(), sub["price"].as_str()),
        (Some(1), Some("30.00"))
    );
    // A plan in use cannot be deleted.
    s.app
        .delete(&format!("/v1/plans/{}", s.basic), admin)
        .await
        .problem(409);
    // Renewal bills the version the subscription is on.
    s.advance(Duration::days(30)).await;
    assert_eq!(s.invoices().await[0]["total"], "30.00");

    // Tenants cannot migrate; bad versions are named.
    let migrate = format!("/v1/plans/{}/migrate", s.basic);
    s.post(
        &migrate,
        json!({"from_version": 1, "to_version": 2, "effective": "now"}),
    )
    .await
    .problem(403);
    // The clock moved a month: the admin signs in again.
    let admin_token = s.app.platform_admin().await.access;
    let bad = s
        .app
        .post(
            &migrate,
            Some(&admin_token),
            json!({"from_version": 1, "to_version": 9, "effective": "now"}),
        )
        .await
        .problem(422);
    assert_eq!(bad.body["field"], "to_version");
    let long = s
        .app
        .post(
            &migrate,
            Some(&admin_token),
            json!({"from_version": 1, "to_version": 2, "effective": "now", "reason": "x".repeat(501)}),
        )
        .await
        .problem(422);
    assert_eq!(long.body["field"], "reason");
    let moved = s
        .app
        .post(&migrate, Some(&admin_token), json!({"from_version": 1, "to_version": 2, "effective": "now", "reason": "price change"}))
        .await
        .expect(200);
    assert_eq!(moved.body["migrated"], 1);
    let sub = s.get(&format!("/v1/subscriptions/{id}")).await.expect(200);
    assert_eq!(
        (
            sub.body["plan_version"].as_i64(),
            sub.body["price"].as_str()
        ),
        (Some(2), Some("35.00"))
    );
    s.advance(Duration::days(31)).await;
    assert_eq!(s.invoices().await[0]["total"], "35.00");
    let admin_token = s.app.platform_admin().await.access;
    // Nobody is left on version 1; the migration is audited with its reason.
    let again = s
        .app
        .post(
            &migrate,
            Some(&admin_token),
            json!({"from_version": 1, "to_version": 2, "effective": "now"}),
        )
        .await
        .expect(200);
    assert_eq!(again.body["migrated"], 0);
    let log = s
        .app
        .get(
            &format!("/v1/audit-log?resource_type=plan&resource_id={}", s.basic),
            Some(&admin_token),
        )
        .await
        .expect(200);
    let migration = log.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "plan.migrated" && e["after"]["migrated"] == 1)
        .cloned()
        .unwrap();
    assert_eq!(migration["reason"], "price change");
}

#[tokio::test]
async fn platform_admin_overrides_are_audited_with_a_reason() {
    let s = shop().await;
    s.card("pm_card_visa", true).await;
    s.subscribe(&s.basic).await;
    let tenant = s.owner.tenant_id.clone().unwrap();
    let path = format!("/v1/admin/tenants/{tenant}/subscription");
    let admin = Some(s.admin.access.as_str());
    // Tenants cannot override; a reason is required; one change at a time.
    s.app
        .patch(
            &path,
            s.tok().as_deref(),
            json!({"extend_days": 5, "reason": "x"}),
        )
        .await
        .problem(403);
    s.app
        .patch(&path, admin, json!({"extend_days": 5, "reason": " "}))
        .await
        .problem(422);
    s.app
        .patch(
            &path,
            admin,
            json!({"extend_days": 5, "status": "active", "reason": "x"}),
        )
        .await
        .problem(422);

    let extended = s
        .app
        .patch(
            &path,
            admin,
            json!({"extend_days": 10, "reason": "outage credit"}),
        )
        .await
        .expect(200);
    assert_eq!(
        extended.body["current_period_end"],
        "2027-05-11T00:00:00.000Z"
    );
    // Found by schemathesis: a move to the plan version it is already on was a 500.
    let same = s
        .app
        .patch(&path, admin, json!({"plan_id": s.basic, "reason": "no-op"}))
        .await
        .problem(409);
    assert!(same.body["detail"].as_str().unwrap().contains("already"));
    let moved = s
        .app
        .patch(
            &path,
            admin,
            json!({"plan_id": s.premium, "reason": "sales deal"}),
        )
        .await
        .expect(200);
    assert_eq!(moved.body["plan_id"], s.premium.as_str());
    assert_eq!(s.invoices().await.len(), 1, "no charge for an override");
    // Not due at the original period end any more.
    assert_eq!(s.advance(Duration::days(30)).await, []);
    assert_eq!(s.advance(Duration::days(10)).await, [Renewal::Renewed]);
    assert_eq!(s.invoices().await[0]["total"], "90.00");
    // Illegal transitions through the override are 409s too.
    let admin_token = s.app.platform_admin().await.access;
    s.app
        .patch(
            &path,
            Some(&admin_token),
            json!({"status": "active", "reason": "x"}),
        )
        .await
        .problem(409);
    let ended = s
        .app
        .patch(
            &path,
            Some(&admin_token),
            json!({"status": "cancelled", "reason": "fraud"}),
        )
        .await
        .expect(200);
    assert_eq!(ended.body["status"], "cancelled");

    let log = s
        .app
        .get(
            &format!("/v1/audit-log?tenant_id={tenant}"),
            Some(&admin_token),
        )
        .await
        .expect(200);
    let reasons: Vec<&str> = log.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "subscription.admin_override")
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["fraud", "sales deal", "outage credit"]);
}

/// Invoice numbers per tenant stay sequential under concurrency: no gaps, no duplicates.
#[tokio::test]
async fn concurrent_invoices_take_sequential_numbers() {
    use eshtarek_core::billing::invoices::{issue, Draft, Line, LineKind};
    use eshtarek_core::money::Currency;
    use eshtarek_core::store::TenantId;
    let s = std::sync::Arc::new(shop().await);
    let tenant = TenantId::parse(s.owner.tenant_id.as_deref().unwrap()).unwrap();
    let now = s.app.clock.now();
    let tasks = (0..20).map(|i| {
        let s = s.clone();
        let tenant = tenant.clone();
        tokio::spawn(async move {
            let usd = Currency::parse("USD", "currency").unwrap();
            let draft = Draft {
                subscription_id: "sub_x".into(),
                currency: usd,
                lines: vec![Line {
                    kind: LineKind::PlanCharge,
                    description: "x".into(),
                    amount: rust_decimal::Decimal::new(100 + i, 2),
                    period: None,
                    detail: None,
                }],
                period: (now, now + Duration::days(1)),
                dedupe: format!("race-{i}"),
            };
            issue(&s.app.ctx, &tenant, draft)
                .await
                .unwrap()
                .i64("number")
                .unwrap()
        })
    });
    let mut numbers: Vec<i64> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, (1..=20).collect::<Vec<i64>>());
    let listed: Vec<i64> = s
        .invoices()
        .await
        .iter()
        .map(|i| i["number"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, (1..=20).rev().collect::<Vec<i64>>());
}

#[tokio::test]
async fn immediate_cancel_credits_only_when_asked_and_admins_subscribe_any_tenant() {
    let s = shop().await;
    s.card("pm_card_visa", true).await;
    let id = s.subscribed(&s.basic).await;
    s.wait(Duration::days(15)).await;
    let cancelled = s
        .post(
            &format!("/v1/subscriptions/{id}/cancel"),
            json!({"at_period_end": false, "prorate": true}),
        )
        .await
        .expect(200);
    assert_eq!(cancelled.body["status"], "cancelled");
    // Half of 30.00 comes back as credit on the next invoice.
    let admin = s.app.platform_admin().await;
    let tenant = s.owner.tenant_id.clone().unwrap();
    let created = s
        .app
        .post(
            "/v1/subscriptions",
            Some(&admin.access),
            json!({"plan_id": s.premium, "tenant_id": tenant}),
        )
        .await
        .expect(201);
    let invoice = &created.body["invoice"];
    assert_eq!(
        line_amounts(invoice),
        [
            ("plan_charge".to_owned(), "90.00".to_owned()),
            ("credit_balance_applied".to_owned(), "-15.00".to_owned())
        ]
    );
    assert_eq!(invoice["total"], "75.00");
    // Platform admins name the tenant; without one it is a 422.
    s.app
        .post(
            "/v1/subscriptions",
            Some(&admin.access),
            json!({"plan_id": s.premium}),
        )
        .await
        .problem(422);
    // Without prorate, an immediate cancel credits nothing.
    let id = created.body["subscription"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.post(
        &format!("/v1/subscriptions/{id}/cancel"),
        json!({"at_period_end": false}),
    )
    .await
    .expect(200);
    let again = s
        .post("/v1/subscriptions", json!({"plan_id": s.basic}))
        .await
        .expect(201);
    assert_eq!(again.body["invoice"]["total"], "30.00");
}
