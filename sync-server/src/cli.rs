//! The command line (shared/API.md, "Command line").

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use keyward_core::api::Role;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::{demo, store};

#[derive(Debug, Parser)]
#[command(
    name = "keyward-server",
    version,
    about = "Keyward: API key management server"
)]
pub struct Cli {
    /// TOML file overlaid by the environment (DATABASE_URL, KEYWARD_BIND, ...).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve until SIGTERM/SIGINT.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage admins.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Seed demo data (idempotent) and print the login and the demo keys.
    Demo {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check every organisation's audit hash chain, and its head's signature when
    /// KEYWARD_AUDIT_SIGNING_KEY is set; exit 1 at the first broken link or bad signature.
    VerifyAudit,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin; the password is read from standard input (one line).
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve => {
            let listener = TcpListener::bind(config.bind)
                .await
                .with_context(|| format!("binding {}", config.bind))?;
            let shutdown = CancellationToken::new();
            crate::cancel_on_signal(shutdown.clone());
            crate::serve(config, listener, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let pool = store::connect(&config)
                .await
                .context("connecting to PostgreSQL")?;
            store::migrate(&pool).await.context("applying migrations")?;
            eprintln!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin {
            command: AdminCommand::Create { org, email, role },
        } => {
            let password = read_password()?;
            let pool = store::connect(&config)
                .await
                .context("connecting to PostgreSQL")?;
            store::migrate(&pool).await.context("applying migrations")?;
            let signer = config.audit_signer.clone();
            match crate::admin::create_signed(&pool, signer, &org, &email, role, &password).await {
                Ok(id) => {
                    println!("{id}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(crate::admin::CreateAdminError::Database(e)) => Err(e.into()),
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Demo { json } => {
            let pool = store::connect(&config)
                .await
                .context("connecting to PostgreSQL")?;
            store::migrate(&pool).await.context("applying migrations")?;
            let out = demo::seed(&pool, config.audit_signer.clone()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", demo::render(&out));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::VerifyAudit => {
            let pool = store::connect(&config)
                .await
                .context("connecting to PostgreSQL")?;
            let key = config.audit_signer.as_ref().map(|s| s.public_key());
            let mut tx = store::begin_snapshot(&pool).await?;
            let mut total = 0;
            for org in store::orgs::all_ids(&mut tx).await? {
                let report = store::audit::check_chain(&mut tx, org, key.as_ref()).await?;
                total += report.checked;
                if let Some(b) = report.first_broken {
                    println!("BROKEN org {} at entry {}: {}", b.org_id, b.seq, b.reason);
                    return Ok(ExitCode::FAILURE);
                }
            }
            match key {
                Some(key) => println!(
                    "audit chain intact: {total} entries checked, every head signed by {key}"
                ),
                None => println!(
                    "audit chain intact: {total} entries checked (heads not checked for a \
                     signature: KEYWARD_AUDIT_SIGNING_KEY is not set)"
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One line from standard input, without its line ending. Never from an argument: arguments
/// are visible to every user of the machine.
fn read_password() -> anyhow::Result<SecretString> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    Ok(SecretString::from(password.to_owned()))
}
