//! Demo data for a first start on an empty store: a platform admin, limit policies, the Free,
//! Pro and Business plans, and two demo tenants with an admin and a user each. Passwords are
//! random, printed once and kept in `<data dir>/demo-credentials.txt` (mode 0600).

use std::path::Path;

use eshtarek_core::auth::service::{self, RegisterRequest};
use eshtarek_core::auth::tokens::random_secret;
use eshtarek_core::auth::{Caller, Role};
use eshtarek_core::invitations::{self, AcceptLinkRequest, InviteRequest};
use eshtarek_core::plans::policies::{self, CreatePolicyRequest};
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
            "pro_calls",
            policy(
                "api_calls",
                Some(100_000),
                "month",
                "hard",
                "Pro: 100,000 API calls a month",
            ),
        ),
        (
            "pro_storage",
            policy("storage_mb", Some(10_000), "none", "hard", "Pro: 10 GB"),
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
    ] {
        ids.insert(key, policies::create(ctx, &caller, request).await?.id);
    }
    let plan = |name: &str, description: &str, price: &str, trial: u32, keys: [&str; 3]| {
        CreatePlanRequest {
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
        }
    };
    plans::create(
        ctx,
        &caller,
        plan(
            "Free",
            "For trying things out",
            "0.00",
            0,
            ["free_users", "free_calls", "free_storage"],
        ),
    )
    .await?;
    let pro = plans::create(
        ctx,
        &caller,
        plan(
            "Pro",
            "For growing teams",
            "29.00",
            14,
            ["pro_users", "pro_calls", "pro_storage"],
        ),
    )
    .await?;
    let business = plans::create(
        ctx,
        &caller,
        plan(
            "Business",
            "For companies at scale",
            "99.00",
            0,
            ["biz_users", "biz_calls", "biz_storage"],
        ),
    )
    .await?;

    // Each demo tenant gets a card, a subscription and some usage, so the dashboards have
    // something to show: Acme trials Pro; Globex pays for Business and is past 80% of its calls.
    for (tenant_name, domain, plan_id, calls, storage_mb) in [
        ("Acme Corp", "acme.example", &pro.id, 1_250, 2_400),
        ("Globex", "globex.example", &business.id, 850_000, 64_000),
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
        subscribe_with_usage(ctx, &owner, &tenant_id, plan_id, calls, storage_mb).await?;
    }
    Ok(Credentials(creds))
}

async fn subscribe_with_usage(
    ctx: &AppContext,
    owner: &Caller,
    tenant: &eshtarek_core::store::TenantId,
    plan_id: &str,
    calls: i64,
    storage_mb: i64,
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
            plan_id: plan_id.to_owned(),
            payment_method_id: None,
            tenant_id: None,
        },
    )
    .await?;
    let meter = Meter {
        tenant: tenant.clone(),
        can_write: true,
        can_read: true,
    };
    // A few events rather than one, so the history has more than one bar to draw.
    for (i, share) in [10, 25, 15, 30, 20].into_iter().enumerate() {
        usage::record(
            ctx,
            &meter.clone().into(),
            UsageEvent {
                metric: "api_calls".into(),
                quantity: calls * share / 100,
                idempotency_key: format!("seed-{i}"),
                timestamp: None,
            },
        )
        .await?;
    }
    usage::set_gauge(
        ctx,
        &meter,
        "storage_mb",
        GaugeRequest { value: storage_mb },
    )
    .await?;
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
