//! Demo data for a first start on an empty store: a platform admin, limit policies, a catalog
//! (Free; Trial, Pro, Plus and Teams with seats; Business; a pay-as-you-go plan on graduated
//! tiers), a WELCOME20 coupon, and two demo tenants with an admin and a user each. Passwords are
//! random, printed once and kept in `<data dir>/demo-credentials.txt` (mode 0600).

use std::path::Path;

use eshtarek_core::auth::service::{self, RegisterRequest};
use eshtarek_core::auth::tokens::random_secret;
use eshtarek_core::auth::{Caller, Role};
use eshtarek_core::billing::pricing::{SeatPrice, Tier, TopUp, UsageCharge, UsagePrice};
use eshtarek_core::invitations::{self, AcceptLinkRequest, InviteRequest};
use eshtarek_core::plans::features::{self, CreateFeatureRequest, FeatureType};
use eshtarek_core::plans::policies::{self, CreatePolicyRequest};
use eshtarek_core::plans::rates::{RateLimit, RatePeriod};
use eshtarek_core::plans::{self, CreatePlanRequest};
use eshtarek_core::store::{Condition, Item, Key, StoreError, StoreExt};
use eshtarek_core::{ApiError, AppContext};

/// Who logs in to what, printed after seeding.
pub struct Credentials(pub Vec<(String, String, String)>);

fn marker() -> Key {
    Key::new("SEED#DEMO", "SEED")
}

/// Seeds once per store: a marker item, claimed with a conditional write, makes a second start
/// (or a second process) skip it.
pub async fn seed_if_empty(
    ctx: &AppContext,
    data_dir: &Path,
) -> anyhow::Result<Option<Credentials>> {
    let claimed = ctx
        .stores
        .platform()
        .put(
            Item::new(marker()).with("state", "seeding"),
            Some(Condition::ItemNotExists),
        )
        .await;
    match claimed {
        Ok(()) => {}
        Err(StoreError::ConditionFailed { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let credentials = seed(ctx)
        .await
        .map_err(|e| anyhow::anyhow!("seeding demo data: {e}"))?;
    ctx.stores
        .platform()
        .put(Item::new(marker()).with("state", "done"), None)
        .await?;
    let text: String = credentials
        .0
        .iter()
        .map(|(role, email, password)| format!("{role:<16} {email:<28} {password}\n"))
        .collect();
    write_private(&data_dir.join("demo-credentials.txt"), &text)?;
    Ok(Some(credentials))
}

fn password() -> String {
    // 20 URL-safe characters: well past the policy's 10.
    random_secret().chars().take(20).collect()
}

async fn seed(ctx: &AppContext) -> Result<Credentials, ApiError> {
    let mut creds = Vec::new();
    let admin_email = "admin@eshtarek.local";
    let admin_password = password();
    let admin = service::create_platform_admin(ctx, admin_email, &admin_password).await?;
    creds.push((
        "platform_admin".into(),
        admin_email.to_owned(),
        admin_password,
    ));
    let caller = synthetic_caller(&admin.id, None, Role::PlatformAdmin);

    let policy =
        |metric: &str, limit: Option<u64>, reset: &str, enforcement: &str, description: &str| {
            CreatePolicyRequest {
                metric: metric.into(),
                limit,
                reset_period: reset.into(),
                enforcement: enforcement.into(),
                warning_thresholds: None,
                description: Some(description.into()),
            }
        };
    let per_period = |metric: &str, limit: u64, description: &str| {
        policy(metric, Some(limit), "billing_period", "hard", description)
    };
    let mut ids = std::collections::HashMap::new();
    for (key, request) in [
        (
            "free_users",
            policy("max_users", Some(3), "none", "hard", "Free: 3 seats"),
        ),
        (
            "free_calls",
            policy(
                "api_calls",
                Some(1_000),
                "month",
                "hard",
                "Free: 1,000 API calls a month",
            ),
        ),
        (
            "free_storage",
            policy("storage_mb", Some(100), "none", "hard", "Free: 100 MB"),
        ),
        (
            "pro_users",
            policy("max_users", Some(10), "none", "hard", "Pro: 10 seats"),
        ),
        (
            "biz_users",
            policy("max_users", Some(50), "none", "hard", "Business: 50 seats"),
        ),
        (
            "biz_calls",
            policy(
                "api_calls",
                Some(1_000_000),
                "billing_period",
                "soft",
                "Business: 1M calls, overage allowed",
            ),
        ),
        (
            "biz_storage",
            policy(
                "storage_mb",
                None,
                "none",
                "soft",
                "Business: unlimited storage",
            ),
        ),
        // The trial-and-tiers catalog of issue 20: requests and tokens per billing period.
        (
            "trial_requests",
            per_period("requests", 120, "Trial: 120 requests"),
        ),
        (
            "trial_tokens",
            per_period("tokens", 50_000, "Trial: 50,000 tokens"),
        ),
        (
            "pro_requests",
            per_period("requests", 1_000, "Pro: 1,000 requests"),
        ),
        (
            "pro_tokens",
            per_period("tokens", 1_000_000, "Pro: 1M tokens"),
        ),
        (
            "plus_requests",
            per_period("requests", 2_500, "Plus: 2,500 requests"),
        ),
        (
            "plus_tokens",
            per_period("tokens", 2_500_000, "Plus: 2.5M tokens"),
        ),
        (
            "teams_requests",
            per_period("requests", 5_000, "Teams: 5,000 requests"),
        ),
        (
            "teams_tokens",
            per_period("tokens", 5_000_000, "Teams: 5M tokens"),
        ),
        (
            "teams_users",
            policy("max_users", Some(25), "none", "hard", "Teams: 25 seats"),
        ),
    ] {
        ids.insert(key, policies::create(ctx, &caller, request).await?.id);
    }
    let plan =
        |name: &str, description: &str, price: &str, trial: u32, keys: &[&str]| CreatePlanRequest {
            name: name.into(),
            description: Some(description.into()),
            price: price.into(),
            currency: "USD".into(),
            billing_cycle: "monthly".into(),
            trial_days: Some(trial),
            duration_cycles: None,
            limit_policy_ids: keys.iter().map(|k| ids[k].clone()).collect(),
            seats: None,
            usage_charges: Vec::new(),
            top_ups: Vec::new(),
            features: Default::default(),
            allowed_changes: None,
            rate_limits: Vec::new(),
        };
    // Features, defined once and valued per plan (the plan comparison shows them side by side).
    for (key, name, kind, description) in [
        (
            "priority_support",
            "Priority support",
            FeatureType::Boolean,
            "Answers within four business hours",
        ),
        (
            "max_projects",
            "Projects",
            FeatureType::Number,
            "Projects a tenant may create",
        ),
        (
            "support_tier",
            "Support tier",
            FeatureType::String,
            "Which support desk answers",
        ),
    ] {
        features::create(
            ctx,
            &caller,
            CreateFeatureRequest {
                key: key.into(),
                name: name.into(),
                kind,
                description: Some(description.into()),
            },
        )
        .await?;
    }
    let valued = |priority: bool, projects: u32, tier: &str| {
        std::collections::BTreeMap::from([
            ("priority_support".to_owned(), serde_json::json!(priority)),
            ("max_projects".to_owned(), serde_json::json!(projects)),
            ("support_tier".to_owned(), serde_json::json!(tier)),
        ])
    };
    // Where each plan may change to, as a real trial-and-tiers service has it: Trial (and the
    // rest) anywhere; Pro to Plus or Teams; Plus to Teams; Teams nowhere. Targets come first,
    // so their ids exist when the plans that name them are created.
    let mut created: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for (request, features, allowed) in [
        (
            plan(
                "Free",
                "For trying things out",
                "0.00",
                0,
                &["free_users", "free_calls", "free_storage"],
            ),
            valued(false, 1, "community"),
            None,
        ),
        (
            plan(
                "Trial",
                "Seven days to try it: 120 requests and 50,000 tokens, then pick a plan",
                "0.00",
                7,
                &["trial_requests", "trial_tokens"],
            ),
            valued(false, 3, "community"),
            None,
        ),
        (
            CreatePlanRequest {
                seats: Some(SeatPrice {
                    unit_price: "12.00".parse().expect("a decimal"),
                    included: 0,
                    quantity: Default::default(),
                }),
                ..plan(
                    "Teams",
                    "For teams: $12 per user, 5,000 requests and 5M tokens a month",
                    "49.00",
                    14,
                    &["teams_users", "teams_requests", "teams_tokens"],
                )
            },
            valued(true, 100, "gold"),
            Some(&[][..]),
        ),
        (
            plan(
                "Plus",
                "For power users: 2,500 requests and 2.5M tokens a month",
                "19.00",
                0,
                &["pro_users", "plus_requests", "plus_tokens"],
            ),
            valued(true, 25, "standard"),
            Some(&["Teams"][..]),
        ),
        (
            CreatePlanRequest {
                // Out of requests before the month is: 500 more for $5.00, at once.
                top_ups: vec![TopUp {
                    metric: "requests".into(),
                    units: 500,
                    price: "5.00".parse().expect("a decimal"),
                }],
                ..plan(
                    "Pro",
                    "For individuals: 1,000 requests and 1M tokens a month; 500 more for $5",
                    "10.00",
                    0,
                    &["pro_users", "pro_requests", "pro_tokens"],
                )
            },
            valued(false, 10, "standard"),
            Some(&["Plus", "Teams"][..]),
        ),
        (
            CreatePlanRequest {
                top_ups: vec![TopUp {
                    metric: "api_calls".into(),
                    units: 10_000,
                    price: "20.00".parse().expect("a decimal"),
                }],
                ..plan(
                    "Business",
                    "For companies at scale; 10,000 more API calls for $20",
                    "99.00",
                    0,
                    &["biz_users", "biz_calls", "biz_storage"],
                )
            },
            valued(true, 1000, "platinum"),
            None,
        ),
        (
            CreatePlanRequest {
                usage_charges: vec![graduated_requests()],
                ..plan(
                    "Pay as you go",
                    "No monthly fee: requests billed in arrears on graduated tiers",
                    "0.00",
                    0,
                    &[],
                )
            },
            Default::default(),
            None,
        ),
    ] {
        let allowed_changes: Option<Vec<String>> =
            allowed.map(|names: &[&str]| names.iter().map(|n| created[*n].clone()).collect());
        let request = CreatePlanRequest {
            features,
            allowed_changes,
            rate_limits: demo_rates(&request.name),
            ..request
        };
        let name = request.name.clone();
        created.insert(name, plans::create(ctx, &caller, request).await?.id);
    }
    let (teams, business) = (&created["Teams"], &created["Business"]);
    // A coupon to try at checkout: 20% off the first three invoices, for 100 tenants.
    eshtarek_core::billing::coupons::create(
        ctx,
        &caller,
        eshtarek_core::billing::coupons::CreateCouponRequest {
            code: "WELCOME20".into(),
            name: Some("Welcome: 20% off three months".into()),
            percent_off: Some("20".into()),
            amount_off: None,
            currency: None,
            duration: eshtarek_core::billing::coupons::CouponDuration::Repeating,
            duration_cycles: Some(3),
            max_redemptions: Some(100),
            expires_at: None,
            plan_ids: Vec::new(),
        },
    )
    .await?;

    // Each demo tenant gets a card, a subscription and some usage, so the dashboards have
    // something to show: Acme trials Teams (two seats); Globex pays for Business and is past 80%
    // of its calls.
    for (tenant_name, domain, plan_id, usage) in [
        (
            "Acme Corp",
            "acme.example",
            teams,
            Usage {
                counted: &[("requests", 1_250), ("tokens", 2_400_000)],
                storage_mb: None,
            },
        ),
        (
            "Globex",
            "globex.example",
            business,
            Usage {
                counted: &[("api_calls", 850_000)],
                storage_mb: Some(64_000),
            },
        ),
    ] {
        let owner_email = format!("owner@{domain}");
        let owner_password = password();
        let registered = service::register(
            ctx,
            RegisterRequest {
                email: owner_email.clone(),
                password: owner_password.clone(),
                name: format!("{tenant_name} owner"),
                tenant_name: Some(tenant_name.into()),
            },
            eshtarek_core::auth::ClientIp(None),
        )
        .await?;
        creds.push(("tenant_admin".into(), owner_email, owner_password));
        let tenant = registered
            .tenant
            .ok_or_else(|| ApiError::internal("signup made no tenant"))?;
        let tenant_id =
            eshtarek_core::store::TenantId::parse(&tenant.id).map_err(ApiError::internal)?;
        let owner = synthetic_caller(&registered.user.id, Some(&tenant.id), Role::TenantAdmin);
        let user_email = format!("user@{domain}");
        // The seed's addresses are its own: the owner is marked verified, and the demo user
        // joins through the invitation link, as an invited person would.
        invitations::mark_verified(ctx, &registered.user.id).await?;
        let (_, token) = invitations::invite(
            ctx,
            &owner,
            tenant_id.as_str(),
            InviteRequest {
                email: user_email.clone(),
                role: "tenant_user".into(),
                name: Some("Demo user".into()),
            },
        )
        .await?;
        let user_password = password();
        invitations::accept_link(
            ctx,
            AcceptLinkRequest {
                token,
                password: Some(user_password.clone()),
                name: None,
            },
        )
        .await?;
        creds.push(("tenant_user".into(), user_email, user_password));
        subscribe_with_usage(ctx, &owner, &tenant_id, plan_id, usage).await?;
    }
    Ok(Credentials(creds))
}

/// The graduated tiers of issue 20 on requests: the first 10,000 at $0.01, the next 90,000 at
/// $0.008, the rest at $0.005.
fn graduated_requests() -> UsageCharge {
    let tier = |up_to: Option<u64>, price: &str| Tier {
        up_to,
        unit_price: price.parse().expect("a decimal"),
        flat_price: Default::default(),
    };
    UsageCharge {
        metric: "requests".into(),
        included: 0,
        price: UsagePrice::Graduated {
            tiers: vec![
                tier(Some(10_000), "0.01"),
                tier(Some(100_000), "0.008"),
                tier(None, "0.005"),
            ],
        },
    }
}

/// Each demo plan's request rates: a `requests` bucket for the tenant's own backend to check,
/// and on the free plans a rate for Eshtarek's own API (`eshtarek_api`).
fn demo_rates(plan: &str) -> Vec<RateLimit> {
    let rate = |bucket: &str, limit: u64, per: RatePeriod| RateLimit {
        bucket: bucket.into(),
        limit,
        per,
    };
    match plan {
        "Free" | "Trial" => vec![
            rate("requests", 60, RatePeriod::Minute),
            rate("eshtarek_api", 600, RatePeriod::Minute),
        ],
        "Pro" => vec![
            rate("requests", 120, RatePeriod::Minute),
            rate("requests", 5_000, RatePeriod::Hour),
        ],
        "Plus" => vec![rate("requests", 300, RatePeriod::Minute)],
        "Teams" => vec![
            rate("requests", 600, RatePeriod::Minute),
            rate("requests", 20_000, RatePeriod::Hour),
        ],
        "Business" => vec![rate("requests", 6_000, RatePeriod::Minute)],
        _ => Vec::new(),
    }
}

/// A demo tenant's usage: counted metrics and a storage gauge.
struct Usage {
    counted: &'static [(&'static str, i64)],
    storage_mb: Option<i64>,
}

async fn subscribe_with_usage(
    ctx: &AppContext,
    owner: &Caller,
    tenant: &eshtarek_core::store::TenantId,
    plan_id: &str,
    usage_seeded: Usage,
) -> Result<(), ApiError> {
    use eshtarek_core::billing::{payment_methods, subscriptions};
    use eshtarek_core::usage::{self, GaugeRequest, Meter, UsageEvent};
    payment_methods::add(
        ctx,
        owner,
        payment_methods::AddPaymentMethodRequest {
            token: Some("pm_card_visa".into()),
            card: None,
            set_default: true,
        },
    )
    .await?;
    subscriptions::create(
        ctx,
        owner,
        subscriptions::CreateSubscriptionRequest {
            seats: None,
            plan_id: plan_id.to_owned(),
            payment_method_id: None,
            tenant_id: None,
            coupon: None,
        },
    )
    .await?;
    let meter = Meter {
        tenant: tenant.clone(),
        can_write: true,
        can_read: true,
    };
    // A few events rather than one, so the history has more than one bar to draw.
    for (metric, total) in usage_seeded.counted {
        for (i, share) in [10, 25, 15, 30, 20].into_iter().enumerate() {
            usage::record(
                ctx,
                &meter.clone().into(),
                UsageEvent {
                    metric: (*metric).into(),
                    quantity: total * share / 100,
                    idempotency_key: format!("seed-{metric}-{i}"),
                    timestamp: None,
                },
            )
            .await?;
        }
    }
    if let Some(storage_mb) = usage_seeded.storage_mb {
        usage::set_gauge(
            ctx,
            &meter,
            "storage_mb",
            GaugeRequest { value: storage_mb },
        )
        .await?;
    }
    Ok(())
}

/// The seeding acts as these users (for the audit log's actor).
fn synthetic_caller(user_id: &str, tenant: Option<&str>, role: Role) -> Caller {
    let tenant = tenant.and_then(|t| eshtarek_core::store::TenantId::parse(t).ok());
    Caller::synthetic(user_id, tenant.as_ref(), role, "seed")
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}
