//! The `mqtt` destination: publishes every record, QoS 1, to an upstream MQTT broker (AWS IoT
//! Core, Mosquitto, …) with rumqttc, MQTT 3.1.1.
//!
//! - `url`: `mqtt://host[:1883]` or `mqtts://host[:8883]`. TLS uses rustls with the ring
//!   provider; roots from `ca` (PEM), else `/etc/ssl/certs/ca-certificates.crt`; `cert` +
//!   `key` (PEM) authenticate the gateway with a client certificate, as AWS IoT Core wants.
//!   `username` and `password` (a secret, read once at construction) when set.
//! - `topic`: a template with `{stream}` (the delivery stream's name) and `{partition_key}`
//!   (the record's). A rendered topic must be a valid topic name (non-empty, at most
//!   65,535 bytes, no `+`, `#` or NUL): a template that cannot be is refused at construction;
//!   records whose partition key makes an invalid topic, and records larger than 1 MiB, are
//!   not published and are reported (`Partial` with their indices, after the others were
//!   confirmed). The broker cannot refuse a record otherwise in MQTT 3.1.1, so the retry
//!   duration is zero: such records go to the error output at once.
//!
//! `deliver` returns `Ok` only once every publish of the batch got its PUBACK. One task owns
//! rumqttc's event loop: it connects when a delivery needs the connection (lazily, never in a
//! loop of its own), keeps it open between batches (answering keep-alives), and reports each
//! publish's packet id (`Outgoing::Publish`) and each PUBACK to the delivery that waits.
//! A connection lost before all PUBACKs arrived, or no broker, is `Unreachable`: the runner
//! sends the batch again (at least once). Sessions are clean, so nothing left from a lost
//! connection is sent again behind the runner's back. At most 100 publishes are unacknowledged
//! at a time (AWS IoT Core's limit per connection).

pub mod config;
mod topic;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use self::topic::TopicTemplate;
use super::http_endpoint::{describe_secret, read_secret};
use super::{BatchLimits, BuildError, DeliveryError, DestinationContext};
use crate::delivery::batch::{Batch, ErrorOutputType};
use crate::delivery::config::{MqttDestinationConfig, MIB};

const KIND: &str = "mqtt";

pub const MAX_RECORDS: usize = 10_000;
pub const MAX_BATCH_BYTES: u64 = 64 * MIB;
/// A record's data, at most (a Kinesis record's size).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Unacknowledged publishes at a time.
const INFLIGHT: u16 = 100;
/// Publishes queued for the event loop at a time.
const REQUEST_CAPACITY: usize = 100;
/// Events from the event loop to the waiting delivery.
const EVENT_CAPACITY: usize = 4096;
const KEEP_ALIVE: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT_S: u64 = 10;
/// A delivery that sees nothing happen for this long gives up and resets the connection.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub struct MqttDestination {
    describe: String,
    topic: TopicTemplate,
    client: AsyncClient,
    shared: Arc<Shared>,
    session: tokio::sync::Mutex<Session>,
    task: Mutex<Option<JoinHandle<()>>>,
    stall_timeout: Duration,
}

/// What the delivery side and the event loop task share.
struct Shared {
    phase: Mutex<Phase>,
    wake: Notify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No connection, none wanted.
    Idle,
    /// Connecting or connected.
    Running,
    Closing,
}

/// The delivery side's state, held by one delivery at a time.
struct Session {
    events: mpsc::Receiver<Event>,
    /// A delivery gave up while the connection was up; the next one waits for the reset.
    dirty: bool,
}

/// What the event loop task reports.
#[derive(Debug)]
enum Event {
    /// Requests left from before are gone; connecting.
    Started,
    Published(u16),
    Acked(u16),
    /// The connection is gone (or could not be made).
    Lost(String),
}

impl MqttDestination {
    pub async fn new(
        config: &MqttDestinationConfig,
        context: &DestinationContext,
    ) -> Result<MqttDestination, BuildError> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| build_error(format!("url `{}`: {e}", config.url)))?;
        let tls = match url.scheme() {
            "mqtt" => false,
            "mqtts" => true,
            other => {
                return Err(build_error(format!(
                    "url `{}`: scheme `{other}`, expected mqtt:// or mqtts://",
                    config.url
                )))
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| build_error(format!("url `{}`: no host", config.url)))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
        if config.client_id.is_empty() || config.client_id.len() > 128 {
            return Err(build_error("client_id: 1 to 128 characters".into()));
        }
        let topic = TopicTemplate::parse(&config.topic, &context.delivery_stream)
            .map_err(|e| build_error(format!("topic `{}`: {e}", config.topic)))?;

        let mut options = MqttOptions::new(config.client_id.clone(), host.clone(), port);
        options
            .set_keep_alive(KEEP_ALIVE)
            .set_clean_session(true)
            .set_inflight(INFLIGHT)
            .set_max_packet_size(64 * 1024, MAX_RECORD_BYTES + 64 * 1024);
        match (&config.username, &config.password) {
            (Some(user), password) => {
                let password = match password {
                    Some(secret) => {
                        read_secret(secret).map_err(|e| build_error(format!("password: {e}")))?
                    }
                    None => String::new(),
                };
                options.set_credentials(user.clone(), password);
            }
            (None, Some(secret)) => {
                return Err(build_error(format!(
                    "password ({}) without username",
                    describe_secret(secret)
                )))
            }
            (None, None) => {}
        }
        if tls {
            let tls_config = tls_config(config)?;
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(Arc::new(tls_config)),
            ));
        } else if config.ca.is_some() || config.cert.is_some() || config.key.is_some() {
            return Err(build_error(
                "ca, cert and key need an mqtts:// url".to_string(),
            ));
        }

        let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
        let mut network = NetworkOptions::new();
        network.set_connection_timeout(CONNECT_TIMEOUT_S);
        eventloop.set_network_options(network);

        let describe = format!(
            "{}://{}:{port} topic {}",
            url.scheme(),
            if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            },
            config.topic
        );
        let shared = Arc::new(Shared {
            phase: Mutex::new(Phase::Idle),
            wake: Notify::new(),
        });
        let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
        let task = tokio::spawn(drive(
            eventloop,
            Arc::clone(&shared),
            events_tx,
            describe.clone(),
        ));
        Ok(MqttDestination {
            describe,
            topic,
            client,
            shared,
            session: tokio::sync::Mutex::new(Session {
                events: events_rx,
                dirty: false,
            }),
            task: Mutex::new(Some(task)),
            stall_timeout: STALL_TIMEOUT,
        })
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.shared
            .phase
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for MqttDestination {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}

#[async_trait::async_trait]
impl super::Destination for MqttDestination {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_bytes: MAX_BATCH_BYTES,
            max_records: MAX_RECORDS,
        }
    }

    fn retry_duration(&self) -> Option<Duration> {
        // The broker never answers with an error (it disconnects: `Unreachable`); only
        // records that cannot be published at all are reported, and retrying them is useless.
        Some(Duration::ZERO)
    }

    fn failure_type(&self) -> ErrorOutputType {
        ErrorOutputType::MqttFailed
    }

    async fn deliver(&self, batch: &Batch) -> Result<(), DeliveryError> {
        let mut publishes = Vec::with_capacity(batch.records.len());
        let mut refused = Vec::new();
        let mut refusal = String::new();
        for (i, record) in batch.records.iter().enumerate() {
            if record.data.len() > MAX_RECORD_BYTES {
                refusal = format!(
                    "record {i}: {} bytes, more than {MAX_RECORD_BYTES}",
                    record.data.len()
                );
                refused.push(i);
                continue;
            }
            match self.topic.render(&record.partition_key) {
                Ok(topic) => publishes.push((topic, &record.data)),
                Err(e) => {
                    refusal = format!("record {i}: {e}");
                    refused.push(i);
                }
            }
        }
        let partial = |refused: Vec<usize>| DeliveryError::Partial {
            message: format!("records that cannot be published ({refusal})"),
            failed: refused,
        };
        if publishes.is_empty() {
            return if refused.is_empty() {
                Ok(())
            } else {
                Err(partial(refused))
            };
        }

        let mut session = self.session.lock().await;
        if session.dirty {
            // The last delivery gave up while connected and asked for a disconnect: wait for it.
            loop {
                match tokio::time::timeout(Duration::from_secs(10), session.events.recv()).await {
                    Ok(Some(Event::Lost(_))) => break,
                    Ok(Some(_)) => continue,
                    Ok(None) => return Err(DeliveryError::Unreachable("closed".into())),
                    Err(_) => {
                        let _ = self.client.try_disconnect();
                        return Err(DeliveryError::Unreachable(format!(
                            "{}: the connection to the broker does not reset",
                            self.describe
                        )));
                    }
                }
            }
            session.dirty = false;
        }
        while session.events.try_recv().is_ok() {}

        let start = {
            let mut phase = self.phase();
            match *phase {
                Phase::Idle => {
                    *phase = Phase::Running;
                    true
                }
                Phase::Running => false,
                Phase::Closing => return Err(DeliveryError::Unreachable("closed".into())),
            }
        };
        if start {
            self.shared.wake.notify_one();
            loop {
                match tokio::time::timeout(self.stall_timeout, session.events.recv()).await {
                    Ok(Some(Event::Started)) => break,
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => {
                        return Err(DeliveryError::Unreachable(format!(
                            "{}: the MQTT client does not start",
                            self.describe
                        )))
                    }
                }
            }
        }

        let total = publishes.len();
        let mut next = 0;
        let mut published = 0;
        let mut acked = 0;
        let mut outstanding: HashSet<u16> = HashSet::new();
        loop {
            while next < total {
                let (topic, data) = &publishes[next];
                match self.client.try_publish(
                    topic.as_str(),
                    QoS::AtLeastOnce,
                    false,
                    data.to_vec(),
                ) {
                    Ok(()) => next += 1,
                    // The request queue is full: wait for the event loop to take some.
                    Err(_) => break,
                }
            }
            if published == total && outstanding.is_empty() {
                break;
            }
            match tokio::time::timeout(self.stall_timeout, session.events.recv()).await {
                Ok(Some(Event::Published(pkid))) => {
                    published += 1;
                    outstanding.insert(pkid);
                }
                Ok(Some(Event::Acked(pkid))) => {
                    if outstanding.remove(&pkid) {
                        acked += 1;
                    }
                }
                Ok(Some(Event::Started)) => {}
                Ok(Some(Event::Lost(e))) => {
                    return Err(DeliveryError::Unreachable(format!(
                        "{}: {e} ({acked} of {total} publishes confirmed)",
                        self.describe
                    )))
                }
                Ok(None) => {
                    return Err(DeliveryError::Unreachable(format!(
                        "{}: the MQTT client stopped",
                        self.describe
                    )))
                }
                Err(_) => {
                    session.dirty = true;
                    let _ = self.client.try_disconnect();
                    return Err(DeliveryError::Unreachable(format!(
                        "{}: no progress for {} s ({acked} of {total} publishes confirmed); \
                         reconnecting",
                        self.describe,
                        self.stall_timeout.as_secs()
                    )));
                }
            }
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(partial(refused))
        }
    }

    async fn close(&self) {
        let was = std::mem::replace(&mut *self.phase(), Phase::Closing);
        self.shared.wake.notify_one();
        if was == Phase::Running {
            let _ = self.client.try_disconnect();
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut task) = task {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

/// The event loop task (see the module doc).
async fn drive(
    mut eventloop: EventLoop,
    shared: Arc<Shared>,
    events: mpsc::Sender<Event>,
    describe: String,
) {
    let set_phase = |to: Phase| -> Phase {
        let mut phase = shared
            .phase
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let was = *phase;
        if was != Phase::Closing {
            *phase = to;
        }
        was
    };
    let mut was_connected = false;
    loop {
        // Idle until a delivery wants the connection.
        loop {
            let phase = *shared
                .phase
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match phase {
                Phase::Running => break,
                Phase::Closing => return,
                Phase::Idle => shared.wake.notified().await,
            }
        }
        // Requests a failed delivery left behind are not sent now.
        reset(&mut eventloop);
        if events.send(Event::Started).await.is_err() {
            return;
        }
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if events.send(Event::Published(pkid)).await.is_err() {
                        return;
                    }
                }
                Ok(rumqttc::Event::Incoming(Packet::PubAck(ack))) => {
                    if events.send(Event::Acked(ack.pkid)).await.is_err() {
                        return;
                    }
                }
                Ok(rumqttc::Event::Incoming(Packet::ConnAck(_))) => {
                    if !was_connected {
                        tracing::info!(broker = %describe, "connected to the MQTT broker");
                    }
                    was_connected = true;
                }
                Ok(rumqttc::Event::Outgoing(Outgoing::Disconnect)) => {
                    reset(&mut eventloop);
                    if set_phase(Phase::Idle) == Phase::Closing {
                        return;
                    }
                    was_connected = false;
                    let _ = events
                        .send(Event::Lost("disconnected to reset the connection".into()))
                        .await;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    reset(&mut eventloop);
                    if set_phase(Phase::Idle) == Phase::Closing {
                        return;
                    }
                    if was_connected {
                        tracing::warn!(broker = %describe, error = %e, "lost the MQTT broker");
                    }
                    was_connected = false;
                    let _ = events.send(Event::Lost(e.to_string())).await;
                    break;
                }
            }
        }
    }
}

/// Drops the connection, every queued request and all session state (packet ids, buffered
/// events, collisions): what comes next belongs to a new delivery on a clean session.
fn reset(eventloop: &mut EventLoop) {
    eventloop.clean();
    eventloop.pending.clear();
    eventloop.state = rumqttc::MqttState::new(INFLIGHT, false);
}

fn tls_config(config: &MqttDestinationConfig) -> Result<rustls::ClientConfig, BuildError> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = config
        .ca
        .as_deref()
        .unwrap_or_else(|| Path::new(DEFAULT_CA_FILE));
    let certs = read_certs(ca)?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(build_error(format!(
            "ca `{}`: no usable certificate",
            ca.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| build_error(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => {
            use rustls_pki_types::pem::PemObject;
            let chain = read_certs(cert)?;
            let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key)
                .map_err(|e| build_error(format!("key `{}`: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| build_error(format!("cert and key: {e}")))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(build_error("cert and key: both or neither".into())),
    }
}

fn read_certs(path: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, BuildError> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| build_error(format!("`{}`: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| build_error(format!("`{}`: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(build_error(format!(
            "`{}`: no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn build_error(message: String) -> BuildError {
    BuildError {
        kind: KIND,
        message,
    }
}

#[cfg(test)]
mod tests;
