//! The `kinedge` command line: `run` starts the gateway, `check-config` validates a
//! configuration, and the client commands (`streams`, `put`, `get`, `tail`) talk to a running
//! gateway over its Kinesis API.

mod client;
mod records;
mod status;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

pub use client::{ClientError, KinesisClient, DEFAULT_ENDPOINT};

use crate::gateway::config::log::LogFormat;
use crate::gateway::Config;
use crate::ingest::mqtt::devices::{hash_secret, write_device_file};
use crate::ingest::mqtt::{DeviceKind, DeviceRegistry};

#[derive(Parser)]
#[command(
    name = "kinedge",
    version,
    about = "Amazon Kinesis at the edge: durable streams for ARM gateways"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Endpoint {
    /// The gateway's API address.
    #[arg(long, env = "KINEDGE_ENDPOINT", default_value = DEFAULT_ENDPOINT, global = true)]
    endpoint: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (built-in defaults unless --config is given).
    Run {
        /// Configuration file (TOML).
        #[arg(long, env = "KINEDGE_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory (overrides storage.data_dir and $STATE_DIRECTORY).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Validate a configuration file; names the key and line of every mistake.
    CheckConfig {
        /// The file to check (default: the built-in configuration).
        file: Option<PathBuf>,
    },
    /// Create, list, describe, delete and reshard streams.
    Streams {
        #[command(subcommand)]
        action: StreamsAction,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Put one record: DATA, or standard input when DATA is `-` or missing.
    Put {
        stream: String,
        partition_key: String,
        data: Option<String>,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Read records: all shards, parents before children, one JSON line per record.
    Get {
        stream: String,
        /// trim-horizon, latest, a sequence number, or a time (RFC 3339 or epoch ms).
        #[arg(long, default_value = "trim-horizon")]
        from: String,
        /// Stop after this many records.
        #[arg(long)]
        limit: Option<usize>,
        /// Print only the data of each record.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Add or list devices (the files in the devices directory).
    Devices {
        #[command(subcommand)]
        action: DevicesAction,
        /// Configuration whose `devices.dir` to use (default: the built-in, ./devices).
        #[arg(long, env = "KINEDGE_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// The devices directory (overrides the configuration).
        #[arg(long, global = true)]
        dir: Option<PathBuf>,
    },
    /// Delivery streams: state, backlog, checkpoints, errors, records lost.
    Deliveries {
        #[command(subcommand)]
        action: DeliveriesAction,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// One screen summing up the running gateway: readiness, storage, streams, MQTT,
    /// delivery streams, cameras.
    Status {
        /// Print the full JSON of GET /status instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Offline maintenance of the stream database (the gateway must be stopped).
    Storage {
        #[command(subcommand)]
        action: StorageAction,
    },
    /// Follow new records live (Ctrl-C to stop).
    Tail {
        stream: String,
        /// Print only the data of each record.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
}

#[derive(Subcommand)]
enum DevicesAction {
    /// Create a device file with a fresh secret; prints the secret once, stores its hash.
    Add {
        id: String,
        #[arg(long, default_value = "sensor", value_parser = ["sensor", "camera"])]
        kind: String,
        /// Topic filters it may publish to ({device} = its id). Default: devices/{device}/#
        #[arg(long = "publish", value_name = "FILTER")]
        publish: Vec<String>,
        /// Topic filters it may subscribe to. Default: devices/{device}/commands/#
        #[arg(long = "subscribe", value_name = "FILTER")]
        subscribe: Vec<String>,
    },
    /// List the devices.
    List,
}

#[derive(Subcommand)]
enum DeliveriesAction {
    /// One line per delivery stream (or the full JSON of GET /deliveries with --json).
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum StreamsAction {
    /// Create a stream.
    Create {
        name: String,
        #[arg(long, default_value_t = 1)]
        shards: u32,
    },
    /// List streams.
    List,
    /// Describe a stream and its shards.
    Describe { name: String },
    /// Delete a stream and all its records.
    Delete { name: String },
    /// Change the number of open shards (uniform scaling: at most double or half).
    Reshard {
        name: String,
        #[arg(long)]
        shards: u32,
    },
}

#[derive(Subcommand)]
enum StorageAction {
    /// Give the free pages inside streams.redb back to the file system (after deleting
    /// streams or lowering retention). Stop the gateway first.
    Compact {
        /// Configuration whose `storage.data_dir` to use (default: the built-in).
        #[arg(long, env = "KINEDGE_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory (overrides the configuration and $STATE_DIRECTORY).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, data_dir } => run_gateway(config, data_dir),
        Command::CheckConfig { file } => check_config(file),
        Command::Devices {
            action,
            config,
            dir,
        } => devices_command(action, config, dir),
        Command::Storage { action } => storage_command(action),
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
            match runtime.block_on(run_client(client_command)) {
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
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Auto => builder.with_ansi(terminal).try_init(),
    };
}

fn storage_command(action: StorageAction) -> ExitCode {
    let StorageAction::Compact { config, data_dir } = action;
    let config = match &config {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(errors) => {
                eprintln!("error: the configuration has mistakes:\n{errors}");
                return ExitCode::from(2);
            }
        },
        None => Config::built_in(),
    };
    let dir = crate::gateway::resolve_data_dir(&config, data_dir);
    match crate::storage::compact(&dir) {
        Ok(done) => {
            println!(
                "compacted {}: {} -> {} bytes",
                dir.join(crate::storage::STREAMS_DB).display(),
                done.bytes_before,
                done.bytes_after
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_gateway(config_path: Option<PathBuf>, data_dir: Option<PathBuf>) -> ExitCode {
    let config = match &config_path {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(errors) => {
                eprintln!("error: the configuration has mistakes:\n{errors}");
                return ExitCode::from(2);
            }
        },
        None => Config::built_in(),
    };
    init_logging(config.log.level.as_deref(), config.log.format, "info");
    limit_malloc_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("kinedge")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::gateway::run(config, data_dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Keeps glibc from holding on to memory a gateway has freed:
/// - every thread that allocates under contention gets an arena of its own that keeps what
///   was freed in it; two arenas are enough for two worker threads;
/// - glibc raises its mmap threshold each time a large mmap'ed block is freed, so large
///   blocks then come from the heap and stay there: an Argon2 password check (19 MiB) on
///   every MQTT CONNECT would grow the process by that much each time. A fixed threshold of
///   4 MiB keeps large blocks in mmap, returned to the system when freed.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only adjusts allocator parameters; it is called before the runtime
        // starts its threads.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
        }
    }
}

fn check_config(file: Option<PathBuf>) -> ExitCode {
    let report = crate::gateway::config::check::check(file.as_deref());
    for issue in report.all() {
        eprintln!("{issue}");
    }
    match &report.summary {
        Some(summary) if report.is_ok() => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        _ => ExitCode::from(2),
    }
}

async fn run_client(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Streams { action, endpoint } => {
            let client = KinesisClient::new(endpoint.endpoint);
            streams_command(&client, action).await
        }
        Command::Put {
            stream,
            partition_key,
            data,
            endpoint,
        } => {
            let client = KinesisClient::new(endpoint.endpoint);
            let bytes = match data.as_deref() {
                Some("-") | None => {
                    use std::io::Read;
                    let mut buf = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut buf)
                        .context("reading the record from standard input")?;
                    buf
                }
                Some(text) => text.as_bytes().to_vec(),
            };
            let out = client
                .call(
                    "PutRecord",
                    json!({
                        "StreamName": stream,
                        "PartitionKey": partition_key,
                        "Data": base64_encode(&bytes),
                    }),
                )
                .await?;
            println!(
                "{} {}",
                out["ShardId"].as_str().unwrap_or("?"),
                out["SequenceNumber"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        Command::Get {
            stream,
            from,
            limit,
            raw,
            endpoint,
        } => {
            let client = KinesisClient::new(endpoint.endpoint);
            records::get(&client, &stream, &from, limit, raw).await
        }
        Command::Tail {
            stream,
            raw,
            endpoint,
        } => {
            let client = KinesisClient::new(endpoint.endpoint);
            records::tail(&client, &stream, raw).await
        }
        Command::Deliveries {
            action: DeliveriesAction::Status { json },
            endpoint,
        } => {
            let client = KinesisClient::new(endpoint.endpoint);
            let status = client.get_json("/deliveries").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", deliveries_table(&status));
            }
            Ok(())
        }
        Command::Status { json, endpoint } => {
            let client = KinesisClient::new(endpoint.endpoint);
            let status = client.get_json("/status").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!(
                    "{}",
                    status::render(&status, crate::storage::now_ms() as i64)
                );
            }
            Ok(())
        }
        Command::Run { .. }
        | Command::CheckConfig { .. }
        | Command::Devices { .. }
        | Command::Storage { .. } => Ok(()),
    }
}

/// `kinedge deliveries status`: one line per delivery stream, then its last error.
fn deliveries_table(status: &serde_json::Value) -> String {
    use std::fmt::Write;
    let empty = Vec::new();
    let list = status["delivery_streams"].as_array().unwrap_or(&empty);
    if list.is_empty() {
        return "no delivery streams\n".to_string();
    }
    let mut out = format!(
        "{:<24} {:<12} {:<14} {:>10} {:>12} {:>8} {:>12} {:>8} {:>7}  {}\n",
        "NAME",
        "STATE",
        "DESTINATION",
        "BACKLOG",
        "BACKLOG B",
        "AGE",
        "DELIVERED",
        "RETRIES",
        "LOST",
        "TARGET"
    );
    for d in list {
        let age = d["oldest_undelivered_age_ms"]
            .as_u64()
            .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<24} {:<12} {:<14} {:>10} {:>12} {:>8} {:>12} {:>8} {:>7}  {}",
            d["name"].as_str().unwrap_or("?"),
            d["state"].as_str().unwrap_or("?"),
            d["destination"]["type"].as_str().unwrap_or("?"),
            d["backlog_records"].as_u64().unwrap_or(0),
            crate::config::format_size(d["backlog_bytes"].as_u64().unwrap_or(0)),
            age,
            d["delivered_records"].as_u64().unwrap_or(0),
            d["retries"].as_u64().unwrap_or(0),
            d["records_lost"].as_u64().unwrap_or(0),
            d["destination"]["target"].as_str().unwrap_or(""),
        );
        if let Some(reason) = d["paused_reason"].as_str() {
            let _ = writeln!(out, "    paused: {reason}");
        }
        if let Some(error) = d["last_error"].as_object() {
            let _ = writeln!(
                out,
                "    last error at {}: {}",
                error.get("at").and_then(|v| v.as_str()).unwrap_or("?"),
                error.get("message").and_then(|v| v.as_str()).unwrap_or("?")
            );
        }
    }
    out
}

fn devices_command(
    action: DevicesAction,
    config: Option<PathBuf>,
    dir: Option<PathBuf>,
) -> ExitCode {
    let dir = match dir {
        Some(dir) => dir,
        None => match config {
            Some(path) => match Config::load(&path) {
                Ok(config) => config.devices.dir,
                Err(errors) => {
                    eprintln!("error: the configuration has mistakes:\n{errors}");
                    return ExitCode::from(2);
                }
            },
            None => Config::built_in().devices.dir,
        },
    };
    match action {
        DevicesAction::Add {
            id,
            kind,
            publish,
            subscribe,
        } => {
            let kind = DeviceKind::parse(&kind).unwrap_or(DeviceKind::Sensor);
            let publish = if publish.is_empty() {
                vec!["devices/{device}/#".to_string()]
            } else {
                publish
            };
            let subscribe = if subscribe.is_empty() {
                vec!["devices/{device}/commands/#".to_string()]
            } else {
                subscribe
            };
            let secret_bytes: [u8; 24] = rand::random();
            use base64::Engine;
            let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
            let result = hash_secret(&secret)
                .and_then(|hash| write_device_file(&dir, &id, kind, &publish, &subscribe, &hash));
            match result {
                Ok(path) => {
                    eprintln!(
                        "created {} ({}); its secret, shown once (only a hash is stored):",
                        path.display(),
                        kind.as_str()
                    );
                    println!("{secret}");
                    eprintln!("devices connect with MQTT client id and username `{id}` and this secret as password");
                    ExitCode::SUCCESS
                }
                Err(message) => {
                    eprintln!("error: {message}");
                    ExitCode::FAILURE
                }
            }
        }
        DevicesAction::List => match DeviceRegistry::load(&dir) {
            Ok(registry) => {
                println!(
                    "{:<24} {:<7} {:<9} {:<40} metadata",
                    "id", "kind", "password", "publish"
                );
                for d in registry.devices() {
                    let metadata = d
                        .metadata
                        .iter()
                        .map(|(k, v)| {
                            format!(
                                "{k}={}",
                                v.as_str()
                                    .map(String::from)
                                    .unwrap_or_else(|| v.to_string())
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    println!(
                        "{:<24} {:<7} {:<9} {:<40} {metadata}",
                        d.id,
                        d.kind.as_str(),
                        if d.password_hash.is_some() {
                            "yes"
                        } else {
                            "none"
                        },
                        d.publish.join(",")
                    );
                }
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::from(2)
            }
        },
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn streams_command(client: &KinesisClient, action: StreamsAction) -> anyhow::Result<()> {
    match action {
        StreamsAction::Create { name, shards } => {
            client
                .call(
                    "CreateStream",
                    json!({"StreamName": name, "ShardCount": shards}),
                )
                .await?;
            println!("created stream {name} with {shards} shards");
        }
        StreamsAction::List => {
            let mut start: Option<String> = None;
            loop {
                let mut input = json!({"Limit": 1000});
                if let Some(s) = &start {
                    input["ExclusiveStartStreamName"] = json!(s);
                }
                let out = client.call("ListStreams", input).await?;
                let names: Vec<String> = out["StreamNames"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                for name in &names {
                    println!("{name}");
                }
                if out["HasMoreStreams"].as_bool() != Some(true) || names.is_empty() {
                    break;
                }
                start = names.last().cloned();
            }
        }
        StreamsAction::Describe { name } => {
            let summary = client
                .call("DescribeStreamSummary", json!({"StreamName": name}))
                .await?;
            let shards = records::list_all_shards(client, &name).await?;
            let out = json!({
                "summary": summary["StreamDescriptionSummary"],
                "shards": shards,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        StreamsAction::Delete { name } => {
            client
                .call("DeleteStream", json!({"StreamName": name}))
                .await?;
            println!("deleted stream {name}");
        }
        StreamsAction::Reshard { name, shards } => {
            let out = client
                .call(
                    "UpdateShardCount",
                    json!({"StreamName": name, "TargetShardCount": shards, "ScalingType": "UNIFORM_SCALING"}),
                )
                .await?;
            println!(
                "stream {name}: {} -> {} open shards",
                out["CurrentShardCount"], out["TargetShardCount"]
            );
        }
    }
    Ok(())
}
