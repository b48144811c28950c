//! The `lifeboat` binary: one executable for every role (simulator, vault
//! operator commands, and later server and worker).

mod cli;
mod sim_cmd;

use clap::{Parser, Subcommand};

mod vault_cmd;

#[derive(Parser)]
#[command(
    name = "lifeboat",
    version,
    about = "Microsoft 365 backup and recovery"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up, so the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the Microsoft 365 tenant simulator (Graph v1.0 + identity endpoints).
    Sim(sim_cmd::SimArgs),
    /// Vault operator commands: init, backup, restore, snapshots, verify, forget, gc.
    Vault(vault_cmd::VaultArgs),
    #[command(flatten)]
    Ops(cli::OpsCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Output piped into `head` and closed early ends the process quietly,
    // as for any Unix tool, instead of failing a write.
    // SAFETY: restoring the default disposition of one signal at start-up.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => sim_cmd::run(args).await,
        Command::Vault(args) => vault_cmd::run(args).await,
        Command::Ops(cmd) => cli::run(cmd).await,
    }
}
