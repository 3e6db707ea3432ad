//! `eshtarek`: the local server and admin commands.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use eshtarek::{context, default_data_dir, open_store, signing_keys, StoreKind};
use eshtarek_core::clock::SystemClock;
use eshtarek_core::jobs::{JobName, RunLimits};
use eshtarek_core::telemetry;

#[derive(Parser)]
#[command(name = "eshtarek", version, about = "Multi-tenant subscription engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every function's API behind one HTTP server.
    Serve(ServeArgs),
    /// Administration commands.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Scheduled jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Token signing keys: the value of the deployed key secret (see README, Deploying).
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new key set (one Ed25519 key, JSON) to store in the key secret.
    Generate,
    /// Read a key set on stdin and print it with a new key appended, which signs from then on;
    /// the older keys keep verifying until you remove them.
    Rotate,
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Run one job once.
    Run {
        #[arg(value_enum)]
        job: Job,
        /// Run as if it were this time (RFC 3339); default now.
        #[arg(long)]
        now: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// How often `eshtarek serve` sends due webhooks (at most: `--jobs-every` if that is shorter).
const WEBHOOKS_EVERY_SECS: u64 = 2;

#[derive(Clone, Copy, clap::ValueEnum)]
enum Job {
    ExpireSubscriptions,
    RenewBilling,
    LimitWarnings,
    DeliverWebhooks,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create (or promote) a platform admin. Reads the password from stdin, one line. The only
    /// way to make one: registration never does.
    CreatePlatformAdmin {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args)]
struct StoreArgs {
    /// Where the embedded store keeps its files.
    #[arg(long, env = "ESHTAREK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Which store to run on.
    #[arg(long, env = "ESHTAREK_STORE", value_enum, default_value = "sqlite")]
    store: StoreKind,
    /// DynamoDB table name (with `--store dynamodb`).
    #[arg(long, env = "ESHTAREK_TABLE", default_value = "eshtarek")]
    table: String,
}

impl StoreArgs {
    fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }

    async fn context(&self) -> anyhow::Result<(eshtarek_core::AppContext, String)> {
        let data_dir = self.data_dir();
        let (store, description) = open_store(self.store, &data_dir, &self.table).await?;
        let keys = signing_keys(&data_dir)?;
        Ok((context(store, Arc::new(SystemClock), keys), description))
    }
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "ESHTAREK_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    store: StoreArgs,
    /// Start on an empty store: do not seed demo data on first start.
    #[arg(long)]
    no_seed: bool,
    /// Run on a test clock that `POST /v1/admin/clock/advance` moves (demos, tests).
    #[arg(long)]
    test_clock: bool,
    /// Run the scheduled jobs every this many seconds (0: never).
    #[arg(long, env = "ESHTAREK_JOBS_EVERY", default_value_t = 60)]
    jobs_every: u64,
    /// The built web dashboard to serve at `/` (default: `web/dist` when it exists).
    #[arg(long, env = "ESHTAREK_WEB_DIR")]
    web_dir: Option<PathBuf>,
}

/// mimalloc, not glibc's allocator: on the usage hot path, items built on the request threads
/// are freed on the store's writer thread and back, and glibc's arena locks made those frees
/// contend (a fifth of the server's time in a profile of `scripts/bench-usage`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Admin(AdminCommand::CreatePlatformAdmin { email, store }) => {
            create_platform_admin(&email, &store).await
        }
        Command::Jobs(JobsCommand::Run { job, now, store }) => run_job(job, now, &store).await,
        Command::Keys(command) => keys(command),
    }
}

fn keys(command: KeysCommand) -> anyhow::Result<()> {
    use eshtarek_core::auth::keys::{KeySet, KeySetFile};
    let file = match command {
        KeysCommand::Generate => KeySet::generate_file(),
        KeysCommand::Rotate => {
            let current: KeySetFile = serde_json::from_reader(std::io::stdin().lock())
                .map_err(|e| anyhow::anyhow!("stdin is not a key set: {e}"))?;
            KeySet::rotate_file(&current).map_err(anyhow::Error::msg)?
        }
    };
    println!("{}", serde_json::to_string(&file)?);
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (mut ctx, description) = args.store.context().await?;
    if args.test_clock {
        let clock = Arc::new(eshtarek_core::clock::TestClock::new());
        eshtarek::restore_test_clock(&ctx, &clock)
            .await
            .map_err(|e| anyhow::anyhow!("restoring the test clock: {}", e.detail))?;
        ctx = ctx.with_test_clock(clock);
    } else {
        eshtarek::forget_test_clock(&ctx)
            .await
            .map_err(|e| anyhow::anyhow!("clearing the test clock: {}", e.detail))?;
    }
    // Local mode: verification and invitation links land in the data directory's mailbox
    // (and the log), never in an API answer.
    let mailbox = args.store.data_dir().join("mailbox");
    ctx = ctx.with_mailer(Arc::new(eshtarek_core::mail::LocalMailbox::new(mailbox)));
    eshtarek_core::auth::password::warm_up();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                "; another server is using it: stop that one or pick another address with --listen (e.g. --listen 127.0.0.1:8081)"
            } else {
                "; choose another address with --listen"
            };
            anyhow::anyhow!("cannot listen on {}: {e}{hint}", args.listen)
        })?;
    let address = listener.local_addr()?;
    if std::env::var_os("ESHTAREK_PUBLIC_URL").is_none() {
        // Links in mail point at this server unless told otherwise.
        ctx.state_mut().public_url = format!("http://{address}");
    }
    let seeded = if args.no_seed {
        None
    } else {
        eshtarek::seed::seed_if_empty(&ctx, &args.store.data_dir()).await?
    };
    // Plain lines on stdout, so scripts and people can find the server. Write errors are
    // ignored: a closed stdout (a supervisor that stopped reading) must not stop the server.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "Eshtarek is serving on http://{address} (store: {description})"
    );
    let credentials_file = args.store.data_dir().join("demo-credentials.txt");
    if let Some(credentials) = seeded {
        let _ = writeln!(
            out,
            "Seeded demo data (also in {}):",
            credentials_file.display()
        );
        for (role, email, password) in &credentials.0 {
            let _ = writeln!(out, "  {role:<16} {email:<28} {password}");
        }
    } else if credentials_file.exists() {
        // A later start: the demo data is there from the first; say where its passwords are.
        let _ = writeln!(
            out,
            "Demo accounts: see {} (seeded on the first start)",
            credentials_file.display()
        );
    }
    let web_dir = eshtarek::web::find(args.web_dir.clone());
    match &web_dir {
        Some(_) => {
            let _ = writeln!(
                out,
                "Dashboard: http://{address}/ (sign in with a demo account)"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "Dashboard: not built (web/dist missing; scripts/run builds it)"
            );
        }
    }
    // The banner's last line, always: scripts wait for it.
    let _ = writeln!(
        out,
        "Health: http://{address}/healthz   API: http://{address}/openapi.json"
    );
    let _ = out.flush();
    drop(out);
    if args.jobs_every > 0 {
        let jobs_ctx = ctx.clone();
        let every = std::time::Duration::from_secs(args.jobs_every);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                let ctx = &jobs_ctx;
                match eshtarek_core::jobs::run_all(ctx, ctx.clock.now()).await {
                    Ok(reports) => {
                        for report in reports {
                            tracing::info!(job = report.job, outcomes = ?report.outcomes, "job ran")
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "scheduled jobs failed"),
                }
            }
        });
        // Webhooks more often than the rest: a change's message should leave within seconds,
        // not at the next minute (on AWS the schedule's finest rate is a minute).
        let ctx = ctx.clone();
        let every = std::time::Duration::from_secs(args.jobs_every.min(WEBHOOKS_EVERY_SECS));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                let job = eshtarek_core::jobs::JobName::DeliverWebhooks;
                let limits = eshtarek_core::jobs::RunLimits::default();
                if let Err(e) = eshtarek_core::jobs::run(&ctx, job, ctx.clock.now(), limits).await {
                    tracing::error!(error = %e, "webhook delivery failed");
                }
            }
        });
    }
    // Requests in flight at shutdown get the request timeout to finish, and a little more.
    let drain = ctx.http.request_timeout + std::time::Duration::from_secs(5);
    // The sign-in page may say where the demo accounts are listed only to someone on this
    // machine: a server listening beyond loopback does not tell.
    let demo = address
        .ip()
        .is_loopback()
        .then_some(credentials_file.as_path());
    let app = eshtarek::app_with_dashboard(ctx, web_dir.as_deref(), demo);
    eshtarek::listen::serve(listener, app, shutdown_signal(), drain).await?;
    Ok(())
}

async fn create_platform_admin(email: &str, store: &StoreArgs) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    let (ctx, _) = store.context().await?;
    match eshtarek_core::auth::service::create_platform_admin(&ctx, email, password).await {
        Ok(user) => {
            println!("platform admin {} ({})", user.email, user.id);
            Ok(())
        }
        Err(e) => anyhow::bail!("{}", e.detail),
    }
}

async fn run_job(job: Job, now: Option<String>, store: &StoreArgs) -> anyhow::Result<()> {
    // A job on a store that does not exist would create an empty one and find nothing to do:
    // say which store it looked for instead.
    let db = store.data_dir().join("eshtarek.db");
    if matches!(store.store, StoreKind::Sqlite) && !db.exists() {
        anyhow::bail!(
            "no embedded store at {}: pass --data-dir (or ESHTAREK_DATA_DIR) with the server's \
             data directory; scripts/run uses ./.eshtarek-data",
            db.display()
        );
    }
    let (ctx, description) = store.context().await?;
    let now = match now {
        Some(text) => eshtarek_core::time::parse(&text)
            .ok_or_else(|| anyhow::anyhow!("--now: use an RFC 3339 time"))?,
        None => {
            // A server on the test clock keeps its offset in the store: run at its time.
            let clock = eshtarek_core::clock::TestClock::new();
            eshtarek::restore_test_clock(&ctx, &clock)
                .await
                .map_err(|e| anyhow::anyhow!("reading the test clock: {}", e.detail))?;
            eshtarek_core::clock::Clock::now(&clock)
        }
    };
    eprintln!(
        "running on {description} at {}",
        eshtarek_core::time::fmt(now)
    );
    let job = match job {
        Job::RenewBilling => JobName::RenewBilling,
        Job::ExpireSubscriptions => JobName::ExpireSubscriptions,
        Job::LimitWarnings => JobName::LimitWarnings,
        Job::DeliverWebhooks => JobName::DeliverWebhooks,
    };
    let report = eshtarek_core::jobs::run(&ctx, job, now, RunLimits::default())
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
