//! Camera video upload end to end: a real fragment log filled with synthetic fragments, a real
//! delivery service with a `source = "video"` delivery stream, and the uploader putting objects
//! to moto's S3 (started on a loopback port per test, killed when the test ends) or to a
//! directory. Object names, contents, playlists, checkpoints, restarts, deletion after upload,
//! windows, grouping, outages and the bandwidth cap are checked on what landed.
//!
//! moto comes from `scripts/install-deps --test` (or any `python3` with `moto[server]`);
//! `KINEDGE_PYTHON` picks the interpreter. Without it the S3 tests fail, they never skip.
#![cfg(feature = "video")]

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Timelike;
use kinedge::delivery::config::{
    AwsCredentialsConfig, BufferHints, Compression, DeliveryStreamConfig, DestinationConfig,
    DirectoryConfig, S3Config, Secret, SourceConfig,
};
use kinedge::delivery::sources::video::{UploadError, Uploader};
use kinedge::delivery::{DeliveryService, DeliverySettings};
use kinedge::devices::camera::CameraUpload;
use kinedge::storage::{Store, StoreOptions};
use kinedge::video::log::{FragmentLog, NewFragment, RetentionPolicy};
use kinedge::video::uploads::{UploadHandle, UploadState};
use tokio::sync::watch;

use common::moto::REGION;
const BUCKET: &str = "cams";
const CAMERA: &str = "cam-1";
const STREAM: &str = "video-up";
// 2024-05-01T12:00:00Z
const NOON: i64 = 1_714_564_800_000;

mod common;
use common::moto::{free_port, Moto};

/// The camera bucket on moto.
impl Moto {
    /// Starts moto on `port` with the bucket created.
    async fn with_bucket(port: u16) -> Moto {
        let moto = Moto::start_on(port).await;
        moto.create_bucket(BUCKET).await;
        moto
    }

    async fn camera_keys(&self) -> Vec<String> {
        self.keys(BUCKET).await
    }

    /// An object's body and content type.
    async fn camera_object(&self, key: &str) -> (Vec<u8>, String) {
        self.object_and_header(BUCKET, key, "content-type").await
    }
}

fn s3(port: u16, prefix: &str) -> DestinationConfig {
    std::env::set_var("KINEDGE_TEST_VIDEO_SECRET", "testing-secret");
    DestinationConfig::S3(S3Config {
        bucket: BUCKET.into(),
        region: REGION.into(),
        prefix: Some(prefix.into()),
        error_prefix: None,
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        credentials: AwsCredentialsConfig {
            access_key_id: Some("testing".into()),
            secret: Some(Secret::Env("KINEDGE_TEST_VIDEO_SECRET".into())),
        },
        force_path_style: true,
    })
}

fn directory(path: &Path) -> DestinationConfig {
    DestinationConfig::Directory(DirectoryConfig {
        path: path.to_path_buf(),
        prefix: None,
        error_prefix: None,
    })
}

/// A gateway's parts: a stream store and delivery service, a fragment log, a shutdown signal.
struct Parts {
    tmp: tempfile::TempDir,
    log: FragmentLog,
    delivery: DeliveryService,
    shutdown: watch::Sender<bool>,
}

impl Parts {
    async fn new(destination: DestinationConfig, max_bandwidth: u64) -> Parts {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(tmp.path().join("data"))).unwrap();
        let video = DeliveryStreamConfig {
            name: STREAM.into(),
            source: SourceConfig::Video,
            buffer: BufferHints::default(),
            compression: Compression::None,
            priority: 5,
            processors: Vec::new(),
            destination,
        };
        let records = DeliveryStreamConfig {
            name: "records".into(),
            source: SourceConfig::DirectPut,
            destination: directory(&tmp.path().join("records")),
            ..video.clone()
        };
        let delivery = DeliveryService::start(
            store,
            vec![video, records],
            DeliverySettings {
                max_bandwidth,
                dead_letter_dir: tmp.path().join("dead"),
            },
            REGION.into(),
            "000000000000".into(),
        )
        .await
        .unwrap();
        let log = FragmentLog::open(&tmp.path().join("video/fragments.redb")).unwrap();
        Parts {
            tmp,
            log,
            delivery,
            shutdown: watch::channel(false).0,
        }
    }

    fn start(&self, upload: CameraUpload) -> Result<UploadHandle, UploadError> {
        Uploader::start(
            CAMERA.into(),
            upload,
            self.log.clone(),
            &self.delivery,
            self.tmp.path().join("video/uploads"),
            self.shutdown.subscribe(),
        )
    }

    async fn stop(&self, handle: UploadHandle) {
        self.shutdown.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), handle.join())
            .await
            .expect("the uploader stops promptly");
        self.shutdown.send_replace(false);
    }

    /// Appends fragments of `duration_ms` starting at `start_ms` back to back, `size` bytes
    /// each (their number repeated), playing with init segment `init`.
    fn append(&self, init: &[u8], start_ms: i64, count: usize, duration_ms: u32, size: usize) {
        let init_id = self.log.put_init(CAMERA, init).unwrap();
        let policy = RetentionPolicy {
            max_age_ms: 0,
            max_bytes: None,
            on_full: Default::default(),
            min_free_disk: 0,
        };
        for i in 0..count {
            let producer_ms = start_ms + i as i64 * i64::from(duration_ms);
            let number = self
                .log
                .usage(CAMERA)
                .unwrap()
                .last
                .map_or(1, |f| f.number + 1);
            let fragment = NewFragment {
                producer_ms,
                duration_ms,
                keyframe: true,
                discontinuity: i == 0,
                codec: "h264".into(),
                width: 640,
                height: 360,
                init_id,
                data: Bytes::from(fragment_bytes(number, size)),
            };
            // Committed when it ended: an old fragment, not one a camera is still adding to.
            let now = producer_ms + i64::from(duration_ms);
            self.log.append(CAMERA, fragment, &policy, now).unwrap();
        }
    }

    fn usage(&self) -> u64 {
        self.log.usage(CAMERA).unwrap().fragments
    }
}

fn fragment_bytes(number: u64, size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (number as usize * 7 + i % 5) as u8)
        .collect()
}

fn upload(segment_minutes: u32) -> CameraUpload {
    CameraUpload {
        destination: STREAM.into(),
        window: None,
        delete_after_upload: false,
        segment_minutes,
    }
}

/// Waits (up to 20 s) until `done` holds.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn segment_key(prefix: &str, number: u64, start_ms: i64) -> String {
    format!("{prefix}{CAMERA}/2024/05/01/12/{number}-{start_ms}.m4s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_objects_playlist_checkpoint_and_restart() {
    let moto = Moto::with_bucket(free_port()).await;
    let parts = Parts::new(s3(moto.port, "gw1/"), 0).await;
    // 1-3 with init A, 4-5 with init B after a gap of a minute.
    parts.append(b"init-A", NOON, 3, 2000, 1000);
    parts.append(b"init-B", NOON + 60_000, 2, 2000, 1000);
    let handle = parts.start(upload(0)).unwrap();
    handle.notify(5);
    let playlist_key = format!("gw1/{CAMERA}/2024/05/01/playlist.m3u8");
    until("the playlist", async || {
        moto.camera_keys().await.contains(&playlist_key)
    })
    .await;

    let starts = [NOON, NOON + 2000, NOON + 4000, NOON + 60_000, NOON + 62_000];
    let mut expected: Vec<String> = (1..=5u64)
        .map(|n| segment_key("gw1/", n, starts[n as usize - 1]))
        .collect();
    expected.push(playlist_key.clone());
    expected.push(format!("gw1/{CAMERA}/init-1.mp4"));
    expected.push(format!("gw1/{CAMERA}/init-2.mp4"));
    expected.sort();
    assert_eq!(moto.camera_keys().await, expected);
    for n in 1..=5u64 {
        let (body, content_type) = moto
            .camera_object(&segment_key("gw1/", n, starts[n as usize - 1]))
            .await;
        assert_eq!(body, fragment_bytes(n, 1000), "fragment {n}");
        assert_eq!(content_type, "video/iso.segment");
    }
    assert_eq!(
        moto.camera_object(&format!("gw1/{CAMERA}/init-2.mp4"))
            .await
            .0,
        b"init-B"
    );

    let (playlist, _) = moto.camera_object(&playlist_key).await;
    let playlist = String::from_utf8(playlist).unwrap();
    assert!(
        playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"),
        "{playlist}"
    );
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
    let uris: Vec<&str> = playlist.lines().filter(|l| l.ends_with(".m4s")).collect();
    assert_eq!(
        uris,
        [
            "12/1-1714564800000.m4s",
            "12/2-1714564802000.m4s",
            "12/3-1714564804000.m4s",
            "12/4-1714564860000.m4s",
            "12/5-1714564862000.m4s"
        ]
    );
    assert!(playlist.contains("#EXT-X-MAP:URI=\"../../../init-1.mp4\"\n"));
    assert!(playlist.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"../../../init-2.mp4\"\n"));

    let status = handle.status();
    assert_eq!(status.uploaded_through, Some(5));
    assert_eq!(status.backlog_fragments, 0);
    assert!(status.last_upload_ms.is_some());
    assert_eq!(
        parts.log.upload_checkpoint(CAMERA, STREAM).unwrap(),
        Some(5)
    );
    assert_eq!(
        parts.usage(),
        5,
        "fragments are kept without delete_after_upload"
    );
    // The delivery stream shows the camera's upload.
    let deliveries = serde_json::to_value(parts.delivery.status()).unwrap();
    let video = &deliveries[1];
    assert_eq!(video["name"], STREAM);
    assert_eq!(video["state"], "video");
    assert_eq!(video["source"], "video");
    assert_eq!(video["uploads"][0]["camera"], CAMERA);
    assert_eq!(video["uploads"][0]["uploaded_through"], 5);
    assert!(deliveries[0].get("uploads").is_none());
    parts.stop(handle).await;

    // Restart: only the new fragments go up (what is in the bucket is removed to tell), and
    // the playlist still lists everything.
    for key in moto.camera_keys().await {
        moto.delete_object(BUCKET, &key).await;
    }
    parts.append(b"init-B", NOON + 64_000, 2, 2000, 1000);
    let handle = parts.start(upload(0)).unwrap();
    until("the playlist again", async || {
        moto.camera_keys().await.contains(&playlist_key)
    })
    .await;
    let mut expected = vec![
        segment_key("gw1/", 6, NOON + 64_000),
        segment_key("gw1/", 7, NOON + 66_000),
        playlist_key.clone(),
    ];
    expected.sort();
    assert_eq!(moto.camera_keys().await, expected);
    let playlist = String::from_utf8(moto.camera_object(&playlist_key).await.0).unwrap();
    assert_eq!(
        playlist.lines().filter(|l| l.ends_with(".m4s")).count(),
        7,
        "{playlist}"
    );
    assert_eq!(
        parts.log.upload_checkpoint(CAMERA, STREAM).unwrap(),
        Some(7)
    );
    parts.stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_segments_grouped_and_deleted_after_upload() {
    let out = tempfile::tempdir().unwrap();
    let parts = Parts::new(directory(out.path()), 0).await;
    // 40 continuous fragments of 2 s: one minute is 30 of them.
    parts.append(b"init", NOON, 40, 2000, 100);
    let handle = parts
        .start(CameraUpload {
            delete_after_upload: true,
            ..upload(1)
        })
        .unwrap();
    let playlist = out.path().join(CAMERA).join("2024/05/01/playlist.m3u8");
    until("the upload", async || {
        parts.usage() == 0 && playlist.exists()
    })
    .await;
    let first = out.path().join(segment_key("", 1, NOON));
    let second = out.path().join(segment_key("", 31, NOON + 60_000));
    let body = |numbers: std::ops::RangeInclusive<u64>| -> Vec<u8> {
        numbers.flat_map(|n| fragment_bytes(n, 100)).collect()
    };
    assert_eq!(std::fs::read(first).unwrap(), body(1..=30));
    assert_eq!(std::fs::read(second).unwrap(), body(31..=40));
    assert_eq!(
        std::fs::read(out.path().join(CAMERA).join("init-1.mp4")).unwrap(),
        b"init"
    );
    let text = std::fs::read_to_string(&playlist).unwrap();
    assert!(
        text.contains(
            "#EXTINF:60.000,\n12/1-1714564800000.m4s\n#EXTINF:20.000,\n12/31-1714564860000.m4s\n"
        ),
        "{text}"
    );
    assert_eq!(handle.status().uploaded_through, Some(40));
    parts.stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_that_excludes_now_uploads_nothing() {
    let out = tempfile::tempdir().unwrap();
    let parts = Parts::new(directory(out.path()), 0).await;
    parts.append(b"init", NOON, 2, 2000, 100);
    let now = chrono::Local::now();
    let minute = (now.hour() * 60 + now.minute()) as u16;
    let later = Some(((minute + 120) % 1440, (minute + 180) % 1440));
    let handle = parts
        .start(CameraUpload {
            window: later,
            ..upload(0)
        })
        .unwrap();
    until("waiting for the window", async || {
        handle.status().state == UploadState::WaitingForWindow
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(std::fs::read_dir(out.path()).map_or(true, |mut d| d.next().is_none()));
    let status = handle.status();
    assert_eq!(status.uploaded_through, None);
    assert_eq!((status.backlog_fragments, status.backlog_bytes), (2, 200));
    parts.stop(handle).await;

    // A window around now (wrapping past midnight when it must) uploads.
    let around = Some(((minute + 1440 - 60) % 1440, (minute + 60) % 1440));
    let handle = parts
        .start(CameraUpload {
            window: around,
            ..upload(0)
        })
        .unwrap();
    until("the upload", async || {
        handle.status().uploaded_through == Some(2)
    })
    .await;
    parts.stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_destination_keeps_the_backlog_and_recovers() {
    let port = free_port();
    let parts = Parts::new(s3(port, ""), 0).await;
    parts.append(b"init", NOON, 3, 2000, 100);
    let handle = parts
        .start(CameraUpload {
            delete_after_upload: true,
            ..upload(0)
        })
        .unwrap();
    until("retrying", async || {
        handle.status().state == UploadState::Retrying
    })
    .await;
    let status = handle.status();
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("unreachable"),
        "{status:?}"
    );
    assert_eq!(status.backlog_fragments, 3);
    assert_eq!(status.backlog_bytes, 300);
    assert_eq!(parts.usage(), 3, "nothing is deleted before it is uploaded");
    assert_eq!(parts.log.upload_checkpoint(CAMERA, STREAM).unwrap(), None);

    let moto = Moto::with_bucket(port).await;
    until("the upload", async || {
        handle.status().uploaded_through == Some(3)
    })
    .await;
    assert_eq!(parts.usage(), 0);
    assert_eq!(
        moto.camera_object(&segment_key("", 3, NOON + 4000)).await.0,
        fragment_bytes(3, 100)
    );
    parts.stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_cap_slows_the_upload() {
    let moto = Moto::with_bucket(free_port()).await;
    // 100 kB/s, a burst of one second, and the last send may go when the bucket is not in
    // debt: 10 x 30 kB take at least (300 - 100 - 30) / 100 = 1.7 s.
    let parts = Parts::new(s3(moto.port, ""), 100_000).await;
    parts.append(b"init", NOON, 10, 2000, 30_000);
    let started = Instant::now();
    let handle = parts.start(upload(0)).unwrap();
    until("the upload", async || {
        handle.status().uploaded_through == Some(10)
    })
    .await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1600), "{took:?}");
    parts.stop(handle).await;
}

#[tokio::test]
async fn start_needs_a_video_delivery_stream() {
    let out = tempfile::tempdir().unwrap();
    let parts = Parts::new(directory(out.path()), 0).await;
    let missing = CameraUpload {
        destination: "nope".into(),
        ..upload(0)
    };
    let error = parts.start(missing).err().unwrap().to_string();
    assert!(error.contains("`nope` is not a delivery stream"), "{error}");
    let records = CameraUpload {
        destination: "records".into(),
        ..upload(0)
    };
    let error = parts.start(records).err().unwrap().to_string();
    assert!(
        error.contains("delivery stream `records` does not have source = \"video\""),
        "{error}"
    );
}

/// Every file under `dir` (recursively) whose text contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                if text.contains(needle) {
                    found.push(text);
                }
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_error_goes_to_the_error_output_and_is_not_retried_forever() {
    // A prefix that leaves the folder: the directory destination refuses every object with a
    // permanent error. The engine gives up on each (as on a batch of records): the error
    // output describes it, status shows it, the checkpoint moves on, the fragments stay.
    let out = tempfile::tempdir().unwrap();
    let destination = DestinationConfig::Directory(DirectoryConfig {
        path: out.path().to_path_buf(),
        prefix: Some("../outside/".into()),
        error_prefix: None,
    });
    let parts = Parts::new(destination, 0).await;
    parts.append(b"init", NOON, 2, 2000, 100);
    let handle = parts
        .start(CameraUpload {
            delete_after_upload: true,
            ..upload(0)
        })
        .unwrap();
    until("the checkpoint past both fragments", async || {
        handle.status().uploaded_through == Some(2)
    })
    .await;
    let status = handle.status();
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("gave up")),
        "{status:?}"
    );
    assert_eq!(status.last_upload_ms, None, "nothing was confirmed");
    assert_eq!(
        parts.usage(),
        2,
        "given-up fragments stay in the fragment log"
    );
    assert_eq!(
        parts.log.upload_checkpoint(CAMERA, STREAM).unwrap(),
        Some(2)
    );
    let deliveries = serde_json::to_value(parts.delivery.status()).unwrap();
    let video = &deliveries[1];
    assert_eq!(video["name"], STREAM);
    assert!(video["failed_records"].as_u64().unwrap() >= 2, "{video}");
    assert!(
        video["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("gave up")),
        "{video}"
    );
    let described: Vec<String> = [out.path(), &parts.tmp.path().join("dead")]
        .iter()
        .flat_map(|dir| files_containing(dir, "Delivery.PermanentFailure"))
        .collect();
    let segment = segment_key("../outside/", 2, NOON + 2000);
    assert!(
        described.iter().any(|text| text.contains(&segment)),
        "{described:?}"
    );
    parts.stop(handle).await;
}
