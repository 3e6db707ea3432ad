//! `eshtarek`: the local server and admin commands.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use eshtarek::{app, context, default_data_dir, open_store, StoreKind};
use eshtarek_core::clock::SystemClock;
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
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "ESHTAREK_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let (store, description) = open_store(args.store, &data_dir, &args.table).await?;
    let ctx = context(store, Arc::new(SystemClock));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let address = listener.local_addr()?;
    // Plain lines on stdout, so scripts and people can find the server. Write errors are
    // ignored: a closed stdout (a supervisor that stopped reading) must not stop the server.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "Eshtarek is serving on http://{address} (store: {description})"
    );
    let _ = writeln!(out, "Health: http://{address}/healthz");
    let _ = out.flush();
    drop(out);
    axum::serve(listener, app(ctx))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
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
