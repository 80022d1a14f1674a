//! `GET /metrics`: the gateway's counters in the Prometheus text format (0.0.4).
//!
//! Nothing is counted twice. At each scrape a [`Snapshot`] copies the counters the parts
//! already keep — shard states and the writer's histograms (storage), MQTT sessions, delivery
//! streams, cameras, API errors, the process — and encodes them with `prometheus-client`.
//! Labels name configured things (streams, shards, delivery streams, cameras) and fixed
//! reasons; never a device id, client id or topic, so the number of series does not grow with
//! the number of sensors.

mod process;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::delivery::DeliveryService;
use crate::ingest::mqtt::MqttShared;
use crate::storage::Store;
use crate::streams::validate::is_internal_stream;

pub use process::ProcessStats;
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Requests and refusals of the HTTP API, by AWS error type (a fixed set).
#[derive(Debug, Default)]
pub struct ApiCounters {
    requests: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl ApiCounters {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self, aws_type: &'static str) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        *errors.entry(aws_type).or_default() += 1;
    }

    fn snapshot(&self) -> (u64, Vec<(&'static str, u64)>) {
        let errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        (
            self.requests.load(Ordering::Relaxed),
            errors.iter().map(|(k, v)| (*k, *v)).collect(),
        )
    }
}

/// What a scrape reads from.
pub struct Sources<'a> {
    pub store: &'a Store,
    pub mqtt: Option<&'a MqttShared>,
    pub deliveries: Option<&'a DeliveryService>,
    #[cfg(feature = "video")]
    pub video: Option<&'a crate::video::VideoService>,
    pub api: &'a ApiCounters,
    pub ready: bool,
}

/// Renders every metric. Blocking (it reads the databases' files and the cameras' usage):
/// call it from a blocking thread.
pub fn render(sources: &Sources<'_>) -> Result<String, std::fmt::Error> {
    let snapshot = Snapshot::take(sources);
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

type Labels = Vec<(&'static str, String)>;

/// One metric family: its name (without `_total` for counters), help and samples.
#[derive(Debug)]
enum Family {
    Counter(&'static str, &'static str, Vec<(Labels, u64)>),
    /// A counter of seconds.
    SecondsCounter(&'static str, &'static str, f64),
    Gauge(&'static str, &'static str, Vec<(Labels, f64)>),
    Histogram(&'static str, &'static str, Histogram),
}

/// The counters copied at one scrape.
#[derive(Debug, Default)]
struct Snapshot {
    families: Vec<Family>,
}

fn one(value: u64) -> Vec<(Labels, u64)> {
    vec![(Vec::new(), value)]
}

fn gauge1(value: f64) -> Vec<(Labels, f64)> {
    vec![(Vec::new(), value)]
}

impl Snapshot {
    fn take(sources: &Sources<'_>) -> Snapshot {
        let mut s = Snapshot::default();
        s.process(sources);
        s.storage(sources.store);
        s.api(sources.api);
        if let Some(mqtt) = sources.mqtt {
            s.mqtt(mqtt);
        }
        if let Some(deliveries) = sources.deliveries {
            s.deliveries(deliveries);
        }
        #[cfg(feature = "video")]
        if let Some(video) = sources.video {
            s.cameras(video);
        }
        s
    }

    fn counter(&mut self, name: &'static str, help: &'static str, rows: Vec<(Labels, u64)>) {
        self.families.push(Family::Counter(name, help, rows));
    }

    fn gauge(&mut self, name: &'static str, help: &'static str, rows: Vec<(Labels, f64)>) {
        self.families.push(Family::Gauge(name, help, rows));
    }

    fn process(&mut self, sources: &Sources<'_>) {
        self.gauge(
            "kinedge_build_info",
            "The running version (value 1).",
            vec![(
                vec![("version", env!("CARGO_PKG_VERSION").to_string())],
                1.0,
            )],
        );
        self.gauge(
            "kinedge_ready",
            "1 when storage, the MQTT broker and the API are up (as GET /ready).",
            gauge1(if sources.ready { 1.0 } else { 0.0 }),
        );
        let process = process::ProcessStats::read();
        if let Some(start) = process.start_time_seconds {
            self.gauge(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds.",
                gauge1(start),
            );
        }
        if let Some(rss) = process.resident_memory_bytes {
            self.gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                gauge1(rss as f64),
            );
        }
        if let Some(cpu) = process.cpu_seconds {
            self.families.push(Family::SecondsCounter(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                cpu,
            ));
        }
        if let Some(fds) = process.open_fds {
            self.gauge(
                "process_open_fds",
                "Open file descriptors.",
                gauge1(fds as f64),
            );
        }
    }

    fn storage(&mut self, store: &Store) {
        let catalog = store.catalog();
        let mut records_in = Vec::new();
        let mut bytes_in = Vec::new();
        let mut records_out = Vec::new();
        let mut bytes_out = Vec::new();
        let mut stored_records = Vec::new();
        let mut stored_bytes = Vec::new();
        let mut trimmed_records = Vec::new();
        let mut trimmed_bytes = Vec::new();
        let mut open_shards = Vec::new();
        for stream in catalog.streams.values() {
            if is_internal_stream(&stream.name) {
                continue;
            }
            let (mut records, mut bytes, mut trimmed, mut trimmed_b) = (0u64, 0u64, 0u64, 0u64);
            for shard in &stream.shards {
                let Some(live) = catalog.live(shard.uid) else {
                    continue;
                };
                let state = live.state();
                let (read_records, read_bytes) = live.reads();
                let labels = vec![
                    ("stream", stream.name.clone()),
                    ("shard", crate::streams::model::shard_id(shard.index)),
                ];
                records_in.push((labels.clone(), state.appended));
                bytes_in.push((labels.clone(), state.appended_bytes));
                records_out.push((labels.clone(), read_records));
                bytes_out.push((labels, read_bytes));
                records += state.records;
                bytes += state.bytes;
                trimmed += state.trimmed;
                trimmed_b += state.trimmed_bytes;
            }
            let labels = vec![("stream", stream.name.clone())];
            stored_records.push((labels.clone(), records as f64));
            stored_bytes.push((labels.clone(), bytes as f64));
            trimmed_records.push((labels.clone(), trimmed));
            trimmed_bytes.push((labels.clone(), trimmed_b));
            open_shards.push((labels, f64::from(stream.open_shard_count())));
        }
        self.counter(
            "kinedge_shard_records_in",
            "Records appended to the shard log (since it was created).",
            records_in,
        );
        self.counter(
            "kinedge_shard_bytes_in",
            "Record bytes (data + partition key) appended to the shard log (since it was created).",
            bytes_in,
        );
        self.counter(
            "kinedge_shard_records_out",
            "Records read from the shard log by GetRecords and delivery streams (since start).",
            records_out,
        );
        self.counter(
            "kinedge_shard_bytes_out",
            "Record bytes read from the shard log by GetRecords and delivery streams (since start).",
            bytes_out,
        );
        self.gauge(
            "kinedge_stream_stored_records",
            "Records held by the stream's shard logs.",
            stored_records,
        );
        self.gauge(
            "kinedge_stream_disk_bytes",
            "Bytes the stream's shard logs take in the database (blocks and chunks).",
            stored_bytes,
        );
        self.gauge(
            "kinedge_stream_open_shards",
            "Open shards of the stream.",
            open_shards,
        );
        self.counter(
            "kinedge_retention_trimmed_records",
            "Records removed by retention (age) or the stream's max_bytes (overwrite_oldest).",
            trimmed_records,
        );
        self.counter(
            "kinedge_retention_trimmed_bytes",
            "Record bytes removed by retention or the stream's max_bytes.",
            trimmed_bytes,
        );
        let stats = store.writer_stats();
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        self.counter(
            "kinedge_storage_trimmed_records_by_reason",
            "Records trimmed since start, by reason: age (retention_hours) or size (max_bytes).",
            vec![
                (vec![("reason", "age".into())], n(&stats.trimmed_by_age)),
                (vec![("reason", "size".into())], n(&stats.trimmed_by_size)),
            ],
        );
        self.counter(
            "kinedge_storage_commits",
            "Group commits of the stream writer (each one durable before anything in it is acknowledged).",
            one(n(&stats.commits)),
        );
        self.families.push(Family::Histogram(
            "kinedge_storage_commit_seconds",
            "Time from the start of a group commit to its durable end.",
            stats.commit_seconds.clone(),
        ));
        self.families.push(Family::Histogram(
            "kinedge_storage_records_per_commit",
            "Records stored by one group commit.",
            stats.records_per_commit.clone(),
        ));
        self.counter(
            "kinedge_refused_records",
            "Records refused by storage, by reason: quota (max_bytes with on_full = reject_new) or disk (below storage.min_free_disk).",
            vec![
                (vec![("reason", "quota".into())], n(&stats.rejected_quota)),
                (vec![("reason", "disk".into())], n(&stats.rejected_disk)),
            ],
        );
        let file = store.file_counters();
        self.counter(
            "kinedge_storage_bytes_written",
            "Bytes written into the stream database file (what the SD card is asked to write).",
            one(n(&file.bytes_written)),
        );
        self.counter(
            "kinedge_storage_syncs",
            "fdatasync calls on the stream database file (one per durable commit).",
            one(n(&file.syncs)),
        );
        self.counter(
            "kinedge_storage_failed_commits",
            "Commits that failed, by kind of fault (no_space, io, corrupted, unavailable, other); nothing in them was acknowledged.",
            crate::storage::FAULT_KINDS
                .iter()
                .map(|k| (vec![("kind", k.as_str().into())], stats.faults(*k)))
                .collect(),
        );
        self.gauge(
            "kinedge_storage_writes_suspended",
            "1 while writes are suspended after a disk error (a full disk), else 0.",
            gauge1(if store.writes_suspended().is_some() {
                1.0
            } else {
                0.0
            }),
        );
        let db = store.data_dir().join(crate::storage::STREAMS_DB);
        if let Ok(meta) = std::fs::metadata(&db) {
            self.gauge(
                "kinedge_storage_file_bytes",
                "Size of the stream database file.",
                gauge1(meta.len() as f64),
            );
        }
        if let Ok(free) = crate::storage::disk::free_bytes(store.data_dir()) {
            self.gauge(
                "kinedge_disk_free_bytes",
                "Free bytes (for the gateway's user) on the file system of the data directory.",
                gauge1(free as f64),
            );
        }
    }

    fn api(&mut self, api: &ApiCounters) {
        let (requests, errors) = api.snapshot();
        self.counter(
            "kinedge_api_requests",
            "Kinesis and Firehose API requests (POST /).",
            one(requests),
        );
        self.counter(
            "kinedge_api_errors",
            "API requests answered with an error, by AWS error type.",
            errors
                .into_iter()
                .map(|(kind, count)| (vec![("type", kind.to_string())], count))
                .collect(),
        );
    }

    fn mqtt(&mut self, mqtt: &MqttShared) {
        let s = &mqtt.stats;
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        self.gauge(
            "kinedge_mqtt_connections",
            "MQTT clients connected now.",
            gauge1(n(&s.connected) as f64),
        );
        self.gauge(
            "kinedge_mqtt_devices",
            "Devices in the device registry.",
            gauge1(mqtt.devices.borrow().len() as f64),
        );
        self.counter(
            "kinedge_mqtt_messages_stored",
            "MQTT publishes stored in a stream (acknowledged after the commit).",
            one(n(&s.stored)),
        );
        self.counter(
            "kinedge_mqtt_messages_unrouted",
            "MQTT publishes that matched no route (delivered to subscribers only).",
            one(n(&s.unrouted)),
        );
        let reason = |r: &str| vec![("reason", r.to_string())];
        self.counter(
            "kinedge_mqtt_refused",
            "MQTT connections and publishes refused, by reason.",
            vec![
                (reason("connect"), n(&s.refused_connect)),
                (reason("acl"), n(&s.refused_acl)),
                (reason("stream"), n(&s.refused_stream)),
                (reason("too_large"), n(&s.refused_too_large)),
                (reason("busy"), n(&s.refused_busy)),
            ],
        );
    }

    fn deliveries(&mut self, deliveries: &DeliveryService) {
        let list = deliveries.status();
        type Row = (Labels, u64);
        let mut counters: [(&'static str, &'static str, Vec<Row>); 7] = [
            ("kinedge_delivery_delivered_records", "Records confirmed by the destination.", Vec::new()),
            ("kinedge_delivery_delivered_bytes", "Record bytes confirmed by the destination.", Vec::new()),
            ("kinedge_delivery_batches", "Batches confirmed by the destination.", Vec::new()),
            ("kinedge_delivery_retries", "Attempts that failed and were retried.", Vec::new()),
            ("kinedge_delivery_failed_records", "Records the destination refused for good (sent to the error prefix or dead-letter directory).", Vec::new()),
            ("kinedge_delivery_dropped_records", "Records dropped by a processor.", Vec::new()),
            ("kinedge_delivery_records_lost", "Records trimmed by retention or a quota before they were delivered.", Vec::new()),
        ];
        let mut backlog_records = Vec::new();
        let mut backlog_bytes = Vec::new();
        let mut backlog_age = Vec::new();
        let mut state = Vec::new();
        for d in &list {
            let labels = vec![("delivery_stream", d.name.clone())];
            let values = [
                d.delivered_records,
                d.delivered_bytes,
                d.batches,
                d.retries,
                d.failed_records,
                d.dropped_records,
                d.records_lost,
            ];
            for (family, value) in counters.iter_mut().zip(values) {
                family.2.push((labels.clone(), value));
            }
            backlog_records.push((labels.clone(), d.backlog_records as f64));
            backlog_bytes.push((labels.clone(), d.backlog_bytes as f64));
            backlog_age.push((
                labels.clone(),
                d.oldest_undelivered_age_ms.unwrap_or(0) as f64 / 1000.0,
            ));
            let mut labels = labels;
            labels.push(("state", d.state.as_str().to_string()));
            state.push((labels, 1.0));
        }
        for (name, help, rows) in counters {
            self.counter(name, help, rows);
        }
        self.gauge(
            "kinedge_delivery_backlog_records",
            "Records stored but not yet delivered.",
            backlog_records,
        );
        self.gauge(
            "kinedge_delivery_backlog_bytes",
            "Record bytes stored but not yet delivered.",
            backlog_bytes,
        );
        self.gauge(
            "kinedge_delivery_backlog_age_seconds",
            "Age of the oldest record not yet delivered (0 without a backlog).",
            backlog_age,
        );
        self.gauge(
            "kinedge_delivery_state",
            "The delivery stream's state (value 1 for the current one).",
            state,
        );
    }

    #[cfg(feature = "video")]
    fn cameras(&mut self, video: &crate::video::VideoService) {
        use crate::video::camera::CameraState;
        let list = video.status();
        type Row = (Labels, u64);
        let mut counters: [(&'static str, &'static str, Vec<Row>); 7] = [
            (
                "kinedge_camera_fragments",
                "Fragments stored since start.",
                Vec::new(),
            ),
            (
                "kinedge_camera_fragment_bytes",
                "Bytes of the fragments stored since start.",
                Vec::new(),
            ),
            (
                "kinedge_camera_reconnects",
                "Times the camera's pipeline was rebuilt after a loss.",
                Vec::new(),
            ),
            (
                "kinedge_camera_gaps",
                "Gaps in the recording since start (a loss, a restart).",
                Vec::new(),
            ),
            (
                "kinedge_camera_dropped_fragments",
                "Fragments dropped because the log could not keep up.",
                Vec::new(),
            ),
            (
                "kinedge_camera_refused_fragments",
                "Fragments refused by the log (deny_new, disk guard).",
                Vec::new(),
            ),
            (
                "kinedge_camera_evicted_fragments",
                "Oldest fragments deleted by retention (age, max_bytes, free disk).",
                Vec::new(),
            ),
        ];
        let mut bitrate = Vec::new();
        let mut connected = Vec::new();
        let mut stored_bytes = Vec::new();
        let mut stored_fragments = Vec::new();
        let mut upload_backlog = Vec::new();
        for c in &list {
            let labels = vec![("camera", c.name.clone())];
            let values = [
                c.live.recorded_fragments,
                c.live.recorded_bytes,
                c.live.reconnects,
                c.live.gaps,
                c.live.dropped_fragments,
                c.live.refused_fragments,
                c.evicted_fragments,
            ];
            for (family, value) in counters.iter_mut().zip(values) {
                family.2.push((labels.clone(), value));
            }
            bitrate.push((labels.clone(), c.live.bitrate_bps as f64));
            let up = matches!(c.live.state, CameraState::Connected);
            connected.push((labels.clone(), if up { 1.0 } else { 0.0 }));
            stored_bytes.push((labels.clone(), c.bytes as f64));
            stored_fragments.push((labels.clone(), c.fragments as f64));
            if let Some(upload) = &c.upload {
                upload_backlog.push((labels, upload.backlog_bytes as f64));
            }
        }
        for (name, help, rows) in counters {
            self.counter(name, help, rows);
        }
        self.gauge(
            "kinedge_camera_bitrate_bps",
            "Bits per second of the camera's last fragments (smoothed).",
            bitrate,
        );
        self.gauge(
            "kinedge_camera_connected",
            "1 while the camera's stream is being recorded.",
            connected,
        );
        self.gauge(
            "kinedge_camera_stored_bytes",
            "Bytes of the camera's fragments kept.",
            stored_bytes,
        );
        self.gauge(
            "kinedge_camera_stored_fragments",
            "Fragments of the camera kept.",
            stored_fragments,
        );
        self.gauge(
            "kinedge_camera_upload_backlog_bytes",
            "Bytes of fragments waiting for upload.",
            upload_backlog,
        );
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.families {
            match family {
                Family::Counter(name, help, rows) => {
                    if rows.is_empty() {
                        continue;
                    }
                    let counter = ConstCounter::new(0u64);
                    let mut metric =
                        encoder.encode_descriptor(name, help, None, counter.metric_type())?;
                    for (labels, value) in rows {
                        ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
                    }
                }
                Family::Gauge(name, help, rows) => {
                    if rows.is_empty() {
                        continue;
                    }
                    let gauge = ConstGauge::new(0f64);
                    let mut metric =
                        encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
                    for (labels, value) in rows {
                        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
                    }
                }
                Family::SecondsCounter(name, help, value) => {
                    let counter = ConstCounter::new(*value);
                    counter.encode(encoder.encode_descriptor(
                        name,
                        help,
                        None,
                        counter.metric_type(),
                    )?)?;
                }
                Family::Histogram(name, help, histogram) => {
                    let metric =
                        encoder.encode_descriptor(name, help, None, histogram.metric_type())?;
                    histogram.encode(metric)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
