use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};

use bytes::Bytes;

use super::*;
use crate::delivery::batch::DeliveryRecord;
use crate::delivery::config::Compression;
use crate::delivery::destinations::Destination;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A mosquitto on 127.0.0.1, killed when dropped.
struct Broker {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    async fn start(port: u16, extra: &str) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\npersistence false\nlog_dest none\nmax_queued_messages 0\n{extra}\n"),
        )
        .unwrap();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (Debian package `mosquitto`) is needed for this test");
        let broker = Broker { child, _dir: dir };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return broker;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("mosquitto did not start on port {port}");
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

type Received = Arc<Mutex<Vec<(String, Bytes)>>>;

/// Subscribes to `filter` and collects what arrives.
async fn subscribe(port: u16, filter: &str) -> (Received, JoinHandle<()>) {
    let mut options =
        MqttOptions::new(format!("sub-{}", uuid::Uuid::new_v4()), "127.0.0.1", port);
    options.set_max_packet_size(2 * MIB as usize, 64 * 1024);
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let received: Received = Arc::default();
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    let sink = Arc::clone(&received);
    let task = tokio::spawn(async move {
        let _client = client;
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(rumqttc::Event::Incoming(Packet::Publish(p))) => {
                    sink.lock()
                        .unwrap()
                        .push((p.topic.clone(), p.payload.clone()));
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    subscribed_rx.await.unwrap();
    (received, task)
}

fn context() -> DestinationContext {
    DestinationContext {
        delivery_stream: "ds".into(),
        source_arn: "arn:aws:firehose:eu-west-1:000000000000:deliverystream/ds".into(),
        data_dir: std::env::temp_dir(),
        http: reqwest::Client::new(),
    }
}

fn config(port: u16) -> MqttDestinationConfig {
    MqttDestinationConfig {
        url: format!("mqtt://127.0.0.1:{port}"),
        topic: "up/{stream}/{partition_key}".into(),
        client_id: format!("kinedge-test-{}", uuid::Uuid::new_v4()),
        ca: None,
        cert: None,
        key: None,
        username: None,
        password: None,
    }
}

fn batch(n: usize, size: usize) -> Batch {
    Batch {
        delivery_stream: "ds".into(),
        id: uuid::Uuid::new_v4().to_string(),
        created_ms: 1,
        formed_ms: 1,
        compression: Compression::None,
        records: (0..n)
            .map(|i| {
                let mut data = format!("record-{i:06}-").into_bytes();
                data.resize(size.max(data.len()), b'x');
                DeliveryRecord {
                    data: Bytes::from(data),
                    partition_key: format!("dev-{}", i % 5),
                    sequence_number: i.to_string(),
                    arrival_ms: 1,
                    partition_values: Arc::default(),
                }
            })
            .collect(),
    }
}

async fn wait_for(received: &Received, n: usize) {
    for _ in 0..200 {
        if received.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn timed<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test took too long")
}

#[tokio::test]
async fn publishes_every_record_and_survives_broker_restarts() {
    timed(async {
        let port = free_port();
        let mut broker = Broker::start(port, "allow_anonymous true").await;
        let (received, sub) = subscribe(port, "up/#").await;
        let dest = MqttDestination::new(&config(port), &context())
            .await
            .unwrap();
        assert_eq!(dest.failure_type(), ErrorOutputType::MqttFailed);

        let b = batch(3000, 100);
        dest.deliver(&b).await.unwrap();
        wait_for(&received, 3000).await;
        {
            let got = received.lock().unwrap();
            assert_eq!(got.len(), 3000);
            let sent: BTreeSet<(String, Bytes)> = b
                .records
                .iter()
                .map(|r| (format!("up/ds/{}", r.partition_key), r.data.clone()))
                .collect();
            let got: BTreeSet<(String, Bytes)> = got.iter().cloned().collect();
            assert_eq!(got, sent);
        }
        // The connection is kept for the next batch.
        dest.deliver(&batch(10, 10)).await.unwrap();
        wait_for(&received, 3010).await;
        assert_eq!(received.lock().unwrap().len(), 3010);

        // The broker goes away in the middle of a batch.
        let big = batch(10_000, 2000);
        let delivering = dest.deliver(&big);
        let killing = async {
            wait_for(&received, 3100).await;
            broker.stop();
        };
        let (result, ()) = tokio::join!(delivering, killing);
        match result {
            Err(DeliveryError::Unreachable(m)) => assert!(m.contains("127.0.0.1"), "{m}"),
            other => panic!("{other:?}"),
        }
        sub.abort();

        // Down: unreachable, quickly.
        let started = std::time::Instant::now();
        match dest.deliver(&batch(5, 10)).await {
            Err(DeliveryError::Unreachable(_)) => {}
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));

        // Back: the next delivery reconnects.
        let _broker = Broker::start(port, "allow_anonymous true").await;
        let (received, _sub) = subscribe(port, "up/#").await;
        dest.deliver(&big).await.unwrap();
        wait_for(&received, 10_000).await;
        assert_eq!(received.lock().unwrap().len(), 10_000);
        dest.close().await;
    })
    .await
}

/// Runs openssl (a test dependency) in `dir`; panics with its output on failure.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package `openssl`) is needed for this test");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate with CN `gw-1`.
fn make_certificates(dir: &std::path::Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    for (name, cn) in [("server", "127.0.0.1"), ("client", "gw-1")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        std::fs::write(
            dir.join(format!("{name}.ext")),
            if name == "server" {
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
            } else {
                "extendedKeyUsage=clientAuth\n"
            },
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.crt"),
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
    // mosquitto started as root drops to its own user: let it read the files.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

#[tokio::test]
async fn tls_with_a_client_certificate_as_aws_iot_core_wants() {
    timed(async {
        let certs = tempfile::tempdir().unwrap();
        make_certificates(certs.path());
        let path = |f: &str| certs.path().join(f);
        let (plain, tls) = (free_port(), free_port());
        // A TLS listener that requires a client certificate signed by the CA, and a plain
        // one for the test's subscriber.
        let extra = format!(
            "allow_anonymous true\nlistener {tls} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\nuse_identity_as_username true\n",
            path("ca.crt").display(),
            path("server.crt").display(),
            path("server.key").display(),
        );
        let _broker = Broker::start(plain, &extra).await;
        let (received, _sub) = subscribe(plain, "up/#").await;
        let mut cfg = config(tls);
        cfg.url = format!("mqtts://127.0.0.1:{tls}");
        cfg.ca = Some(path("ca.crt"));
        cfg.cert = Some(path("client.crt"));
        cfg.key = Some(path("client.key"));
        let dest = MqttDestination::new(&cfg, &context()).await.unwrap();
        dest.deliver(&batch(50, 20)).await.unwrap();
        wait_for(&received, 50).await;
        assert_eq!(received.lock().unwrap().len(), 50);
        dest.close().await;

        // Without the client certificate the broker refuses the handshake: an outage for
        // the runner (nothing is lost), not a success.
        let mut no_cert = config(tls);
        no_cert.url = format!("mqtts://127.0.0.1:{tls}");
        no_cert.ca = Some(path("ca.crt"));
        let dest = MqttDestination::new(&no_cert, &context()).await.unwrap();
        match dest.deliver(&batch(1, 10)).await {
            Err(DeliveryError::Unreachable(_)) => {}
            other => panic!("expected Unreachable without a client certificate: {other:?}"),
        }
        // A server certificate from another CA is not trusted either.
        let other = tempfile::tempdir().unwrap();
        make_certificates(other.path());
        let mut wrong_ca = cfg.clone();
        wrong_ca.ca = Some(other.path().join("ca.crt"));
        let dest = MqttDestination::new(&wrong_ca, &context()).await.unwrap();
        match dest.deliver(&batch(1, 10)).await {
            Err(DeliveryError::Unreachable(_)) => {}
            other => panic!("expected Unreachable with an untrusted server: {other:?}"),
        }
        assert_eq!(received.lock().unwrap().len(), 50);
    })
    .await
}

#[tokio::test]
async fn records_that_make_no_topic_fail_alone() {
    timed(async {
        let port = free_port();
        let _broker = Broker::start(port, "allow_anonymous true").await;
        let (received, _sub) = subscribe(port, "up/#").await;
        let dest = MqttDestination::new(&config(port), &context())
            .await
            .unwrap();
        let mut b = batch(4, 10);
        b.records[1].partition_key = "a/+/b".into();
        b.records[3].partition_key = "#".into();
        match dest.deliver(&b).await {
            Err(DeliveryError::Partial { failed, message }) => {
                assert_eq!(failed, vec![1, 3]);
                assert!(message.contains("'#'"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        wait_for(&received, 2).await;
        assert_eq!(received.lock().unwrap().len(), 2);
        assert_eq!(dest.retry_duration(), Some(Duration::ZERO));
        dest.close().await;
    })
    .await
}

#[tokio::test]
async fn logs_in_with_username_and_password() {
    timed(async {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let passwords = dir.path().join("passwords");
        let status = Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&passwords)
            .args(["gateway", "s3cret"])
            .status()
            .expect("mosquitto_passwd");
        assert!(status.success());
        let _broker = Broker::start(
            port,
            &format!(
                "allow_anonymous false\npassword_file {}",
                passwords.display()
            ),
        )
        .await;
        let secret = dir.path().join("secret");
        let mut cfg = config(port);
        cfg.username = Some("gateway".into());

        std::fs::write(&secret, "wrong\n").unwrap();
        cfg.password = Some(crate::delivery::config::Secret::File(secret.clone()));
        let dest = MqttDestination::new(&cfg, &context()).await.unwrap();
        match dest.deliver(&batch(1, 10)).await {
            Err(DeliveryError::Unreachable(m)) => assert!(m.contains("refused"), "{m}"),
            other => panic!("{other:?}"),
        }
        dest.close().await;

        std::fs::write(&secret, "s3cret\n").unwrap();
        let dest = MqttDestination::new(&cfg, &context()).await.unwrap();
        dest.deliver(&batch(20, 10)).await.unwrap();
        dest.close().await;
    })
    .await
}

#[tokio::test]
async fn configuration_is_checked() {
    let ctx = context();
    let with = |f: &dyn Fn(&mut MqttDestinationConfig)| {
        let mut c = config(1883);
        f(&mut c);
        c
    };
    let bad = [
        with(&|c| c.url = "http://127.0.0.1:1883".into()),
        with(&|c| c.topic = "up/{shard}".into()),
        with(&|c| c.topic = "up/+/{partition_key}".into()),
        with(&|c| c.topic = "up/{stream".into()),
        with(&|c| c.client_id = String::new()),
        with(&|c| c.ca = Some("/tmp/ca.pem".into())),
        with(&|c| {
            c.url = "mqtts://127.0.0.1".into();
            c.ca = Some("/nonexistent/ca.pem".into());
        }),
        with(&|c| {
            c.url = "mqtts://127.0.0.1".into();
            c.cert = Some("/nonexistent/cert.pem".into());
        }),
        with(&|c| c.password = Some(crate::delivery::config::Secret::Env("HOME".into()))),
    ];
    for c in bad {
        assert!(
            MqttDestination::new(&c, &ctx).await.is_err(),
            "accepted {c:?}"
        );
    }
    let ok = MqttDestination::new(&config(1883), &ctx).await.unwrap();
    assert_eq!(
        ok.describe(),
        "mqtt://127.0.0.1:1883 topic up/{stream}/{partition_key}"
    );
}

#[test]
fn topics_render() {
    let t = TopicTemplate::parse("a/{stream}/{partition_key}/x", "ds").unwrap();
    assert_eq!(t.render("k1").unwrap(), "a/ds/k1/x");
    assert!(t.render("k+").is_err());
    assert!(t.render("k\0").is_err());
    let t = TopicTemplate::parse("{partition_key}", "ds").unwrap();
    assert!(t.render("").is_err());
    assert!(TopicTemplate::parse("a/{stream}", "s#").is_err());
}
