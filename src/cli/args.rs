//! The command line's arguments (clap): every command and its options.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

use super::DEFAULT_ENDPOINT;

#[derive(Parser)]
#[command(
    name = "kinedge",
    version,
    about = "Amazon Kinesis at the edge: durable streams for ARM gateways"
)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Args, Clone)]
pub(super) struct Endpoint {
    /// The gateway's API address.
    #[arg(long, env = "KINEDGE_ENDPOINT", default_value = DEFAULT_ENDPOINT, global = true)]
    pub(super) endpoint: String,
}

#[derive(Subcommand)]
pub(super) enum Command {
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
    /// Kinesis Data Analytics applications: continuous Flink SQL over streams.
    Analytics {
        #[command(subcommand)]
        action: AnalyticsAction,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Run a Flink SQL query over the stored history of streams (bounded) and print its rows.
    #[command(group(ArgGroup::new("script").required(true).args(["sql", "file"])))]
    Query {
        /// The query (`CREATE TABLE ...;` statements, optional, then one SELECT); `-` reads it
        /// from standard input.
        sql: Option<String>,
        /// Read the query from this file instead.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// `table`: aligned columns and a row count; `json`: one JSON object per row per line.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Most rows to return (default 10000, at most 1000000).
        #[arg(long)]
        max_rows: Option<usize>,
        #[command(flatten)]
        endpoint: Endpoint,
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
pub(super) enum DevicesAction {
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
pub(super) enum DeliveriesAction {
    /// One line per delivery stream (or the full JSON of GET /deliveries with --json).
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum AnalyticsAction {
    /// One line per application: state, records in and out, late, errors, watermark.
    List,
    /// Everything about one application, as JSON.
    Describe { name: String },
    /// Create an application from a Flink SQL script and start it.
    #[command(group(ArgGroup::new("script").required(true).args(["sql", "sql_file"])))]
    Create {
        name: String,
        /// The script.
        #[arg(long)]
        sql: Option<String>,
        /// Read the script from this file.
        #[arg(long, value_name = "FILE")]
        sql_file: Option<PathBuf>,
        /// Most group keys (open windows x keys) the application keeps (default 100000).
        #[arg(long)]
        max_state_keys: Option<usize>,
    },
    /// Stop an application (it keeps its checkpoint).
    Stop { name: String },
    /// Start a stopped or failed application again from its checkpoint.
    Start { name: String },
    /// Stop an application and forget it with its checkpoint (its output stays).
    Delete { name: String },
}

#[derive(Subcommand)]
pub(super) enum StreamsAction {
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
pub(super) enum StorageAction {
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
