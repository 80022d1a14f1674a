//! The applications of the gateway: created from the config and the API, started, stopped,
//! deleted, and their status. An application created through the API is kept in the store
//! (its definition under consumer `analytics:<name>`), so it survives a restart; one from the
//! config file is read-only through the API.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::runtime::app::{self, AppContext, LiveStatus, SharedStatus};
use super::sql::{parse_script, plan};
use crate::ingest::mqtt::Broker;
use crate::storage::{CheckpointOp, Store, StoreError};

/// Most characters of an application name.
pub const MAX_NAME_CHARS: usize = 128;

/// Most applications a gateway runs.
pub const MAX_APPLICATIONS: usize = 256;

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
    /// False: defined but stopped (`enabled = false` in the config file).
    pub enabled: bool,
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
    /// Why the application failed, when it did (or what it waits for while running).
    pub error: Option<String>,
    /// The streams it reads and writes.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// The stream its late and unreadable records go to.
    pub error_stream: String,
    /// (window, key) entries and waiting rows held, and early firings for `max_state_keys`.
    pub state_entries: usize,
    pub max_state_keys: usize,
    pub state_overflows: u64,
    /// Output commits (each with its checkpoint) since the gateway started.
    pub commits: u64,
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

/// A definition kept in the store (API-created applications).
#[derive(Debug, Serialize, Deserialize)]
struct StoredDefinition {
    sql: String,
    max_state_keys: usize,
    stopped: bool,
}

struct Entry {
    def: ApplicationDef,
    status: SharedStatus,
    stop: Option<watch::Sender<bool>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct Inner {
    store: Store,
    broker: Option<Broker>,
    apps: Mutex<BTreeMap<String, Entry>>,
    /// Create, delete, stop and start one at a time.
    changes: tokio::sync::Mutex<()>,
    /// Applications compute (read, process, encode checkpoints) at most this many at once:
    /// one per core, so that fifty of them do not hold fifty batches in memory together.
    workers: Arc<tokio::sync::Semaphore>,
}

/// The running analytics of the gateway. Cheap to clone.
#[derive(Clone)]
pub struct AnalyticsService {
    inner: Arc<Inner>,
}

/// Checks an application name.
pub fn check_name(name: &str) -> Result<(), AnalyticsError> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AnalyticsError::Invalid(format!(
            "Application name '{name}' is not valid: 1 to {MAX_NAME_CHARS} characters of [a-zA-Z0-9_.-]."
        )))
    }
}

impl AnalyticsService {
    /// Starts the applications of the config and those created through the API earlier.
    pub async fn start(
        store: Store,
        broker: Option<Broker>,
        defs: Vec<ApplicationDef>,
    ) -> Result<AnalyticsService, AnalyticsError> {
        let service = AnalyticsService {
            inner: Arc::new(Inner {
                store: store.clone(),
                broker,
                apps: Mutex::new(BTreeMap::new()),
                changes: tokio::sync::Mutex::new(()),
                workers: Arc::new(tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(2, |n| n.get()),
                )),
            }),
        };
        for def in defs {
            AnalyticsService::check_sql(&def.sql)?;
            let run = def.enabled;
            service.launch(def, run);
        }
        let stored = tokio::task::spawn_blocking(move || store.consumer_definitions())
            .await
            .map_err(|e| AnalyticsError::Invalid(e.to_string()))??;
        for (consumer, bytes) in stored {
            let Some(name) = consumer.strip_prefix(super::CONSUMER_PREFIX) else {
                continue;
            };
            if service.lock().contains_key(name) {
                tracing::warn!(application = %name, "an application created through the API has the name of one in the configuration file; the file's wins");
                continue;
            }
            match serde_json::from_slice::<StoredDefinition>(&bytes) {
                Ok(stored) => {
                    let def = ApplicationDef {
                        name: name.to_string(),
                        sql: stored.sql,
                        max_state_keys: stored.max_state_keys,
                        origin: ApplicationOrigin::Api,
                        enabled: !stored.stopped,
                    };
                    service.launch(def, !stored.stopped);
                }
                Err(error) => {
                    tracing::error!(application = %name, %error, "a stored analytics application is unreadable; skipping it")
                }
            }
        }
        Ok(service)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.inner.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an application, running it when `run`.
    fn launch(&self, def: ApplicationDef, run: bool) {
        let status: SharedStatus = Arc::new(Mutex::new(LiveStatus {
            state: Some(ApplicationState::Stopped),
            ..LiveStatus::default()
        }));
        let mut entry = Entry {
            def,
            status,
            stop: None,
            task: None,
        };
        if run {
            self.run(&mut entry);
        }
        self.lock().insert(entry.def.name.clone(), entry);
    }

    fn run(&self, entry: &mut Entry) {
        let (stop_tx, stop_rx) = watch::channel(false);
        {
            let mut status = entry.status.lock().unwrap_or_else(|p| p.into_inner());
            status.state = Some(ApplicationState::Running);
            status.error = None;
        }
        let ctx = AppContext {
            name: entry.def.name.clone(),
            sql: entry.def.sql.clone(),
            max_state_keys: entry.def.max_state_keys,
            store: self.inner.store.clone(),
            broker: self.inner.broker.clone(),
            status: entry.status.clone(),
            stop: stop_rx,
            workers: self.inner.workers.clone(),
        };
        tracing::info!(application = %ctx.name, "analytics application started");
        entry.task = Some(tokio::spawn(app::run(ctx)));
        entry.stop = Some(stop_tx);
    }

    /// Checks a script without running it (check-config, create): parse and plan.
    pub fn check_sql(sql: &str) -> Result<(), AnalyticsError> {
        let script = parse_script(sql).map_err(|e| AnalyticsError::Sql(e.to_string()))?;
        plan::plan(&script, 1, false).map_err(|e| AnalyticsError::Sql(e.to_string()))?;
        Ok(())
    }

    pub async fn create(&self, def: ApplicationDef) -> Result<ApplicationStatus, AnalyticsError> {
        check_name(&def.name)?;
        if def.max_state_keys == 0 {
            return Err(AnalyticsError::Invalid(
                "max_state_keys must be at least 1.".into(),
            ));
        }
        AnalyticsService::check_sql(&def.sql)?;
        let _one = self.inner.changes.lock().await;
        if self.lock().contains_key(&def.name) {
            return Err(AnalyticsError::Exists(def.name));
        }
        if self.lock().len() >= MAX_APPLICATIONS {
            return Err(AnalyticsError::Invalid(format!(
                "The gateway runs at most {MAX_APPLICATIONS} analytics applications."
            )));
        }
        let def = ApplicationDef {
            origin: ApplicationOrigin::Api,
            ..def
        };
        self.save(&def, false).await?;
        let name = def.name.clone();
        self.launch(def, true);
        self.describe(&name)
    }

    async fn save(&self, def: &ApplicationDef, stopped: bool) -> Result<(), AnalyticsError> {
        if def.origin != ApplicationOrigin::Api {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&StoredDefinition {
            sql: def.sql.clone(),
            max_state_keys: def.max_state_keys,
            stopped,
        })
        .map_err(|e| AnalyticsError::Invalid(e.to_string()))?;
        self.inner
            .store
            .checkpoint(CheckpointOp::SaveDefinition {
                consumer: app::consumer(&def.name),
                bytes,
            })
            .await?;
        Ok(())
    }

    pub fn list(&self) -> Vec<ApplicationStatus> {
        self.lock().values().map(status_of).collect()
    }

    pub fn describe(&self, name: &str) -> Result<ApplicationStatus, AnalyticsError> {
        self.lock()
            .get(name)
            .map(status_of)
            .ok_or_else(|| AnalyticsError::NotFound(name.into()))
    }

    /// Stops an application after it committed what it has in hand.
    pub async fn stop(&self, name: &str) -> Result<ApplicationStatus, AnalyticsError> {
        let _one = self.inner.changes.lock().await;
        let (task, def) = {
            let mut apps = self.lock();
            let entry = apps
                .get_mut(name)
                .ok_or_else(|| AnalyticsError::NotFound(name.into()))?;
            if let Some(stop) = entry.stop.take() {
                stop.send_replace(true);
            }
            (entry.task.take(), entry.def.clone())
        };
        if let Some(task) = task {
            let _ = task.await;
        }
        self.save(&def, true).await?;
        tracing::info!(application = %name, "analytics application stopped");
        self.describe(name)
    }

    /// Starts a stopped (or failed) application again from its checkpoint.
    pub async fn resume(&self, name: &str) -> Result<ApplicationStatus, AnalyticsError> {
        let _one = self.inner.changes.lock().await;
        let def = {
            let mut apps = self.lock();
            let entry = apps
                .get_mut(name)
                .ok_or_else(|| AnalyticsError::NotFound(name.into()))?;
            let running = entry.task.as_ref().is_some_and(|t| !t.is_finished());
            if !running {
                self.run(entry);
            }
            entry.def.clone()
        };
        self.save(&def, false).await?;
        self.describe(name)
    }

    /// Stops an application and forgets it with its checkpoint (its output stays).
    pub async fn delete(&self, name: &str) -> Result<(), AnalyticsError> {
        {
            let apps = self.lock();
            let entry = apps
                .get(name)
                .ok_or_else(|| AnalyticsError::NotFound(name.into()))?;
            if entry.def.origin == ApplicationOrigin::Config {
                return Err(AnalyticsError::FromConfig(name.into()));
            }
        }
        self.stop(name).await?;
        let _one = self.inner.changes.lock().await;
        self.inner
            .store
            .checkpoint(CheckpointOp::Remove {
                consumer: app::consumer(name),
            })
            .await?;
        self.lock().remove(name);
        tracing::info!(application = %name, "analytics application deleted");
        Ok(())
    }

    /// Runs a bounded query over stored history: `CREATE TABLE ...;` statements (optional: an
    /// undeclared stream is a table of its raw records) then one `SELECT`.
    pub async fn query(&self, sql: &str, max_rows: usize) -> Result<QueryOutput, AnalyticsError> {
        let store = self.inner.store.clone();
        let sql = sql.to_string();
        tokio::task::spawn_blocking(move || super::query::run(store, &sql, max_rows))
            .await
            .map_err(|e| AnalyticsError::Invalid(format!("the query failed: {e}")))?
    }

    /// Stops every application, committing what each has in hand.
    pub async fn shutdown(&self) {
        let tasks: Vec<_> = {
            let mut apps = self.lock();
            apps.values_mut()
                .filter_map(|entry| {
                    if let Some(stop) = entry.stop.take() {
                        stop.send_replace(true);
                    }
                    entry.task.take()
                })
                .collect()
        };
        for task in tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
        }
    }
}

fn status_of(entry: &Entry) -> ApplicationStatus {
    let live = entry
        .status
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    ApplicationStatus {
        name: entry.def.name.clone(),
        state: live.state.unwrap_or(ApplicationState::Stopped),
        origin: entry.def.origin,
        sql: entry.def.sql.clone(),
        records_in: live.counters.records_in,
        records_out: live.counters.records_out,
        late_records: live.counters.late_records,
        error_records: live.counters.error_records,
        watermark: live.watermark,
        input_lag_ms: live.input_lag_ms,
        error: live.error,
        inputs: live.inputs,
        outputs: live.outputs,
        error_stream: app::error_stream(&entry.def.name),
        state_entries: live.state_entries,
        max_state_keys: entry.def.max_state_keys,
        state_overflows: live.state_overflows,
        commits: live.commits,
    }
}

impl crate::observe::Report for AnalyticsService {
    fn report(&self, out: &mut crate::observe::MetricsWriter) {
        let apps = self.list();
        if apps.is_empty() {
            return;
        }
        let label = |a: &ApplicationStatus| vec![("application", a.name.clone())];
        out.counter(
            "kinedge_analytics_records_in",
            "Records an analytics application read.",
            apps.iter().map(|a| (label(a), a.records_in)).collect(),
        );
        out.counter(
            "kinedge_analytics_records_out",
            "Result records an analytics application produced.",
            apps.iter().map(|a| (label(a), a.records_out)).collect(),
        );
        out.counter(
            "kinedge_analytics_late_records",
            "Records behind the watermark, written to the error output.",
            apps.iter().map(|a| (label(a), a.late_records)).collect(),
        );
        out.counter(
            "kinedge_analytics_error_records",
            "Records that could not be read or evaluated, written to the error output.",
            apps.iter().map(|a| (label(a), a.error_records)).collect(),
        );
        out.gauge(
            "kinedge_analytics_running",
            "1 while the application runs.",
            apps.iter()
                .map(|a| {
                    (
                        label(a),
                        if a.state == ApplicationState::Running {
                            1.0
                        } else {
                            0.0
                        },
                    )
                })
                .collect(),
        );
        out.gauge(
            "kinedge_analytics_input_lag_milliseconds",
            "How far behind its newest input record the application is.",
            apps.iter()
                .map(|a| (label(a), a.input_lag_ms.unwrap_or(0) as f64))
                .collect(),
        );
        out.gauge(
            "kinedge_analytics_state_entries",
            "Window groups and waiting rows held.",
            apps.iter()
                .map(|a| (label(a), a.state_entries as f64))
                .collect(),
        );
        out.gauge(
            "kinedge_analytics_watermark_milliseconds",
            "The watermark (epoch ms).",
            apps.iter()
                .filter_map(|a| a.watermark.map(|w| (label(a), w as f64)))
                .collect(),
        );
    }
}
