//! The retry logic of one batch, against a scripted destination (the real destinations
//! are tested against real servers in their own tests and in tests/interop).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use super::send::{deliver_batch, Shared};
use super::*;
use crate::delivery::batch::{DeliveryRecord, ErrorOutputType};
use crate::delivery::destinations::{BatchLimits, DeliveryError};

struct Scripted {
    answers: Mutex<Vec<Result<(), DeliveryError>>>,
    seen: Mutex<Vec<Vec<String>>>,
    retry: Option<Duration>,
    network: bool,
}

#[async_trait]
impl Destination for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }
    fn describe(&self) -> String {
        "scripted".into()
    }
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_bytes: 1 << 20,
            max_records: 100,
        }
    }
    fn retry_duration(&self) -> Option<Duration> {
        self.retry
    }
    fn uses_network(&self) -> bool {
        self.network
    }
    fn failure_type(&self) -> ErrorOutputType {
        ErrorOutputType::KinesisFailed
    }
    async fn deliver(&self, batch: &Batch) -> Result<(), DeliveryError> {
        self.seen.lock().unwrap().push(
            batch
                .records
                .iter()
                .map(|r| String::from_utf8_lossy(&r.data).into_owned())
                .collect(),
        );
        let mut answers = self.answers.lock().unwrap();
        if answers.is_empty() {
            Ok(())
        } else {
            answers.remove(0)
        }
    }
}

fn batch(n: usize) -> Batch {
    Batch {
        delivery_stream: "d".into(),
        id: "b1".into(),
        created_ms: 1_700_000_000_000,
        formed_ms: 1_700_000_000_000,
        compression: crate::delivery::config::Compression::None,
        records: (0..n)
            .map(|i| DeliveryRecord {
                data: Bytes::from(format!("r{i}")),
                partition_key: "k".into(),
                sequence_number: i.to_string(),
                arrival_ms: 1,
                partition_values: Arc::new(BTreeMap::new()),
            })
            .collect(),
    }
}

fn shared(dir: &std::path::Path) -> (Shared, watch::Sender<bool>) {
    let (stop, stop_rx) = watch::channel(false);
    let shared = Shared {
        name: "d".into(),
        priority: 5,
        status: Arc::new(StatusCell::default()),
        bandwidth: Arc::new(Bandwidth::new(0)),
        dead_letter: DeadLetter::new(dir.to_path_buf()),
        stop: stop_rx,
    };
    (shared, stop)
}

fn dead_letters(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                out.extend(text.lines().map(|l| serde_json::from_str(l).unwrap()));
            }
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn partial_failure_sends_only_the_unconfirmed_records_again() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, _stop) = shared(dir.path());
    let destination = Arc::new(Scripted {
        answers: Mutex::new(vec![Err(DeliveryError::Partial {
            failed: vec![1],
            message: "throttled".into(),
        })]),
        seen: Mutex::new(Vec::new()),
        retry: None,
        network: true,
    });
    let processors = Arc::new(Processors::new(&[], reqwest::Client::new(), "arn").unwrap());
    let delivered = deliver_batch(batch(3), processors, destination.clone(), shared.clone())
        .await
        .ok()
        .unwrap();
    assert_eq!(delivered.records, 3);
    assert_eq!(
        *destination.seen.lock().unwrap(),
        vec![vec!["r0", "r1", "r2"], vec!["r1"]]
    );
    assert_eq!(shared.status.get().retries, 1);
    assert!(dead_letters(dir.path()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn giving_up_after_a_partial_failure_keeps_confirmed_records_out_of_the_error_output() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, _stop) = shared(dir.path());
    let destination = Arc::new(Scripted {
        answers: Mutex::new(vec![Err(DeliveryError::Partial {
            failed: vec![2],
            message: "invalid topic".into(),
        })]),
        seen: Mutex::new(Vec::new()),
        retry: Some(Duration::ZERO),
        network: true,
    });
    let processors = Arc::new(Processors::new(&[], reqwest::Client::new(), "arn").unwrap());
    deliver_batch(batch(3), processors, destination.clone(), shared.clone())
        .await
        .ok()
        .unwrap();
    let errors = dead_letters(dir.path());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["rawData"], "cjI="); // "r2"
    assert_eq!(shared.status.get().failed_records, 1);
    assert!(shared.status.get().last_error.is_some());
}

#[tokio::test(start_paused = true)]
async fn unreachable_is_retried_until_it_answers_and_stop_ends_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, stop) = shared(dir.path());
    let destination = Arc::new(Scripted {
        answers: Mutex::new(
            (0..5)
                .map(|_| Err(DeliveryError::Unreachable("refused".into())))
                .collect(),
        ),
        seen: Mutex::new(Vec::new()),
        retry: Some(Duration::from_secs(1)),
        network: true,
    });
    let processors = Arc::new(Processors::new(&[], reqwest::Client::new(), "arn").unwrap());
    // An outage does not use up the retry duration: delivered after 5 refusals.
    let started = tokio::time::Instant::now();
    deliver_batch(
        batch(2),
        processors.clone(),
        destination.clone(),
        shared.clone(),
    )
    .await
    .ok()
    .unwrap();
    assert_eq!(destination.seen.lock().unwrap().len(), 6);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "retried about every second"
    );
    assert!(dead_letters(dir.path()).is_empty());
    assert_eq!(shared.status.get().state, DeliveryState::Delivering);

    // While it is unreachable, stopping the gateway ends the retries without a verdict.
    destination
        .answers
        .lock()
        .unwrap()
        .extend((0..1000).map(|_| Err(DeliveryError::Unreachable("refused".into()))));
    let task = tokio::spawn(deliver_batch(
        batch(1),
        processors,
        destination,
        shared.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(shared.status.get().state, DeliveryState::BackingOff);
    stop.send(true).unwrap();
    assert!(task.await.unwrap().is_err());
}

#[tokio::test(start_paused = true)]
async fn the_bandwidth_cap_holds_back_network_destinations_only() {
    let dir = tempfile::tempdir().unwrap();
    let processors = Arc::new(Processors::new(&[], reqwest::Client::new(), "arn").unwrap());
    for network in [true, false] {
        let (mut shared, _stop) = shared(dir.path());
        shared.bandwidth = Arc::new(Bandwidth::new(10)); // 10 bytes/s
        let destination = Arc::new(Scripted {
            answers: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            retry: None,
            network,
        });
        let started = tokio::time::Instant::now();
        for _ in 0..3 {
            // 10 records of 2 bytes: 20 bytes, 2 s of the cap each
            deliver_batch(
                batch(10),
                processors.clone(),
                destination.clone(),
                shared.clone(),
            )
            .await
            .ok()
            .unwrap();
        }
        let took = started.elapsed();
        if network {
            assert!(
                took >= Duration::from_secs(3),
                "network destination: {took:?}"
            );
        } else {
            assert!(
                took < Duration::from_millis(100),
                "local directory: {took:?}"
            );
        }
    }
}
