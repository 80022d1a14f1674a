//! The `kinedge` command line: `run` starts the gateway (`run.rs`), `check-config` validates
//! a configuration (`check_config.rs`), `devices` and `storage` work on local files, and the
//! client commands (`streams`, `put`, `get`, `tail`, `deliveries`, `status`, `analytics`,
//! `query`) talk to a running gateway over its API (`remote.rs`). The arguments are in
//! `args.rs`.

mod analytics;
mod args;
mod check_config;
mod client;
mod deliveries;
mod devices;
mod query;
mod records;
mod remote;
mod run;
mod status;
mod storage;
mod streams;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

pub use client::{ClientError, KinesisClient, DEFAULT_ENDPOINT};

use crate::gateway::config::log::LogFormat;
use crate::gateway::Config;
use args::{Cli, Command};

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, data_dir } => run::run_gateway(config, data_dir),
        Command::CheckConfig { file } => check_config::check_config(file),
        Command::Devices {
            action,
            config,
            dir,
        } => devices::devices_command(action, config, dir),
        Command::Storage { action } => storage::storage_command(action),
        client_command => {
            init_logging(None, LogFormat::Auto, "warn");
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(remote::run_client(client_command)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(level: Option<&str>, format: LogFormat, default: &str) {
    use tracing_subscriber::EnvFilter;
    // rumqttd logs every connection at info; keep it to warnings unless asked for.
    let level = level.unwrap_or(default);
    let level = if level.contains("rumqttd") {
        level.to_string()
    } else {
        format!("{level},rumqttd=warn")
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&level))
        .unwrap_or_else(|_| EnvFilter::new(default));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // The console's overview lists the recent warnings (api::console::warnings).
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let warnings = crate::api::console::warnings::WarningsLayer;
    let _ = match format {
        LogFormat::Json => builder.json().finish().with(warnings).try_init(),
        LogFormat::Text => builder.with_ansi(false).finish().with(warnings).try_init(),
        LogFormat::Auto => builder
            .with_ansi(terminal)
            .finish()
            .with(warnings)
            .try_init(),
    };
}

/// The configuration in `path` (the built-in one without a path); its mistakes are printed
/// and answered with exit code 2.
fn load_config(path: Option<&Path>) -> Result<Config, ExitCode> {
    match path {
        Some(path) => Config::load(path).map_err(|errors| {
            eprintln!("error: the configuration has mistakes:\n{errors}");
            ExitCode::from(2)
        }),
        None => Ok(Config::built_in()),
    }
}
