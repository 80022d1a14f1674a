//! Builds the gateway from a configuration, runs it, and shuts it down in order.
//!
//! Start: open the stream store, create the configured streams, start MQTT, delivery streams,
//! cameras, the analytics applications and the API, then tell systemd READY=1. Stop (SIGTERM
//! or Ctrl-C): STOPPING=1, stop accepting connections and requests, let in-flight requests
//! finish (their records are committed and acknowledged), store each camera's last fragment,
//! let the analytics applications commit what they have in hand, give delivery streams a
//! moment, then stop the writer after its last commit.

pub mod config;

pub use config::Config;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::analytics::AnalyticsService;
use crate::api::sigv4::SigV4Verifier;
use crate::api::{self, ApiState};
use crate::delivery::config::SourceConfig;
use crate::delivery::{DeliveryService, DeliverySettings};
use crate::devices::DeviceRegistry;
use crate::ingest::mqtt::routes::Routes;
use crate::ingest::mqtt::{MqttServer, MqttShared};
use crate::storage::{AdminOp, Store, StoreOptions, StreamSpec};
use crate::streams::{OnFull, StreamMode, ITERATOR_TTL_MS};

/// How often retention and quotas are applied.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

/// Where the data lives: `--data-dir`, else `storage.data_dir`, else `$STATE_DIRECTORY`
/// (set by systemd), else `./data`.
pub fn resolve_data_dir(config: &Config, flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| config.storage.data_dir.clone())
        .or_else(|| {
            std::env::var_os("STATE_DIRECTORY")
                .map(|v| {
                    PathBuf::from(
                        v.to_string_lossy()
                            .split(':')
                            .next()
                            .unwrap_or("")
                            .to_string(),
                    )
                })
                .filter(|p| !p.as_os_str().is_empty())
        })
        .unwrap_or_else(|| PathBuf::from("./data"))
}

fn stream_spec(stream: &crate::streams::config::StreamConfig) -> StreamSpec {
    StreamSpec {
        name: stream.name.clone(),
        shards: stream.shards,
        retention_hours: stream.retention_hours,
        max_bytes: stream.max_bytes,
        on_full: match stream.on_full {
            crate::streams::config::OnFull::OverwriteOldest => OnFull::OverwriteOldest,
            crate::streams::config::OnFull::RejectNew => OnFull::RejectNew,
        },
        mode: StreamMode::Provisioned,
        tags: Default::default(),
    }
}

/// Runs the gateway until SIGTERM or Ctrl-C.
pub async fn run(config: Config, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let starting = crate::systemd::StartingUp::begin();
    crate::systemd::status("opening the stream store");
    let store = open_store(&config, resolve_data_dir(&config, data_dir)).await?;
    let verifier = api_verifier(&config)?;
    let devices = DeviceRegistry::load(&config.devices.dir).map_err(|errors| {
        anyhow::anyhow!(
            "the device files have mistakes (kinedge check-config lists them):\n{errors}"
        )
    })?;
    let cameras: Vec<_> = devices
        .devices()
        .into_iter()
        .filter(|d| d.camera.is_some())
        .cloned()
        .collect();
    #[cfg(not(feature = "video"))]
    if !cameras.is_empty() {
        tracing::warn!(
            cameras = cameras.len(),
            "this kinedge is built without the video feature (no GStreamer): the cameras of the device files are not recorded"
        );
    }
    let mqtt = if config.mqtt.enabled {
        Some(start_mqtt(&config, store.clone(), devices).await?)
    } else {
        None
    };

    let deliveries = start_deliveries(&config, store.clone()).await?;
    #[cfg(feature = "video")]
    let video = start_video(&config, &store, cameras, &deliveries).await?;
    let analytics = start_analytics(&config, store.clone(), mqtt.as_ref()).await?;

    let (on_demand, scaler_task) =
        crate::ondemand::OnDemandScaler::spawn(store.clone(), config.on_demand.clone());
    let api_counters = Arc::new(api::events::ApiCounters::default());
    // What /metrics lists, in this order.
    let mut reporters: crate::metrics::Reporters =
        vec![Arc::new(store.clone()), api_counters.clone()];
    reporters.extend(mqtt.as_ref().map(|m| m.shared.clone() as _));
    reporters.push(Arc::new(deliveries.clone()));
    #[cfg(feature = "video")]
    reporters.push(Arc::new(video.clone()));
    reporters.push(Arc::new(analytics.clone()));
    let state = Arc::new(ApiState::new(api::ApiParts {
        store: store.clone(),
        verifier,
        region: config.api.region.clone(),
        account_id: config.api.account_id.clone(),
        iterator_ttl_ms: iterator_ttl_ms(),
        mqtt: mqtt.as_ref().map(|m| m.shared.clone()),
        deliveries: Some(deliveries.clone()),
        #[cfg(feature = "video")]
        video: Some(video.clone()),
        analytics: Some(analytics.clone()),
        counters: api_counters,
        reporters,
        open_metrics: config.api.open_metrics,
        min_free_disk: config.storage.min_free_disk,
        devices_dir: config.devices.dir.clone(),
        max_consumers_per_stream: config.api.max_consumers_per_stream as usize,
        on_demand: Some(on_demand),
        tls: config.api.tls.is_some(),
    }));
    let api = start_api(&config, state.clone()).await?;
    let maintenance = spawn_maintenance(store.clone());
    announce_ready(&config, &store, &api, mqtt.as_ref(), &deliveries);
    drop(starting);
    let watchdog = crate::systemd::spawn_watchdog(store.clone());
    let reload = tokio::spawn(watch_devices(
        config.devices.dir.clone(),
        mqtt.as_ref().map(|m| m.shared.clone()),
        #[cfg(feature = "video")]
        video.clone(),
    ));

    shutdown_signal().await;
    crate::systemd::stopping();
    state
        .stopping
        .store(true, std::sync::atomic::Ordering::Relaxed);
    // SubscribeToShard streams would otherwise run to their 5 minutes: end them now.
    state.operations.kinesis.fanout.stop_all();
    tracing::info!("stopping: finishing requests in flight");
    reload.abort();
    drain_connections(api, mqtt.as_ref()).await;
    maintenance.abort();
    if let Some(task) = scaler_task {
        task.abort();
    }
    // Each camera stores the fragment it was recording.
    #[cfg(feature = "video")]
    if tokio::time::timeout(Duration::from_secs(10), video.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("cameras still stopping after 10 s");
    }
    // Each application commits its output with its checkpoint; what is not committed is
    // computed again after the restart, from the checkpoint.
    if tokio::time::timeout(Duration::from_secs(10), analytics.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("analytics applications still stopping after 10 s; they go on from their checkpoints after the restart");
    }
    // Batches on their way get a moment to be confirmed; the rest is sent again after the
    // restart, from the checkpoints.
    if tokio::time::timeout(Duration::from_secs(10), deliveries.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("delivery streams still busy after 10 s; their batches will be sent again after the restart");
    }
    store.shutdown().await;
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Where stream encryption keys live: `storage.keys_dir`, else `$CONFIGURATION_DIRECTORY/keys`
/// (set by systemd: `/etc/kinedge/keys`), else `<data_dir>/keys`.
pub fn keys_dir(config: &Config, data_dir: &std::path::Path) -> PathBuf {
    config.storage.keys_dir.clone().unwrap_or_else(|| {
        std::env::var_os("CONFIGURATION_DIRECTORY")
            .and_then(|v| {
                let first = v.to_string_lossy().split(':').next()?.to_string();
                (!first.is_empty()).then(|| PathBuf::from(first).join("keys"))
            })
            .unwrap_or_else(|| data_dir.join("keys"))
    })
}

/// Opens the stream store with the `[storage]` settings and creates the configured streams.
async fn open_store(config: &Config, data_dir: PathBuf) -> anyhow::Result<Store> {
    let mut options = StoreOptions::new(&data_dir);
    options.cache_size = config.storage.cache_size;
    options.min_free_disk = config.storage.min_free_disk;
    options.max_commit_bytes = config.storage.max_commit_bytes;
    options.commit_interval_ms = config.storage.commit_interval_ms;
    options.quick_repair = config.storage.quick_repair;
    options.keys = crate::storage::crypt::KeyringOptions {
        dir: keys_dir(config, &data_dir),
        auto_create: config.storage.auto_create_keys,
    };
    let store = tokio::task::spawn_blocking(move || Store::open(options))
        .await
        .context("opening the stream store")?
        .with_context(|| format!("opening the stream store in {}", data_dir.display()))?;
    for stream in &config.streams {
        store
            .admin(AdminOp::EnsureStream(stream_spec(stream)))
            .await
            .with_context(|| format!("creating stream {} from the configuration", stream.name))?;
    }
    Ok(store)
}

/// The SigV4 verifier of `[[api.credentials]]` (their secrets loaded); `None` without any.
fn api_verifier(config: &Config) -> anyhow::Result<Option<SigV4Verifier>> {
    let verifier = if config.api.credentials.is_empty() {
        None
    } else {
        let mut keys = Vec::new();
        for credential in &config.api.credentials {
            let secret = credential.load_secret().with_context(|| {
                format!("loading the secret of API key {}", credential.access_key_id)
            })?;
            keys.push((credential.access_key_id.clone(), secret));
        }
        Some(SigV4Verifier::new(keys))
    };
    if verifier.is_none() && !config.api.listen.ip().is_loopback() {
        tracing::warn!(listen = %config.api.listen, "the API listens beyond loopback without [[api.credentials]]: anyone who reaches it can read and write streams");
    }
    Ok(verifier)
}

/// How long a shard iterator lives; `KINEDGE_ITERATOR_TTL_MS` shortens it for tests.
fn iterator_ttl_ms() -> u64 {
    std::env::var("KINEDGE_ITERATOR_TTL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ITERATOR_TTL_MS)
}

/// Applies retention and quotas every [`MAINTENANCE_INTERVAL`].
fn spawn_maintenance(store: Store) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
        loop {
            tick.tick().await;
            if let Err(error) = store.maintain().await {
                tracing::warn!(%error, "retention pass failed; will try again");
            }
        }
    })
}

/// The running API server: where it listens, how to stop it, and its task.
struct RunningApi {
    listen: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds the API listener (with TLS when `[api.tls]` is set) and serves `state`.
async fn start_api(config: &Config, state: Arc<ApiState>) -> anyhow::Result<RunningApi> {
    let listener = api::bind(config.api.listen).await?;
    let listen = listener.local_addr().unwrap_or(config.api.listen);
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let tls = match &config.api.tls {
        Some(tls) => Some(api::tls::acceptor(tls).context("setting up TLS for the API")?),
        None => None,
    };
    let serve_options = api::server::ServeOptions::new(config.api.max_connections as usize, tls);
    let cors_origins = config.api.cors_origins.clone();
    let server = tokio::spawn(async move {
        api::serve(listener, state, &cors_origins, serve_options, async move {
            let _ = stop_rx.await;
        })
        .await
    });
    Ok(RunningApi {
        listen,
        stop,
        server,
    })
}

/// Logs that the gateway is ready and tells systemd READY=1.
fn announce_ready(
    config: &Config,
    store: &Store,
    api: &RunningApi,
    mqtt: Option<&MqttServer>,
    deliveries: &DeliveryService,
) {
    let mqtt_addr = mqtt.map_or("off".to_string(), |m| m.local_addr.to_string());
    tracing::info!(
        api = %api.listen,
        mqtt = %mqtt_addr,
        data_dir = %store.data_dir().display(),
        streams = config.streams.len(),
        delivery_streams = deliveries.names().len(),
        "kinedge is ready"
    );
    crate::systemd::ready(&format!(
        "serving: API {}, MQTT {mqtt_addr}, {} streams, {} delivery streams",
        api.listen,
        store.catalog().streams.len(),
        deliveries.names().len(),
    ));
}

/// Stops accepting; MQTT sessions and API requests finish what they received (committed,
/// acknowledged) at the same time. The store stays open until both are done.
async fn drain_connections(api: RunningApi, mqtt: Option<&MqttServer>) {
    let _ = api.stop.send(());
    let mqtt_drained = async {
        if let Some(mqtt) = mqtt {
            if !mqtt.shutdown(Duration::from_secs(15)).await {
                tracing::warn!("MQTT sessions still open after 15 s; stopping anyway");
            }
        }
    };
    let api_drained = async {
        match tokio::time::timeout(Duration::from_secs(20), api.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "API server stopped with an error"),
            Ok(Err(error)) => tracing::warn!(%error, "API server task failed"),
            Err(_) => tracing::warn!("API requests still running after 20 s; stopping anyway"),
        }
    };
    tokio::join!(mqtt_drained, api_drained);
}

async fn start_deliveries(config: &Config, store: Store) -> anyhow::Result<DeliveryService> {
    let dead_letter_dir = match &config.delivery.dead_letter_dir {
        Some(dir) if dir.is_absolute() => dir.clone(),
        Some(dir) => store.data_dir().join(dir),
        None => store
            .data_dir()
            .join(crate::delivery::config::DeliverySettings::DEFAULT_DEAD_LETTER_DIR),
    };
    let settings = DeliverySettings {
        max_bandwidth: config.delivery.max_bandwidth,
        dead_letter_dir,
    };
    let catalog = store.catalog();
    for delivery in &config.delivery_streams {
        if let SourceConfig::Stream { stream, .. } = &delivery.source {
            if catalog.stream(stream).is_none() {
                tracing::warn!(delivery_stream = %delivery.name, %stream, "the source stream does not exist; the delivery stream waits for it");
            }
        }
    }
    DeliveryService::start(
        store,
        config.delivery_streams.clone(),
        settings,
        config.api.region.clone(),
        config.api.account_id.clone(),
    )
    .await
    .context("starting the delivery streams")
}

/// Starts the analytics applications of the configuration and those created through the API
/// earlier; results go to MQTT subscribers through the broker when MQTT runs. Applications
/// with `enabled = false` are defined and visible but not started (startable through the API).
async fn start_analytics(
    config: &Config,
    store: Store,
    mqtt: Option<&MqttServer>,
) -> anyhow::Result<AnalyticsService> {
    let defs = config.analytics.iter().map(|a| a.def()).collect();
    let analytics = AnalyticsService::start(store, mqtt.map(MqttServer::broker), defs)
        .await
        .context("starting the analytics applications")?;
    tracing::info!(
        applications = analytics.list().len(),
        configured = config.analytics.len(),
        "analytics started"
    );
    Ok(analytics)
}

/// Starts the cameras of the device registry (and later ones as device files appear).
#[cfg(feature = "video")]
async fn start_video(
    config: &Config,
    store: &Store,
    cameras: Vec<crate::devices::Device>,
    deliveries: &DeliveryService,
) -> anyhow::Result<crate::video::VideoService> {
    let dir = crate::video::service::video_dir(&config.video, store.data_dir());
    let video = crate::video::VideoService::start(
        config.video.clone(),
        dir.clone(),
        config.storage.min_free_disk,
        cameras,
        Some(std::sync::Arc::new(deliveries.clone())),
    )
    .await
    .context("starting video")?;
    tracing::info!(cameras = video.camera_names().len(), dir = %dir.display(), "video started");
    Ok(video)
}

async fn start_mqtt(
    config: &Config,
    store: Store,
    devices: DeviceRegistry,
) -> anyhow::Result<MqttServer> {
    let catalog = store.catalog();
    for route in &config.routes {
        if catalog.stream(&route.stream).is_none() {
            tracing::warn!(topic = %route.topic, stream = %route.stream, "route to a stream that does not exist: its publishes are refused until the stream is created");
        }
    }
    let routes = Routes::new(&config.routes);
    let server = MqttServer::start(&config.mqtt, store, devices, routes).await?;
    tracing::info!(listen = %server.local_addr, tls = ?server.tls_addr, devices = server.shared.devices.borrow().len(), routes = config.routes.len(), anonymous = config.mqtt.allow_anonymous, "MQTT listener started");
    Ok(server)
}

/// Reloads the device registry on SIGHUP and when the devices directory changes (checked
/// every few seconds), keeping the old registry when the new files have mistakes: MQTT
/// logins and ACLs follow it, and cameras are started, restarted or stopped.
async fn watch_devices(
    dir: PathBuf,
    mqtt: Option<Arc<MqttShared>>,
    #[cfg(feature = "video")] video: crate::video::VideoService,
) {
    let mut last = fingerprint(&dir);
    let mut tick = tokio::time::interval(Duration::from_secs(3));
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let forced = match hangup.as_mut() {
            Some(signal) => tokio::select! {
                _ = signal.recv() => true,
                _ = tick.tick() => false,
            },
            None => {
                tick.tick().await;
                false
            }
        };
        #[cfg(not(unix))]
        let forced = {
            tick.tick().await;
            false
        };
        let now = fingerprint(&dir);
        if !forced && now == last {
            continue;
        }
        last = now;
        let loaded = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || DeviceRegistry::load(&dir)
        })
        .await;
        match loaded {
            Ok(Ok(registry)) => {
                #[cfg(feature = "video")]
                video
                    .reload(
                        registry
                            .devices()
                            .into_iter()
                            .filter(|d| d.camera.is_some())
                            .cloned()
                            .collect(),
                    )
                    .await;
                if let Some(shared) = &mqtt {
                    shared.reload_devices(registry);
                }
            }
            Ok(Err(errors)) => tracing::error!(
                "device files have mistakes; keeping the previous registry:\n{errors}"
            ),
            Err(error) => tracing::error!(%error, "device reload failed"),
        }
    }
}

/// Names, sizes and modification times of the files in `dir`.
fn fingerprint(
    dir: &std::path::Path,
) -> Vec<(std::ffi::OsString, u64, Option<std::time::SystemTime>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((e.file_name(), meta.len(), meta.modified().ok()))
        })
        .collect();
    files.sort();
    files
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
