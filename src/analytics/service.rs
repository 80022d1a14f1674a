//! The applications of the gateway: created from the config and the API, started, stopped,
//! deleted, and their status. INTERFACE SKELETON: bodies are being written.

use std::sync::Arc;

use serde::Serialize;

use crate::ingest::mqtt::Broker;
use crate::storage::{Store, StoreError};

/// Most characters of an application name.
pub const MAX_NAME_CHARS: usize = 128;

/// Where an application was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationOrigin {
    /// `[[analytics]]` in the config file: read-only through the API.
    Config,
    /// Created through the API or `kinedge analytics create`: kept in the store.
    Api,
}

/// An application as defined.
#[derive(Debug, Clone)]
pub struct ApplicationDef {
    /// `[a-zA-Z0-9_.-]{1,128}`.
    pub name: String,
    /// The Flink SQL script.
    pub sql: String,
    /// Most group keys (open windows x keys) the application keeps; beyond it the oldest
    /// windows fire early (counted in `state_overflows`).
    pub max_state_keys: usize,
    pub origin: ApplicationOrigin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationState {
    Running,
    Stopped,
    Failed,
}

/// What `GET /analytics/{name}` answers (see INTERFACES.md).
#[derive(Debug, Clone, Serialize)]
pub struct ApplicationStatus {
    pub name: String,
    pub state: ApplicationState,
    pub origin: ApplicationOrigin,
    pub sql: String,
    pub records_in: u64,
    pub records_out: u64,
    pub late_records: u64,
    pub error_records: u64,
    /// Epoch ms; None before the first row with an event time.
    pub watermark: Option<i64>,
    /// How far behind the newest committed input record the application is (ms).
    pub input_lag_ms: Option<u64>,
    /// Why the application failed, when it did.
    pub error: Option<String>,
    /// The streams it reads and writes.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

/// The result of a bounded query (`kinedge query`).
#[derive(Debug, Clone, Serialize)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    /// One JSON object per row, keys = column names (TIMESTAMP as 'yyyy-MM-dd HH:mm:ss.SSS').
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The row limit cut the result short.
    pub truncated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("Analytics application {0} not found.")]
    NotFound(String),
    #[error("Analytics application {0} already exists.")]
    Exists(String),
    #[error("Analytics application {0} is defined in the configuration file and cannot be changed through the API.")]
    FromConfig(String),
    /// The SQL is not valid or not supported: the message names the construct and position.
    #[error("{0}")]
    Sql(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The running analytics of the gateway. Cheap to clone.
#[derive(Clone)]
pub struct AnalyticsService {
    _inner: Arc<()>,
}

impl AnalyticsService {
    /// Starts the applications of the config and those created through the API earlier.
    pub async fn start(
        _store: Store,
        _broker: Option<Broker>,
        _defs: Vec<ApplicationDef>,
    ) -> Result<AnalyticsService, AnalyticsError> {
        Err(AnalyticsError::Invalid("not yet".into()))
    }

    /// Checks a script without running it (check-config, create): parse and plan.
    pub fn check_sql(_sql: &str) -> Result<(), AnalyticsError> {
        Ok(())
    }

    pub async fn create(&self, _def: ApplicationDef) -> Result<ApplicationStatus, AnalyticsError> {
        Err(AnalyticsError::Invalid("not yet".into()))
    }

    pub fn list(&self) -> Vec<ApplicationStatus> {
        Vec::new()
    }

    pub fn describe(&self, name: &str) -> Result<ApplicationStatus, AnalyticsError> {
        Err(AnalyticsError::NotFound(name.into()))
    }

    pub async fn stop(&self, name: &str) -> Result<ApplicationStatus, AnalyticsError> {
        Err(AnalyticsError::NotFound(name.into()))
    }

    /// Starts a stopped (or failed) application again from its checkpoint.
    pub async fn resume(&self, name: &str) -> Result<ApplicationStatus, AnalyticsError> {
        Err(AnalyticsError::NotFound(name.into()))
    }

    /// Stops an application and forgets it with its checkpoint (its output stays).
    pub async fn delete(&self, name: &str) -> Result<(), AnalyticsError> {
        Err(AnalyticsError::NotFound(name.into()))
    }

    /// Runs a bounded query over stored history: `CREATE TABLE ...;` statements (optional: an
    /// undeclared stream is a table of its raw records) then one `SELECT`.
    pub async fn query(&self, _sql: &str, _max_rows: usize) -> Result<QueryOutput, AnalyticsError> {
        Err(AnalyticsError::Invalid("not yet".into()))
    }

    /// Stops every application, committing what each has in hand.
    pub async fn shutdown(&self) {}
}

impl crate::observe::Report for AnalyticsService {
    fn report(&self, _out: &mut crate::observe::MetricsWriter) {}
}
